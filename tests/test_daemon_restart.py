"""Issue [11]: a restarted daemon resumes at once what was left undone, whatever its schedule,
says at INFO why it skips a turn, and serves from its first scrape the gauges the state knows.

Real daemon processes and ``sync`` commands, sandboxes slowed so that a stop lands mid-run, the
real PostgreSQL server where replicas would share the state. Every wait polls with a deadline."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from connector.daemon.service import Daemon
from connector.kore.sandbox import Faults, Sandbox
from connector.settings import load_settings
from connector.state import RunRecord, Store
from tests.conftest import SECRET, assert_no_canary, run_cli, tenant_config, write_config
from tests.daemons import DaemonProcess, wait_for, write_contacts
from tests.helpers import assert_exactly_once, held

pytestmark = pytest.mark.slow

RESUMED = r"INFO \[acme\] resuming at once: "


def _tenant(sandbox: Sandbox, exports: Path, schedule: dict[str, str]) -> dict[str, Any]:
    tenant = tenant_config(sandbox, exports / "*.csv", batch_size=50)
    tenant["schedule"] = schedule
    return tenant


def _names(expected: dict[str, tuple[str, str, str]]) -> dict[str, str]:
    return {number: first for number, (first, _, _) in expected.items()}


def _sync(config: Path) -> subprocess.Popen[str]:
    """A one-shot ``sync`` in the background, as an operator would start it."""
    env = {**os.environ, "TEST_KORE_SECRET": SECRET}
    env.pop("CONNECTOR_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "connector", "sync", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines(daemon: DaemonProcess, pattern: str) -> list[str]:
    return [line for line in daemon.log().splitlines() if re.search(pattern, line)]


def _last_run(state_url: str) -> RunRecord:
    store = Store(state_url)
    try:
        last = store.tenant("acme").last_run()
    finally:
        store.close()
    assert last is not None
    return last


def _series(text: str, name: str) -> float | None:
    """The value of ``name{tenant="acme"}`` on a /metrics page, None when it is absent."""
    for line in text.splitlines():
        if line.startswith(f'{name}{{tenant="acme"}} '):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_daemon_stopped_mid_run_finishes_the_tenant_at_once_when_started_again(
    tmp_path: Path, postgres_url: str
) -> None:
    expected = write_contacts(tmp_path / "acme" / "a.csv", "310", 400)
    with Sandbox(secret=SECRET, faults=Faults(delay_seconds=0.5)) as sandbox:
        config = write_config(
            tmp_path,
            {"acme": _tenant(sandbox, tmp_path / "acme", {"every": "1h"})},
            state_url=postgres_url,
            daemon={"stop_grace_seconds": 10},
        )
        first = DaemonProcess(config, tmp_path / "first.log", listen=False)
        second = None
        try:
            wait_for(lambda: sandbox.state.uploads >= 2, 30, "two uploads", first)
            assert first.stop() == 0
            assert "run interrupted" in first.log()
            assert 0 < len(held(sandbox)) < len(expected), "the stop came mid-run"

            sandbox.faults.delay_seconds = 0.05
            second = DaemonProcess(config, tmp_path / "second.log")
            wait_for(lambda: held(sandbox) == expected, 30, "the rest of the contacts", second)

            resumed = _lines(second, RESUMED)
            assert len(resumed) == 1, second.log()
            assert re.search(r"its run \S+ was interrupted$", resumed[0]), resumed[0]
            wait_for(
                lambda: (
                    second.metric("kore_connector_runs_total", status="completed", tenant="acme")
                    == 1
                ),
                30,
                "the resumed run recorded",
                second,
            )
            assert second.metric("kore_connector_contacts_delivered", tenant="acme") == 400
            assert second.metric("kore_connector_last_success_timestamp_seconds", tenant="acme")
            assert second.stop() == 0
        finally:
            for daemon in (first, second):
                if daemon is not None:
                    daemon.process.kill()
        assert_exactly_once(sandbox, postgres_url, _names(expected))
        log = sandbox.state.upload_log
        assert sum(u.created for u in log) == len(expected)
        assert sum(u.received for u in log) == len(expected), "the stop settled its batch"


def test_a_sync_stopped_with_ctrl_c_is_finished_by_the_daemon_started_next(
    tmp_path: Path,
) -> None:
    expected = write_contacts(tmp_path / "acme" / "a.csv", "320", 400)
    with Sandbox(secret=SECRET, faults=Faults(delay_seconds=0.5)) as sandbox:
        config = write_config(
            tmp_path, {"acme": _tenant(sandbox, tmp_path / "acme", {"every": "1h"})}
        )
        child = _sync(config)
        try:
            wait_for(lambda: sandbox.state.uploads >= 2, 30, "two uploads of the sync")
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        assert_no_canary(out + err, "the interrupted sync's output")
        state_url = f"sqlite:///{tmp_path / 'state.db'}"
        assert _last_run(state_url).status == "interrupted", err
        assert 0 < len(held(sandbox)) < len(expected), "the stop came mid-run"

        sandbox.faults.delay_seconds = 0.05
        daemon = DaemonProcess(config, tmp_path / "daemon.log", listen=False)
        try:
            wait_for(lambda: held(sandbox) == expected, 30, "the rest of the contacts", daemon)
            resumed = _lines(daemon, RESUMED)
            assert len(resumed) == 1 and resumed[0].endswith("was interrupted"), daemon.log()
            wait_for(lambda: "run completed" in daemon.log(), 30, "the run's end", daemon)
            assert daemon.stop() == 0
        finally:
            daemon.process.kill()
        assert_exactly_once(sandbox, state_url, _names(expected))
        assert sum(u.received for u in sandbox.state.upload_log) == len(expected)


def test_a_cron_tenant_left_running_by_a_killed_sync_is_resumed_once_its_lease_expires(
    tmp_path: Path, postgres_url: str
) -> None:
    """The killed process's lease outlives it by up to ``lease_seconds``: the daemon's first
    turn may find it held, says so, and comes back once it has expired, long before the cron
    schedule (once a year) would."""
    expected = write_contacts(tmp_path / "acme" / "a.csv", "330", 300)
    with Sandbox(secret=SECRET) as sandbox:
        config = write_config(
            tmp_path,
            {"acme": _tenant(sandbox, tmp_path / "acme", {"cron": "0 0 1 1 *"})},
            state_url=postgres_url,
            daemon={"lease_seconds": 5},
        )
        crashed = run_cli("sync", config=config, env={"CONNECTOR_TEST_CRASH": "after_upload:2"})
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        assert _last_run(postgres_url).status == "running", "nobody recorded its end"

        daemon = DaemonProcess(config, tmp_path / "daemon.log", listen=False)
        try:
            wait_for(lambda: held(sandbox) == expected, 30, "every contact", daemon)
            assert "its work is unfinished, a turn comes at once" in daemon.log()
            resumed = _lines(daemon, RESUMED)
            assert len(resumed) == 1, daemon.log()
            left = (
                r"its run \S+ was left running by \S+, which holds it no more, 50 rows in flight$"
            )
            assert re.search(left, resumed[0]), resumed[0]
            wait_for(lambda: "run completed" in daemon.log(), 30, "the run's end", daemon)
            assert daemon.stop() == 0
        finally:
            daemon.process.kill()
        assert_exactly_once(sandbox, postgres_url, _names(expected))
        assert sum(u.created for u in sandbox.state.upload_log) == len(expected)


def test_metrics_right_after_a_restart_show_the_last_success_and_what_the_state_holds(
    tmp_path: Path, postgres_url: str
) -> None:
    expected = write_contacts(tmp_path / "acme" / "a.csv", "340", 120)
    with Sandbox(secret=SECRET) as sandbox:
        config = write_config(
            tmp_path,
            {"acme": _tenant(sandbox, tmp_path / "acme", {"every": "1h"})},
            state_url=postgres_url,
        )
        first = DaemonProcess(config, tmp_path / "first.log", listen=False)
        try:
            wait_for(lambda: "run completed" in first.log(), 30, "the first run", first)
            assert first.stop() == 0
        finally:
            first.process.kill()
        assert held(sandbox) == expected
        finished = _last_run(postgres_url).finished_at
        assert finished is not None

        second = DaemonProcess(config, tmp_path / "second.log")
        try:
            page = second.get("/metrics").text
            restored = _series(page, "kore_connector_last_success_timestamp_seconds")
            assert restored is not None, page
            assert restored == pytest.approx(finished.timestamp()), "the last success, restored"
            assert _series(page, "kore_connector_contacts_delivered") == 120
            assert _series(page, "kore_connector_contacts_in_flight") == 0

            skipped = r"INFO \[acme\] turn skipped: it ran \d+s ago \(completed\), next due in 59m"
            wait_for(lambda: bool(_lines(second, skipped)), 30, "the skipped turn", second)
            assert not _lines(second, RESUMED)
            assert "run started" not in second.log()
            assert second.stop() == 0
        finally:
            second.process.kill()
        assert len(sandbox.state.upload_log) == 3, "the restart sent nothing"


def test_a_daemon_started_while_a_sync_runs_the_tenant_says_who_holds_it_and_when(
    tmp_path: Path,
) -> None:
    write_contacts(tmp_path / "acme" / "a.csv", "350", 600)
    with Sandbox(secret=SECRET, faults=Faults(delay_seconds=1)) as sandbox:
        config = write_config(
            tmp_path,
            {"acme": _tenant(sandbox, tmp_path / "acme", {"every": "1h"})},
            # Where no lock tells that a holder died (MySQL, PgBouncer), a turn that finds the
            # tenant busy comes back just after the lease expires, and again while it is held.
            daemon={"lease_seconds": 3, "lease_locks": False},
        )
        child = _sync(config)
        daemon = None
        try:
            wait_for(lambda: sandbox.state.uploads >= 1, 30, "the sync's first upload")
            daemon = DaemonProcess(config, tmp_path / "daemon.log", listen=False, options=["-v"])
            busy = (
                r"\[acme\] turn skipped: another process runs it "
                rf"\(lease held by \S+:{child.pid}:\S+ until \d\d:\d\d:\d\d UTC\); "
                r"one more turn just after that lease expires$"
            )
            watched = daemon
            wait_for(
                lambda: len(_lines(watched, "DEBUG " + busy)) >= 2,
                30,
                "two more skipped turns, said once",
                daemon,
            )
            assert len(_lines(daemon, "INFO " + busy)) == 1
            assert child.poll() is None, "the sync was still running"
            assert "run started" not in daemon.log()
            assert daemon.stop() == 0
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=30)
            assert_no_canary(out + err, "the sync's output")
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
            if daemon is not None:
                daemon.process.kill()


def test_the_gauges_start_from_the_state_rows_in_flight_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process: what ``start`` restores before the listener serves its first scrape. A
    tenant that never succeeded has no last-success series (an alert on its absence fires)."""
    write_contacts(tmp_path / "acme" / "a.csv", "360", 200)
    with Sandbox(secret=SECRET) as sandbox:
        config = write_config(
            tmp_path, {"acme": _tenant(sandbox, tmp_path / "acme", {"every": "1h"})}
        )
        crashed = run_cli("sync", config=config, env={"CONNECTOR_TEST_CRASH": "after_upload:3"})
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        monkeypatch.setenv("TEST_KORE_SECRET", SECRET)
        settings = load_settings(config)
        store = Store(settings.state_url)
        try:
            daemon = Daemon(config, settings, store)
            daemon._schedule({}, settings)
            page = generate_latest(daemon.metrics.registry).decode()
        finally:
            store.close()
    assert _series(page, "kore_connector_contacts_delivered") == 100
    assert _series(page, "kore_connector_contacts_in_flight") == 50
    assert _series(page, "kore_connector_last_success_timestamp_seconds") is None
