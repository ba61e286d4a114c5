"""Leases: a tenant is run by at most one process at a time, across daemons and ``sync``.

A lease is a row per tenant: who holds it, until when, and a fencing token that grows by one
each time the lease changes hands. A holder renews it while its run lives. Every write of a
tenant's state first renews the lease with the holder's token in the same transaction
(``fence``): a process whose lease was taken over finds no row to renew, and its transaction
commits nothing. That is the shape of APScheduler's ``acquired_by`` / ``acquired_until`` data
stores, plus the token.

A lease whose holder died is free at once, not at expiry. The holder of token N also holds a lock
that dies with it (GoodJob's "advisory lockable" idea, and RabbitMQ's unacknowledged deliveries
that return to the queue when the consumer's connection closes):

- on PostgreSQL, a session advisory lock taken with ``pg_try_advisory_lock`` on a connection of
  its own, kept open for the lease's life. "Once acquired at session level, an advisory lock is
  held until explicitly released or the session ends" (PostgreSQL manual, Advisory Locks): the
  server ends the session when the process dies, since the kernel closes its socket. Who holds
  what is read from ``pg_locks``, without taking the lock, as GoodJob does;
- on a SQLite file, ``flock`` on a file in a private folder beside it (``<file>-leases/``): the
  kernel drops it when the process's last descriptor of the file closes, that is when it dies.

The lock is keyed by tenant *and token*. A holder that froze (SIGSTOP, a paused VM) keeps its
lock, so its lease is taken only when its row expires, as without locks; the new holder then
holds the lock of its own token, so "the lock of token N is free" always means "the holder of
token N is gone", never "a live holder took its lease from a frozen one". Taking a lease:

- no row: token 1;
- the row expired: the next token (the holder stalled, or died where no lock tells);
- the row has not expired, but its token's lock is free: the holder died; the next token;
- otherwise the tenant is busy.

The taker holds the next token's lock before its row commits, so no process ever sees a token
whose lock was not taken. A holder that lost only its lock (its lock connection dropped, a
PostgreSQL restart) is taken over at once too: its next write is fenced and its run stops.

Where no lock can tell, only expiry hands a tenant over: MySQL and MariaDB, an in-memory SQLite,
and ``daemon.lease_locks: false``, which a pooler that shares server sessions between clients
needs (PgBouncer in transaction or statement mode: a session lock stays with a pooled server
session, not with the client that took it). A lock file that is not there tells nothing either:
its holder took none (an older version, or ``lease_locks: false``).

Expiry is judged by one clock, the state database's (``store.database_now``): a lease is
written and compared in it, so a process whose own clock runs ahead or behind neither takes a
live lease nor waits past a dead one's expiry. A daemon whose clock is off by more than
``daemon.max_clock_skew_seconds`` takes no lease at all (``connector.daemon.clock``): its
requests to Kore would carry tokens issued in the future.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import socket
import stat
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Connection, insert, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from connector.errors import StateError
from connector.state.store import aware, database_now
from connector.state.tables import leases

if TYPE_CHECKING:
    from connector.state.store import Store

PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
"""Who this process is, in leases and in ``status``."""


class LeaseLost(StateError):
    """Another process holds the tenant now; this one must stop and commit nothing."""


class HeldLock(Protocol):
    """The lock that dies with a lease's holder; let go when the lease is released (letting
    go twice does nothing)."""

    def release(self) -> None: ...


@dataclass(frozen=True)
class Lease:
    tenant: str
    holder: str
    token: int
    seconds: float
    lock: HeldLock | None = field(default=None, compare=False, repr=False)
    """None where no lock tells a dead holder (the tenant is handed over at expiry only)."""


@dataclass(frozen=True)
class LeaseInfo:
    holder: str
    token: int
    expires_at: datetime
    read_at: datetime
    """The state database's time when the row was read: ``expires_at`` is in its clock."""

    @property
    def held(self) -> bool:
        """What the row says. A holder that died before its row expired is still named here
        (``status`` shows it) although any process may take the tenant at once."""
        return self.expires_at > self.read_at

    @property
    def remaining(self) -> timedelta:
        """How long the row had still to run when it was read (nothing, once expired): a span,
        good on any process's clock."""
        return max(timedelta(0), self.expires_at - self.read_at)


