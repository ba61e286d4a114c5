"""The state database: its engine, its schema, and transactions that speak ``StateError``.

What a tenant's state holds is read and written through ``Store.tenant()`` (``tenant.py``), whose
writes are fenced by the tenant's lease (``leases.py``). SQLAlchemy errors become ``StateError``
here, once.

Every transaction on SQLite starts with ``BEGIN IMMEDIATE``: SQLite has one writer at a time, and
taking the write lock first (waiting up to the busy timeout) means two processes never meet
half-way through a transaction. On PostgreSQL the migrations run under an advisory lock, so
replicas that start together upgrade the schema once.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from connector.errors import ConfigError, StateError, missing_driver

if TYPE_CHECKING:
    from connector.state.leases import Lease, Leases
    from connector.state.tenant import TenantState

_MIGRATION_LOCK = 0x6B6F7265  # "kore": the advisory lock replicas take to migrate one at a time
HEAD = "0009"
"""The newest migration. A database already there is not handed to Alembic at all, which saves
every command a quarter of a second (a test checks this against the migrations)."""


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite gives back naive times; every time the store writes is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Store:
    """The connector's state database; the schema is created or upgraded on open."""

    def __init__(self, url: str) -> None:
        from connector.state.leases import Leases

        try:
            parsed = make_url(url)
            self.label = parsed.render_as_string(hide_password=True)
            connect_args = (
                {"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" else {}
            )
            self.engine: Engine = create_engine(
                parsed, pool_pre_ping=True, connect_args=connect_args
            )
        except (ArgumentError, ValueError) as exc:
            raise StateError(f"state_url is not usable: {exc}") from None
        except (NoSuchModuleError, ImportError) as exc:
            raise missing_driver("state_url", self.label, exc) from None
        if self.engine.dialect.name == "sqlite":
            sqlite_folder(parsed.database, self.label)
            _private_database(parsed.database)
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        self.leases: Leases = Leases(self)
        self._migrate()

    def __repr__(self) -> str:
        return f"Store({self.label!r})"

    def _migrate(self) -> None:
        if self.revision() == HEAD:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(files("connector.migrations")))
        with self.transaction() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def revision(self) -> str | None:
        """The schema's migration, or None for a database the connector has not set up."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError:
            return None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction; any database failure becomes a one-line ``StateError``."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self.error(exc) from exc

    def error(self, exc: SQLAlchemyError) -> StateError:
        return StateError(
            f"state database {self.label}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            hint="check state_url and that the database is running",
        )

    def ping(self) -> None:
        """Prove the database answers (``/healthz``); raises ``StateError`` when it does not."""
        with self.transaction() as conn:
            conn.execute(text("SELECT 1"))

    def tenant(self, name: str, lease: Lease | None = None) -> TenantState:
        """One tenant's state. Without a lease it can only be read (``status``, dry runs)."""
        from connector.state.tenant import TenantState

        return TenantState(self, name, lease)


def check_location(url: str) -> None:
    """What ``check`` can tell of a state URL without opening it: a SQLite file's folder."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"state_url is not usable: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        sqlite_folder(parsed.database, parsed.render_as_string(hide_password=True))


def sqlite_folder(name: str | None, label: str) -> None:
    """The folder of a SQLite state file must exist and be writable (SQLite makes the file and
    its WAL files there); a ``ConfigError`` naming it otherwise, before anything is done."""
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    folder = Path(name).absolute().parent
    if not folder.is_dir():
        raise ConfigError(
            f"state_url {label}: the folder {folder} does not exist",
            hint="create it, or point state_url at an existing folder",
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            f"state_url {label}: the folder {folder} is not writable",
            hint="SQLite writes the state file and its WAL files there; fix its permissions",
        )


def _private_database(name: str | None) -> None:
    """A SQLite state file (and its WAL and shared-memory files, which SQLite creates with the
    file's own mode) readable by its owner only, whatever the umask: it holds names and numbers.
    A file made by an older version, or by hand, is narrowed to 0600 too."""
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError:
        return  # a missing folder: opening the database says so, in one line
    else:
        os.fchmod(descriptor, 0o600)  # the umask may have taken the owner's bits too
        os.close(descriptor)
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):
            if each.stat().st_mode & 0o077:
                each.chmod(each.stat().st_mode & 0o700)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun by _sqlite_begin
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    _wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _wal(cursor: Any) -> None:
    """Switch a new file to WAL (the mode stays with the file). The switch needs the file to
    itself and does not wait for a busy file, so processes opening a new file together retry."""
    for _ in range(100):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            time.sleep(0.05)
    cursor.execute("PRAGMA journal_mode=WAL")


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
