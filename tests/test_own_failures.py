"""Failures of the connector's own disk: a full reports disk and a read-only one, made real with
a tmpfs of their own. The run ends ``failed`` in one line naming the path, the run record says
why, nothing is left in flight, and the next run finishes the job without adopting contacts
someone else created."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connector.kore.sandbox import Sandbox
from connector.kore.wire import batch_csv
from connector.state import Store
from tests.conftest import on_small_disk, run_cli, tenant_config, write_config
from tests.helpers import assert_exactly_once, held, runs, summary

EXISTING = 400
TOTAL = 1000


def _export(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "FirstName", "LastName", "MobilePhone"])
        for n in range(TOTAL):
            writer.writerow([f"r{n}", f"Name{n}", "Row", f"+1 201 555 {n:04d}"])


def _created_elsewhere_an_hour_ago(sandbox: Sandbox) -> None:
    """Every other number of the export is already in Kore, created by someone else."""
    rows = [["Other", "Person", "", f"201555{n:04d}", "+1", ""] for n in range(0, 2 * EXISTING, 2)]
    status, _ = sandbox.import_contacts(batch_csv(rows))
    assert status == 200
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    with sandbox.state.lock:
        for contact in sandbox.state.contacts.values():
            contact["createdAt"] = contact["updatedAt"] = earlier


def _status(config: Path) -> dict[str, object]:
    result = run_cli("status", "--json", config=config)
    assert result.returncode == 0, result.stderr
    tenants: dict[str, dict[str, object]] = json.loads(result.stdout)["tenants"]
    return tenants["acme"]


def test_a_full_reports_disk_fails_the_run_and_the_next_run_finishes_the_job(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "contacts.csv"
    _export(export)
    _created_elsewhere_an_hour_ago(sandbox)
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})
    reports = tmp_path / "reports"

    full = run_cli("sync", config=config, prefix=on_small_disk(reports, size_kb=256, free_kb=8))

    assert full.returncode == 1
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "internal error" not in full.stderr
    assert f"cannot write the report to {reports}/acme/" in errors[0]
    assert "rejected.csv: No space left on device" in errors[0]
    status = _status(config)
    last = status["last_run"]
    assert isinstance(last, dict)
    assert last["status"] == "failed" and "No space left on device" in last["error"]
    assert status["pending"] == 0, "the batch in flight settled before the run failed"
    first_sent = len(held(sandbox)) - EXISTING
    assert 0 < first_sent < TOTAL - EXISTING, "the disk filled during the upload"

    again = run_cli("sync", config=config)

    assert again.returncode == 0, again.stderr
    assert_exactly_once(
        sandbox,
        f"sqlite:///{tmp_path / 'state.db'}",
        {
            f"+1201555{n:04d}": "Other" if n % 2 == 0 and n < 2 * EXISTING else f"Name{n}"
            for n in range(TOTAL)
        },
    )
    counters = summary(runs(tmp_path, "acme")[-1])["counters"]
    assert counters["adopted"] == 0 and counters["pending_resent"] == 0
    assert counters["created"] == TOTAL - EXISTING - first_sent
    status = _status(config)
    assert status["delivered"] == TOTAL and status["pending"] == 0


def test_a_read_only_reports_disk_fails_the_run_before_anything_is_sent(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "contacts.csv"
    _export(export)
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})
    reports = tmp_path / "reports"

    result = run_cli("sync", config=config, prefix=on_small_disk(reports, size_kb=64))

    assert result.returncode == 1
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert f"cannot write the report to {reports}/acme/" in line and "not writable" in line
    assert held(sandbox) == {}
    last = _status(config)["last_run"]
    assert isinstance(last, dict) and last["status"] == "failed"


def test_a_full_temporary_folder_fails_the_run_in_one_line(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "contacts.csv"
    with export.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "FirstName", "LastName", "MobilePhone"])
        for n in range(60_000):
            writer.writerow(
                [f"r{n}", f"Name{n}" * 4, "Row" * 10, f"+1 201 {n // 10000 + 200} {n % 10000:04d}"]
            )
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})
    scratch = tmp_path / "scratch"

    result = run_cli(
        "sync",
        config=config,
        env={"SQLITE_TMPDIR": str(scratch)},
        prefix=on_small_disk(scratch, size_kb=512, free_kb=256),
    )

    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "internal error" not in result.stderr, result.stderr
    assert f"the run's working file in {scratch}: database or disk is full" in errors[0]
    # The first batches went out while the run read (connector/sync/early.py): each is
    # recorded as delivered, so the next run sends only the rest, and none twice.
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        state = store.tenant("acme")
        assert state.pending_count() == 0
        assert set(state.delivered(list(held(sandbox)))) == set(held(sandbox))
        assert state.delivered_count() == len(held(sandbox)) < 60_000
    finally:
        store.close()
