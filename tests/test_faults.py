"""The fault-injection suite: the real command line against the sandbox over loopback, with a
crash, a network fault or a failing database at the worst moments. Every test ends on one
invariant (``assert_exactly_once``): each valid, distinct contact of the export exists exactly
once in Kore, the state agrees (same numbers, same Kore ids), and nothing is left in flight.

Crash points are the test-only ``CONNECTOR_TEST_CRASH=POINT[:N]`` (``connector/crash.py``): the
process SIGKILLs itself the Nth time it reaches POINT.
"""

from __future__ import annotations

import csv
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from connector.kore.sandbox import Faults, Sandbox
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.helpers import assert_exactly_once, runs, summary

VALID = 600
"""Distinct valid numbers in the export; 3 batches of 250 (the last one short)."""
LEASE = 2.0
"""Seconds a killed process's lease outlives it."""

pytestmark = pytest.mark.slow


def _export(path: Path, *, names: str = "Name", keep: range = range(VALID)) -> dict[str, str]:
    """An export of the numbers in ``keep``, plus rows the run must not send (an invalid
    number, a repeated number); returns the expected contacts: key -> first name."""
    expected: dict[str, str] = {}
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "FirstName", "LastName", "MobilePhone"])
        for n in keep:
            writer.writerow([f"r{n}", f"{names}{n}", "Row", f"+1 201 555 {n:04d}"])
            expected[f"+1201555{n:04d}"] = f"{names}{n}"
        writer.writerow(["bad1", "No", "Number", "12"])
        writer.writerow(["dup1", "Twice", "Row", "+1 201 555 0001"])
    return expected


def _setup(
    tmp_path: Path, sandbox: Sandbox, *, state_url: str | None = None, **kore: Any
) -> tuple[Path, dict[str, str], str]:
    export = tmp_path / "contacts.csv"
    expected = _export(export)
    url = state_url or f"sqlite:///{tmp_path / 'state.db'}"
    tenant = tenant_config(sandbox, export, **kore)
    config = write_config(
        tmp_path, {"acme": tenant}, state_url=url, daemon={"lease_seconds": LEASE}
    )
    return config, expected, url


def _after_a_kill(killed: subprocess.CompletedProcess[str]) -> None:
    assert killed.returncode == -signal.SIGKILL
    time.sleep(LEASE + 0.2)  # the dead process's lease expires


def _no_traceback(stderr: str) -> None:
    """A failure a user or the environment causes is told in lines, never as a crash."""
    lines = stderr.splitlines()
    assert not any(x.startswith(("internal error", "Traceback")) for x in lines), stderr


def _crash(point: str) -> dict[str, str]:
    return {"CONNECTOR_TEST_CRASH": point}


@pytest.mark.parametrize("point", ["before_upload:2", "after_upload:2", "before_settle:2"])
def test_a_kill_at_each_point_of_an_upload_costs_a_retry_never_a_contact(
    tmp_path: Path, sandbox: Sandbox, point: str
) -> None:
    config, expected, url = _setup(tmp_path, sandbox)

    _after_a_kill(run_cli("sync", config=config, env=_crash(point)))
    if point != "before_upload:2":
        assert len(sandbox.state.active()) == 500, "the second batch reached Kore"

    again = run_cli("sync", config=config)
    assert again.returncode == 0, again.stderr
    assert_exactly_once(sandbox, url, expected)
    counters = summary(runs(tmp_path, "acme")[-1])["counters"]
    assert counters["pending_resent"] == 250
    assert counters["already_in_kore"] == 0, "what our killed try created is adopted"


@pytest.mark.parametrize("point", ["mid_update:1", "mid_delete:1"])
def test_a_kill_in_the_middle_of_updates_and_deletes_is_finished_by_the_next_run(
    tmp_path: Path, sandbox: Sandbox, point: str
) -> None:
    config, _, url = _setup(tmp_path, sandbox, update_changed=True)
    assert run_cli("sync", config=config).returncode == 0
    tenant = tenant_config(sandbox, tmp_path / "contacts.csv", update_changed=True)
    tenant["source"]["snapshot"] = True
    tenant["changes"] = {"removed": "delete"}
    config = write_config(
        tmp_path, {"acme": tenant}, state_url=url, daemon={"lease_seconds": LEASE}
    )
    expected = _export(tmp_path / "contacts.csv", names="Renamed", keep=range(0, VALID - 100))

    _after_a_kill(run_cli("sync", config=config, env=_crash(point)))

    again = run_cli("sync", config=config)
    assert again.returncode == 0, again.stderr
    assert_exactly_once(sandbox, url, expected)


