from __future__ import annotations

import json
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr

from connector.errors import KoreAuthError, KoreRejected, KoreUnavailable
from connector.kore.client import KoreClient
from connector.kore.pacing import Pacer
from connector.kore.sandbox import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_CLIENT_ID,
    DEFAULT_SECRET,
    Faults,
    Sandbox,
)
from connector.settings import KoreSettings

CSV = b"firstName,lastName,salutation,cellPhoneNumber,cellPhoneCountryCode,cellPhoneExtension\r\nA,B,,4155550132,+1,\r\n"


def _settings(host: str, **extra: Any) -> KoreSettings:
    return KoreSettings(
        host=host,
        bot_id="st-bot",
        account_id=DEFAULT_ACCOUNT_ID,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=SecretStr(DEFAULT_SECRET),
        retries=2,
        backoff_seconds=0.0,
        **extra,
    )


def _free_pacer() -> Pacer:
    return Pacer([(60.0, 10_000)])


@pytest.mark.parametrize("algorithm", ["HS256", "HS512"])
def test_every_request_carries_a_fresh_short_lived_jwt_and_the_account(algorithm: str) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    with KoreClient(
        _settings("https://kore.example.com", jwt_algorithm=algorithm),
        transport=httpx.MockTransport(answer),
        pacer=_free_pacer(),
    ) as client:
        client.import_contacts(CSV)
        client.import_contacts(CSV)

        tokens = [r.headers["auth"] for r in seen]
        claims = [jwt.decode(t, DEFAULT_SECRET, algorithms=[algorithm]) for t in tokens]
        assert all(c["appId"] == DEFAULT_CLIENT_ID and c["sub"] for c in claims)
        assert all(0 < c["exp"] - c["iat"] <= 300 for c in claims)
        assert claims[0]["jti"] != claims[1]["jti"]
        assert jwt.get_unverified_header(tokens[0])["alg"] == algorithm
        assert seen[0].headers["accountId"] == DEFAULT_ACCOUNT_ID
        assert seen[0].url.path == "/agentassist/api/v1/public/st-bot/contacts/import-contacts"
        assert b'name="result_file"' in seen[0].content and CSV in seen[0].content
        assert DEFAULT_SECRET not in repr(client) + repr(client._http.auth)


def test_5xx_is_retried_then_reported_unavailable() -> None:
    with Sandbox(faults=Faults(fail_every=1)) as sandbox:
        sleeps: list[float] = []
        with KoreClient(_settings(sandbox.url), sleep=sleeps.append, pacer=_free_pacer()) as client:
            with pytest.raises(KoreUnavailable, match="after 3 tries: HTTP 500"):
                client.import_contacts(CSV)
            assert sandbox.state.uploads == 3
            assert len(sleeps) == 2


def test_429_waits_for_retry_after_and_succeeds() -> None:
    with Sandbox(faults=Faults(rate_limit_every=2)) as sandbox:
        sleeps: list[float] = []
        with KoreClient(_settings(sandbox.url), sleep=sleeps.append, pacer=_free_pacer()) as client:
            client.import_contacts(CSV)
            second = client.import_contacts(CSV.replace(b"0132", b"0133"))
            assert sleeps == [1.0]
            assert len(second.created) == 1 and second.uncertain is False
            sandbox.faults.rate_limit_every = 1
            with pytest.raises(KoreUnavailable, match="rate limited"):
                client.import_contacts(CSV)


def test_the_rate_limit_message_counts_as_429_whatever_the_status() -> None:
    calls = iter(
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
    sleeps: list[float] = []
    with KoreClient(
        _settings("https://kore.example.com"),
        sleep=sleeps.append,
        pacer=_free_pacer(),
        transport=httpx.MockTransport(lambda _r: next(calls)),
    ) as client:
        created = client.import_contacts(CSV).created
        assert [c["id"] for c in created] == ["1"], "a contact's name is not a rate-limit answer"
        assert sleeps == [7.0, 60.0], "a 200 error object counts too; a contact's name does not"


def test_a_dropped_connection_is_retried_and_marked_uncertain() -> None:
    with Sandbox(faults=Faults(drop_every=2)) as sandbox:
        with KoreClient(_settings(sandbox.url), pacer=_free_pacer()) as client:
            assert client.import_contacts(CSV).uncertain is False
            second = client.import_contacts(CSV.replace(b"0132", b"0133"))
            assert second.uncertain is True
            assert second.created == []  # stored by the dropped try, refused by the retry
            assert len(sandbox.state.active()) == 2


def test_wrong_secret_is_a_credentials_error_after_one_fresh_token() -> None:
    with Sandbox(secret="another-secret-entirely-0123456789abcdef") as sandbox:
        with KoreClient(_settings(sandbox.url), pacer=_free_pacer()) as client:
            with pytest.raises(KoreAuthError, match="refused the credentials") as caught:
                client.list_contacts()
            assert DEFAULT_SECRET not in str(caught.value)


def test_other_4xx_is_rejected_with_the_detail() -> None:
    with Sandbox(faults=Faults(duplicates="reject-file")) as sandbox:
        with KoreClient(_settings(sandbox.url), pacer=_free_pacer()) as client:
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
    assert sleeps == []
    pacer.wait()
    assert sleeps == [60.0]
    pacer.wait()
    pacer.wait()
    assert now[0] == 3600.0


def test_list_contacts_reads_results() -> None:
    with Sandbox() as sandbox:
        sandbox.import_contacts(CSV)
        with KoreClient(_settings(sandbox.url), pacer=_free_pacer()) as client:
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
        pacer=_free_pacer(),
    ) as client:
        assert [c["id"] for c in client.list_contacts()] == ["0", "1", "2", "3", "4"]
    assert asked == [{}, {"skip": "2", "limit": "2"}, {"skip": "4", "limit": "2"}]
    with KoreClient(
        _settings("https://kore.example.com"),
        transport=httpx.MockTransport(stubborn),
        pacer=_free_pacer(),
    ) as client:
        assert len(client.list_contacts()) == 2
