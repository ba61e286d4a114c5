"""Removals judged by record id (issue [9], point 6): a snapshot with rows whose number could not
be read still deletes the contacts the CRM dropped, and keeps only those whose record sits on an
unreadable row. The real command line against the sandbox over loopback."""

from __future__ import annotations

import csv
import os
import sqlite3
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from connector.kore.sandbox import Sandbox
from connector.staging import Absent, Staging
from connector.state import Store
from tests.conftest import run_cli, write_config
from tests.helpers import held, rejected, runs, summary
from tests.test_lifecycle import (
    HEADER,
    next_export,
    number,
    people,
    snapshot_tenant,
    table,
    write,
)


def mangled(i: int) -> str:
    """Contact i's number as a spreadsheet shows it once it took it for a float."""
    return f"{float(number(i)[1:]):.2E}"


def names(rows: dict[int, list[str]], keep: range = range(0)) -> dict[str, tuple[str, str, str]]:
    """What Kore should hold after an export of ``rows``: its readable, unflagged contacts by
    number, and the contacts ``keep`` as the first export had them (their rows are unreadable)."""
    readable = {
        r[3]: (r[1], r[2], "") for r in rows.values() if r[4] != "true" and "E+" not in r[3]
    }
    return readable | {number(i): (f"First{i}", f"Last{i}", "") for i in keep}


def lines(rows: dict[int, list[str]]) -> dict[int, int]:
    """Contact i -> the line of the export its row is on (the header is line 1)."""
    return {i: line for line, i in enumerate(rows, start=2)}


