"""The state database: its engine, its schema, and transactions that speak ``StateError``.

``leases.py`` and ``tenant.py`` build on this module and it imports neither: what a tenant's
state holds, and who holds each tenant, are put together with the store in ``connector.state``.
SQLAlchemy errors become ``StateError`` here, once.

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
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from connector.errors import ConfigError, StateError, missing_driver, url_hint
from connector.settings import hide_password

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATION_LOCK = 0x6B6F7265  # "kore": the advisory lock replicas take to migrate one at a time
HEAD = "0011"
"""The newest migration. A database already there is not handed to Alembic at all, which saves
every command a quarter of a second (a test checks this against the migrations)."""
_MIGRATE = "run `kore-connector migrate` (sync and daemon also migrate)"


class SchemaNotReady(StateError):
    """The state database does not hold this version's schema: none at all (a new database, or
    a ``state_url`` that names the wrong one), an older revision, or a newer one than this
    version knows (``ahead``). Exit 2, as for a configuration error: it is found before anything
    is read or written, and an operator fixes it (``migrate``, ``state_url``, the installed
    version); retrying does not."""

    exit_code = 2

    def __init__(self, label: str, found: str | None, *, exists: bool = True) -> None:
        self.found = found
        self.ahead = found is not None and found not in _revisions()
        where = f"the state database {label}"
        if not exists:
            message, hint = f"{where} does not exist", f"{_MIGRATE}, or correct state_url"
        elif found is None:
            message = f"{where} has no kore-connector schema"
            hint = f"{_MIGRATE}; if state_url names the wrong database, correct it"
        elif self.ahead:
            message = (
                f"{where} is at revision {found}, which this version does not know "
                f"(it needs {HEAD})"
            )
            hint = "a newer kore-connector migrated it: run that version, or upgrade this one"
        else:
            message, hint = f"{where} is at revision {found}, this version needs {HEAD}", _MIGRATE
        super().__init__(message, hint=hint)


class StateUnavailable(StateError):
    """The state database did not answer: refused, dropped or timed out connections, a server
    shutting down, a SQLite file locked past the busy timeout. Nothing this process did wrong;
    the daemon counts these as one outage (``connector.daemon.outages``)."""


def now() -> datetime:
    """This process's clock, for what only this process compares: a report's times, when a
    batch was recorded (weighed against Kore's own clock). What processes share (lease expiry,
    "ran recently", the bots' upload windows) is timed by ``database_now``."""
    return datetime.now(UTC)


def database_now(conn: Connection) -> datetime:
    """The state database's clock, the one clock of every process that shares it: a lease's
    expiry, when a run started, and a bot's upload times are written and compared in it, so a
    replica whose own clock runs ahead neither takes live leases nor waits for dead ones.

    PostgreSQL's ``clock_timestamp()`` (``now()`` would be the transaction's start), MySQL's and
    MariaDB's ``UTC_TIMESTAMP(6)``; a SQLite file is on one host, whose clock is this one."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        found = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    elif dialect in ("mysql", "mariadb"):
        found = conn.execute(text("SELECT UTC_TIMESTAMP(6)")).scalar_one()
    else:
        return now()
    stamp = aware(found)
    assert stamp is not None
    return stamp.astimezone(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite gives back naive times; every time the store writes is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Store:
    """The connector's state database.

    ``sync``, ``daemon`` and ``migrate`` open it to write: the schema is created or upgraded on
    open. The read-only commands (``status``, ``check``, ``reconcile`` without ``--apply``) open
    it with ``migrate=False``: a read-only connection (SQLite ``mode=ro``, which never creates
    the file; PostgreSQL read-only transactions), and a ``SchemaNotReady`` unless the schema is
    this version's, rather than a schema written into whatever database a mistyped
    ``state_url`` names. ``revision_found`` is the schema's revision as the open found it.
    """

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        try:
            parsed = make_url(url)
            self.label = hide_password(parsed)
            postgresql = parsed.get_backend_name() == "postgresql"
            connect_args = {"connect_timeout": 10} if postgresql else {}
            read_only = {"postgresql_readonly": True} if postgresql and not migrate else {}
            self.engine: Engine = create_engine(
                parsed if migrate else _read_only_url(parsed, self.label),
                pool_pre_ping=True,
                connect_args=connect_args,
                execution_options=read_only,
            )
        except (ArgumentError, ValueError) as exc:
            raise ConfigError(f"state_url is not usable: {exc}", hint=url_hint(url)) from None
        except (NoSuchModuleError, ImportError) as exc:
            raise missing_driver("state_url", self.label, exc) from None
        if self.engine.dialect.name == "sqlite" and migrate:
            sqlite_folder(parsed.database, self.label)
            _private_database(parsed.database)
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        elif self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_reader)
            event.listen(self.engine, "begin", _sqlite_read)
        elif self.engine.dialect.name in ("mysql", "mariadb") and not migrate:
            event.listen(self.engine, "connect", _mysql_reader)
        try:
            self.revision_found = self._migrate() if migrate else self._require_head()
        except StateError:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"Store({self.label!r})"

    def _migrate(self) -> str | None:
        """Bring the schema to ``HEAD``; returns the revision found before. Processes that
        start together take turns (PostgreSQL's advisory lock, SQLite's write lock) and read
        the revision again once they hold the lock, so only the first upgrades, and the others
        say that it was done. A newer schema is refused before Alembic sees it."""
        found = self.revision()
        if found == HEAD:
            return found
        from alembic import command

        with self.transaction() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            found = _revision(conn)
            if found != HEAD:
                if found is not None and found not in _revisions():
                    raise SchemaNotReady(self.label, found)
                config = _alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        return found

    def _require_head(self) -> str:
        """A read-only open: this version's schema exactly, or a ``SchemaNotReady``."""
        found = self.revision()
        if found != HEAD:
            raise SchemaNotReady(self.label, found)
        return found

    def revision(self) -> str | None:
        """The schema's migration, or None for a database the connector has not set up; a
        database that does not answer is a ``StateError``, not a missing schema."""
        with self.transaction() as conn:
            return _revision(conn)

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
        """``exc`` as one line naming the database: a ``StateUnavailable`` when the database
        did not answer, else a ``StateError``."""
        unavailable = isinstance(exc, OperationalError | InterfaceError | PoolTimeout) or (
            isinstance(exc, DBAPIError) and exc.connection_invalidated
        )
        kind = StateUnavailable if unavailable else StateError
        return kind(
            f"state database {self.label}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            hint="check state_url and that the database is running",
        )

    def ping(self) -> None:
        """Prove the database answers (``/healthz``); raises ``StateError`` when it does not."""
        with self.transaction() as conn:
            conn.execute(text("SELECT 1"))

    def clock_offset(self) -> float:
        """How many seconds the database's clock (``database_now``) is ahead of this
        process's (negative: behind), judged at the middle of the round trip; 0.0 for SQLite,
        which has no clock of its own. Raises ``StateError`` when the database does not answer."""
        if self.engine.dialect.name == "sqlite":
            return 0.0
        with self.transaction() as conn:
            before = time.time()
            theirs = database_now(conn).timestamp()
            after = time.time()
        return theirs - (before + after) / 2


def _revision(conn: Connection) -> str | None:
    """The revision ``alembic_version`` holds, asked so that a database without the table
    fails nothing (a failed statement would end a PostgreSQL transaction)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    found: str | None = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return found


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("connector.migrations")))
    return config


def _revisions() -> set[str]:
    """Every revision this version's migrations know; asked only off the fast path (a schema
    at ``HEAD`` never loads Alembic)."""
    from alembic.script import ScriptDirectory

    return {
        script.revision
        for script in ScriptDirectory.from_config(_alembic_config()).walk_revisions()
    }


def _read_only_url(parsed: URL, label: str) -> URL:
    """The URL a read-only store opens. SQLite's ``mode=ro`` neither creates a missing file nor
    writes one; a file that is not there is said at once, in one line. (PostgreSQL is made
    read-only by the engine's ``postgresql_readonly``, MySQL and MariaDB per session.)"""
    if parsed.get_backend_name() != "sqlite":
        return parsed
    name = parsed.database or ""
    if name in ("", ":memory:"):
        raise SchemaNotReady(label, None)
    if not name.startswith("file:"):
        if not Path(name).is_file():
            raise SchemaNotReady(label, None, exists=False)
        name = "file:" + quote(str(Path(name).absolute()))
    return parsed.set(database=name).update_query_dict({"mode": "ro", "uri": "true"})


def check_location(url: str) -> None:
    """What ``check`` can tell of a state URL without opening it: a SQLite file's folder."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"state_url is not usable: {exc}", hint=url_hint(url)) from None
    if parsed.get_backend_name() == "sqlite":
        sqlite_folder(parsed.database, hide_password(parsed))


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


def _sqlite_reader(dbapi_connection: Any, _record: Any) -> None:
    """A read-only connection: no switch to WAL (a write) and no write lock; the busy timeout
    still covers a recovery or checkpoint in progress."""
    dbapi_connection.isolation_level = None  # transactions are begun by _sqlite_read
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _mysql_reader(dbapi_connection: Any, _record: Any) -> None:
    """MySQL and MariaDB have no read-only option in SQLAlchemy: the session is made so."""
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION TRANSACTION READ ONLY")
    cursor.close()


def _sqlite_read(conn: Connection) -> None:
    """A deferred transaction: one snapshot for everything a command reads, without waiting
    for a sync that holds the write lock."""
    conn.exec_driver_sql("BEGIN")
