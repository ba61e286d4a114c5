"""Kore follows the CRM over time (issue [5]): renamed, flagged do-not-call and removed contacts,
through the real command line against the sandbox over loopback."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from connector.kore.sandbox import Faults, Sandbox
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.daemons import DaemonProcess, wait_for
from tests.helpers import held, rejected, runs, summary

HEADER = ["Id", "FirstName", "LastName", "MobilePhone", "DoNotCall", "LastModifiedDate"]
LIFECYCLE = {"renamed": "update", "do_not_call": "delete", "removed": "delete"}


def number(i: int) -> str:
    return f"+1415201{1000 + i:04d}"


def people(count: int) -> dict[int, list[str]]:
    """Contact i: id, first, last, phone, do-not-call, last modified."""
    return {
        i: [f"r{i}", f"First{i}", f"Last{i}", number(i), "false", "2024-01-01T00:00:00Z"]
        for i in range(count)
    }


def write(path: Path, rows: dict[int, list[str]], *, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *rows.values()])
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def next_export(
    rows: dict[int, list[str]], *, renamed: range, flagged: range, dropped: range
) -> dict[int, list[str]]:
    changed = {i: list(row) for i, row in rows.items() if i not in dropped}
    for i in renamed:
        changed[i][2] = f"Married{i}"
    for i in flagged:
        changed[i][4] = "true"
    return changed


def expected(rows: dict[int, list[str]]) -> dict[str, tuple[str, str, str]]:
    return {row[3]: (row[1], row[2], "") for row in rows.values() if row[4] != "true"}


def table(run: Path, name: str) -> list[dict[str, str]]:
    with (run / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def snapshot_tenant(sandbox: Sandbox, exports: Path, **changes: Any) -> dict[str, Any]:
    tenant = tenant_config(sandbox, exports / "*.csv", batch_size=50)
    tenant["source"]["snapshot"] = True
    tenant["changes"] = {**LIFECYCLE, **changes}
    return tenant


def synced_snapshot(
    tmp_path: Path, sandbox: Sandbox, count: int
) -> tuple[dict[int, list[str]], Path, Path]:
    """A snapshot tenant whose first export of ``count`` contacts is in Kore: (rows, exports
    folder, config)."""
    exports = tmp_path / "exports"
    first = people(count)
    write(exports / "1.csv", first, mtime=1_700_000_000)
    config = write_config(tmp_path, {"t": snapshot_tenant(sandbox, exports)})
    assert run_cli("sync", config=config).returncode == 0
    return first, exports, config


def test_the_next_full_export_renames_flags_and_drops_and_kore_follows(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    first, exports, config = synced_snapshot(tmp_path, sandbox, 250)
    assert held(sandbox) == expected(first)

    second = next_export(first, renamed=range(0, 30), flagged=range(30, 50), dropped=range(50, 90))
    second[300] = ["r300", "New", "Comer", number(300), "false", ""]
    write(exports / "2.csv", second, mtime=1_700_000_100)
    before = held(sandbox)

    dry = run_cli("sync", "--dry-run", config=config)

    assert dry.returncode == 0, dry.stderr
    assert held(sandbox) == before, "a dry run changes nothing"
    plan = runs(tmp_path, "t")[-1]
    counters = summary(plan)["counters"]
    assert (counters["would_send"], counters["would_update"], counters["would_delete"]) == (
        1,
        30,
        60,
    )
    assert (plan / "batch-0001.csv").read_text().count("\n") == 2
    assert {r["phone_key"] for r in table(plan, "updates.csv")} == {number(i) for i in range(30)}
    deletes = table(plan, "deletes.csv")
    assert {(r["why"], r["plan"]) for r in deletes} == {
        ("do_not_call", "delete"),
        ("removed", "delete"),
    }
    assert {r["phone_key"] for r in deletes} == {number(i) for i in range(30, 90)}

    real = run_cli("sync", config=config)

    assert real.returncode == 0, real.stderr
    assert held(sandbox) == expected(second), "Kore holds exactly the new export, new names"
    done = summary(runs(tmp_path, "t")[-1])["counters"]
    assert (done["created"], done["updated"], done["deleted"]) == (1, 30, 60)
    assert (done["removed"], done["dnc_in_kore"], done["not_ours"]) == (40, 20, 0)
    status = run_cli("status", "--json", config=config)
    assert '"delivered": 191' in status.stdout

    again = run_cli("sync", "--full", config=config)

    assert again.returncode == 0, again.stderr
    quiet = summary(runs(tmp_path, "t")[-1])["counters"]
    assert (quiet["sent"], quiet["updated"], quiet["deleted"], quiet["removed"]) == (0, 0, 0, 0)
    assert held(sandbox) == expected(second)


def test_a_snapshot_missing_most_contacts_deletes_nothing_and_fails(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    first, exports, config = synced_snapshot(tmp_path, sandbox, 100)
    truncated = {i: row for i, row in first.items() if i < 40}
    truncated[500] = ["r500", "New", "Comer", number(500), "false", ""]
    write(exports / "2.csv", truncated, mtime=1_700_000_100)

    result = run_cli("sync", config=config)

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: tenant t: the snapshot 2.csv lacks 60 of the 100 contacts delivered (60%), "
        "more than changes.max_delete_fraction (20%); nothing was deleted or sent"
    ]
    assert "Traceback" not in result.stderr
    assert held(sandbox) == expected(first), "nothing deleted, nothing sent"
    assert summary(runs(tmp_path, "t")[-1])["status"] == "failed"
    retry = run_cli("sync", config=config)
    assert retry.returncode == 1, "the snapshot is not remembered as processed"


def test_only_what_is_ours_is_updated_or_deleted(tmp_path: Path, sandbox: Sandbox) -> None:
    exports = tmp_path / "exports"
    first = people(20)
    theirs = sandbox.import_contacts(
        b"firstName,lastName,salutation,cellPhoneNumber,cellPhoneCountryCode,cellPhoneExtension\r\n"
        b"Kore,Own,,4152011000,+1,\r\n"
    )
    assert theirs[0] == 200
    write(exports / "1.csv", first, mtime=1_700_000_000)
    config = write_config(tmp_path, {"t": snapshot_tenant(sandbox, exports)})
    assert run_cli("sync", config=config).returncode == 0
    assert summary(runs(tmp_path, "t")[-1])["counters"]["already_in_kore"] == 1

    second = next_export(first, renamed=range(0, 2), flagged=range(5, 6), dropped=range(10, 12))
    write(exports / "2.csv", second, mtime=1_700_000_100)
    assert run_cli("sync", config=config).returncode == 0

    names = held(sandbox)
    assert names[number(0)] == ("Kore", "Own", ""), "a contact Kore had before is not renamed"
    assert names[number(1)] == ("First1", "Married1", "")
    assert number(5) not in names and number(10) not in names
    counters = summary(runs(tmp_path, "t")[-1])["counters"]
    assert (counters["updated"], counters["deleted"], counters["not_ours"]) == (1, 3, 1)

    write(exports / "3.csv", {i: r for i, r in second.items() if i != 0}, mtime=1_700_000_200)
    assert run_cli("sync", config=config).returncode == 0
    assert number(0) in held(sandbox), "a contact Kore had before is never deleted"
    plan = table(runs(tmp_path, "t")[-1], "deletes.csv")
    assert [(r["phone_key"], r["plan"][:13]) for r in plan] == [(number(0), "keep (not our")]


@pytest.mark.slow
@pytest.mark.parametrize("faults", ["fail", "drop"])
def test_failing_updates_and_deletes_lose_nothing_and_do_nothing_twice(
    tmp_path: Path, faults: str
) -> None:
    exports = tmp_path / "exports"
    first = people(120)
    switch = {"fail_every": 2} if faults == "fail" else {"drop_every": 2}
    with Sandbox(
        secret=SECRET, faults=Faults(on=frozenset({"update", "delete"}), **switch)
    ) as sandbox:  # type: ignore[arg-type]
        write(exports / "1.csv", first, mtime=1_700_000_000)
        tenant = snapshot_tenant(sandbox, exports)
        tenant["kore"].update(batch_size=10, retries=0)
        config = write_config(tmp_path, {"t": tenant})
        assert run_cli("sync", config=config).returncode == 0
        second = next_export(
            first, renamed=range(0, 25), flagged=range(25, 40), dropped=range(40, 60)
        )
        write(exports / "2.csv", second, mtime=1_700_000_100)

        codes = [run_cli("sync", config=config).returncode for _ in range(12)]

        assert 1 in codes, "the faults made some runs fail"
        assert codes[-1] == 0, codes
        assert held(sandbox) == expected(second)
        assert sum(u.created for u in sandbox.state.upload_log) == 120, "nothing created twice"
        inactive = [c for c in sandbox.state.contacts.values() if c["status"] != "ACTIVE"]
        assert len(inactive) == 35
    status = run_cli("status", "--json", config=config)
    assert '"delivered": 85' in status.stdout
    assert '"pending": 0' in status.stdout


@pytest.mark.slow
def test_kill_9_during_deletes_and_updates_then_the_next_run_finishes_them(
    tmp_path: Path,
) -> None:
    exports = tmp_path / "exports"
    first = people(200)
    with Sandbox(secret=SECRET, faults=Faults(on=frozenset({"update", "delete"}))) as sandbox:
        write(exports / "1.csv", first, mtime=1_700_000_000)
        tenant = snapshot_tenant(sandbox, exports)
        tenant["kore"]["batch_size"] = 10
        config = write_config(tmp_path, {"t": tenant}, daemon={"lease_seconds": 3})
        assert run_cli("sync", config=config).returncode == 0
        second = next_export(
            first, renamed=range(0, 30), flagged=range(30, 50), dropped=range(50, 80)
        )
        write(exports / "2.csv", second, mtime=1_700_000_100)
        sandbox.faults.delay_seconds = 0.3
        for wanted in ("delete", "update"):
            child = subprocess.Popen(
                [sys.executable, "-m", "connector", "sync", "--config", str(config)],
                env={**os.environ, "TEST_KORE_SECRET": SECRET},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 60
            while sandbox.state.requests.get(wanted, 0) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            child.send_signal(signal.SIGKILL)
            child.wait()
            time.sleep(3.5)  # the dead process's lease runs out
        sandbox.faults.delay_seconds = 0

        result = run_cli("sync", config=config)

        assert result.returncode == 0, result.stderr
        assert held(sandbox) == expected(second)
        assert sum(u.created for u in sandbox.state.upload_log) == 200


def test_a_daemon_follows_the_crm_and_metrics_count_updates_and_deletes(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    exports = tmp_path / "exports"
    first = people(60)
    write(exports / "1.csv", first, mtime=1_700_000_000)
    tenant = snapshot_tenant(sandbox, exports)
    tenant["schedule"] = {"every": "1s"}
    config = write_config(tmp_path, {"t": tenant})
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        wait_for(lambda: held(sandbox) == expected(first), 60, "the first export", daemon)
        second = next_export(first, renamed=range(0, 6), flagged=range(6, 9), dropped=range(9, 12))
        write(exports / "2.csv", second, mtime=1_700_000_100)
        wait_for(lambda: held(sandbox) == expected(second), 60, "the second export", daemon)

        def metric(outcome: str) -> float:
            return daemon.metric("kore_connector_rows_total", tenant="t", outcome=outcome)

        wait_for(lambda: metric("deleted") == 6, 10, "the run's counters in /metrics", daemon)
        assert (metric("updated"), metric("removed"), metric("dnc_in_kore")) == (6, 3, 3)
    finally:
        daemon.stop()


def test_a_snapshot_with_unreadable_rows_judges_no_removals(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    first, exports, config = synced_snapshot(tmp_path, sandbox, 30)
    second = {i: row for i, row in first.items() if i >= 10}
    second[29] = ["", *second[29][1:], "a cell too many"]  # a row that could be anyone's
    write(exports / "2.csv", second, mtime=1_700_000_100)

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    assert held(sandbox) == expected(first), "nothing deleted on a damaged snapshot"
    assert "1 rows whose number could not be read" in result.stderr
    assert summary(runs(tmp_path, "t")[-1])["counters"]["removed"] == 0


def test_a_snapshot_table_is_read_whole_and_rows_gone_from_it_are_deleted(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    crm = create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    columns = ", ".join(f'"{name}" TEXT' for name in HEADER)
    with crm.begin() as conn:
        conn.execute(text(f"CREATE TABLE contacts ({columns})"))
        conn.execute(
            text("INSERT INTO contacts VALUES (:a, :b, :c, :d, :e, :f)"),
            [dict(zip("abcdef", row, strict=True)) for row in people(30).values()],
        )
    tenant = snapshot_tenant(sandbox, tmp_path)
    tenant["source"] = {"kind": "sql", "url": "sqlite:///crm.db", "table": "contacts"}
    tenant["source"]["snapshot"] = True
    config = write_config(tmp_path, {"t": tenant})
    assert run_cli("sync", config=config).returncode == 0
    with crm.begin() as conn:
        conn.execute(text("DELETE FROM contacts WHERE \"Id\" IN ('r1', 'r2', 'r3')"))
    crm.dispose()

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    assert held(sandbox) == {
        k: v for k, v in expected(people(30)).items() if k not in {number(1), number(2), number(3)}
    }
    counters = summary(runs(tmp_path, "t")[-1])["counters"]
    assert (counters["removed"], counters["deleted"]) == (3, 3)


def test_rows_unchanged_since_the_last_run_are_not_mapped_again(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """The next full export maps only what changed, and an unchanged row still takes its part
    when a new row has its number or flags it."""
    exports = tmp_path / "exports"
    first = people(100)
    write(exports / "1.csv", first)
    tenant = tenant_config(sandbox, exports / "*.csv")
    tenant["changes"] = {"renamed": "update"}
    config = write_config(tmp_path, {"t": tenant})
    assert run_cli("sync", config=config).returncode == 0
    second = next_export(first, renamed=range(0, 3), flagged=range(0), dropped=range(0))
    second[200] = ["r200", "New", "Comer", number(200), "false", ""]
    second[201] = ["r201", "Older", "Copy", number(10), "false", "2023-01-01T00:00:00Z"]
    second[202] = ["r202", "Flag", "Ger", number(20), "true", ""]
    write(exports / "2.csv", second)

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    counters = summary(runs(tmp_path, "t")[-1])["counters"]
    assert counters["rows_read"] == 103
    assert counters["unchanged_rows"] == 95, "neither renamed, nor contested, nor new"
    assert (counters["created"], counters["updated"], counters["dnc_in_kore"]) == (1, 3, 1)
    reasons = {r["record_id"]: r["reason"] for r in rejected(runs(tmp_path, "t")[-1])}
    assert reasons == {
        "r201": "duplicate_in_source",
        "r20": "skip_when",
        "r202": "skip_when",
    }, "the unchanged row of a contested number was mapped after all, and won"
    names = held(sandbox)
    assert names[number(10)] == ("First10", "Last10", "")
    assert names[number(1)] == ("First1", "Married1", "")

    again = run_cli("sync", "--full", config=config)

    assert again.returncode == 0, again.stderr
    assert summary(runs(tmp_path, "t")[-1])["counters"]["unchanged_rows"] == 0, "--full maps all"
