"""Soft deletes reach Kore (issue [10], part 2): a contact the CRM marks deleted but still lists
(SuiteCRM's ``deleted = 1``, Salesforce's ``IsDeleted``, a Dynamics contact's ``Inactive``) is
read, marked by the mapping's ``removed_when``, never sent, and removed from Kore with
``changes.removed: delete``, without a snapshot. The real command line against the sandbox over
loopback; SQL sources on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, create_engine, text

from connector.contacts import Contact, Rejection
from connector.kore.sandbox import Sandbox
from connector.mapping import load_mapping, names_of
from connector.mapping.headers import looks_like_header, role_of
from tests.conftest import run_cli, tenant_config, write_config
from tests.helpers import assert_exactly_once, held, rejected, runs, summary

MAPPING = {
    "id": "id",
    "updated_at": "date_modified",
    "removed_when": [{"field": "deleted", "in": ["1"]}],
    "fields": {"firstName": "first_name", "lastName": "last_name"},
    "phone": {"from": ["phone_mobile"]},
}
"""A SuiteCRM contacts table, its deleted rows marked removed."""
HEADER = ["Id", "IsDeleted", "FirstName", "LastName", "MobilePhone", "LastModifiedDate"]
"""A Salesforce Contact export with API names, read by the built-in ``salesforce``."""


def number(i: int) -> str:
    return f"+1415202{1000 + i:04d}"


def person(i: int, *, deleted: str = "false", record: str | None = None) -> list[str]:
    """Contact i as a Salesforce export lists it (``record``: another record, same number)."""
    return [record or f"r{i}", deleted, f"First{i}", f"Last{i}", number(i), "2025-03-01T09:00:00Z"]


def export(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *rows])


def table(run: Path, name: str) -> list[dict[str, str]]:
    with (run / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def plans(run: Path) -> dict[str, tuple[str, str]]:
    """``deletes.csv``: number -> (why, plan)."""
    return {r["phone_key"]: (r["why"], r["plan"]) for r in table(run, "deletes.csv")}


def reasons(run: Path) -> list[tuple[str, str, str, str]]:
    """``rejected.csv``: (source, record id, reason, detail) of every row."""
    return [(r["source"], r["record_id"], r["reason"], r["detail"]) for r in rejected(run)]


def exports_tenant(tmp_path: Path, sandbox: Sandbox, **changes: Any) -> Path:
    """Tenant ``acme`` reading ``exports/*.csv`` (no snapshot) with the built-in salesforce."""
    tenant = tenant_config(sandbox, tmp_path / "exports" / "*.csv")
    tenant["changes"] = changes
    return write_config(tmp_path, {"acme": tenant})


def sync(config: Path, tmp_path: Path) -> dict[str, int]:
    done = run_cli("sync", config=config)
    assert done.returncode == 0, done.stderr
    counters: dict[str, int] = summary(runs(tmp_path, "acme")[-1])["counters"]
    return counters


# SQL: a SuiteCRM-shaped table read incrementally


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def crm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A scratch database with SuiteCRM's ``contacts`` columns that matter here."""
    if request.param == "postgres":
        url = str(request.getfixturevalue("postgres_url"))
    elif request.param == "mariadb":
        url = str(request.getfixturevalue("mariadb_url"))
    else:
        url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = create_engine(url)
    postgres = engine.dialect.name == "postgresql"
    flag, stamp = ("smallint", "timestamp(0)") if postgres else ("tinyint(1)", "datetime")
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE contacts (id char(36) NOT NULL PRIMARY KEY,"
                f" date_modified {stamp} NULL, deleted {flag} NOT NULL DEFAULT 0,"
                f" first_name varchar(100) NULL, last_name varchar(100) NULL,"
                f" phone_mobile varchar(100) NULL)"
            )
        )
    yield engine
    engine.dispose()


def _stamp(engine: Engine, moment: datetime) -> Any:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if engine.dialect.name == "sqlite" else moment


def _record(i: int) -> str:
    return f"{i:08d}-aaaa-4aaa-8aaa-{i:012d}"


def suitecrm_tenant(
    tmp_path: Path, sandbox: Sandbox, engine: Engine, query: str, **changes: Any
) -> Path:
    mapping = tmp_path / "suitecrm.yaml"
    mapping.write_text(yaml.safe_dump(MAPPING), encoding="utf-8")
    tenant = tenant_config(sandbox, tmp_path, mapping=str(mapping))
    url = engine.url.render_as_string(hide_password=False)
    tenant["source"] = {"kind": "sql", "url": url, "query": query, "cursor": "date_modified"}
    tenant["changes"] = changes
    return write_config(tmp_path, {"acme": tenant})


@pytest.mark.parametrize("removed", ["delete", "keep"])
def test_a_contact_soft_deleted_in_suitecrm_is_removed_from_kore(
    tmp_path: Path, sandbox: Sandbox, crm: Engine, removed: str
) -> None:
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    rows = [
        {
            "id": _record(i),
            "date_modified": _stamp(crm, datetime(2025, 3, 1, 9, 0, i)),
            "first_name": f"First{i}",
            "last_name": f"Last{i}",
            "phone_mobile": number(i),
        }
        for i in range(5)
    ]
    with crm.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contacts (id, date_modified, first_name, last_name, phone_mobile)"
                " VALUES (:id, :date_modified, :first_name, :last_name, :phone_mobile)"
            ),
            rows,
        )
    config = suitecrm_tenant(tmp_path, sandbox, crm, "SELECT * FROM contacts", removed=removed)
    everyone = {number(i): f"First{i}" for i in range(5)}

    assert sync(config, tmp_path)["sent"] == 5
    assert_exactly_once(sandbox, state_url, everyone)

    with crm.begin() as conn:  # SuiteCRM's delete: the flag set, the modified time bumped
        conn.execute(
            text("UPDATE contacts SET deleted = 1, date_modified = :now WHERE id = :id"),
            {"now": _stamp(crm, datetime(2025, 3, 1, 9, 30, 0)), "id": _record(2)},
        )

    counters = sync(config, tmp_path)

    run = runs(tmp_path, "acme")[-1]
    assert counters["removed"] == 1
    assert (counters["sent"], counters["unchanged_rows"], counters["rejected"]) == (0, 4, 1)
    assert reasons(run) == [("query", _record(2), "removed_in_crm", "deleted=1")]
    if removed == "delete":
        assert counters["deleted"] == 1
        assert plans(run) == {number(2): ("removed", "delete")}
        assert_exactly_once(
            sandbox, state_url, {k: v for k, v in everyone.items() if k != number(2)}
        )
        again = sync(config, tmp_path)
        assert (again["removed"], again["deleted"]) == (0, 0), "removed once, not again"
        assert number(2) not in held(sandbox)
    else:
        assert counters["deleted"] == 0
        assert plans(run) == {number(2): ("removed", "keep (removed: keep)")}
        assert_exactly_once(sandbox, state_url, everyone)


# Files: Salesforce exports that list the recycle bin's records


def test_salesforce_isdeleted_rows_are_never_sent_and_their_numbers_leave_kore(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    exports = tmp_path / "exports"
    config = exports_tenant(tmp_path, sandbox, removed="delete")
    export(exports / "1.csv", [person(i) for i in range(10)])
    assert sync(config, tmp_path)["sent"] == 10

    export(
        exports / "2.csv",
        [
            person(3, deleted="true"),
            person(4, deleted="true"),
            person(4, record="r40"),  # a duplicate record that still has the number
            person(7, deleted="TRUE"),
            person(30, deleted="true"),  # never delivered
        ],
    )

    counters = sync(config, tmp_path)

    run = runs(tmp_path, "acme")[-1]
    assert (counters["removed"], counters["deleted"], counters["sent"]) == (2, 2, 0)
    assert plans(run) == {number(3): ("removed", "delete"), number(7): ("removed", "delete")}
    assert reasons(run) == [
        ("2.csv", "r3", "removed_in_crm", "IsDeleted=true"),
        ("2.csv", "r4", "removed_in_crm", "IsDeleted=true"),
        ("2.csv", "r7", "removed_in_crm", "IsDeleted=TRUE"),
        ("2.csv", "r30", "removed_in_crm", "IsDeleted=true"),
    ]
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    assert_exactly_once(
        sandbox, state_url, {number(i): f"First{i}" for i in range(10) if i not in (3, 7)}
    )


def test_without_delete_removed_contacts_are_counted_and_listed_and_stay(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    exports = tmp_path / "exports"
    config = exports_tenant(tmp_path, sandbox)
    export(exports / "1.csv", [person(i) for i in range(4)])
    assert sync(config, tmp_path)["sent"] == 4
    before = held(sandbox)
    export(exports / "2.csv", [person(1, deleted="true")])

    counters = sync(config, tmp_path)

    assert (counters["removed"], counters["deleted"]) == (1, 0)
    assert plans(runs(tmp_path, "acme")[-1]) == {number(1): ("removed", "keep (removed: keep)")}
    assert held(sandbox) == before


def test_a_mass_soft_delete_beyond_max_delete_fraction_deletes_nothing_and_fails(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    exports = tmp_path / "exports"
    config = exports_tenant(tmp_path, sandbox, removed="delete")
    export(exports / "1.csv", [person(i) for i in range(10)])
    assert sync(config, tmp_path)["sent"] == 10
    before = held(sandbox)
    export(exports / "2.csv", [person(i, deleted="true") for i in range(5)] + [person(50)])

    result = run_cli("sync", config=config)

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: tenant acme: rows marked removed in the CRM (removed_when) name 5 of the 10 "
        "contacts delivered (50%), more than changes.max_delete_fraction (20%); nothing was "
        "deleted or sent"
    ]
    assert held(sandbox) == before, "nothing deleted, nothing sent"
    assert summary(runs(tmp_path, "acme")[-1])["status"] == "failed"


def test_a_number_delivered_from_another_record_is_held_back(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """An incremental read sees only what changed: the duplicate merged away (r9) is deleted,
    while the record the number was delivered from (r2) is not read at all."""
    exports = tmp_path / "exports"
    config = exports_tenant(tmp_path, sandbox, removed="delete")
    export(exports / "1.csv", [person(i) for i in range(5)])
    assert sync(config, tmp_path)["sent"] == 5
    before = held(sandbox)
    export(exports / "2.csv", [person(2, deleted="true", record="r9")])

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    counters = summary(runs(tmp_path, "acme")[-1])["counters"]
    assert (counters["removed"], counters["removal_held_back"], counters["deleted"]) == (0, 1, 0)
    assert plans(runs(tmp_path, "acme")[-1]) == {
        number(2): ("removed", "keep (delivered from record r2, not marked removed)")
    }
    assert "1 removals held back" in result.stdout
    assert held(sandbox) == before


def test_a_later_export_of_the_same_run_withdraws_the_rows_of_a_removed_record(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Two exports read in one run: the older still has r0 (delivered, unchanged) and r10 (new),
    the newer marks both deleted. r0 leaves Kore, r10 is never sent."""
    exports = tmp_path / "exports"
    config = exports_tenant(tmp_path, sandbox, removed="delete")
    export(exports / "1.csv", [person(i) for i in range(5)])
    assert sync(config, tmp_path)["sent"] == 5
    export(exports / "2.csv", [person(0), person(10)])
    export(exports / "3.csv", [person(0, deleted="true"), person(10, deleted="true")])

    counters = sync(config, tmp_path)

    assert (counters["sent"], counters["removed"], counters["deleted"]) == (0, 1, 1)
    run = runs(tmp_path, "acme")[-1]
    assert sorted(reasons(run)) == [
        (
            "2.csv",
            "r0",
            "removed_in_crm",
            "record r0 is marked removed by 3.csv row 2, read after it",
        ),
        (
            "2.csv",
            "r10",
            "removed_in_crm",
            "record r10 is marked removed by 3.csv row 3, read after it",
        ),
        ("3.csv", "r0", "removed_in_crm", "IsDeleted=true"),
        ("3.csv", "r10", "removed_in_crm", "IsDeleted=true"),
    ]
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    assert_exactly_once(sandbox, state_url, {number(i): f"First{i}" for i in range(1, 5)})


# check


def test_check_warns_about_a_query_that_hides_deleted_rows(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE contacts (id TEXT PRIMARY KEY, date_modified TEXT, deleted INTEGER,"
                " first_name TEXT, last_name TEXT, phone_mobile TEXT)"
            )
        )
        conn.execute(
            text("INSERT INTO contacts VALUES ('c1', '2025-03-01 09:00:00', 0, 'Ada', 'L', :p)"),
            {"p": number(1)},
        )
    plain = {k: v for k, v in MAPPING.items() if k != "removed_when"}
    hiding = suitecrm_tenant(
        tmp_path, sandbox, engine, "SELECT * FROM contacts WHERE deleted = 0", removed="delete"
    )
    (tmp_path / "suitecrm.yaml").write_text(yaml.safe_dump(plain), encoding="utf-8")

    result = run_cli("check", config=hiding)

    assert result.returncode == 0, result.stderr
    warnings = [line.strip() for line in result.stdout.splitlines() if "warning:" in line]
    assert warnings == [
        "warning:  changes.removed: delete deletes nothing: the source is not a snapshot and "
        f"mapping {tmp_path / 'suitecrm.yaml'} has no removed_when rule; mark the CRM's deleted "
        "rows with removed_when (docs/mappings.md), or give source.snapshot: true for full "
        "exports",
        "warning:  source.query reads only live contacts (WHERE deleted = 0): a contact deleted "
        "in the CRM is never read, so it stays in Kore; read those rows too and mark them with "
        "removed_when: [{field: deleted, in: [...]}] in the mapping (docs/mappings.md)",
    ]
    reading = suitecrm_tenant(tmp_path, sandbox, engine, "SELECT * FROM contacts", removed="delete")

    result = run_cli("check", config=reading)

    assert result.returncode == 0, result.stderr
    assert "warning:" not in result.stdout, result.stdout
    engine.dispose()


# the built-ins


def test_the_builtins_read_the_vendors_deleted_flags_from_the_synonym_table() -> None:
    for name in ("salesforce", "dynamics365"):
        rules = load_mapping(name).spec.removed_when
        assert rules, name
        assert all(rule.if_present for rule in rules), name
        columns = [column for rule in rules for column in names_of(rule.field)]
        assert {role_of(column) for column in columns} == {"deleted"}, name
    assert not looks_like_header(["Id", "Status", "IsDeleted"]), "a flag is no sign of a header"

    salesforce = load_mapping("salesforce").bind(
        ["Id", "IsDeleted", "DoNotCall", "LastName", "MobilePhone"], "contacts.csv"
    )
    both = salesforce.apply(
        ["r1", "true", "true", "Lovelace", number(1)],
        source="contacts.csv",
        row=2,
        default_region="US",
    )
    assert isinstance(both, Rejection)
    assert both.reason == "skip_when", "do-not-call belongs to the number: it outlives the record"

    header = ["(Do Not Modify) Contact", "First Name", "Last Name", "Mobile Phone", "Status"]
    dynamics = load_mapping("dynamics365").bind(header, "contacts.csv")

    def read(status: str) -> Contact | Rejection:
        cells = ["c1", "Ada", "Lovelace", number(1), status]
        return dynamics.apply(cells, source="contacts.csv", row=2, default_region="US")

    inactive = read("Inactive")
    assert isinstance(inactive, Rejection)
    assert (inactive.reason, inactive.detail, inactive.keys) == (
        "removed_in_crm",
        "Status=Inactive",
        (number(1),),
    )
    assert isinstance(read("Active"), Contact)
    statecode = load_mapping("dynamics365").bind([*header[:4], "statecode"], "contacts.csv")
    qualified = ["c1", "Ada", "Lovelace", number(1), "1"]  # a lead's Qualified, or a contact's
    assert isinstance(
        statecode.apply(qualified, source="contacts.csv", row=2, default_region="US"), Contact
    )