class Leases:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._held: set[HeldLock] = set()
        self._guard = threading.Lock()

    def acquire(
        self, tenant: str, *, seconds: float, locks: bool = True, holder: str = PROCESS_ID
    ) -> Lease | None:
        """The tenant's lease, or None while another process holds it. ``locks`` is
        ``daemon.lease_locks``: without, a lease is taken only once its row has expired."""
        kind = self._available if locks else None
        with self._store.transaction() as conn:
            stamp = database_now(conn)
            row = conn.execute(
                select(leases.c.token, leases.c.expires_at).where(leases.c.tenant == tenant)
            ).first()
        last = None if row is None else int(row.token)
        expired = row is None or (aware(row.expires_at) or stamp) <= stamp
        gone = last is not None and not expired and kind is not None and kind.gone(tenant, last)
        if not expired and not gone:
            return None
        token = (last or 0) + 1
        lock = None
        if kind is not None:
            lock = kind.hold(tenant, token)
            if lock is None:
                return None  # another process is taking it over right now
        values = {
            "holder": holder,
            "token": token,
            "acquired_at": stamp,
            "expires_at": stamp + timedelta(seconds=seconds),
        }
        taken = False
        try:
            if last is None:
                taken = self._create(tenant, values)
            else:
                taken = self._take_over(tenant, last, values, stamp=stamp, gone=gone)
        finally:
            if lock is not None and not taken:
                lock.release()
        if not taken:
            return None
        if kind is not None and last is not None:
            kind.forget(tenant, last)
        if lock is not None:
            with self._guard:
                self._held.add(lock)
        return Lease(tenant, holder, token, seconds, lock)

    def _create(self, tenant: str, values: dict[str, object]) -> bool:
        try:
            with self._store.engine.begin() as conn:
                conn.execute(insert(leases).values(tenant=tenant, **values))
        except IntegrityError:
            return False  # another process created it first, and holds it
        except SQLAlchemyError as exc:
            raise self._store.error(exc) from exc
        return True

    def _take_over(
        self, tenant: str, token: int, values: dict[str, object], *, stamp: datetime, gone: bool
    ) -> bool:
        """Move the row on from ``token``. Taken for expiry, the row must still be expired
        (its holder may have renewed it since it was read); taken because its holder's lock
        was free, that holder renews nothing any more."""
        condition = [leases.c.tenant == tenant, leases.c.token == token]
        if not gone:
            condition.append(leases.c.expires_at <= stamp)
        with self._store.transaction() as conn:
            return bool(conn.execute(update(leases).where(*condition).values(**values)).rowcount)

    def notices_death(self, *, locks: bool) -> bool:
        """Whether a holder that dies is handed over at once here (a lock tells), rather than
        when its lease expires."""
        return locks and self._available is not None

    def renew(self, lease: Lease) -> None:
        """Push the expiry on; raises ``LeaseLost`` if the lease changed hands."""
        with self._store.transaction() as conn:
            fence(conn, lease)

    def release(self, lease: Lease) -> None:
        """Let the next process take the tenant now rather than at expiry. The lock is let go
        whatever becomes of the row: a holder that is done is as good as dead."""
        try:
            with self._store.transaction() as conn:
                conn.execute(
                    update(leases)
                    .where(
                        leases.c.tenant == lease.tenant,
                        leases.c.holder == lease.holder,
                        leases.c.token == lease.token,
                    )
                    .values(expires_at=database_now(conn))
                )
        finally:
            if lease.lock is not None:
                with self._guard:
                    mine = lease.lock in self._held
                    self._held.discard(lease.lock)
                if mine:  # not let go already by ``close`` in another thread
                    lease.lock.release()

    def close(self) -> None:
        """Let go of every lock still held (the store closes): whoever comes next may take
        those tenants at once, as after this process's death."""
        with self._guard:
            held, self._held = self._held, set()
        for lock in held:
            lock.release()

    def holder_gone(self, tenant: str, info: LeaseInfo, *, locks: bool) -> bool:
        """Whether the holder a row still names has died: its lock is free, so the next
        ``acquire`` with the same ``locks`` (``daemon.lease_locks``) takes the tenant at once.
        False where no lock tells (the row holds until it expires)."""
        kind = self._available if locks else None
        return info.held and kind is not None and kind.gone(tenant, info.token)

    def current(self, tenant: str) -> LeaseInfo | None:
        with self._store.transaction() as conn:
            stamp = database_now(conn)
            row = conn.execute(
                select(leases.c.holder, leases.c.token, leases.c.expires_at).where(
                    leases.c.tenant == tenant
                )
            ).first()
        if row is None:
            return None
        return LeaseInfo(row.holder, row.token, aware(row.expires_at) or stamp, stamp)

    @cached_property
    def _available(self) -> _Locks | None:
        """The locks this state database offers, looked up once."""
        dialect = self._store.engine.dialect.name
        if dialect == "postgresql":
            return _SessionLocks(self._store)
        if dialect == "sqlite":
            path = _sqlite_file(self._store)
            return _FileLocks(Path(f"{path}-leases")) if path else None
        return None


