"""A crash hands over at once: a lease whose holder died is taken without waiting for it to
expire, on a SQLite file (the kernel drops the holder's ``flock``) and on PostgreSQL (the server
drops its session advisory lock), by ``sync`` and by daemon replicas, with real processes killed
with SIGKILL. A holder that is only frozen keeps its tenant until its lease expires, and then
commits nothing more.

Every lease in these tests lasts 60 seconds unless a test is about expiry, and every wait is a
poll with a deadline well inside those 60 seconds: what is proven is that nobody waited for
the lease to expire, not how fast a machine is."""

from __future__ import annotations

import multiprocessing
import os
import secrets
import signal
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connector.errors import StateError
from connector.kore.sandbox import Faults, Sandbox
from connector.state import Lease, LeaseLost, Store
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.daemons import DaemonProcess, wait_for, write_contacts
from tests.helpers import assert_exactly_once, held, runs, summary

LEASE = 60.0
"""Longer than any deadline below: a test that waited for expiry would fail, not pass slowly."""

SPAWN = multiprocessing.get_context("spawn")


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


def _take(store: Store, holder: str) -> Lease:
    """Poll for the lease as a replica's turns would. On PostgreSQL the server ends a dead
    client's session when it reads the closed socket, a moment after the kill or the close."""
    found: list[Lease] = []

    def taken() -> bool:
        lease = store.leases.acquire("acme", seconds=LEASE, holder=holder)
        if lease is not None:
            found.append(lease)
        return lease is not None

    wait_for(taken, LEASE / 2, f"the lease for {holder}")
    return found[0]


def _hold(url: str, seconds: float, tokens: multiprocessing.Queue[int], go: EventType) -> None:
    """A child process: take the lease, say so, wait for ``go``, then try to renew it."""
    store = Store(url)
    lease = store.leases.acquire("acme", seconds=seconds, holder="child")
    tokens.put(lease.token if lease else 0)
    go.wait()
    assert lease is not None
    try:
        store.leases.renew(lease)
        tokens.put(1)
    except LeaseLost:
        tokens.put(-1)
    store.close()


def _child(
    url: str, seconds: float
) -> tuple[multiprocessing.process.BaseProcess, multiprocessing.Queue[int], EventType]:
    """A child process holding the lease (token 1) until ``go`` is set."""
    tokens: multiprocessing.Queue[int] = SPAWN.Queue()
    go = SPAWN.Event()
    child = SPAWN.Process(target=_hold, args=(url, seconds, tokens, go))
    child.start()
    assert tokens.get(timeout=60) == 1, "the child took the lease"
    return child, tokens, go


def _signal(child: multiprocessing.process.BaseProcess, signum: signal.Signals) -> None:
    assert child.pid is not None
    os.kill(child.pid, signum)


def test_a_holder_killed_with_sigkill_frees_its_lease_at_once(store: Store, state_url: str) -> None:
    child, _, _ = _child(state_url, LEASE)
    assert store.leases.acquire("acme", seconds=LEASE, holder="parent") is None, "it is alive"

    _signal(child, signal.SIGKILL)
    child.join(30)

    lease = _take(store, "parent")
    assert lease.token == 2, "a new token fences whatever the dead holder left in flight"
    current = store.leases.current("acme")
    assert current is not None and current.holder == "parent"
    store.tenant("acme", lease).start_run("after-the-kill")


def test_a_frozen_holder_keeps_its_tenant_until_its_lease_expires_then_commits_nothing(
    store: Store, state_url: str
) -> None:
    child, tokens, go = _child(state_url, 3)
    _signal(child, signal.SIGSTOP)
    try:
        frozen = store.leases.current("acme")
        assert frozen is not None and frozen.holder == "child"

        lease = _take(store, "parent")
        taken_at = datetime.now(UTC)
    finally:
        _signal(child, signal.SIGCONT)
    go.set()

    assert taken_at >= frozen.expires_at, "its lock is held: only expiry hands it over"
    assert lease.token == 2
    assert tokens.get(timeout=60) == -1, "the thawed holder's renewal is fenced"
    child.join(30)
    assert child.exitcode == 0


