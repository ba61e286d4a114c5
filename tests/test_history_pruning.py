"""Issue [13], finding 2: run records piled up, one a turn, and nothing deleted them or settled
batches. A run that finds nothing new leaves no record, only the tenant's last check (shown by
``status`` and ``/metrics``); records and settled batches older than ``runs_keep_days`` are
pruned by the daemon, in chunks, keeping what ``status`` and the daemon still read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, func, insert, select

from connector.kore.sandbox import Sandbox
from connector.state import Store
from connector.state.tables import batches, runs
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.daemons import DaemonProcess, wait_for, write_contacts
from tests.helpers import held


def _count(url: str, tenant: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                select(func.count()).select_from(runs).where(runs.c.tenant == tenant)
            ).scalar_one()
    finally:
        engine.dispose()
    return int(found)


def test_a_tenant_with_nothing_new_leaves_no_run_record_a_turn(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """``every: 1s`` for 10 s with nothing new: the run that delivered is the only record,
    and the checks since show as the last check."""
    expected = write_contacts(tmp_path / "acme" / "a.csv", "510", 20)
    tenant = tenant_config(sandbox, tmp_path / "acme" / "*.csv")
    tenant["schedule"] = {"every": "1s"}
    config = write_config(tmp_path, {"acme": tenant})
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        wait_for(lambda: held(sandbox) == expected, 30, "the first run's contacts", daemon)
        first = daemon.metric("kore_connector_last_check_timestamp_seconds", tenant="acme")

        def ten_seconds_of_checks() -> bool:
            last = daemon.metric("kore_connector_last_check_timestamp_seconds", tenant="acme")
            return last - first >= 10

        wait_for(ten_seconds_of_checks, 60, "ten seconds of quiet turns", daemon)
        completed = daemon.metric("kore_connector_runs_total", tenant="acme", status="completed")
        success = daemon.metric("kore_connector_last_success_timestamp_seconds", tenant="acme")
        assert daemon.stop() == 0
    finally:
        daemon.process.kill()
        daemon.process.wait(30)

    assert completed >= 8, "a run a turn, each completed"
    assert _count(state_url, "acme") <= 3
    assert success >= first + 10, "a quiet check is a success"
    status = json.loads(run_cli("status", "--json", config=config).stdout)["tenants"]["acme"]
    assert status["last_run"]["counters"]["created"] == 20
    assert status["last_delivery"] == status["last_run"]
    checked = datetime.fromisoformat(status["last_check"])
    assert checked - datetime.fromisoformat(status["last_run"]["started_at"]) >= timedelta(
        seconds=10
    )
    text = run_cli("status", config=config).stdout
    assert f"  last check:     {status['last_check']} (found nothing new)" in text
    assert "  last delivery:  the last run" in text


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _history(url: str) -> None:
    """What years of a busy daemon leave, shrunk: old runs and settled batches of a tenant no
    longer configured, and the rows that must outlive any age."""
    now = datetime.now(UTC)
    old = now - timedelta(days=40)

    def run(run_id: str, started: datetime, status: str = "completed", **counters: int) -> dict:
        return {
            "id": run_id,
            "tenant": "gone",
            "started_at": started,
            "finished_at": started + timedelta(seconds=1),
            "status": status,
            "dry_run": False,
            "counters": json.dumps(counters),
            "holder": "host:1:ab",
            "error": None,
        }

    def batch(run_id: str, status: str, at: datetime) -> dict:
        settled = at if status == "settled" else None
        return {
            "tenant": "gone",
            "run_id": run_id,
            "status": status,
            "attempts": 1,
            "created_at": at,
            "settled_at": settled,
        }

    store = Store(url)  # the schema, as a daemon makes it
    store.close()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(runs),
                [run(f"old-{n:04}", old + timedelta(seconds=n)) for n in range(4500)]
                + [
                    run("old-delivery", now - timedelta(days=39), created=5),
                    run("old-in-flight", now - timedelta(days=45), "failed"),
                    run("old-running", now - timedelta(days=45), "running"),
                    run("recent", now - timedelta(days=1)),
                ],
            )
            conn.execute(
                insert(batches),
                [batch(f"old-{n % 4500:04}", "settled", old) for n in range(2500)]
                + [
                    batch("recent", "settled", now - timedelta(days=1)),
                    batch("old-in-flight", "pending", now - timedelta(days=45)),
                ],
            )
    finally:
        engine.dispose()


def test_old_run_records_and_settled_batches_are_pruned_by_the_daemon(
    tmp_path: Path, sandbox: Sandbox, state_url: str
) -> None:
    _history(state_url)
    (tmp_path / "acme").mkdir()
    config = write_config(
        tmp_path,
        {
            "acme": {
                **tenant_config(sandbox, tmp_path / "acme" / "*.csv"),
                "schedule": {"every": "1h"},
            }
        },
        state_url=state_url,
    )
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    config.write_text(
        yaml.safe_dump({**data, "reports_keep_days": 100, "runs_keep_days": 30}, sort_keys=False),
        encoding="utf-8",
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log", listen=False)
    try:
        pruned = "pruned 4,500 run records and 2,500 settled batches older than 30 days"
        wait_for(lambda: pruned in daemon.log(), 60, "the daemon's pruning", daemon)
        assert daemon.stop() == 0
    finally:
        daemon.process.kill()
        daemon.process.wait(30)

    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            left = set(conn.execute(select(runs.c.id).where(runs.c.tenant == "gone")).scalars())
            kept = conn.execute(select(batches.c.run_id, batches.c.status)).all()
    finally:
        engine.dispose()
    assert left == {"old-delivery", "old-in-flight", "old-running", "recent"}, (
        "the newest run, the newest delivery, a run with rows in flight, one still running"
    )
    assert sorted(kept) == [("old-in-flight", "pending"), ("recent", "settled")]
    assert SECRET not in daemon.log()


def test_a_quiet_run_is_recorded_only_after_one_that_did_not_succeed(tmp_path: Path) -> None:
    """In the state alone: a quiet run after a success leaves only the check; after a failure
    it is recorded, closing that one (``status`` and the daemon read the last run)."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        lease = store.leases.acquire("acme", seconds=60)
        assert lease is not None
        state = store.tenant("acme", lease)
        state.start_run("r1")
        state.finish_run("r1", status="failed", counters={}, error="Kore did not answer")
        state.start_run("r2")
        state.finish_run("r2", status="completed", counters={}, quiet=True)
        state.start_run("r3")
        state.finish_run("r3", status="completed", counters={}, quiet=True)
        last = state.last_run()
        checked = state.last_check()
    finally:
        store.close()
    assert last is not None and last.id == "r2" and last.status == "completed"
    assert checked is not None and checked > last.started_at
    assert _count(f"sqlite:///{tmp_path / 'state.db'}", "acme") == 2