def fence(conn: Connection, lease: Lease) -> None:
    """Renew ``lease`` inside the caller's transaction, or raise ``LeaseLost`` (rolling it back).

    The renewal is an UPDATE, so it also locks the lease row (PostgreSQL) or the database
    (SQLite) until the caller commits: nobody can take the lease over half-way through.
    """
    renewed = conn.execute(
        update(leases)
        .where(
            leases.c.tenant == lease.tenant,
            leases.c.holder == lease.holder,
            leases.c.token == lease.token,
        )
        .values(expires_at=database_now(conn) + timedelta(seconds=lease.seconds))
    ).rowcount
    if not renewed:
        raise LeaseLost(
            f"tenant {lease.tenant}: another process took over its lease; "
            "this process stops and commits nothing more",
            hint="this process stalled longer than daemon.lease_seconds, or lost the "
            "connection that held its lease lock; the tenant's next run carries on",
        )


class _Locks(Protocol):
    """How one kind of database lets a holder's death be seen."""

    def hold(self, tenant: str, token: int) -> HeldLock | None:
        """The lock of ``token``, taken without waiting; None if another process has it."""

    def gone(self, tenant: str, token: int) -> bool:
        """True only when the holder of ``token`` took its lock and no longer has it."""

    def forget(self, tenant: str, token: int) -> None:
        """Tidy away what the lock of a superseded ``token`` left behind."""


