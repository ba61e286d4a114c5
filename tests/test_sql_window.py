"""The incremental-read guarantee of SQL sources (docs/sources.md) on PostgreSQL, MariaDB and
SQLite, with a SuiteCRM-shaped ``contacts`` table read by the real command line.

Rows saved in the position's second with smaller ids, rows committed after a read with a stamp
behind the position, and rows stamped ahead of the database's clock are each delivered exactly
once; the rows read again inside the window are counted ``unchanged_rows``, never mapped or sent
again. Each server session runs in a time zone eleven hours behind UTC, so that naive times are
compared with the database's wall clock, not with UTC."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from sqlalchemy import Connection, Engine, create_engine, text

from connector.kore.sandbox import Sandbox
from connector.settings import SqlSourceSettings
from connector.sources.sql import DatabaseClock, SqlTable
from tests.conftest import run_cli, tenant_config, write_config
from tests.helpers import assert_exactly_once, runs, summary, total

MAPPING = {
    "id": "id",
    "updated_at": "date_modified",
    "skip_when": [{"field": "do_not_call", "in": ["1", "true"]}],
    "fields": {"firstName": "first_name", "lastName": "last_name"},
    "phone": {"from": ["phone_mobile", "phone_work"], "region_from": "primary_address_country"},
}
QUERY = "SELECT * FROM contacts WHERE deleted = 0"
POSITION = datetime(2025, 3, 1, 9, 50, 0)
LAST_ID = "00001999-aaaa-4aaa-8aaa-000000001999"
COLUMNS = (
    "id",
    "date_modified",
    "version",
    "deleted",
    "first_name",
    "last_name",
    "do_not_call",
    "phone_mobile",
    "phone_work",
    "primary_address_country",
)
SERIAL = {"a": 0, "d": 10_000, "e": 20_000, "f": 30_000}
"""Where each batch's phone numbers start: every contact has a number of its own."""


@dataclass(frozen=True)
class Crm:
    """A scratch database of one kind, holding a SuiteCRM-shaped ``contacts`` table."""

    url: str
    engine: Engine
    aware: bool

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create(self) -> None:
        """SuiteCRM's columns (char(36) ids, ``date_modified`` to the second, ``deleted`` and
        ``do_not_call`` flags), plus a ``version`` for the version-cursor test."""
        postgres = self.dialect == "postgresql"
        flag = "smallint" if postgres else "tinyint(1)"
        stamp = "datetime"
        if postgres:
            stamp = "timestamp(0) with time zone" if self.aware else "timestamp(0)"
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    f"CREATE TABLE contacts (id char(36) NOT NULL PRIMARY KEY,"
                    f" date_modified {stamp} NULL, version integer NULL,"
                    f" deleted {flag} NOT NULL DEFAULT 0, first_name varchar(100) NULL,"
                    f" last_name varchar(100) NULL, do_not_call {flag} NOT NULL DEFAULT 0,"
                    f" phone_mobile varchar(100) NULL, phone_work varchar(100) NULL,"
                    f" primary_address_country varchar(255) NULL)"
                )
            )
            if self.dialect == "sqlite":
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")

    def stamp(self, moment: datetime) -> Any:
        """A time as this database's ``date_modified`` takes it (text on SQLite)."""
        if self.dialect == "sqlite":
            return moment.strftime("%Y-%m-%d %H:%M:%S")
        return moment.replace(tzinfo=UTC) if self.aware else moment

    def insert(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        names = ", ".join(COLUMNS)
        values = ", ".join(f":{c}" for c in COLUMNS)
        conn.execute(text(f"INSERT INTO contacts ({names}) VALUES ({values})"), rows)

    def insert_at_clock(self, conn: Connection, row: dict[str, Any], seconds: int) -> None:
        """``row`` stamped by the database itself, ``seconds`` from its clock (its wall clock
        in the session's zone for a naive column, as a database default stamps it)."""
        names = ", ".join(COLUMNS)
        clock = {
            "postgresql": "CURRENT_TIMESTAMP + :seconds * interval '1 second'",
            "mysql": "NOW() + INTERVAL :seconds SECOND",
            "sqlite": "datetime('now', :seconds || ' seconds')",
        }[self.dialect]
        values = ", ".join(clock if c == "date_modified" else f":{c}" for c in COLUMNS)
        conn.execute(
            text(f"INSERT INTO contacts ({names}) VALUES ({values})"),
            {**{c: v for c, v in row.items() if c != "date_modified"}, "seconds": seconds},
        )


@pytest.fixture(params=["postgres", "mariadb", "sqlite"])
def crm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Crm]:
    """Each server in a scratch database of its own (the conftest fixtures, which fail rather
    than skip under CONNECTOR_TEST_REQUIRE_SERVERS=1), its sessions eleven hours behind UTC;
    ``postgres-aware`` stamps ``date_modified`` with a time zone."""
    if request.param.startswith("postgres"):
        url = str(request.getfixturevalue("postgres_url")) + quote(" -ctimezone=Pacific/Pago_Pago")
    elif request.param == "mariadb":
        url = str(request.getfixturevalue("mariadb_url")) + "?init_command="
        url += quote("SET time_zone = '-11:00'")
    else:
        url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = create_engine(url)
    yield Crm(url, engine, aware=request.param == "postgres-aware")
    engine.dispose()


