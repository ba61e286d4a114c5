"""The plan's tables and known rejections reach the report, the counters and /metrics as
events (issue [14]): ``Listed`` chunks make one CSV each, a ``RowRejected`` marked ``known`` is
written, counted apart (``rejected_known``) and shown by /metrics."""

from __future__ import annotations

import csv
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from connector.cli.output import describe
from connector.contacts import Rejection
from connector.daemon.metrics import Metrics
from connector.errors import ConnectorError
from connector.kore.sandbox import Sandbox
from connector.report import Report
from connector.settings import load_settings
from connector.state import Store
from connector.sync.context import (
    Counters,
    Listed,
    Listing,
    RowRejected,
    RunContext,
    RunFinished,
)
from connector.sync.run import RunResult
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.helpers import rejected, runs, summary

HEADER = ["Id", "FirstName", "LastName", "MobilePhone", "DoNotCall"]


@pytest.fixture
def run(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[RunContext, Report]]:
    """A run of tenant ``t`` (dry: it records nothing) whose report observes it."""
    monkeypatch.setenv("TEST_KORE_SECRET", SECRET)
    config = write_config(tmp_path, {"t": tenant_config(sandbox, tmp_path / "*.csv")})
    settings = load_settings(config)
    store = Store(settings.state_url)
    ctx = RunContext(
        tenant="t",
        settings=settings.tenants["t"],
        app=settings,
        state=store.tenant("t"),
        base_dir=tmp_path,
        dry_run=True,
    )
    report = Report(settings.reports_dir, "t", ctx.run_id)
    ctx.observers.append(report.observe)
    ctx.guards.append(report.check)
    yield ctx, report
    store.close()


def _rejection(reason: str, row: int) -> Rejection:
    return Rejection(reason, "no digits", "export.csv", row, f"r{row}", {"MobilePhone": "=1+1"})


def test_a_known_rejection_reaches_rejected_csv_the_counters_and_metrics(
    run: tuple[RunContext, Report],
) -> None:
    ctx, report = run
    metrics = Metrics()
    ctx.observers.append(metrics.observe)

    ctx.emit(RowRejected("t", _rejection("phone_invalid", 2), known=True))
    ctx.emit(RowRejected("t", _rejection("phone_invalid", 3)))
    ctx.emit(RowRejected("t", _rejection("name_missing", 4), known=True))
    ctx.counters.rejected = sum(report.reasons.values())
    ctx.emit(RunFinished("t", ctx.run_id, "completed", ctx.counters, dict(report.reasons), 0, None))
    assert report.close({"counters": ctx.counters.as_dict()}, keep=True)

    assert (ctx.counters.rejected, ctx.counters.rejected_known) == (3, 2)
    rows = rejected(report.directory)
    assert [(r["row"], r["reason"], r["record_id"]) for r in rows] == [
        ("2", "phone_invalid", "r2"),
        ("3", "phone_invalid", "r3"),
        ("4", "name_missing", "r4"),
    ]
    assert rows[0]["values"] == '{"MobilePhone": "=1+1"}'
    written = summary(report.directory)
    assert written["counters"]["rejected_known"] == 2
    assert written["rejected_by_reason"] == {"name_missing": 1, "phone_invalid": 2}
    text = generate_latest(metrics.registry).decode()
    assert 'kore_connector_rows_total{outcome="rejected_known",tenant="t"} 2.0' in text
    assert 'kore_connector_rows_total{outcome="rejected",tenant="t"} 3.0' in text
    assert 'kore_connector_rejected_rows_total{reason="phone_invalid",tenant="t"} 2.0' in text


def test_the_summary_line_tells_known_rejections_apart() -> None:
    counters = Counters(rows_read=5, contacts=2, rejected=3, rejected_known=2, sent=2, created=2)

    line = describe(RunResult("t", "run", "completed", counters, None), dry_run=False)

    assert "2 sent (2 created), 3 rejected (2 rows unchanged, rejected as before), " in line