def test_a_5xx_storm_fails_the_run_and_the_next_run_delivers(tmp_path: Path) -> None:
    with Sandbox(secret=SECRET, faults=Faults(fail_every=1)) as sandbox:
        config, expected, url = _setup(tmp_path, sandbox, retries=2)

        stormy = run_cli("sync", config=config)
        assert stormy.returncode == 1
        _no_traceback(stormy.stderr)

        sandbox.faults.fail_every = 0
        assert run_cli("sync", config=config).returncode == 0
        assert_exactly_once(sandbox, url, expected)


@pytest.mark.parametrize("style", ["seconds", "date", "none"])
def test_429s_with_every_kind_of_retry_after_slow_the_run_and_lose_nothing(
    tmp_path: Path, style: str
) -> None:
    faults = Faults(rate_limit_every=2, retry_after=style)  # type: ignore[arg-type]
    with Sandbox(secret=SECRET, faults=faults) as sandbox:
        config, expected, url = _setup(tmp_path, sandbox)

        result = run_cli("sync", config=config)

        assert result.returncode == 0, result.stderr
        assert_exactly_once(sandbox, url, expected)
        assert summary(runs(tmp_path, "acme")[-1])["counters"]["rate_limited"] >= 1


def test_connections_reset_mid_body_are_retried(tmp_path: Path) -> None:
    with Sandbox(secret=SECRET, faults=Faults(reset_every=2)) as sandbox:
        config, expected, url = _setup(tmp_path, sandbox)

        result = run_cli("sync", config=config)

        assert result.returncode == 0, result.stderr
        assert sandbox.state.requests["import"] > 3, "some uploads were reset and tried again"
        assert_exactly_once(sandbox, url, expected)


def test_answers_slower_than_the_timeout_are_settled_by_the_next_run(tmp_path: Path) -> None:
    with Sandbox(secret=SECRET, faults=Faults(late_seconds=1.5)) as sandbox:
        config, expected, url = _setup(tmp_path, sandbox, timeout_seconds=0.5, retries=1)

        late = run_cli("sync", config=config)
        assert late.returncode == 1
        _no_traceback(late.stderr)
        time.sleep(1.6)  # the late answers' work is done by now
        assert sandbox.state.active(), "the uploads were carried out, unanswered"

        sandbox.faults.late_seconds = 0
        again = run_cli("sync", config=config)
        assert again.returncode == 0, again.stderr
        assert_exactly_once(sandbox, url, expected)


def test_a_whole_file_400_is_narrowed_to_the_rows_at_fault(tmp_path: Path) -> None:
    with Sandbox(secret=SECRET, faults=Faults(duplicates="reject-file")) as sandbox:
        config, expected, url = _setup(tmp_path, sandbox)
        first = run_cli("sync", config=config)
        assert first.returncode == 0, first.stderr
        assert_exactly_once(sandbox, url, expected)


def test_postgresql_backends_terminated_mid_run(tmp_path: Path, postgres_url: str) -> None:
    name = f"kc_{secrets.token_hex(4)}"
    url = f"{postgres_url}&application_name={name}"
    killer = create_engine(postgres_url)
    with Sandbox(secret=SECRET, faults=Faults(delay_seconds=0.4)) as sandbox:
        config, expected, _ = _setup(tmp_path, sandbox, state_url=url, batch_size=50)
        env = {**os.environ, "TEST_KORE_SECRET": SECRET}
        command = [sys.executable, "-m", "connector", "sync", "--config", str(config)]
        child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        terminated = 0
        time.sleep(2.0)
        for _ in range(3):
            with killer.begin() as conn:
                terminated += len(
                    conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = :name"
                        ),
                        {"name": name},
                    ).all()
                )
            time.sleep(0.7)
        _, stderr = child.communicate(timeout=120)
        assert terminated >= 1, "the run's connections were there to terminate"
        assert child.returncode in (0, 1), stderr
        _no_traceback(stderr)
        if child.returncode == 1:
            assert f"state database {postgres_url.split('://')[0]}" in stderr

        sandbox.faults.delay_seconds = 0
        again = run_cli("sync", config=config)
        assert again.returncode == 0, again.stderr
        assert_exactly_once(sandbox, url, expected)
    killer.dispose()


def test_a_sqlite_state_locked_by_another_process_is_waited_for(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config, expected, url = _setup(tmp_path, sandbox)
    assert run_cli("migrate", config=config).returncode == 0  # the schema exists
    held = threading.Event()

    def lock_for_a_while() -> None:
        connection = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        held.set()
        time.sleep(3)
        connection.execute("COMMIT")
        connection.close()

    locker = threading.Thread(target=lock_for_a_while)
    locker.start()
    held.wait(5)
    started = time.monotonic()
    result = run_cli("sync", config=config)
    locker.join()

    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 2, "the run waited for the lock"
    assert_exactly_once(sandbox, url, expected)
