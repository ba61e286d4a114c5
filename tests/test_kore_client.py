from __future__ import annotations

import json
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr

from connector.errors import KoreAuthError, KoreRejected, KoreUnavailable
from connector.kore.auth import IAT_BACKDATE_SECONDS, TOKEN_LIFETIME_SECONDS
from connector.kore.client import KoreClient
from connector.kore.pacing import Pacer, Throttle
from connector.kore.sandbox import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_CLIENT_ID,
    Faults,
    Sandbox,
)
from connector.settings import KoreSettings
from tests.conftest import SECRET

CSV = b"firstName,lastName,salutation,cellPhoneNumber,cellPhoneCountryCode,cellPhoneExtension\r\nA,B,,4155550132,+1,\r\n"


def _settings(host: str, **extra: Any) -> KoreSettings:
    return KoreSettings(
        host=host,
        bot_id="st-bot",
        account_id=DEFAULT_ACCOUNT_ID,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=SecretStr(SECRET),
        **{"retries": 2, "backoff_seconds": 0.0, **extra},
    )


def _free_pacer(_api: str = "import") -> Pacer:
    return Pacer([(60.0, 10_000)])


def _recording_pacer() -> tuple[Pacer, list[float]]:
    """A pacer on a clock that only its own sleeps move, and the sleeps it took."""
    now, sleeps = [0.0], []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    return Pacer([(60.0, 10_000)], clock=lambda: now[0], sleep=sleep), sleeps


@pytest.mark.parametrize("algorithm", ["HS256", "HS512"])
def test_every_request_carries_a_fresh_short_lived_jwt_and_the_account(algorithm: str) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    with KoreClient(
        _settings("https://kore.example.com", jwt_algorithm=algorithm),
        transport=httpx.MockTransport(answer),
        pacers=_free_pacer,
    ) as client:
        client.import_contacts(CSV)
        client.import_contacts(CSV)

        tokens = [r.headers["auth"] for r in seen]
        claims = [jwt.decode(t, SECRET, algorithms=[algorithm]) for t in tokens]
        assert all(c["appId"] == DEFAULT_CLIENT_ID and c["sub"] for c in claims)
        lifetime = TOKEN_LIFETIME_SECONDS + IAT_BACKDATE_SECONDS  # iat is set back for skew
        assert all(0 < c["exp"] - c["iat"] <= lifetime <= 330 for c in claims)
        assert claims[0]["jti"] != claims[1]["jti"]
        assert jwt.get_unverified_header(tokens[0])["alg"] == algorithm
        assert seen[0].headers["accountId"] == DEFAULT_ACCOUNT_ID
        assert seen[0].url.path == "/agentassist/api/v1/public/st-bot/contacts/import-contacts"
        assert b'name="result_file"' in seen[0].content and CSV in seen[0].content
        assert SECRET not in repr(client) + repr(client._http.auth)


def test_5xx_is_retried_then_reported_unavailable() -> None:
    with Sandbox(secret=SECRET, faults=Faults(fail_every=1)) as sandbox:
        sleeps: list[float] = []
        with KoreClient(_settings(sandbox.url), sleep=sleeps.append, pacers=_free_pacer) as client:
            with pytest.raises(KoreUnavailable, match="after 3 tries: HTTP 500"):
                client.import_contacts(CSV)
            assert sandbox.state.uploads == 3
            assert len(sleeps) == 2


@pytest.mark.parametrize("style", ["seconds", "date"])
def test_429_waits_for_retry_after_without_spending_a_retry(style: str) -> None:
    faults = Faults(rate_limit_every=2, retry_after=style)  # type: ignore[arg-type]
    with Sandbox(secret=SECRET, faults=faults) as sandbox:
        pacer, sleeps = _recording_pacer()
        failures: list[float] = []
        settings = _settings(sandbox.url, retries=0, max_rate_limit_wait_seconds=3)
        with KoreClient(settings, sleep=failures.append, pacers=lambda _api: pacer) as client:
            client.import_contacts(CSV)
            second = client.import_contacts(CSV.replace(b"0132", b"0133"))
            waited = max(sleeps)
            assert 0.9 <= waited <= 3.0, sleeps  # a date has whole seconds: about one
            assert len(second.created) == 1 and second.uncertain is False
            assert failures == [], "a 429 is no failure: retries=0 and it went through"
            assert pacer.throttle.share < 1, "and it slowed the pace down"
            sandbox.faults.rate_limit_every = 1
            with pytest.raises(KoreUnavailable, match=r"kept rate limiting .* more than 3s"):
                client.import_contacts(CSV)


def _scripted(answers: list[httpx.Response]) -> tuple[KoreClient, Pacer, list[float]]:
    """A client whose requests get ``answers`` in turn, paced by a recording pacer."""
    calls = iter(answers)
    pacer, sleeps = _recording_pacer()
    client = KoreClient(
        _settings("https://kore.example.com"),
        pacers=lambda _api: pacer,
        transport=httpx.MockTransport(lambda _r: next(calls)),
    )
    return client, pacer, sleeps


