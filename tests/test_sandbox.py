"""The sandbox speaks the documented API to any HTTP client, not only to ours."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from connector.kore.sandbox import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_CLIENT_ID,
    Faults,
    Sandbox,
)
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.helpers import runs, summary

CSV = (
    "firstName,lastName,salutation,cellPhoneNumber,cellPhoneCountryCode,cellPhoneExtension\n"
    "john,doe,Mr,9876543210,+91,\nJane,Roe,,4155550132,+1,22\n"
)


def _headers(**claims: object) -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode(
        {
            "appId": DEFAULT_CLIENT_ID,
            "sub": "t",
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
            **claims,
        },
        SECRET,
        algorithm="HS256",
    )
    return {"auth": token, "accountid": DEFAULT_ACCOUNT_ID}


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sandbox.url}/agentassist/api/v1/public/st-x") as client:
        yield client


def _import(api: httpx.Client, body: str = CSV) -> httpx.Response:
    return api.post(
        "/contacts/import-contacts",
        headers=_headers(),
        files={"result_file": ("sample.csv", body.encode())},
    )


def test_import_answers_the_created_contacts_and_refuses_known_numbers(api: httpx.Client) -> None:
    first = _import(api)
    assert first.status_code == 200
    created = first.json()
    assert [c["cellPhone"]["phoneNumber"] for c in created] == ["+919876543210", "+14155550132"]
    assert created[1]["cellPhone"]["extension"] == "22" and created[0]["status"] == "ACTIVE"

    again = _import(api, CSV.replace("Jane,Roe", "Other,Name"))
    assert again.status_code == 200 and again.json() == []
    listed = api.get("/contacts", headers=_headers()).json()["results"]
    assert {c["firstName"] for c in listed} == {"john", "Jane"}


def test_reject_file_mode_refuses_the_whole_file(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.faults = Faults(duplicates="reject-file")
    _import(api)
    refused = _import(api, CSV + "New,Person,,2125550199,+1,\n")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["msg"]
    assert len(sandbox.state.active()) == 2


def test_update_and_delete_free_or_rename_contacts(api: httpx.Client) -> None:
    created = _import(api).json()
    jane = created[1]
    updated = api.put(
        "/contacts/bulk-update",
        headers=_headers(),
        json=[{"id": jane["id"], "firstName": "Janet", "lastName": "Roe"}],
    )
    assert updated.json()[0]["firstName"] == "Janet"
    gone = api.delete(f"/contacts/{jane['id']}", headers=_headers())
    assert gone.json()["status"] == "INACTIVE"
    bulk = api.request(
        "DELETE",
        "/contacts/bulk-delete",
        headers=_headers(),
        json={"ids": [created[0]["id"], "missing"]},
    )
    assert bulk.json()["successful"] == 1 and bulk.json()["failedRecords"] == [{"id": "missing"}]
    assert len(_import(api).json()) == 2, "deleted numbers may be created again"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"auth": "not-a-jwt", "accountId": DEFAULT_ACCOUNT_ID},
        {**_headers(), "accountid": "someone-else"},
        _headers(appId="cs-other"),
        _headers(jti=""),
    ],
)
def test_requests_without_valid_credentials_are_401(
    api: httpx.Client, headers: dict[str, str]
) -> None:
    assert api.get("/contacts", headers=headers).status_code == 401


def test_a_jti_is_accepted_once(api: httpx.Client) -> None:
    headers = _headers()
    assert api.get("/contacts", headers=headers).status_code == 200
    assert api.get("/contacts", headers=headers).status_code == 401


def _bot(sandbox: Sandbox, bot_id: str) -> httpx.Client:
    return httpx.Client(base_url=f"{sandbox.url}/agentassist/api/v1/public/{bot_id}")


def test_each_bot_has_a_contact_list_of_its_own(sandbox: Sandbox) -> None:
    """Kore keeps contacts per bot: a number one bot has is new to another, each bot lists and
    deletes only its own, and ``bot(id)`` is one bot's store."""
    with _bot(sandbox, "st-a") as a, _bot(sandbox, "st-b") as b:
        mine = _import(a).json()
        theirs = _import(b).json()
        assert len(mine) == len(theirs) == 2, "the same numbers are new to the other bot"
        listed = a.get("/contacts", headers=_headers()).json()["results"]
        assert {c["id"] for c in listed} == {c["id"] for c in mine}
        assert b.delete(f"/contacts/{mine[0]['id']}", headers=_headers()).status_code == 404
        refused = b.request(
            "DELETE", "/contacts/bulk-delete", headers=_headers(), json={"ids": [mine[1]["id"]]}
        )
        assert refused.json()["failed"] == 1
        assert b.get("/contacts", headers=_headers()).json()["results"] == theirs

    assert set(sandbox.bot("st-a").contacts) == {c["id"] for c in mine}
    assert set(sandbox.bot("st-b").contacts) == {c["id"] for c in theirs}
    assert sandbox.bot("st-a").requests == {"import": 1, "list": 1}
    assert len(sandbox.state.active()) == 4, "with several bots, state merges them for reading"


def test_state_is_the_store_of_the_one_bot_and_the_first_bot_takes_what_was_put_in_before(
    sandbox: Sandbox, api: httpx.Client
) -> None:
    status, created = sandbox.import_contacts(CSV.encode())
    assert status == 200 and len(created) == 2

    assert _import(api).json() == [], "bot st-x, the first to call, has the numbers put in before"
    assert sandbox.state is sandbox.bot("st-x")
    assert sandbox.state.requests == {"import": 1}
    with _bot(sandbox, "st-y") as other:
        assert len(_import(other).json()) == 2


def test_two_tenants_on_two_bots_of_one_sandbox_keep_out_of_each_other(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Issue [11]: tenant B's rows are not ``already_in_kore`` because tenant A sent the same
    numbers to its own bot, and reconcile for A does not see B's contacts as unknown."""
    tenants = {}
    for name in ("a", "b"):
        export = tmp_path / name / "contacts.csv"
        export.parent.mkdir()
        export.write_text(
            "Id,FirstName,LastName,MobilePhone\n"
            + "".join(f"{i},Ann{i},Lee,+1 415 201 {1000 + i}\n" for i in range(20)),
            encoding="utf-8",
        )
        tenants[name] = tenant_config(sandbox, export, bot_id=f"st-{name}")
    config = write_config(tmp_path, tenants)

    synced = run_cli("sync", config=config)
    looked = run_cli("reconcile", config=config)

    assert synced.returncode == 0, synced.stderr
    assert looked.returncode == 0, looked.stderr
    for name in ("a", "b"):
        sync_run, reconcile_run = runs(tmp_path, name)
        assert summary(sync_run)["counters"]["created"] == 20
        assert summary(sync_run)["counters"]["already_in_kore"] == 0
        assert summary(reconcile_run)["found"]["unknown"] == 0
        assert len(sandbox.bot(f"st-{name}").active()) == 20
