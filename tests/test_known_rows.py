"""The CRM's next export: a row the state knows by its hash is not mapped again, whatever became
of it last time (issue 22). Delivered rows are unchanged; rejected rows are rejected again as
then (known rejections); a duplicate contest's losers lose again to the same unchanged row. The
report says exactly what mapping every row afresh (``--full``) says."""

from __future__ import annotations

import csv
from pathlib import Path

from connector.kore.sandbox import Sandbox
from tests.conftest import run_cli, tenant_config, write_config
from tests.helpers import held, rejected, runs, summary
from tests.messy import write_export


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    return header, rows


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


def _starting_lines(path: Path) -> dict[int, list[str]]:
    """Each data row by the line it starts on (what a report's row number says)."""
    found: dict[int, list[str]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        start = 1
        for row in reader:
            found[start] = row
            start = reader.line_num + 1
    return found


def _report(run: Path) -> list[tuple[str, ...]]:
    return [tuple(row.values()) for row in rejected(run)]


def test_the_next_export_replays_what_became_of_each_unchanged_row(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    expected = write_export(exports / "1.csv", valid=400, seed=5)
    config = write_config(tmp_path, {"t": tenant_config(sandbox, exports / "*.csv")})
    first = run_cli("sync", config=config)
    assert first.returncode == 0, first.stderr
    first_run = runs(tmp_path, "t")[-1]
    rejected_first = len(rejected(first_run))
    assert rejected_first == sum(expected.reasons.values())

    header, rows = _rows(exports / "1.csv")
    # the winner of one contest leaves the export: its loser must be mapped and win now
    contest = next(r for r in rejected(first_run) if r["reason"] == "duplicate_in_source")
    line = int(contest["detail"].split(";")[0].rsplit(" row ", 1)[1])
    rows.remove(_starting_lines(exports / "1.csv")[line])
    last = header.index("LastName")
    for row in rows[::50]:  # one row in fifty renamed: the rest is as it was
        row[last] += "-Changed"
    _write(exports / "2.csv", header, rows)
    (exports / "1.csv").unlink()  # the next export replaces the first

    second = run_cli("sync", config=config)

    assert second.returncode == 0, second.stderr
    second_run = runs(tmp_path, "t")[-1]
    counters = summary(second_run)["counters"]
    assert counters["rows_read"] == len(rows)
    assert counters["rejected_known"] > 0.8 * rejected_first, "rejections replayed, not mapped"
    assert counters["unchanged_rows"] > 0.9 * len(expected.contacts)
    report = _report(second_run)

    full = run_cli("sync", "--full", "--dry-run", config=config)

    assert full.returncode == 0, full.stderr
    full_run = runs(tmp_path, "t")[-1]
    assert summary(full_run)["counters"]["rejected_known"] == 0
    assert _report(full_run) == report, "the replayed report is what mapping afresh says"
    assert len(held(sandbox)) == len(expected.contacts)