def _contact(crm: Crm, tag: str, n: int, when: datetime | None, **cells: Any) -> dict[str, Any]:
    """Contact ``n`` of a batch: a UUID-shaped id that does not grow with time, a number of its
    own (some in ``phone_work`` only), the country written three ways."""
    serial = SERIAL[tag] + n
    phone = f"+1 (415) {200 + serial // 10000:03d}-{serial % 10000:04d}"
    work_only = n % 7 == 6
    return {
        "id": f"{n:08d}-{tag * 4}-4{tag * 3}-8{tag * 3}-{n:012d}",
        "date_modified": None if when is None else crm.stamp(when),
        "version": None,
        "deleted": 0,
        "first_name": f"{tag.upper()}{n}",
        "last_name": "Contact",
        "do_not_call": 0,
        "phone_mobile": None if work_only else phone,
        "phone_work": phone if work_only else None,
        "primary_address_country": ("USA", "United States", "US")[n % 3],
        **cells,
    }


def _key(row: dict[str, Any]) -> str:
    digits = re.sub(r"\D", "", row["phone_mobile"] or row["phone_work"])
    return f"+{digits}"


def _expected(rows: list[dict[str, Any]]) -> dict[str, str]:
    """What Kore must hold: the number and first name of every row not deleted or flagged."""
    return {_key(r): r["first_name"] for r in rows if not r["deleted"] and not r["do_not_call"]}


def _config(tmp_path: Path, sandbox: Sandbox, crm: Crm, **source: Any) -> Path:
    mapping = tmp_path / "suitecrm.yaml"
    mapping.write_text(yaml.safe_dump(MAPPING), encoding="utf-8")
    tenant = tenant_config(sandbox, tmp_path, mapping=str(mapping))
    tenant["source"] = {
        "kind": "sql",
        "url": crm.url,
        "query": QUERY,
        "cursor": "date_modified",
        **source,
    }
    return write_config(tmp_path, {"acme": tenant})


def _sync(tmp_path: Path, config: Path) -> dict[str, int]:
    """One ``sync`` by the real command line; the counters of the run it reported."""
    folder = tmp_path / "reports" / "acme"
    before = len(runs(tmp_path, "acme")) if folder.is_dir() else 0
    result = run_cli("sync", config=config)
    assert result.returncode == 0, result.stderr
    assert len(runs(tmp_path, "acme")) == before + 1, "the run read no row: it left no report"
    counters: dict[str, int] = summary(runs(tmp_path, "acme")[-1])["counters"]
    return counters


