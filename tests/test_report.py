from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from connector.contacts import Rejection
from connector.kore.sandbox import Sandbox
from connector.kore.wire import batch_csv
from connector.report import Report, neutralise
from connector.state import Store
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.helpers import rejected, runs, summary
from tests.messy import write_export


def test_formula_cells_are_neutralised_in_reports_only(tmp_path: Path) -> None:
    report = Report(tmp_path.parent, tmp_path.name, "run")
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

    assert prune(tmp_path.parent, tmp_path.name, keep_days=30) == 1
    assert not old.exists() and recent.exists() and other.exists()
    assert prune(tmp_path.parent, tmp_path.name, keep_days=0) == 0, "0 keeps every folder"


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_state_and_reports_are_readable_by_their_owner_only_whatever_the_umask(
    tmp_path: Path, sandbox: Sandbox, umask: int
) -> None:
    """Names and phone numbers are personal data: 0600 files, 0700 folders."""
    export = tmp_path / "contacts.csv"
    write_export(export, valid=20, seed=9)
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})

    for args in (("sync", "--dry-run"), ("sync",)):
        done = subprocess.run(
            [sys.executable, "-m", "connector", *args, "--config", str(config)],
            env={**os.environ, "TEST_KORE_SECRET": SECRET},
            capture_output=True,
            text=True,
            preexec_fn=lambda: os.umask(umask),
            check=False,
        )
        assert done.returncode == 0, done.stderr

    state = [p for p in tmp_path.iterdir() if p.name.startswith("state.db")]
    assert {stat.S_IMODE(p.stat().st_mode) for p in state if p.is_file()} == {0o600}
    locks = [p for p in state if p.is_dir()]  # the leases' lock files: state.db-leases/
    assert {stat.S_IMODE(p.stat().st_mode) for p in locks} <= {0o700}
    assert {stat.S_IMODE(f.stat().st_mode) for d in locks for f in d.iterdir()} <= {0o600}
    folders = [tmp_path / "reports", tmp_path / "reports" / "acme", *runs(tmp_path, "acme")]
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o700}
    files = [f for run in runs(tmp_path, "acme") for f in run.iterdir()]
    assert {f.suffix for f in files} == {".csv", ".json"} and len(files) > 4
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}


def test_a_state_file_made_readable_by_others_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    Store(f"sqlite:///{path}").close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("long_names", ["truncate", "reject"])
def test_names_are_safe_values_before_they_reach_kore(
    tmp_path: Path, sandbox: Sandbox, long_names: str
) -> None:
    export = tmp_path / "contacts.csv"
    rows = [
        ["1", "Ann\x00e", "Lee\x1b[31m", "+1 415 201 0901"],
        ["2", "Bo\u202eb", "\tSmith \n Jones\x07", "+1 415 201 0902"],
        ["3", "Cy", "L" * 100_000, "+1 415 201 0903"],
        ["4", "\x00\u202e", "\x1b", "+1 415 201 0904"],
    ]
    with export.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["Id", "FirstName", "LastName", "MobilePhone"], *rows])
    tenant = tenant_config(sandbox, export, long_names=long_names, max_name_length=40)
    config = write_config(tmp_path, {"acme": tenant})

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    names = {
        c["cellPhone"]["phoneNumber"]: (c["firstName"], c["lastName"])
        for c in sandbox.state.active()
    }
    assert names["+14152010901"] == ("Anne", "Lee[31m")
    assert names["+14152010902"] == ("Bob", "Smith Jones")
    counters = summary(runs(tmp_path, "acme")[0])["counters"]
    assert counters["names_cleaned"] == 2
    reasons = {r["record_id"]: r["reason"] for r in rejected(runs(tmp_path, "acme")[0])}
    assert reasons["4"] == "name_missing", "a name of control characters only is no name"
    if long_names == "truncate":
        assert names["+14152010903"] == ("Cy", "L" * 40)
        assert counters["names_truncated"] == 1
    else:
        assert "+14152010903" not in names
        assert reasons["3"] == "name_too_long"
