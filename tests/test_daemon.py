"""The daemon's scheduling without processes: what a reload adds, removes and reschedules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from connector.daemon.metrics import Metrics
from connector.daemon.service import Daemon
from connector.kore.sandbox import Sandbox
from connector.settings import load_settings
from connector.state import Store
from connector.sync.context import KoreAnswered
from tests.conftest import SECRET, tenant_config, write_config


@pytest.fixture
def daemon(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Daemon, Path, Sandbox]]:
    monkeypatch.setenv("TEST_KORE_SECRET", SECRET)
    config = _config(tmp_path, sandbox, {"a": {"every": "1h"}, "b": {"every": "2h"}})
    settings = load_settings(config)
    store = Store(settings.state_url)
    running = Daemon(config, settings, store)
    running._schedule({}, settings)  # scheduled, not started: no run fires
    yield running, config, sandbox
    store.close()


def _config(tmp_path: Path, sandbox: Sandbox, schedules: dict[str, dict[str, str]]) -> Path:
    tenants = {}
    for name, schedule in schedules.items():
        tenants[name] = {**tenant_config(sandbox, tmp_path / "*.csv"), "schedule": schedule}
    return write_config(tmp_path, tenants)


def _jobs(daemon: Daemon) -> dict[str, str]:
    return {job.id: str(job.trigger) for job in daemon.scheduler.get_jobs()}


def test_a_reload_adds_removes_and_reschedules_tenants(
    daemon: tuple[Daemon, Path, Sandbox], tmp_path: Path
) -> None:
    running, _, sandbox = daemon
    assert _jobs(running) == {"a": "interval[1:00:00]", "b": "interval[2:00:00]"}

    _config(tmp_path, sandbox, {"a": {"every": "30m"}, "c": {"cron": "*/5 * * * *"}})
    running.reload()

    jobs = _jobs(running)
    assert set(jobs) == {"a", "c"}
    assert jobs["a"] == "interval[0:30:00]"
    assert jobs["c"].startswith("cron[")
    assert running.scheduler.get_job("c").misfire_grace_time == 300, "one period by default"


def test_a_reload_with_a_broken_mapping_keeps_everything(
    daemon: tuple[Daemon, Path, Sandbox], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running, config, _ = daemon
    config.write_text(config.read_text().replace("mapping: salesforce", "mapping: nowhere.yaml"))

    running.reload()

    assert _jobs(running) == {"a": "interval[1:00:00]", "b": "interval[2:00:00]"}
    assert [r.message for r in caplog.records if "reload refused" in r.message]
    assert running.settings.tenants["a"].schedule.every == timedelta(hours=1)


@pytest.mark.parametrize("listen", ["nonsense", "127.0.0.1:99999", "127.0.0.1:"])
def test_a_bad_listen_address_is_one_line_and_exit_2(tmp_path: Path, listen: str) -> None:
    from tests.conftest import run_cli

    with Sandbox(secret=SECRET) as sandbox:
        config = _config(tmp_path, sandbox, {"a": {"every": "1h"}})
    result = run_cli("daemon", "--listen", listen, config=config, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == f"error: --listen {listen}: expected HOST:PORT"


def test_metrics_count_rate_limits_and_the_seconds_waited_for_the_budget() -> None:
    metrics = Metrics()
    metrics.known("t")
    metrics.observe(KoreAnswered("t", "POST", "/contacts/import-contacts", 429, 0.01, 2.5))
    metrics.observe(KoreAnswered("t", "POST", "/contacts/import-contacts", 200, 0.2, 1.0))
    text = generate_latest(metrics.registry).decode()
    assert 'kore_connector_kore_errors_total{kind="rate_limited",tenant="t"} 1.0' in text
    assert 'kore_connector_budget_wait_seconds_total{tenant="t"} 3.5' in text
