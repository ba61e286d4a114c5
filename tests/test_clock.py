"""Issue [13], finding 1: one replica with a fast clock stopped every delivery. What processes
share is timed by the state database's clock, and a daemon whose own clock is off by more than
``daemon.max_clock_skew_seconds`` takes no lease and says so on ``/healthz``.

The fast clock is real: the replica runs under libfaketime (Debian's ``faketime``), 120 s ahead,
as the red team ran it; PostgreSQL and the sandbox keep the true time."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from pydantic import SecretStr

from connector.daemon.clock import ClockWatch
from connector.kore.auth import IAT_BACKDATE_SECONDS, JwtAuth
from connector.kore.sandbox import Faults, Sandbox
from connector.state import Store
from tests.conftest import REQUIRE_SERVERS, SECRET, tenant_config, write_config
from tests.daemons import DaemonProcess, wait_for, write_contacts
from tests.helpers import held

LEASE = 60.0

SLEEP_SHIM = (
    "import threading, time\n"
    "time.sleep = lambda seconds: threading.Event().wait(max(0.0, seconds))\n"
)
"""``time.sleep`` waiting on an event: libfaketime 0.9.10 (Debian 12) turns Python 3.11's
absolute ``clock_nanosleep`` on the monotonic clock into EINVAL when the monotonic clock is left
alone (wolfcw/libfaketime#426), and faking the monotonic clock instead hangs every ``threading``
wait (#390)."""
FAKETIME_SHIM = (
    SLEEP_SHIM
    + "import runpy\nrunpy.run_module('connector', run_name='__main__', alter_sys=True)\n"
)
"""The daemon as ``python -m connector`` runs it, with ``SLEEP_SHIM``."""


def _faketime() -> str:
    """``faketime``: missing, the test skips, or fails in CI (``CONNECTOR_TEST_REQUIRE_SERVERS``),
    whose ``.ci/run`` installs it."""
    found = shutil.which("faketime")
    if found is None:
        if REQUIRE_SERVERS:
            pytest.fail("faketime is not installed but CONNECTOR_TEST_REQUIRE_SERVERS=1")
        pytest.skip("faketime is not installed (Debian package faketime)")
    return found


class SkewedDaemon(DaemonProcess):
    """A daemon process whose clock reads ``offset`` from the true time (libfaketime)."""

    def __init__(self, config: Path, log: Path, *, offset: str) -> None:
        self.log_path = log
        env = {
            **os.environ,
            "TEST_KORE_SECRET": SECRET,
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
        env.pop("CONNECTOR_CONFIG", None)
        command = [_faketime(), "-f", offset, sys.executable, "-c", FAKETIME_SHIM]
        command += ["daemon", "--config", str(config), "--listen", "127.0.0.1:0"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        self._address = None


def test_faketime_moves_the_clock_of_a_python_child_and_leaves_its_waits_alone() -> None:
    """What the replica test relies on: the shimmed child's wall clock is 120 s ahead, its
    sleeps and waits last what they say."""
    faketime = _faketime()
    probe = (
        "import time, threading; t = time.monotonic(); time.sleep(0.2); "
        "threading.Event().wait(0.2); print(time.time(), time.monotonic() - t)"
    )
    env = {**os.environ, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    done = subprocess.run(
        [faketime, "-f", "+120s", sys.executable, "-c", SLEEP_SHIM + probe],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=True,
    )
    theirs, waited = (float(part) for part in done.stdout.split())
    assert theirs - time.time() == pytest.approx(120, abs=5)
    assert 0.35 < waited < 5


@pytest.mark.slow
def test_a_replica_120_s_ahead_takes_no_lease_and_the_other_delivers_everything(
    tmp_path: Path, postgres_url: str
) -> None:
    expected = write_contacts(tmp_path / "acme" / "a.csv", "410", 300)
    with Sandbox(secret=SECRET, faults=Faults(delay_seconds=0.3)) as sandbox:
        tenant = tenant_config(sandbox, tmp_path / "acme" / "*.csv", batch_size=50)
        tenant["schedule"] = {"every": "2s"}
        config = write_config(
            tmp_path,
            {"acme": tenant},
            state_url=postgres_url,
            daemon={"lease_seconds": LEASE, "stop_grace_seconds": 10},
        )
        ahead = SkewedDaemon(config, tmp_path / "ahead.log", offset="+120s")
        healthy = restarted = None
        store = Store(postgres_url)
        try:
            answer = ahead.get("/healthz")
            assert answer.status_code == 503
            assert re.search(r"clock off by 1[12]\d s", answer.text), answer.text
            healthy = DaemonProcess(config, tmp_path / "healthy.log")
            started = time.monotonic()
            wait_for(lambda: held(sandbox) == expected, 90, "every contact", healthy)
            assert time.monotonic() - started < 90

            more = write_contacts(tmp_path / "acme" / "b.csv", "411", 300)
            expected |= more
            uploads = sandbox.state.uploads
            wait_for(lambda: sandbox.state.uploads >= uploads + 2, 30, "a run mid-way", healthy)
            os.kill(healthy.pid, signal.SIGKILL)
            healthy.process.wait(10)
            assert held(sandbox) != expected, "the kill came mid-run"
            restarted = DaemonProcess(config, tmp_path / "restarted.log", listen=False)
            wait_for(lambda: held(sandbox) == expected, LEASE, "the rest, resumed", restarted)

            log = ahead.log()
            off = [line for line in log.splitlines() if "clock is" in line]
            assert len(off) == 1 and "120 s ahead of the state database's" in off[0], log
            assert "run started" not in log and "lease on tenant" not in log, log
            assert ahead.get("/healthz").status_code == 503
            lease = store.leases.current("acme")
            assert lease is not None and str(ahead.pid) not in lease.holder
            assert sum(u.created for u in sandbox.state.upload_log) == len(expected)
            assert restarted.stop() == 0
        finally:
            store.close()
            for daemon in (ahead, healthy, restarted):
                if daemon is not None and daemon.process.poll() is None:
                    daemon.process.kill()
                    daemon.process.wait(30)


def test_a_token_says_it_was_issued_a_few_seconds_ago() -> None:
    """A machine a few seconds ahead of Kore is not refused for a token "issued in the
    future"; the token still expires 300 s from now."""
    auth = JwtAuth(
        client_id="cs-1", client_secret=SecretStr(SECRET), account_id="a", algorithm="HS256"
    )
    claims = jwt.decode(auth.mint(), SECRET, algorithms=["HS256"], options={"verify_iat": False})
    now = time.time()
    assert now - IAT_BACKDATE_SECONDS - 2 <= claims["iat"] <= now - IAT_BACKDATE_SECONDS + 1
    assert claims["exp"] - now == pytest.approx(300, abs=2)
    assert IAT_BACKDATE_SECONDS >= 5


class _Drifting:
    """A store whose clock offset is what the test says (a unit test of the watch alone)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def clock_offset(self) -> float:
        return self.offset


def test_the_clock_watch_says_once_when_the_clock_goes_off_and_once_when_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="connector.daemon")
    store = _Drifting()
    watch = ClockWatch(store, max_skew=30)  # type: ignore[arg-type]
    seen = []
    for offset in (2.0, -45.4, -46.0, 120.0, 29.0, 3.0):
        store.offset = offset
        watch.measure()
        seen.append(watch.check())
    assert seen == [
        None,
        "clock off by 45 s",
        "clock off by 46 s",
        "clock off by 120 s",
        None,
        None,
    ]
    said = [r.getMessage() for r in caplog.records if "clock is" in r.getMessage()]
    assert said == [
        "this machine's clock is 45 s ahead of the state database's (more than "
        "daemon.max_clock_skew_seconds, 30 s): this daemon runs no tenant until it is set right "
        "(NTP), and leaves its tenants to the other replicas",
        "this machine's clock is 29 s behind the state database's, within "
        "daemon.max_clock_skew_seconds again: tenants run again",
    ]


@pytest.mark.parametrize("server", ["sqlite", "postgresql"])
def test_the_offset_from_the_database_is_measured(
    server: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'state.db'}"
        if server == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    store = Store(url)
    try:
        offset = store.clock_offset()
    finally:
        store.close()
    assert offset == 0.0 if server == "sqlite" else abs(offset) < 2, "one host, one clock"