def test_listed_chunks_make_one_table_its_header_once_and_formulas_neutralised(
    run: tuple[RunContext, Report],
) -> None:
    ctx, report = run
    header = ("phone_key", "first_name", "plan")
    with Listing(ctx, "updates.csv", header, chunk=2) as listing:
        for row in [("+14155550100", "=Ann", "update"), ("+14155550101", "Bob", "update")]:
            listing.add(row)
        listing.add(("+14155550102", "-Cy", "skip (renamed: skip)"))
    ctx.emit(Listed("t", "deletes.csv", ("phone_key",), [("+14155550103",)]))
    assert report.close({}, keep=False)

    path = report.directory / "updates.csv"
    assert path.read_bytes() == (
        b"phone_key,first_name,plan\r\n"
        b"+14155550100,'=Ann,update\r\n"
        b"+14155550101,Bob,update\r\n"
        b"+14155550102,'-Cy,skip (renamed: skip)\r\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (report.directory / "deletes.csv").read_bytes() == b"phone_key\r\n+14155550103\r\n"
    assert (report.directory / "rejected.csv").exists(), "a table makes the folder as a row does"


def test_a_listing_left_by_an_exception_lists_no_more_and_an_empty_one_no_file(
    run: tuple[RunContext, Report],
) -> None:
    ctx, report = run
    with Listing(ctx, "quiet.csv", ("phone_key",)):
        pass

    def refused_after_three_rows() -> None:
        with Listing(ctx, "deletes.csv", ("phone_key",), chunk=2) as deletes:
            for n in range(3):
                deletes.add((f"+1415555010{n}",))
            raise ConnectorError("refused")

    with pytest.raises(ConnectorError):
        refused_after_three_rows()
    report.close({}, keep=True)

    assert not (report.directory / "quiet.csv").exists()
    lines = (report.directory / "deletes.csv").read_text().splitlines()
    assert lines == ["phone_key", "+14155550100", "+14155550101"], "whole chunks only"


def test_a_table_that_cannot_be_written_breaks_the_report_and_stops_the_run(
    run: tuple[RunContext, Report],
) -> None:
    ctx, report = run
    ctx.emit(RowRejected("t", _rejection("phone_invalid", 2)))  # makes the run's folder
    (report.directory / "updates.csv").write_text("planted")

    ctx.emit(Listed("t", "updates.csv", ("phone_key",), [("+14155550100",)]))

    with pytest.raises(ConnectorError, match=r"updates\.csv: a file or link this run did not make"):
        ctx.check_stop()
    report.close({}, keep=True)
    assert (report.directory / "updates.csv").read_text() == "planted"


def test_tables_of_more_than_a_chunk_list_every_row_in_order_under_one_header(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """1,500 renamed contacts: ``updates.csv`` reaches the report in two chunks; 600 flagged
    ones: ``dnc_in_kore.csv`` and ``deletes.csv`` in phone order."""
    exports = tmp_path / "exports"
    exports.mkdir()
    people = {i: [f"r{i}", f"First{i}", f"Last{i}", _number(i), "false"] for i in range(2100)}
    _write(exports / "1.csv", people)
    tenant = tenant_config(sandbox, exports / "*.csv")
    tenant["changes"] = {"renamed": "update", "do_not_call": "delete"}
    config = write_config(tmp_path, {"t": tenant})
    assert run_cli("sync", config=config).returncode == 0
    for i in range(1500):
        people[i][2] = f"Married{i}"
    for i in range(1500, 2100):
        people[i][4] = "true"
    _write(exports / "2.csv", people)

    dry = run_cli("sync", "--dry-run", config=config)

    assert dry.returncode == 0, dry.stderr
    plan = runs(tmp_path, "t")[-1]
    updates = _table(plan, "updates.csv")
    assert updates[0] == ["phone_key", "kore_id", "source", "row", "record_id", "old_first_name"]
    assert [r[0] for r in updates[1:]] == [_number(i) for i in range(1500)]
    assert [r[3] for r in updates[1:]] == [str(i + 2) for i in range(1500)]
    flagged = [_number(i) for i in range(1500, 2100)]
    assert [r[0] for r in _table(plan, "dnc_in_kore.csv")] == ["phone_key", *flagged]
    deletes = _table(plan, "deletes.csv")
    assert deletes[0] == ["phone_key", "kore_id", "why", "plan"]
    assert [(r[0], r[2], r[3]) for r in deletes[1:]] == [
        (k, "do_not_call", "delete") for k in flagged
    ]
    assert summary(plan)["counters"]["would_update"] == 1500


def _number(i: int) -> str:
    return f"+1415201{i:04d}"


def _write(path: Path, rows: dict[int, list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *rows.values()])


def _table(run: Path, name: str) -> list[list[str]]:
    """The table's lines, each cut to its first six cells."""
    with (run / name).open(encoding="utf-8", newline="") as handle:
        return [row[:6] for row in csv.reader(handle)]
