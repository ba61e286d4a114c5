from __future__ import annotations

import csv
import json
from pathlib import Path

from connector.contacts import Rejection
from connector.kore.wire import batch_csv
from connector.report import Report, neutralise


def test_formula_cells_are_neutralised_in_reports_only(tmp_path: Path) -> None:
    report = Report(tmp_path / "run")
    report.reject(
        Rejection(
            "phone_invalid", "not valid", "=cmd|'/C calc'!A0", 3, "+SUM(A1)", {"Phone": "=1+1"}
        )
    )
    report.close({"status": "completed"}, keep=True)

    with (tmp_path / "run" / "rejected.csv").open(encoding="utf-8", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["source"] == "'=cmd|'/C calc'!A0"
    assert row["record_id"] == "'+SUM(A1)"
    assert json.loads(row["values"]) == {"Phone": "=1+1"}
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["rejected_by_reason"] == {"phone_invalid": 1}

    upload = batch_csv([("=1+2", "-Lee", "@x", "4155550132", "+1", "")]).decode()
    assert upload.splitlines()[1] == "=1+2,-Lee,@x,4155550132,+1,"


def test_neutralise_leaves_plain_text_alone() -> None:
    assert neutralise("Ann") == "Ann"
    assert neutralise("-5") == "'-5"
    assert neutralise("\tx") == "'\tx"


def test_old_run_folders_are_pruned_and_nothing_else_is_touched(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from connector.report import prune
    from connector.sync.context import RUN_ID_TIME

    def folder(age_days: float) -> Path:
        started = datetime.now(UTC) - timedelta(days=age_days)
        path = tmp_path / f"{started.strftime(RUN_ID_TIME)}-abcdef"
        path.mkdir()
        return path

    old, recent = folder(31), folder(29)
    other = tmp_path / "keep-me"
    other.mkdir()

    assert prune(tmp_path, keep_days=30) == 1
    assert not old.exists() and recent.exists() and other.exists()
    assert prune(tmp_path, keep_days=0) == 0, "0 keeps every folder"