class _SessionLocks:
    """PostgreSQL session advisory locks, one connection of its own per lease.

    Advisory locks are shared by the whole database, and several state schemas may live in one
    (a deployment each, a test each): the key is a 63-bit hash of the ``leases`` table's oid,
    the tenant and the token, so they never meet each other or another application's keys.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._table: int | None = None

    def _key(self, tenant: str, token: int) -> int:
        if self._table is None:
            with self._store.transaction() as conn:
                found = conn.execute(text("SELECT CAST(to_regclass('leases') AS oid)")).scalar()
            self._table = int(found or 0)
        digest = hashlib.blake2b(
            f"kore-connector lease\0{self._table}\0{tenant}\0{token}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest, "big") >> 1

    def hold(self, tenant: str, token: int) -> HeldLock | None:
        """The lock on a connection out of the pool (``detach``): closing it ends the session,
        which lets the lock go; a pooled one would keep it for whoever is handed it next.
        ``idle_session_timeout`` (PostgreSQL 14) would end an idle session, and this one is
        idle by design, so it is turned off for it."""
        key = self._key(tenant, token)
        try:
            conn = self._store.engine.connect()
        except SQLAlchemyError as exc:
            raise self._store.error(exc) from exc
        try:
            conn.detach()
            conn.execute(
                text(
                    "SELECT set_config('idle_session_timeout', '0', false) "
                    "WHERE current_setting('idle_session_timeout', true) IS NOT NULL"
                )
            )
            taken = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
            conn.commit()  # idle, not idle in a transaction; a session lock outlives commits
        except SQLAlchemyError as exc:
            conn.close()
            raise self._store.error(exc) from exc
        if not taken:
            conn.close()
            return None
        return _Session(conn)

    def gone(self, tenant: str, token: int) -> bool:
        """Read from ``pg_locks``, which shows a bigint key's high half as ``classid``, its low
        half as ``objid`` and ``objsubid`` 1 (PostgreSQL manual, pg_locks)."""
        key = self._key(tenant, token)
        with self._store.transaction() as conn:
            held = conn.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                    "AND granted AND objsubid = 1 "
                    "AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()) "
                    "AND classid = CAST(CAST(:high AS bigint) AS oid) "
                    "AND objid = CAST(CAST(:low AS bigint) AS oid))"
                ),
                {"high": key >> 32, "low": key & 0xFFFFFFFF},
            ).scalar()
        return not held

    def forget(self, tenant: str, token: int) -> None:
        """A session lock leaves nothing behind."""


class _Session:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def release(self) -> None:
        with contextlib.suppress(SQLAlchemyError):  # a dead connection has let go already
            self._conn.close()


class _FileLocks:
    """``flock`` on a file per tenant and token in a folder beside the SQLite state file.

    The folder is the owner's alone (0700, checked on every use, opened with ``O_NOFOLLOW``),
    and files are made in it through its descriptor with ``O_NOFOLLOW`` and mode 0600: the state
    file may sit in a folder others can write, where a planted link must not make the connector
    create or lock a file elsewhere (filelock's ``_soft_rw`` does the same). ``flock`` locks
    belong to an open file, not to a process, so two leases of one process exclude each other
    as two processes do (POSIX ``lockf`` locks would not, and closing any descriptor of the file
    would drop them all). The file of a token is removed by its holder on release, or by the
    process that takes the lease over after a crash.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _folder(self) -> int | None:
        """The folder's descriptor, if it is there and this user's; made 0700."""
        try:
            descriptor = os.open(
                self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            )
        except OSError:
            return None
        found = os.fstat(descriptor)
        if found.st_uid != os.geteuid():
            os.close(descriptor)
            return None
        if stat.S_IMODE(found.st_mode) != 0o700:  # too open, or a umask left out the owner
            os.fchmod(descriptor, 0o700)
        return descriptor

    def _made_folder(self) -> int:
        with contextlib.suppress(FileExistsError):
            self.folder.mkdir(mode=0o700)
        descriptor = self._folder()
        if descriptor is None:
            raise StateError(
                f"the lease lock folder {self.folder} is not a folder of this user",
                hint="remove what is there; kore-connector makes the folder itself",
            )
        return descriptor

    def hold(self, tenant: str, token: int) -> HeldLock | None:
        folder = self._made_folder()
        try:
            descriptor = os.open(
                _file_name(tenant, token),
                os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=folder,
            )
        except OSError as exc:
            raise StateError(
                f"cannot make a lease lock file in {self.folder}: {exc.strerror or exc}",
                hint="the folder must be writable by the user running kore-connector",
            ) from None
        finally:
            os.close(folder)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        return _File(self, tenant, token, descriptor)

    def gone(self, tenant: str, token: int) -> bool:
        """A shared lock taken for a moment: it conflicts with the holder's exclusive one, and
        not with another process looking at the same time."""
        folder = self._folder()
        if folder is None:
            return False
        try:
            descriptor = os.open(
                _file_name(tenant, token), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder
            )
        except OSError:
            return False  # no file: its holder took no lock, so nothing tells
        finally:
            os.close(folder)
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                return False
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return False
        finally:
            os.close(descriptor)
        return True

    def forget(self, tenant: str, token: int) -> None:
        """Best effort: a file left behind is a few bytes, and tells nothing wrong (its lock
        is free and its token superseded)."""
        folder = self._folder()
        if folder is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.unlink(_file_name(tenant, token), dir_fd=folder)
        finally:
            os.close(folder)


class _File:
    def __init__(self, locks: _FileLocks, tenant: str, token: int, descriptor: int) -> None:
        self._locks = locks
        self._tenant = tenant
        self._token = token
        self._descriptor = descriptor

    def release(self) -> None:
        """The file goes before the lock: a file found unlocked must mean a holder is gone.
        Once only: a descriptor closed twice may close another file that reused its number."""
        if self._descriptor < 0:
            return
        try:
            self._locks.forget(self._tenant, self._token)
        finally:
            os.close(self._descriptor)
            self._descriptor = -1


def _file_name(tenant: str, token: int) -> str:
    """A tenant name may hold anything a path must not; its hash cannot."""
    return f"{hashlib.blake2b(tenant.encode(), digest_size=12).hexdigest()}-{token}.lock"


def _sqlite_file(store: Store) -> str:
    """The SQLite state file as SQLite itself names it (absolute; empty for an in-memory
    database), whichever way the URL spelt it."""
    with store.transaction() as conn:
        for _seq, name, path in conn.exec_driver_sql("PRAGMA database_list"):
            if name == "main":
                return str(path or "")
    return ""