def write_columns(path: Path, header: list[str], rows: list[list[str]], mtime: float) -> None:
    """An export whose columns are ``header`` (rows as they are, however many cells)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    os.utime(path, (mtime, mtime))


def synced(
    tmp_path: Path, sandbox: Sandbox, count: int, *, max_delete_fraction: float
) -> tuple[dict[int, list[str]], Path, Path]:
    exports = tmp_path / "exports"
    first = people(count)
    write(exports / "1.csv", first, mtime=1_700_000_000)
    tenant = snapshot_tenant(sandbox, exports, max_delete_fraction=max_delete_fraction)
    config = write_config(tmp_path, {"t": tenant})
    done = run_cli("sync", config=config)
    assert done.returncode == 0, done.stderr
    assert held(sandbox) == names(first)
    return first, exports, config


def test_a_snapshot_with_mangled_phones_deletes_the_dropped_and_keeps_the_unreadable(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    # 40 of 120 would be deleted (33%), 51 (42%) with the unreadable ones: the limit lets the
    # first through and not the second, so the held-back rows must not count towards it
    first, exports, config = synced(tmp_path, sandbox, 120, max_delete_fraction=0.4)
    second = next_export(first, renamed=range(0, 30), flagged=range(30, 50), dropped=range(50, 90))
    unreadable = range(90, 101)
    for i in unreadable:
        second[i][3] = mangled(i)
    write(exports / "2.csv", second, mtime=1_700_000_100)

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    assert held(sandbox) == names(second, keep=unreadable), "the 11 stay, the 60 are gone"
    assert all(number(i) in held(sandbox) for i in unreadable)
    run = runs(tmp_path, "t")[-1]
    counters = summary(run)["counters"]
    assert counters["removal_held_back"] == 11
    assert (counters["removed"], counters["dnc_in_kore"], counters["deleted"]) == (40, 20, 60)
    assert (counters["updated"], counters["created"], counters["not_ours"]) == (30, 0, 0)
    assert "60 deleted, 11 removals held back" in result.stdout
    at = lines(second)
    plans = {r["phone_key"]: (r["why"], r["plan"]) for r in table(run, "deletes.csv")}
    assert plans == {
        **{number(i): ("do_not_call", "delete") for i in range(30, 50)},
        **{number(i): ("removed", "delete") for i in range(50, 90)},
        **{number(i): ("removed", f"keep (its row {at[i]} could not be read)") for i in unreadable},
    }
    reasons = {r["record_id"]: r["reason"] for r in rejected(run)}
    assert {f"r{i}" for i in unreadable} <= set(reasons)
    assert {reasons[f"r{i}"] for i in unreadable} == {"phone_mangled"}
    assert "could not be read" not in result.stderr, "judged by record id: nothing to warn"


def test_without_record_ids_nothing_is_removed_and_the_warning_says_to_map_id(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    exports = tmp_path / "exports"
    header = HEADER[1:]  # no Id column: the salesforce mapping resolves no id
    first = {i: row[1:] for i, row in people(60).items()}
    write_columns(exports / "1.csv", header, list(first.values()), 1_700_000_000)
    tenant = snapshot_tenant(sandbox, exports, max_delete_fraction=0.5)
    config = write_config(tmp_path, {"t": tenant})
    assert run_cli("sync", config=config).returncode == 0
    before = held(sandbox)
    assert len(before) == 60
    second = {i: list(row) for i, row in first.items() if i >= 10}
    for i in (20, 21, 22):
        second[i][2] = mangled(i)
    write_columns(exports / "2.csv", header, list(second.values()), 1_700_000_100)

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    assert held(sandbox) == before, "nothing removed"
    counters = summary(runs(tmp_path, "t")[-1])["counters"]
    assert (counters["removed"], counters["removal_held_back"], counters["deleted"]) == (0, 0, 0)
    assert (
        "the snapshot 2.csv has 3 rows whose number could not be read "
        "(malformed_row, phone_mangled, country_unknown); removed contacts are not judged on it; "
        "map the export's record id as id: to judge the others"
    ) in result.stderr


def test_an_unreadable_row_without_a_record_id_keeps_every_removal(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    first, exports, config = synced(tmp_path, sandbox, 60, max_delete_fraction=0.5)
    second = {i: list(row) for i, row in first.items() if i >= 10}
    for i in (20, 21, 22):
        second[i][3] = mangled(i)
    second[22][0] = ""  # its record id cell is empty: it could be any contact
    write(exports / "2.csv", second, mtime=1_700_000_100)

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    assert held(sandbox) == names(first), "nothing removed"
    counters = summary(runs(tmp_path, "t")[-1])["counters"]
    assert (counters["removed"], counters["removal_held_back"], counters["deleted"]) == (0, 0, 0)
    assert (
        "the snapshot 2.csv has 3 rows whose number could not be read "
        "(malformed_row, phone_mangled, country_unknown), 1 of them without a record id; "
        "removed contacts are not judged on it"
    ) in result.stderr


def test_a_malformed_row_keeps_the_contact_its_id_cell_names(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """The id is the first column: a cell too many further on leaves it where it was."""
    first, exports, config = synced(tmp_path, sandbox, 30, max_delete_fraction=0.5)
    second = {i: list(row) for i, row in first.items() if i >= 10}
    second[29] = [*second[29], "a cell too many"]
    write(exports / "2.csv", second, mtime=1_700_000_100)

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    assert held(sandbox) == {k: v for k, v in names(first).items() if k not in names(people(10))}
    run = runs(tmp_path, "t")[-1]
    counters = summary(run)["counters"]
    assert (counters["removed"], counters["removal_held_back"], counters["deleted"]) == (10, 1, 10)
    malformed = [r for r in rejected(run) if r["reason"] == "malformed_row"]
    assert [r["record_id"] for r in malformed] == ["r29"]
    plans = {r["phone_key"]: r["plan"] for r in table(run, "deletes.csv")}
    assert plans[number(29)] == f"keep (its row {lines(second)[29]} could not be read)"


def test_a_malformed_row_whose_id_cell_names_no_contact_keeps_every_removal(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """The id is the last column: a cell too many before it shifts another value into its
    place, so the row could be any contact's."""
    exports = tmp_path / "exports"
    header = [*HEADER[1:], HEADER[0]]
    first = {i: [*row[1:], row[0]] for i, row in people(30).items()}
    write_columns(exports / "1.csv", header, list(first.values()), 1_700_000_000)
    tenant = snapshot_tenant(sandbox, exports, max_delete_fraction=0.5)
    config = write_config(tmp_path, {"t": tenant})
    assert run_cli("sync", config=config).returncode == 0
    before = held(sandbox)
    second = {i: list(row) for i, row in first.items() if i >= 10}
    second[29] = [second[29][0], "von", *second[29][1:]]  # an unquoted comma in the name
    write_columns(exports / "2.csv", header, list(second.values()), 1_700_000_100)

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    assert held(sandbox) == before, "nothing removed"
    counters = summary(runs(tmp_path, "t")[-1])["counters"]
    assert (counters["removed"], counters["removal_held_back"], counters["deleted"]) == (0, 0, 0)
    assert "1 malformed rows whose record id cell names no contact delivered" in result.stderr