def test_a_holder_that_took_over_from_a_frozen_one_keeps_its_tenant_when_that_one_lets_go(
    store: Store,
) -> None:
    """Locks are keyed by token: the frozen holder's lock going free says nothing about the
    holder that took its lease by expiry."""
    frozen = store.leases.acquire("acme", seconds=2, holder="frozen")
    assert frozen is not None
    successor = _take(store, "successor")
    store.leases.release(frozen)  # thawed, it finds its lease gone, and lets go of its lock

    assert store.leases.acquire("acme", seconds=LEASE, holder="third") is None
    store.tenant("acme", successor).start_run("r1")


def test_a_holder_that_lost_its_lock_connection_is_taken_over_and_fenced(
    postgres_url: str,
) -> None:
    """A live process whose lock connection dropped looks dead from outside: its row still
    runs, its lock is gone. It is taken over at once, and its next write commits nothing."""
    store = Store(postgres_url)
    try:
        stranded = store.leases.acquire("acme", seconds=LEASE, holder="stranded")
        assert stranded is not None and stranded.lock is not None
        stranded.lock.release()
        assert store.leases.acquire("acme", seconds=LEASE, locks=False, holder="x") is None, (
            "without lease locks, only expiry hands a tenant over"
        )

        taker = _take(store, "taker")

        assert taker.token == stranded.token + 1
        with pytest.raises(LeaseLost):
            store.tenant("acme", stranded).start_run("r-old")
        store.tenant("acme", taker).start_run("r-new")
    finally:
        store.close()


def test_without_lease_locks_no_lock_is_held_and_only_expiry_hands_over(store: Store) -> None:
    lease = store.leases.acquire("acme", seconds=LEASE, locks=False, holder="one")
    assert lease is not None and lease.lock is None
    assert store.leases.acquire("acme", seconds=LEASE, locks=False, holder="two") is None
    assert not store.leases.notices_death(locks=False)
    assert store.leases.notices_death(locks=True)


