"""What an operator reads: exit codes after signals, counters that add up to the rows read, the
``--json`` documents of ``sync``, ``reconcile`` and ``status``, and log lines that read as
sentences. Issue [11]."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from connector.kore.sandbox import Faults, Sandbox
from tests.conftest import SECRET, assert_no_canary, run_cli, tenant_config, write_config
from tests.daemons import write_contacts
from tests.helpers import assert_exactly_once, held, runs, summary
from tests.messy import write_export


def assert_adds_up(counters: dict[str, Any]) -> None:
    """The sums README.md gives: every row read ends in one place, every contact is sent,
    would be, is known delivered or is left for the next run, and every row sent has one
    outcome."""
    c = counters
    assert c["rows_read"] == c["unchanged_rows"] + c["rejected"] + c["contacts"], c
    assert c["contacts"] + c["pending_resent"] == (
        c["already_delivered"] + c["sent"] + c["would_send"] + c["unsent"]
    ), c
    assert c["sent"] == c["created"] + c["adopted"] + c["already_in_kore"] + c["kore_refused"], c


def _started(config: Path, *args: str) -> subprocess.Popen[str]:
    """``sync`` in a child process of its own, as a user starts it from a shell."""
    return subprocess.Popen(
        [sys.executable, "-m", "connector", "sync", *args, "--config", str(config)],
        env={**os.environ, "TEST_KORE_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds}s for {what}"
        time.sleep(0.02)


def _status(config: Path) -> dict[str, Any]:
    done = run_cli("status", "--json", config=config)
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)["tenants"]["acme"]
    return found


def test_the_counters_add_up_on_a_messy_export_a_refused_secret_and_the_recovery_run(
    tmp_path: Path,
) -> None:
    export = tmp_path / "contacts.csv"
    expected = write_export(export, valid=600, seed=17)
    refused = frozenset(sorted(expected.contacts)[:4])
    with Sandbox(
        secret="kc-another-secret-0123456789abcdef", faults=Faults(refuse=refused)
    ) as sandbox:
        config = write_config(tmp_path, {"acme": tenant_config(sandbox, export, batch_size=200)})

        wrong = run_cli("sync", config=config)

        assert wrong.returncode == 1
        (line,) = [x for x in wrong.stdout.splitlines() if x.startswith("acme: failed - ")]
        assert ", 0 sent, " in line, "a refused secret sent nothing"
        assert f"{len(expected.contacts):,} not sent yet" in line
        failed = summary(runs(tmp_path, "acme")[-1])["counters"]
        assert (failed["sent"], failed["created"], failed["batches"]) == (0, 0, 0)
        assert failed["unsent"] == failed["contacts"] == len(expected.contacts)
        assert_adds_up(failed)

        sandbox.secret = SECRET
        recovery = run_cli("sync", config=config)

        assert recovery.returncode == 0, recovery.stderr
        assert set(held(sandbox)) == set(expected.contacts) - refused
        counters = summary(runs(tmp_path, "acme")[-1])["counters"]
        assert counters["pending_resent"] == 200, "the batch the refused run left in flight"
        assert counters["sent"] == sum(u.received for u in sandbox.state.upload_log)
        assert counters["created"] == len(expected.contacts) - len(refused)
        assert counters["kore_refused"] >= len(refused), "a refused row re-sent is refused again"
        assert counters["rejected"] == sum(expected.reasons.values())
        assert counters["rows_read"] == expected.rows
        assert_adds_up(counters)
        assert "left in flight by an earlier run" in recovery.stdout

        dry = run_cli("sync", "--dry-run", "--full", config=config)

        assert dry.returncode == 0, dry.stderr
        assert_adds_up(summary(runs(tmp_path, "acme")[-1])["counters"])


def test_ctrl_c_is_an_interruption_exit_130_and_the_next_sync_sends_only_the_rest(
    tmp_path: Path,
) -> None:
    expected = write_contacts(tmp_path / "contacts.csv", "555", 500)
    with Sandbox(secret=SECRET, faults=Faults(delay_seconds=1)) as sandbox:
        config = write_config(
            tmp_path, {"acme": tenant_config(sandbox, tmp_path / "contacts.csv", batch_size=100)}
        )
        child = _started(config)
        _wait_for(lambda: sandbox.state.uploads >= 1, "the first upload")
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
        assert_no_canary(out + err, "an interrupted sync's output")

        assert child.returncode == 130, err
        assert "error:" not in err and "Traceback" not in err
        (told,) = [x for x in err.splitlines() if x.startswith("acme: interrupted")]
        assert told == "acme: interrupted after 1 of 5 batches; the next run sends the rest"
        (line,) = out.splitlines()
        assert line.startswith("acme: interrupted - 500 rows read from 1 new file, 100 sent ")
        assert "400 not sent yet" in line
        first = summary(runs(tmp_path, "acme")[-1])
        assert first["status"] == "interrupted"
        assert first["counters"]["sent"] == len(held(sandbox)) == 100
        assert_adds_up(first["counters"])
        status = _status(config)
        assert status["last_run"]["status"] == "interrupted"
        assert status["last_run"]["error"] is None
        assert status["last_run"]["interruption"] == told
        assert status["last_delivery"] == status["last_run"]
        text = run_cli("status", config=config).stdout
        assert f"    interruption: {told}" in text and "error:" not in text

        sandbox.faults.delay_seconds = 0
        again = run_cli("sync", config=config)

        assert again.returncode == 0, again.stderr
        assert held(sandbox) == expected
        assert sum(u.received for u in sandbox.state.upload_log) == len(expected)
        counters = summary(runs(tmp_path, "acme")[-1])["counters"]
        assert counters["sent"] == 400
        assert counters["already_delivered"] + counters["unchanged_rows"] == 100
        assert_adds_up(counters)


def test_sigterm_exits_143_and_sync_json_is_one_document_naming_the_interruption(
    tmp_path: Path,
) -> None:
    write_contacts(tmp_path / "contacts.csv", "556", 300)
    with Sandbox(secret=SECRET, faults=Faults(delay_seconds=1)) as sandbox:
        config = write_config(
            tmp_path, {"acme": tenant_config(sandbox, tmp_path / "contacts.csv", batch_size=100)}
        )
        child = _started(config, "--json")
        _wait_for(lambda: sandbox.state.uploads >= 1, "the first upload")
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
        assert_no_canary(out + err, "an interrupted sync's output")

    assert child.returncode == 143, err
    assert "stopping after the batch in flight (SIGTERM again to stop at once)" in err
    acme = json.loads(out)["tenants"]["acme"]  # the whole of stdout is one document
    assert acme["status"] == "interrupted" and acme["error"] is None
    assert acme["interruption"].startswith("acme: interrupted after 1 of 3 batches")
    assert acme["counters"]["sent"] == 100 and acme["counters"]["unsent"] == 200
    assert acme["report"] == str(runs(tmp_path, "acme")[-1])
    assert_adds_up(acme["counters"])


def test_a_second_ctrl_c_stops_at_once_and_the_next_sync_delivers_exactly_once(
    tmp_path: Path,
) -> None:
    expected = write_contacts(tmp_path / "contacts.csv", "557", 200)
    with Sandbox(secret=SECRET, faults=Faults(delay_seconds=8)) as sandbox:
        tenant = tenant_config(sandbox, tmp_path / "contacts.csv", batch_size=100)
        config = write_config(tmp_path, {"acme": tenant}, daemon={"lease_seconds": 600})
        child = _started(config)
        _wait_for(lambda: sandbox.state.uploads >= 1, "the first upload")
        child.send_signal(signal.SIGINT)
        assert child.stderr is not None
        assert "stopping after the batch in flight" in child.stderr.readline()
        started = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
        assert_no_canary(out + err, "a sync stopped at once")

        assert child.returncode == 130, err
        assert time.monotonic() - started < 5, "it did not wait for the upload in flight"
        assert "stopped at once" in err and "Traceback" not in err
        _wait_for(lambda: len(sandbox.state.upload_log) == 1, "the sandbox to store the upload")
        status = _status(config)  # the lease row runs for 600 s; its lock died with the sync
        assert status["lease"] is None, "a dead process's lease is shown as held"
        assert (status["pending"], status["last_run"]["status"]) == (100, "abandoned")

        sandbox.faults.delay_seconds = 0
        again = run_cli("sync", config=config)

    assert again.returncode == 0, again.stderr
    assert_exactly_once(
        sandbox, f"sqlite:///{tmp_path / 'state.db'}", {k: v[0] for k, v in expected.items()}
    )
    counters = summary(runs(tmp_path, "acme")[-1])["counters"]
    assert (counters["pending_resent"], counters["adopted"]) == (100, 100)
    assert_adds_up(counters)


def test_sync_and_reconcile_json_are_one_document_with_every_tenant(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "contacts.csv"
    expected = write_export(export, valid=40, seed=2)
    tenants = {
        "good": tenant_config(sandbox, export),
        "bad": tenant_config(sandbox, tmp_path / "missing.csv"),
    }
    config = write_config(tmp_path, tenants)

    synced = run_cli("sync", "--json", config=config)
    (report,) = runs(tmp_path, "good")
    reconciled = run_cli("reconcile", "--json", "--tenant", "good", config=config)

    assert synced.returncode == 1 and synced.stderr == ""
    document = json.loads(synced.stdout)["tenants"]
    assert list(document) == ["good", "bad"]
    good, bad = document["good"], document["bad"]
    assert good["status"] == "completed" and good["error"] is None
    assert good["counters"]["created"] == len(expected.contacts)
    assert good["report"] == str(report)
    assert_adds_up(good["counters"])
    assert bad["status"] == "failed" and "missing.csv" in bad["error"]
    assert bad["interruption"] is None and isinstance(bad["warnings"], list)
    assert reconciled.returncode == 0, reconciled.stderr
    found = json.loads(reconciled.stdout)["tenants"]["good"]
    assert found["status"] == "completed" and found["applied"] is False
    assert found["found"]["in_kore"] == found["found"]["in_state"] == len(expected.contacts)


def test_status_keeps_the_last_delivery_in_view_and_types_its_json(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "contacts.csv"
    write_export(export, valid=30, seed=4)
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})
    assert run_cli("sync", config=config).returncode == 0
    assert run_cli("sync", config=config).returncode == 0  # nothing new: delivers nothing

    status = _status(config)
    text = run_cli("status", config=config).stdout

    last, delivery = status["last_run"], status["last_delivery"]
    assert delivery == last, "the quiet sync left no run record, only its check"
    assert delivery["counters"]["created"] == 30
    assert delivery["status"] == "completed" and delivery["error"] is None
    assert status["last_check"] >= last["started_at"]
    assert status["schedule"] == {"every": "15m"}
    assert datetime.fromisoformat(status["next_run"]).tzinfo is not None
    assert f"  last run:       {last['id']} completed" in text
    assert "  last delivery:  the last run" in text
    assert f"  last check:     {status['last_check']}" in text or (
        "  last check:     the last run" in text  # the quiet sync began in the same second
    )
    assert "  delivered:      30 contacts" in text
    assert "(every 15m, when the daemon runs)" in text


def test_log_lines_number_batches_within_the_run_in_one_format_with_plurals_right(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    write_contacts(tmp_path / "contacts.csv", "558", 1250)
    write_contacts(tmp_path / "small.csv", "559", 20)
    tenants = {
        "acme": tenant_config(sandbox, tmp_path / "contacts.csv", batch_size=500),
        "small": tenant_config(sandbox, tmp_path / "small.csv", batch_size=500),
    }
    config = write_config(tmp_path, tenants)

    small = run_cli("sync", "--dry-run", "--tenant", "small", config=config)
    first = run_cli("sync", "-v", "--tenant", "acme", config=config)
    dry = run_cli("sync", "--dry-run", "--tenant", "acme", config=config)
    full = run_cli("sync", "--full", "--tenant", "acme", config=config)

    assert "small: completed - 20 rows read from 1 new file, 20 would be sent in 1 batch file" in (
        small.stdout
    )

    assert first.returncode == 0, first.stderr
    assert "read contacts.csv: 1,250 rows (1,251 lines: 1 header, 1,250 in rows" in first.stderr
    for number, rows in ((1, "500 rows"), (2, "500 rows"), (3, "250 rows")):
        assert f"] batch {number} of 3 settled: {rows}, {rows.split()[0]} delivered" in first.stderr
    assert "1,250 rows read from 1 new file, 1,250 sent (1,250 created)" in first.stdout
    assert "0 rows read (no new file), 0 would be sent in 0 batch files, 0 rejected" in dry.stdout
    assert "1,250 rows read (re-read 1 file), 0 sent, 0 rejected, 1,250 already delivered" in (
        full.stdout
    )
    assert "(s)" not in small.stdout + first.stdout + dry.stdout + full.stdout
