"""Uploads while the run still reads (issue 22): a first sync's contacts go to Kore a batch at a
time as they are mapped, never a number that a later row flags do-not-call, and a later row that
wins its number's contest still ends in Kore (connector/sync/early.py)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from connector.kore.sandbox import Faults, Sandbox
from connector.sync import early
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.helpers import held, rejected, runs, summary
from tests.messy import write_export


def _wait(what: str, done: object, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"waited {seconds:.0f}s for {what}"
        time.sleep(0.02)


def test_the_first_upload_reaches_kore_before_the_export_is_read_to_its_end(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Kore is slow (each upload takes 2 s to answer); the run is stopped as soon as its first
    upload arrives. Planning first, it would have read every row by then; uploading while it
    reads, it has read only the rows that fill the batches waiting for Kore."""
    exports = tmp_path / "exports"
    exports.mkdir()
    expected = write_export(exports / "a.csv", valid=20_000, seed=11)
    config = write_config(
        tmp_path, {"acme": tenant_config(sandbox, exports / "*.csv", batch_size=1000)}
    )
    sandbox.faults = Faults(delay_seconds=2.0)
    env = {**os.environ, "TEST_KORE_SECRET": SECRET}
    command = [sys.executable, "-m", "connector", "sync", "--config", str(config)]
    child = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait("the first upload", lambda: sandbox.state.requests.get("import", 0) >= 1)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    stopped = summary(runs(tmp_path, "acme")[-1])
    assert stopped["status"] == "interrupted", stderr
    assert stopped["counters"]["uploads"] >= 1
    assert stopped["counters"]["rows_read"] < expected.rows, "read to its end before uploading"

    sandbox.faults = Faults()
    again = run_cli("sync", config=config)

    assert again.returncode == 0, again.stderr
    assert held(sandbox) == expected.contacts, "each contact once, with its winning row's names"
    extensions = {
        c["cellPhone"]["phoneNumber"]: c["cellPhone"]["extension"]
        for c in sandbox.state.active()
        if c["cellPhone"]["extension"]
    }
    assert extensions == expected.extensions, "and its winning row's extension"
    keys = [c["cellPhone"]["phoneNumber"] for c in sandbox.state.active()]
    assert len(keys) == len(set(keys))


def test_a_number_a_later_row_flags_never_goes_early_and_a_later_winner_ends_in_kore(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    header = [
        "Id", "FirstName", "LastName", "MobilePhone", "DoNotCall", "LastModifiedDate", "Description"
    ]  # fmt: skip
    notes = "x" * (early.MIN_BYTES // 1000)  # a large export: uploads go while it is read
    rows = [
        [f"r{i}", f"First{i}", f"Last{i}", f"+1 212 555 {i:04d}", "false", "2024-01-01", notes]
        for i in range(1000)
    ]
    flagged, renamed = "+12125550005", "+12125550006"
    rows.append(["r5b", "Flag", "Ger", "(212) 555-0005", "true", "2024-01-01", ""])
    rows.append(["r6b", "Newer", "Name", "212-555-0006", "false", "2024-06-01", ""])
    with (exports / "a.csv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    tenant = tenant_config(sandbox, exports / "*.csv", batch_size=100)
    config = write_config(tmp_path, {"acme": tenant})

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    contacts = held(sandbox)
    assert flagged not in contacts
    assert flagged not in sandbox.state.by_phone, "a flagged number was never uploaded"
    assert contacts[renamed] == ("Newer", "Name", "")
    assert len(contacts) == 999
    run = runs(tmp_path, "acme")[-1]
    reasons = {r["record_id"]: (r["reason"], r["detail"]) for r in rejected(run)}
    assert reasons["r5"][0] == "skip_when"
    assert reasons["r6"][0] == "duplicate_in_source"
    assert "uploaded before that row was read, then overwritten" in reasons["r6"][1]
    counters = summary(run)["counters"]
    assert (counters["created"], counters["updated"]) == (999, 1)
    with (run / "updates.csv").open(encoding="utf-8", newline="") as handle:
        (update,) = list(csv.DictReader(handle))
    assert update["plan"] == "update (a later row of this run won)"