def test_a_sqlite_holder_without_a_lock_file_is_not_taken_for_dead(tmp_path: Path) -> None:
    """An older version, or ``lease_locks: false``, made no lock file: that tells nothing, so
    its lease is left to expire."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert store.leases.acquire("acme", seconds=LEASE, locks=False) is not None
        assert store.leases.acquire("acme", seconds=LEASE, holder="locking") is None
    finally:
        store.close()


def test_lock_keys_of_two_schemas_in_one_postgresql_database_never_meet(
    postgres_url: str,
) -> None:
    """Advisory locks are database-wide: a live holder of tenant acme, token 1, in one schema
    must not make a dead one of the same tenant and token in another look alive."""
    schema = f"t_{secrets.token_hex(6)}"
    other_url = postgres_url.rsplit("%3D", 1)[0] + f"%3D{schema}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    alive, other = Store(postgres_url), Store(other_url)
    try:
        assert alive.leases.acquire("acme", seconds=LEASE, holder="alive") is not None
        dead = other.leases.acquire("acme", seconds=LEASE, holder="dead")
        assert dead is not None and dead.token == 1 and dead.lock is not None
        dead.lock.release()

        assert _take(other, "next").token == 2
    finally:
        alive.close()
        other.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_lock_files_are_private_and_a_planted_link_is_refused(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        lease = store.leases.acquire("acme", seconds=LEASE)
        assert lease is not None
        folder = tmp_path / "state.db-leases"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        (lock,) = folder.iterdir()
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        store.leases.release(lease)
        assert list(folder.iterdir()) == [], "a released lease leaves no file behind"

        folder.rmdir()
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        folder.symlink_to(elsewhere)
        with pytest.raises(StateError, match=r"state\.db-leases is not a folder of this user"):
            store.leases.acquire("other", seconds=LEASE)
        assert list(elsewhere.iterdir()) == []
    finally:
        store.close()


def test_a_lock_folder_made_readable_by_others_is_narrowed(tmp_path: Path) -> None:
    folder = tmp_path / "state.db-leases"
    folder.mkdir()
    folder.chmod(0o777)
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert store.leases.acquire("acme", seconds=LEASE) is not None
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        store.close()


def _wait_for_no_session(postgres_url: str, name: str) -> None:
    """Until PostgreSQL has ended every session of the killed process: it does so when it
    reads their closed sockets, which the kernel closed as the process died."""
    engine = create_engine(postgres_url)
    query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")

    def ended() -> bool:
        with engine.connect() as conn:
            return conn.execute(query, {"name": name}).scalar() == 0

    try:
        wait_for(ended, 30, "the killed process's sessions to end")
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_sync_right_after_a_kill_9_runs_at_once(
    tmp_path: Path, sandbox: Sandbox, state_url: str
) -> None:
    export = tmp_path / "contacts.csv"
    contacts = write_contacts(export, "290", 600)
    expected = {key: first for key, (first, _, _) in contacts.items()}
    tenant = tenant_config(sandbox, export)
    daemon = {"lease_seconds": LEASE}
    victim = f"kc_victim_{secrets.token_hex(4)}"
    victim_url = f"{state_url}&application_name={victim}" if "?" in state_url else state_url
    config = write_config(tmp_path, {"acme": tenant}, state_url=victim_url, daemon=daemon)

    killed = run_cli("sync", config=config, env={"CONNECTOR_TEST_CRASH": "before_upload:2"})
    assert killed.returncode == -signal.SIGKILL
    if victim_url != state_url:
        _wait_for_no_session(state_url, victim)
    config = write_config(tmp_path, {"acme": tenant}, state_url=state_url, daemon=daemon)

    again = run_cli("sync", config=config)

    assert again.returncode == 0, again.stderr
    assert_exactly_once(sandbox, state_url, expected)
    assert summary(runs(tmp_path, "acme")[-1])["counters"]["pending_resent"] == 250


@pytest.mark.slow
def test_a_replica_killed_mid_run_hands_its_tenant_to_the_other_at_once(
    tmp_path: Path, state_url: str
) -> None:
    expected = write_contacts(tmp_path / "acme" / "a.csv", "280", 400)
    with Sandbox(secret=SECRET, faults=Faults(delay_seconds=0.5)) as sandbox:
        tenant = tenant_config(sandbox, tmp_path / "acme" / "*.csv", batch_size=50)
        # Hourly: the survivor's next scheduled turn is an hour away. A turn that found the
        # tenant busy comes back every few seconds until it is free (issue 13).
        tenant["schedule"] = {"every": "1h"}
        config = write_config(
            tmp_path,
            {"acme": tenant},
            state_url=state_url,
            daemon={"lease_seconds": LEASE, "stop_grace_seconds": 10},
        )
        replicas = [
            DaemonProcess(config, tmp_path / f"replica{i}.log", listen=False) for i in range(2)
        ]
        store = Store(state_url)
        try:
            holder = ""

            def mid_run() -> bool:
                """One replica mid-run, the other told so (its turn found the tenant busy)."""
                nonlocal holder
                lease = store.leases.current("acme")
                if lease is not None and lease.held and 0 < sandbox.state.uploads < 6:
                    holder = lease.holder
                    other = next(r for r in replicas if str(r.pid) != holder.split(":")[1])
                    return "tried again every 5s while it is held" in other.log()
                return False

            wait_for(mid_run, 60, "a replica in the middle of a run")
            victim = next(r for r in replicas if r.pid == int(holder.split(":")[1]))
            survivor = next(r for r in replicas if r is not victim)
            os.kill(victim.pid, signal.SIGKILL)
            victim.process.wait(10)

            # Half the lease: the survivor's retry of its busy turn takes the tenant over.
            wait_for(lambda: held(sandbox) == expected, LEASE / 2, "every contact", survivor)

            taken = store.leases.current("acme")
            assert taken is not None and taken.holder != holder
            log = sandbox.state.upload_log
            assert sum(u.created for u in log) == len(expected), "nothing created twice"
            assert survivor.stop() == 0
        finally:
            store.close()
            for replica in replicas:
                if replica.process.poll() is None:
                    replica.process.kill()
                replica.process.wait(30)
