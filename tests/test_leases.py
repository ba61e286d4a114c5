"""One contract, both backends: leases, fencing, the shared upload budget and migrations, against
a SQLite file and the real PostgreSQL server, with real processes where processes matter."""

from __future__ import annotations

import ast
import multiprocessing
import time
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from connector.contacts import Contact, PhoneKey
from connector.state import LeaseLost, Store
from connector.state.budget import SharedPacer


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(state_url: str) -> Iterator[Store]:
    opened = Store(state_url)
    yield opened
    opened.close()


def _contact(n: int) -> Contact:
    key = f"+1415201{n:04d}"
    return Contact(key, "A", "B", "", PhoneKey(key, key[2:], "+1", ""), "a.csv", n, f"id{n}", None)


def test_a_tenant_is_held_by_one_process_at_a_time(store: Store) -> None:
    first = store.leases.acquire("acme", seconds=30, holder="one")
    assert first is not None and first.token == 1
    assert store.leases.acquire("acme", seconds=30, holder="two") is None
    assert store.leases.acquire("other", seconds=30, holder="two") is not None

    current = store.leases.current("acme")
    assert current is not None and current.holder == "one" and current.held

    store.leases.release(first)
    second = store.leases.acquire("acme", seconds=30, holder="two")
    assert second is not None and second.token == 2, "the token grows each time it changes hands"


def test_a_stalled_holders_lease_expires_and_the_stalled_holder_commits_nothing(
    store: Store,
) -> None:
    """A holder that stops renewing but lives on (its lock held: a frozen process) loses its
    lease at expiry. One that died loses it at once: ``test_handover.py``."""
    stalled = store.leases.acquire("acme", seconds=2, holder="stalled")
    assert stalled is not None
    stale = store.tenant("acme", stalled)
    assert store.leases.acquire("acme", seconds=30, holder="alive") is None

    time.sleep(2.1)
    alive = store.leases.acquire("acme", seconds=30, holder="alive")

    assert alive is not None and alive.token == stalled.token + 1
    with pytest.raises(LeaseLost):
        stale.add_batch("run-old", [_contact(1)])
    with pytest.raises(LeaseLost):
        store.leases.renew(stalled)
    assert store.tenant("acme").pending_count() == 0, "the fenced write left nothing behind"
    fresh = store.tenant("acme", alive)
    fresh.add_batch("run-new", [_contact(2)])
    assert fresh.pending_count() == 1


def test_writes_renew_the_lease_and_a_released_lease_is_free_at_once(store: Store) -> None:
    lease = store.leases.acquire("acme", seconds=2, holder="one")
    assert lease is not None
    state = store.tenant("acme", lease)
    for n in range(3):
        time.sleep(0.8)
        state.start_run(f"run-{n}")  # each write pushes the expiry on
    assert store.leases.acquire("acme", seconds=2, holder="two") is None
    store.leases.release(lease)
    assert store.leases.acquire("acme", seconds=2, holder="two") is not None


def test_a_new_holder_marks_runs_left_running_as_abandoned(store: Store) -> None:
    dead = store.leases.acquire("acme", seconds=30, holder="dead")
    assert dead is not None
    store.tenant("acme", dead).start_run("r1")
    store.leases.release(dead)
    alive = store.leases.acquire("acme", seconds=30, holder="alive")
    assert alive is not None

    store.tenant("acme", alive).start_run("r2")

    with store.transaction() as conn:
        found = dict(conn.execute(text("SELECT id, status FROM runs")).all())
    assert found == {"r1": "abandoned", "r2": "running"}


def test_a_write_without_the_lease_is_a_programming_error(store: Store) -> None:
    with pytest.raises(RuntimeError):
        store.tenant("acme").start_run("r1")


def test_the_store_does_not_import_the_modules_that_build_on_it() -> None:
    """state/: store.py owns the engine and transactions; leases.py and tenant.py build on it.
    An import back, even one for type checking only, is how the three became a circle."""
    source = Path(__file__).resolve().parent.parent / "connector" / "state" / "store.py"
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not imported & {"connector.state.leases", "connector.state.tenant", "connector.state"}


def _take_slots(url: str, started: float, count: int, out: multiprocessing.Queue[float]) -> None:
    store = Store(url)
    pacer = SharedPacer(store, "http://kore|st-1", [(2.0, 3)], sleep=time.sleep)
    while time.monotonic() < started:
        time.sleep(0.01)
    for _ in range(count):
        pacer.wait()
        out.put(time.time())
    store.close()


def test_processes_uploading_to_one_bot_share_its_budget(state_url: str) -> None:
    Store(state_url).close()  # migrated before the race
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[float] = context.Queue()
    start = time.monotonic() + 2.0  # spawn-to-monotonic skew does not matter: a shared epoch
    workers = [
        context.Process(target=_take_slots, args=(state_url, start, 3, out)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    granted = sorted(out.get(timeout=5) for _ in range(6))

    for i, at in enumerate(granted):
        in_window = [t for t in granted[i:] if t < at + 2.0 - 0.05]
        assert len(in_window) <= 3, f"more than 3 uploads within 2 s: {granted}"
    assert granted[-1] - granted[0] >= 2.0 - 0.05, "the second three waited for the window"


def _open(url: str, started: float) -> None:
    while time.time() < started:
        time.sleep(0.005)
    Store(url).close()


def test_processes_starting_together_migrate_once(state_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = time.time() + 2.0
    workers = [context.Process(target=_open, args=(state_url, start)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    store = Store(state_url)
    with store.transaction() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    store.close()
    config = Config()
    config.set_main_option("script_location", str(files("connector.migrations")))
    assert versions == [(ScriptDirectory.from_config(config).get_current_head(),)]