def test_contacts_delivered_before_record_ids_were_kept_learn_them_from_the_next_export(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """What migration 0009 leaves: no record id beside any number, no remembered row. While
    a snapshot has unreadable rows, a contact whose record id is unknown might be on one of
    them: it is held back; the next export teaches the state the ids of the contacts it has."""
    first, exports, config = synced(tmp_path, sandbox, 40, max_delete_fraction=0.5)
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("UPDATE deliveries SET record_id = NULL, row_hash = NULL")
    db.close()
    second = {i: list(row) for i, row in first.items() if i >= 5}
    for i in (20, 21):
        second[i][3] = mangled(i)
    write(exports / "2.csv", second, mtime=1_700_000_100)

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    assert held(sandbox) == names(first), "nothing removed: any of them might be unreadable"
    run = runs(tmp_path, "t")[-1]
    counters = summary(run)["counters"]
    assert (counters["removed"], counters["removal_held_back"]) == (0, 7)
    plans = {r["phone_key"]: r["plan"] for r in table(run, "deletes.csv")}
    assert plans[number(0)] == "keep (delivered without its record id; 2 rows could not be read)"

    third = {i: row for i, row in second.items() if i >= 10}
    write(exports / "3.csv", third, mtime=1_700_000_200)
    again = run_cli("sync", config=config)

    assert again.returncode == 0, again.stderr
    counters = summary(runs(tmp_path, "t")[-1])["counters"]
    assert (counters["removed"], counters["removal_held_back"]) == (5, 7), (
        "5 to 9 told the state their ids on the second export; 0 to 4, 20 and 21 did not"
    )
    gone = {number(i) for i in range(5, 10)}
    assert held(sandbox) == {k: v for k, v in names(first).items() if k not in gone}


def test_migration_0009_keeps_deliveries_without_record_ids_and_forgets_their_rows(
    tmp_path: Path,
) -> None:
    """So that the first run after it maps every row and records the ids it finds."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(files("connector.migrations")))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0008")
        conn.execute(
            text(
                "INSERT INTO deliveries (tenant, phone_key, kore_id, fingerprint, run_id, "
                "delivered_at, origin, row_hash) "
                "VALUES ('acme', '+14152010001', 'k1', 'f', 'r', :at, 'created', 'h1')"
            ),
            {"at": datetime.now(UTC)},
        )
    engine.dispose()
    store = Store(url)
    try:
        acme = store.tenant("acme")
        found = acme.delivered(["+14152010001"])["+14152010001"]
        assert (found.kore_id, found.record_id, found.row_hash) == ("k1", None, None)
        assert not acme.any_rows()
    finally:
        store.close()


def test_the_staging_file_finds_the_unreadable_row_of_each_absent_number() -> None:
    """In batches, whatever the number of rows; a number absent from the run is paired with the
    first unreadable row that carries its record id."""
    with Staging() as staging:
        for row in range(2, 12_002):
            staging.unreadable(f"id{row}", row, shifted=False)
        staging.unreadable("id5", 20_000, shifted=False)
        staging.unreadable("", 20_001, shifted=False)
        staging.unreadable("garbage", 20_002, shifted=True)
        assert staging.unreadable_rows() == (12_003, 1)
        staging.know(
            [
                [("+14152010001", "k1", True, "id5"), ("+14152010002", "k2", True, "other")],
                [("+14152010003", "k3", False, None)],
            ]
        )
        assert staging.stray() == 1, "a shifted row's id that no delivered number carries"
        assert staging.absent() == [
            Absent("+14152010001", "k1", True, "id5", 5),
            Absent("+14152010002", "k2", True, "other", None),
            Absent("+14152010003", "k3", False, None, None),
        ]
