"""SQL sources against the real PostgreSQL and MariaDB servers: incremental reads by cursor."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    update,
)

from connector.kore.sandbox import Sandbox
from tests.conftest import run_cli, tenant_config, write_config
from tests.helpers import held, runs, summary

MAPPING = {
    "id": "id",
    "updated_at": "updated_at",
    "fields": {"firstName": "first_name", "lastName": "last_name"},
    "phone": {"from": "mobile", "region_from": "country"},
}
BASE_TIME = datetime(2024, 3, 1, 9, 0, 0, tzinfo=UTC)


def _contacts_table(metadata: MetaData, *, aware: bool) -> Table:
    return Table(
        "crm_contacts",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("first_name", String(100)),
        Column("last_name", String(100)),
        Column("mobile", String(40)),
        Column("country", String(40)),
        Column("updated_at", DateTime(timezone=aware)),
    )


def _number(i: int) -> str:
    return f"+1 (415) {200 + i // 10000:03d}-{i % 10000:04d}"


def _key(i: int) -> str:
    return f"+1415{200 + i // 10000:03d}{i % 10000:04d}"


@pytest.fixture(params=["postgres", "mariadb"])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.mark.slow
def test_a_table_is_read_incrementally_by_cursor_with_a_tie_break_on_id(
    tmp_path: Path, sandbox: Sandbox, database_url: str
) -> None:
    aware = database_url.startswith("postgresql")
    engine = create_engine(database_url)
    metadata = MetaData()
    contacts = _contacts_table(metadata, aware=aware)
    metadata.create_all(engine)

    def when(seconds: float) -> datetime:
        moment = BASE_TIME + timedelta(seconds=seconds)
        return moment if aware else moment.replace(tzinfo=None)

    rows = [
        {
            "id": i,
            "first_name": f"First{i}",
            "last_name": "Müller",
            "mobile": _number(i),
            "country": "US",
            "updated_at": when(i // 4),
        }
        for i in range(10_000)
    ]
    with engine.begin() as conn:
        conn.execute(insert(contacts), rows)
    boundary = when(9_999 // 4)
    mapping = tmp_path / "crm.yaml"
    mapping.write_text(yaml.safe_dump(MAPPING))
    tenant = tenant_config(sandbox, tmp_path, mapping=str(mapping), batch_size=1000)
    tenant["source"] = {
        "kind": "sql",
        "url": database_url,
        "table": "crm_contacts",
        "cursor": "updated_at",
    }
    config = write_config(tmp_path, {"crm": tenant})

    first = run_cli("sync", config=config)

    assert first.returncode == 0, first.stderr
    assert len(held(sandbox)) == 10_000
    assert summary(runs(tmp_path, "crm")[0])["counters"]["rows_read"] == 10_000

    with engine.begin() as conn:
        conn.execute(
            insert(contacts),
            [
                {
                    "id": 20_000 + i,
                    "first_name": "New",
                    "last_name": f"Insert{i}",
                    "mobile": _number(20_000 + i),
                    "country": "United States",
                    "updated_at": when(9_999 // 4 + 60),
                }
                for i in range(50)
            ],
        )
        for i in range(30):
            conn.execute(
                update(contacts)
                .where(contacts.c.id == i * 7)
                .values(first_name="Renamed", updated_at=when(9_999 // 4 + 120))
            )
        conn.execute(
            insert(contacts),
            [
                {
                    "id": 30_000 + i,
                    "first_name": "Same",
                    "last_name": f"Moment{i}",
                    "mobile": _number(30_000 + i),
                    "country": "USA",
                    "updated_at": boundary,
                }
                for i in range(20)
            ],
        )

    second = run_cli("sync", config=config)

    assert second.returncode == 0, second.stderr
    counters = summary(runs(tmp_path, "crm")[1])["counters"]
    window = 9_999 - 4 * (9_999 // 4 - 300) + 1
    assert window == 1_204, "rows of the 5 minutes (cursor_lookback) up to the position"
    assert counters["rows_read"] == 100 + window
    assert counters["unchanged_rows"] == window
    assert counters["sent"] == 70
    assert counters["already_delivered"] == 30
    assert counters["changed_skipped"] == 30
    expected = (
        {_key(i) for i in range(10_000)}
        | {_key(20_000 + i) for i in range(50)}
        | {_key(30_000 + i) for i in range(20)}
    )
    assert set(held(sandbox)) == expected
    assert held(sandbox)[_key(20_001)][:2] == ("New", "Insert1")

    third = run_cli("sync", config=config)

    assert third.returncode == 0
    status = json.loads(run_cli("status", "--json", config=config).stdout)
    last = status["tenants"]["crm"]["last_run"]
    assert last["status"] == "completed"
    assert last["counters"]["sent"] == 0, "a run with nothing new sends nothing"
    assert last["counters"]["rows_read"] == (
        last["counters"]["unchanged_rows"] + last["counters"]["changed_skipped"]
    ), "it reads only the window again, and maps only the renamed rows it holds"
    engine.dispose()


def test_a_query_source_and_check_describe_the_table(
    tmp_path: Path, sandbox: Sandbox, postgres_url: str
) -> None:
    engine = create_engine(postgres_url)
    metadata = MetaData()
    contacts = _contacts_table(metadata, aware=True)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(contacts),
            [
                {
                    "id": i,
                    "first_name": "Q",
                    "last_name": str(i),
                    "mobile": _number(i),
                    "country": "US",
                    "updated_at": BASE_TIME,
                }
                for i in range(10)
            ],
        )
    mapping = tmp_path / "crm.yaml"
    mapping.write_text(yaml.safe_dump(MAPPING))
    tenant = tenant_config(sandbox, tmp_path, mapping=str(mapping))
    tenant["source"] = {
        "kind": "sql",
        "url": postgres_url,
        "query": "SELECT * FROM crm_contacts WHERE id % 2 = 0",
    }
    config = write_config(tmp_path, {"crm": tenant})

    check = run_cli("check", config=config)
    result = run_cli("sync", config=config)

    assert check.returncode == 0, check.stderr
    assert "query" in check.stdout and "sample:   5 rows, 5 would be sent" in check.stdout
    assert result.returncode == 0, result.stderr
    assert set(held(sandbox)) == {_key(i) for i in range(0, 10, 2)}
    engine.dispose()


def test_an_unreachable_database_is_exit_1_without_the_password(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    mapping = tmp_path / "crm.yaml"
    mapping.write_text(yaml.safe_dump(MAPPING))
    tenant = tenant_config(sandbox, tmp_path, mapping=str(mapping))
    tenant["source"] = {
        "kind": "sql",
        "url": "postgresql+psycopg://reader:pa55w0rd-secret@127.0.0.1:1/crm",
        "table": "contacts",
    }
    config = write_config(tmp_path, {"crm": tenant})

    result = run_cli("sync", config=config)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "pa55w0rd-secret" not in result.stderr + result.stdout
    assert "reader:***@127.0.0.1:1/crm" in result.stderr