def _saved_position(tmp_path: Path) -> list[dict[str, str]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with engine.connect() as conn:
            saved = conn.execute(text("SELECT position FROM source_cursors")).scalar_one()
    finally:
        engine.dispose()
    position: list[dict[str, str]] = json.loads(saved)
    return position


@pytest.mark.slow
def test_rows_saved_in_the_last_second_with_smaller_ids_and_rows_committed_late_are_read(
    tmp_path: Path, sandbox: Sandbox, crm: Crm
) -> None:
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    crm.create()
    first = [
        _contact(
            crm,
            "a",
            i,
            POSITION - timedelta(seconds=(1999 - i) // 4),
            deleted=int(i in (3, 4)),
            do_not_call=int(i == 5),
        )
        for i in range(2000)
    ]
    window = sum(1 for i in range(2000) if (1999 - i) // 4 <= 300)
    assert window == 1204, "rows stamped in the 5 minutes (cursor_lookback) up to 09:50:00"
    with crm.engine.begin() as conn:
        crm.insert(conn, first)
    config = _config(tmp_path, sandbox, crm)

    counters = _sync(tmp_path, config)

    assert counters["sent"] == 1997
    assert_exactly_once(sandbox, state_url, _expected(first))
    cursor, record = _saved_position(tmp_path)
    assert record == {"t": "str", "v": LAST_ID}, "the position keeps the format installs saved"
    assert cursor["v"] in ("2025-03-01T09:50:00", "2025-03-01 09:50:00")

    ties = [_contact(crm, "d", i, POSITION) for i in range(100)]
    assert all(row["id"] < LAST_ID for row in ties)
    late = [_contact(crm, "e", i, POSITION - timedelta(seconds=1)) for i in range(10)]
    with crm.engine.begin() as conn:
        crm.insert(conn, ties)
    writer = crm.engine.connect()
    try:
        transaction = writer.begin()
        crm.insert(writer, late)

        counters = _sync(tmp_path, config)

        assert counters["sent"] == 100, "every contact saved at 09:50:00 with a smaller id"
        assert counters["rows_read"] == window + 100
        assert counters["unchanged_rows"] == window, "the window is read again, not mapped"
        assert_exactly_once(sandbox, state_url, _expected(first + ties))
        transaction.commit()
    finally:
        writer.close()

    counters = _sync(tmp_path, config)

    assert counters["sent"] == 10, "every contact committed after the read, stamped behind it"
    assert counters["rows_read"] == window + 100 + 10
    assert counters["unchanged_rows"] == window + 100
    assert_exactly_once(sandbox, state_url, _expected(first + ties + late))
    assert total(tmp_path, "acme", "sent") == len(_expected(first + ties + late)), "none twice"


@pytest.mark.parametrize("crm", ["postgres", "postgres-aware", "mariadb", "sqlite"], indirect=True)
def test_the_position_stays_a_lag_behind_the_database_clock(
    tmp_path: Path, sandbox: Sandbox, crm: Crm
) -> None:
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    crm.create()
    old = [_contact(crm, "a", i, datetime(2025, 3, 1, 9, 0, i)) for i in range(50)]
    fast = _contact(crm, "f", 0, None)
    late = _contact(crm, "e", 0, None)
    with crm.engine.begin() as conn:
        crm.insert(conn, old)
        crm.insert_at_clock(conn, fast, 3600)
    config = _config(tmp_path, sandbox, crm)
    writer = crm.engine.connect()
    try:
        transaction = writer.begin()
        crm.insert_at_clock(writer, late, -600)

        counters = _sync(tmp_path, config)
        check = run_cli("check", config=config)

        assert counters["sent"] == 51
        transaction.commit()
    finally:
        writer.close()
    assert check.returncode == 0, check.stderr
    shown = re.search(
        r"cursor date_modified from 2025-03-01[T ]09:00:49\S*, re-reading 5m behind it, up to"
        r" 30s before the database's clock \(database clock (\d+\.\d) s (ahead of|behind) this"
        r" machine\)",
        check.stdout,
    )
    assert shown, check.stdout
    assert float(shown[1]) < 5, "the database runs on this machine"

    counters = _sync(tmp_path, config)

    assert counters["sent"] == 1, "the contact committed late, ten minutes behind the clock"
    assert counters["unchanged_rows"] == 51, "the window from the last row 30 s behind it"
    assert_exactly_once(sandbox, state_url, _expected([*old, fast, late]))


def test_a_version_cursor_is_read_from_its_last_value_inclusive(
    tmp_path: Path, sandbox: Sandbox, crm: Crm
) -> None:
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    crm.create()
    first = [_contact(crm, "a", 999 - i, POSITION, version=i // 3 + 1) for i in range(30)]
    with crm.engine.begin() as conn:
        crm.insert(conn, first)
    config = _config(tmp_path, sandbox, crm, cursor="version")
    before = run_cli("check", config=config)

    assert _sync(tmp_path, config)["sent"] == 30
    after = run_cli("check", config=config)

    plain = "(a version, not a time: no window, no lag)"
    assert f"cursor version from the beginning {plain}" in before.stdout, before.stdout
    assert f"cursor version from 10 inclusive {plain}" in after.stdout, after.stdout
    same = [_contact(crm, "d", i, POSITION, version=10) for i in range(5)]
    newer = [_contact(crm, "f", i, POSITION, version=11) for i in range(5)]
    with crm.engine.begin() as conn:
        crm.insert(conn, same + newer)

    counters = _sync(tmp_path, config)

    assert counters["sent"] == 10
    assert counters["rows_read"] == 3 + 10, "the version read last time, and what came after"
    assert counters["unchanged_rows"] == 3
    assert_exactly_once(sandbox, state_url, _expected(first + same + newer))


CLOCK = DatabaseClock(
    wall=datetime(2025, 3, 1, 0, 0, 0),
    utc=datetime(2025, 3, 1, 11, 0, 0, tzinfo=UTC),
    offset=timedelta(0),
)


@pytest.mark.parametrize(
    ("saved", "start"),
    [
        (datetime(2025, 2, 28, 9, 50), datetime(2025, 2, 28, 9, 45)),
        (datetime(2025, 3, 1, 9, 50), datetime(2025, 2, 28, 23, 54, 30)),
        (datetime(2025, 2, 28, 9, 50, tzinfo=UTC), datetime(2025, 2, 28, 9, 45, tzinfo=UTC)),
        (datetime(2025, 3, 1, 11, 0, tzinfo=UTC), datetime(2025, 3, 1, 10, 54, 30, tzinfo=UTC)),
        ("2025-02-28 09:50:00", "2025-02-28 09:45:00"),
        ("2025-02-28T09:50:00.250000", "2025-02-28T09:45:00.250000"),
        ("2025-03-01 09:50:00", "2025-02-28 23:54:30"),
        (date(2025, 2, 28), date(2025, 2, 27)),
        ("2025-02-28", "2025-02-27"),
        (41, 41),
        ("v0041", "v0041"),
    ],
)
def test_a_read_starts_the_lookback_before_the_position_or_the_clock_s_limit(
    saved: Any, start: Any
) -> None:
    """Five minutes before the position, in the cursor's own form; before the database's
    clock minus the lag when the position is ahead of it (a naive time against the wall
    clock, an aware one against UTC); a version is its own start."""
    unit = SqlTable(
        create_engine("sqlite://"),
        SqlSourceSettings(kind="sql", url="sqlite://", table="contacts", cursor="stamp"),
        ["id"],
    )
    unit.clock = CLOCK

    assert unit.start(saved) == start
