"""The sandbox speaks the documented API to any HTTP client, not only to ours."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import jwt
import pytest

from connector.kore.sandbox import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_CLIENT_ID,
    Faults,
    Sandbox,
)
from tests.conftest import SECRET

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