def test_without_retry_after_a_429_pauses_one_slower_spacing() -> None:
    client, _, sleeps = _scripted([httpx.Response(429), httpx.Response(200, json=[])])
    with client:
        client.import_contacts(CSV)
    assert sleeps == [pytest.approx(60 / 10_000 * 1.02 / 0.5)]


def test_the_throttle_halves_on_429_and_recovers_slowly() -> None:
    throttle = Throttle([(60.0, 60)], clock=lambda: 0.0)
    assert throttle.limited(None) == pytest.approx(1.02 / 0.5)
    throttle.limited(5.0)
    assert throttle.share == 0.25 and throttle.paused() == 5.0
    for _ in range(10):
        throttle.answered()
    assert throttle.share == pytest.approx(0.45)
    for _ in range(100):
        throttle.limited(0.0)
    assert throttle.share == 1 / 64


def test_the_rate_limit_message_counts_as_429_whatever_the_status() -> None:
    client, pacer, sleeps = _scripted(
        [
            httpx.Response(
                400,
                json={
                    "errors": [
                        {"msg": "Rate limit for this API has been reached. Please try again later"}
                    ]
                },
                headers={"Retry-After": "7"},
            ),
            httpx.Response(
                200, json={"errors": [{"msg": "Rate limit for this API has been reached"}]}
            ),
            httpx.Response(
                200, json=[{"id": "1", "lastName": "Rate limit for this API has been reached"}]
            ),
        ]
    )
    with client:
        created = client.import_contacts(CSV).created
        assert [c["id"] for c in created] == ["1"], "a contact's name is not a rate-limit answer"
        assert sleeps[0] == 7.0 and len(sleeps) == 2, "a 200 error object counts too"
        assert pacer.throttle.share == pytest.approx(0.27), "two 429s halved it, one answer"


def test_a_dropped_connection_is_retried_and_marked_uncertain() -> None:
    with Sandbox(secret=SECRET, faults=Faults(drop_every=2)) as sandbox:
        with KoreClient(_settings(sandbox.url), pacers=_free_pacer) as client:
            assert client.import_contacts(CSV).uncertain is False
            second = client.import_contacts(CSV.replace(b"0132", b"0133"))
            assert second.uncertain is True
            assert second.created == []  # stored by the dropped try, refused by the retry
            assert len(sandbox.state.active()) == 2


def test_wrong_secret_is_a_credentials_error_after_one_fresh_token() -> None:
    with Sandbox(secret="another-secret-entirely-0123456789abcdef") as sandbox:
        with KoreClient(_settings(sandbox.url), pacers=_free_pacer) as client:
            with pytest.raises(KoreAuthError, match="refused the credentials") as caught:
                client.list_contacts()
            assert SECRET not in str(caught.value)


def test_other_4xx_is_rejected_with_the_detail() -> None:
    with Sandbox(secret=SECRET, faults=Faults(duplicates="reject-file")) as sandbox:
        with KoreClient(_settings(sandbox.url), pacers=_free_pacer) as client:
            client.import_contacts(CSV)
            with pytest.raises(KoreRejected) as caught:
                client.import_contacts(CSV)
            assert caught.value.status == 400
            assert caught.value.detail == "Contact with this phone number already exists"


def test_the_pacer_keeps_to_each_window() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    pacer = Pacer([(60.0, 3), (3600.0, 5)], clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        pacer.wait()
    assert sleeps == [pytest.approx(20.4)] * 2, "spaced evenly over the minute, not a burst"
    pacer.wait()
    assert now[0] == pytest.approx(61.2)
    pacer.wait()
    pacer.wait()
    assert now[0] == 3600.0


def test_list_contacts_reads_results() -> None:
    with Sandbox(secret=SECRET) as sandbox:
        sandbox.import_contacts(CSV)
        with KoreClient(_settings(sandbox.url), pacers=_free_pacer) as client:
            (contact,) = client.list_contacts()
            assert contact["cellPhone"]["phoneNumber"] == "+14155550132"
            assert json.dumps(contact)


def test_list_contacts_follows_has_more_and_stops_when_nothing_is_new() -> None:
    everyone = [{"id": str(i), "cellPhone": {"phoneNumber": f"+1415201{i:04d}"}} for i in range(5)]
    asked: list[dict[str, str]] = []

    def paged(request: httpx.Request) -> httpx.Response:
        asked.append(dict(request.url.params))
        skip = int(request.url.params.get("skip", 0))
        page = everyone[skip : skip + 2]
        return httpx.Response(200, json={"results": page, "hasMore": skip + 2 < len(everyone)})

    def stubborn(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"results": everyone[:2], "hasMore": True})

    with KoreClient(
        _settings("https://kore.example.com"),
        transport=httpx.MockTransport(paged),
        pacers=_free_pacer,
    ) as client:
        assert [c["id"] for c in client.list_contacts()] == ["0", "1", "2", "3", "4"]
    assert asked == [
        {"limit": "1000"},
        {"skip": "2", "limit": "1000"},
        {"skip": "4", "limit": "1000"},
    ]
    with KoreClient(
        _settings("https://kore.example.com"),
        transport=httpx.MockTransport(stubborn),
        pacers=_free_pacer,
    ) as client:
        assert len(client.list_contacts()) == 2
