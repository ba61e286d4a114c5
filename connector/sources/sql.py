"""Database sources: a table or a query through any SQLAlchemy URL, read incrementally.

With a ``cursor`` column, each run re-reads a window behind the position the last completed run
saved, the same rule as dlt's incremental ``lag`` and the lookback windows of reverse-ETL tools:

- **Read** every row whose cursor is at or after the position minus ``cursor_lookback``, with
  no upper bound, ordered by (cursor, record id). The id only orders rows that share a cursor
  value; it excludes nothing, because UUIDs, Salesforce ids and most CRMs' keys do not grow
  with time: a row saved in the position's second with a smaller id, or committed late with an
  earlier stamp, is inside the window.
- **Save** the last row read whose cursor is at least ``cursor_lag`` behind the source
  database's clock (read once per run), so that rows still being committed, or stamped ahead
  by an application server whose clock runs fast, are read again by the next run. A saved
  position that is ahead of that limit (saved before the limit existed) is read from the limit.
- **Compare like with like.** An aware time is compared with the database's clock in UTC; a
  naive one (MariaDB's DATETIME, PostgreSQL's ``timestamp``) with its wall clock in the
  session's time zone (``NOW(6)``, ``clock_timestamp()::timestamp``), which is what a column
  the database stamps holds; SQLite's times are ISO-8601 text, compared with its clock in UTC
  (what ``CURRENT_TIMESTAMP`` writes). The window's start is computed here in the cursor's own
  form (a datetime, a date, or text written like the saved value) and bound as a parameter.
- A cursor that is not a time (an integer version) has no window and no lag: the read is
  ``cursor >= position``, inclusive, since versions may be shared by several rows and their ids
  order nothing.

Rows read again are cheap: the same cells make the same row hash, which the run recognises
as unchanged (``unchanged_rows``) without mapping or sending them. Positions are saved as
before (JSON ``[cursor, id]``), so an existing install keeps its own. Rows are streamed
(server-side cursors where the driver has them) inside a read-only transaction where the
database offers one. Rows whose cursor is NULL are read only by a run without a position (the
first, or ``--full``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    column,
    create_engine,
    func,
    select,
    table,
    text,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.expression import ColumnClause

from connector.errors import ConfigError, SourceError, missing_driver, url_hint
from connector.mapping import normalise_header, shown
from connector.settings import SqlSourceSettings
from connector.sources import SourceRow, SourceStats, SourceUnit, as_text
from connector.state import Checkpoint

if TYPE_CHECKING:
    from connector.state import TenantState

Position = tuple[Any, Any]


class SqlSource:
    def __init__(
        self,
        settings: SqlSourceSettings,
        *,
        state: TenantState | None,
        full: bool,
        id_columns: list[str],
    ) -> None:
        self.settings = settings
        self.state = state
        self.full = full
        self.id_columns = id_columns
        self.stats = SourceStats()
        self.key = _source_key(settings)
        self._unit: SqlTable | None = None

    def units(self) -> list[SourceUnit]:
        if self.settings.cursor and not self.id_columns:
            raise ConfigError(
                f"source {self.settings.table or 'query'}: a cursor needs the mapping's 'id' column"
                " to order rows that share a cursor value",
                hint="add id: <record id column> to the mapping",
            )
        self._unit = SqlTable(_engine(self.settings), self.settings, self.id_columns)
        if self.state is not None:
            self._unit.recall(self.state, resume=not self.full)
        return [self._unit]

    def checkpoint(self, rows: Mapping[str, int]) -> Checkpoint:
        unit = self._unit
        if unit is None or unit.reached is None:
            return Checkpoint()
        return Checkpoint(cursors={self.key: encode_position(unit.reached)})

    @property
    def complete(self) -> bool:
        """A snapshot table is read whole every run (a snapshot takes no cursor)."""
        return self.settings.snapshot and self._unit is not None


def _source_key(settings: SqlSourceSettings) -> str:
    """A cursor belongs to one database and table or query (not to the password): changing
    any of them starts from the beginning."""
    what = f"{settings.display_url}|{settings.table or settings.query}|{settings.cursor}"
    digest = hashlib.sha256(what.encode()).hexdigest()[:16]
    return f"sql:{settings.table or 'query'}:{digest}"[:200]


def _engine(settings: SqlSourceSettings) -> Engine:
    try:
        return create_engine(settings.url, poolclass=NullPool)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(
            f"source.url {settings.display_url} is not usable: {exc}", hint=url_hint(settings.url)
        ) from None
    except (NoSuchModuleError, ImportError) as exc:
        raise missing_driver("source.url", settings.display_url, exc) from None


class SqlTable:
    """One table or query, from a window behind a saved position on."""

    def __init__(self, engine: Engine, settings: SqlSourceSettings, id_columns: list[str]) -> None:
        self.engine = engine
        self.settings = settings
        self.id_columns = id_columns
        self.saved: Position | None = None
        """Where the last completed run stopped, as the state holds it."""
        self.position: Position | None = None
        """What this read resumes from: ``saved``, or None to read every row."""
        self.reached: Position | None = None
        """The last row read at least ``cursor_lag`` behind the database's clock: where the
        next run resumes (None: where this one did)."""
        self.clock: DatabaseClock | None = None
        self._header: list[str] | None = None

    def recall(self, state: TenantState, *, resume: bool) -> None:
        """Take the position the last completed run saved: to read from it (``resume``), or
        only to describe it (``--full`` reads every row; ``check`` samples the first)."""
        found = state.cursor(self.ident) if self.settings.cursor else None
        self.saved = decode_position(found) if found else None
        self.position = self.saved if resume else None

    @property
    def ident(self) -> str:
        return _source_key(self.settings)

    @property
    def name(self) -> str:
        return self.settings.table or "query"

    def tally(self) -> None:
        return None

    def release(self) -> None:
        """Nothing is kept between readings of a query."""

    def warnings(self) -> list[str]:
        return []

    def progress(self) -> tuple[int, None]:
        return 0, None

    @property
    def expect_rows(self) -> bool:
        return self.position is None

    def describe(self) -> str:
        """The table or query; for a cursor, also the saved position, the window, the lag and
        how far the database's clock is from this machine's (``check`` prints it)."""
        what = f"table {self.settings.table}" if self.settings.table else "query"
        described = f"{self.settings.display_url} {what}"
        if not self.settings.cursor:
            return described
        cursor = f"{described}, cursor {self.settings.cursor}"
        seen = self.saved or self.reached
        if seen is not None and _moment(seen[0]) is None:
            start = "the beginning" if self.saved is None else f"{as_text(self.saved[0])} inclusive"
            return f"{cursor} from {start} (a version, not a time: no window, no lag)"
        lookback = _span(self.settings.cursor_lookback)
        if self.saved is None:
            start = f"from the beginning, then re-reading {lookback} behind the position"
        else:
            start = f"from {as_text(self.saved[0])}, re-reading {lookback} behind it"
        return (
            f"{cursor} {start}, up to {_span(self.settings.cursor_lag)} before the database's"
            f" clock ({self._clock().offset_text()})"
        )

    def header(self) -> list[str]:
        if self._header is None:
            with self._connect() as conn:
                try:
                    self._header = list(conn.execute(self._from().limit(0)).keys())
                except SQLAlchemyError as exc:
                    raise self._error(exc) from exc
        return self._header

    def rows(self) -> Generator[SourceRow, None, None]:
        header = self.header()
        statement = self._from()
        cursor_at = id_at = None
        cursor_col: ColumnClause[Any] | None = None
        if self.settings.cursor:
            cursor_name = self._column(header, [self.settings.cursor], "cursor")
            id_name = self._column(header, self.id_columns, "the mapping's id")
            cursor_at, id_at = header.index(cursor_name), header.index(id_name)
            cursor_col = column(cursor_name)
            statement = statement.order_by(cursor_col, column(id_name))
        with self._connect() as conn:
            try:
                if cursor_col is not None:
                    self._clock(conn)
                    if self.position is not None:
                        statement = statement.where(cursor_col >= self.start(self.position[0]))
                result = conn.execution_options(
                    stream_results=True, yield_per=self.settings.batch_rows
                ).execute(statement)
                for number, row in enumerate(result, start=1):
                    if cursor_at is not None and id_at is not None:
                        self._pass(row[cursor_at], row[id_at])
                    yield SourceRow([as_text(v) for v in row], number)
            except SQLAlchemyError as exc:
                raise self._error(exc) from exc

    def _clock(self, conn: Connection | None = None) -> DatabaseClock:
        """The database's clock, read once per run (on ``conn`` when the read has one open)."""
        if self.clock is None:
            if conn is not None:
                self.clock = read_clock(conn)
            else:
                with self._connect() as own:
                    try:
                        self.clock = read_clock(own)
                    except SQLAlchemyError as exc:
                        raise self._error(exc) from exc
        return self.clock

    def start(self, value: Any) -> Any:
        """Where a read from ``value`` begins: ``cursor_lookback`` before it, or before the
        latest position the clock allows when ``value`` is ahead of that; written in the
        cursor's own form. A version is its own start."""
        moment = _moment(value)
        if moment is None:
            return value
        limit = self._clock().limit(moment, self.settings.cursor_lag)
        if limit is not None and _after(moment, limit):
            moment = limit
        return _written_like(value, _earlier(moment, self.settings.cursor_lookback))

    def _pass(self, value: Any, record: Any) -> None:
        """A row read: it is where the next run resumes if its cursor is at least
        ``cursor_lag`` behind the database's clock (any version is)."""
        if value is None:
            return
        moment = _moment(value)
        if moment is not None:
            limit = self._clock().limit(moment, self.settings.cursor_lag)
            if limit is not None and _after(moment, limit):
                return
        self.reached = (value, record)

    def _from(self) -> Select[Any]:
        if self.settings.table:
            schema, _, name = self.settings.table.rpartition(".")
            return select(text("*")).select_from(table(name, schema=schema or None))
        return select(text("*")).select_from(text(f"({self.settings.query}) AS source_rows"))

    def _column(self, header: list[str], wanted: list[str], role: str) -> str:
        by_name = {normalise_header(h): h for h in header}
        for name in wanted:
            if normalise_header(name) in by_name:
                return by_name[normalise_header(name)]
        raise ConfigError(
            f"source {self.name}: {role} column {' or '.join(wanted)} is not among its columns",
            hint=f"columns there: {', '.join(header)}",
        )

    def _connect(self) -> _ReadOnly:
        return _ReadOnly(self)

    def _error(self, exc: SQLAlchemyError) -> SourceError:
        """One line for a database error: a missing table names the tables there are."""
        missing = self._missing_table()
        if missing is not None:
            return missing
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return SourceError(
            f"source {self.settings.display_url} {self.name}: {first}",
            hint="check source.url, the table or query, and that the database is running",
        )

    def _missing_table(self) -> SourceError | None:
        """When ``source.table`` is not in the database: the error that says so, listing the
        tables there (closest first); None when it is there, or the database cannot tell."""
        if not self.settings.table:
            return None
        schema, _, name = self.settings.table.rpartition(".")
        try:
            found = sa_inspect(self.engine).get_table_names(schema=schema or None)
        except SQLAlchemyError:
            return None
        if name in found:
            return None
        close = difflib.get_close_matches(name, found, n=1)
        return SourceError(
            f"source.table '{self.settings.table}' does not exist in {self.settings.display_url}"
            + (f" (did you mean '{close[0]}'?)" if close else ""),
            hint=f"tables there: {', '.join(sorted(found)) or 'none'}",
        )


class _ReadOnly:
    """A connection in a read-only transaction where the database has one."""

    def __init__(self, unit: SqlTable) -> None:
        self.unit = unit
        self.conn: Connection | None = None

    def __enter__(self) -> Connection:
        try:
            self.conn = self.unit.engine.connect()
            dialect = self.conn.dialect.name
            if dialect in ("postgresql", "mysql", "mariadb"):
                self.conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            elif dialect == "sqlite":
                self.conn.exec_driver_sql("PRAGMA query_only = ON")
        except SQLAlchemyError as exc:
            self.__exit__()
            raise self.unit._error(exc) from exc
        return self.conn

    def __exit__(self, *_exc: object) -> None:
        if self.conn is not None:
            self.conn.rollback()
            self.conn.close()
            self.conn = None


@dataclass(frozen=True)
class DatabaseClock:
    """The source database's time, read once per run: a position is judged by the clock of
    the database that stamps the rows, not by this machine's (procrastinate's ``NOW()``)."""

    wall: datetime
    """Naive, in the session's time zone: the time a naive column stamped by the database
    holds (MariaDB ``NOW(6)``, PostgreSQL ``clock_timestamp()::timestamp``; UTC on SQLite)."""
    utc: datetime | None
    """Aware; None when the database gives its time without a zone."""
    offset: timedelta | None
    """The database's clock minus this machine's (None without ``utc``)."""

    def limit(self, moment: datetime | date, lag: timedelta) -> datetime | date | None:
        """The latest position a run may save for a cursor like ``moment``, ``lag`` behind the
        clock and of the same kind: aware against UTC, naive against the wall clock, a date
        against the wall clock's date. None when the clock cannot be compared with it."""
        if not isinstance(moment, datetime):
            return (self.wall - lag).date()
        if moment.tzinfo is None:
            return self.wall - lag
        return None if self.utc is None else self.utc - lag

    def offset_text(self) -> str:
        if self.offset is None:
            return "database clock without a time zone: its offset from this machine unknown"
        seconds = self.offset.total_seconds()
        side = "ahead of" if seconds >= 0 else "behind"
        return f"database clock {abs(seconds):.1f} s {side} this machine"


def read_clock(conn: Connection) -> DatabaseClock:
    """One query for the database's clock, in the kinds its cursor values come in. PostgreSQL's
    ``clock_timestamp()`` is the time now (``now()`` is the transaction's start); MariaDB's
    ``NOW(6)`` and ``UTC_TIMESTAMP(6)`` are the statement's; SQLite's ``'now'`` is UTC."""
    before = datetime.now(UTC)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        query = "SELECT c, c::timestamp FROM (SELECT clock_timestamp() AS c) AS clock"
        utc, wall = conn.execute(text(query)).one()
    elif dialect in ("mysql", "mariadb"):
        wall, naive_utc = conn.execute(text("SELECT NOW(6), UTC_TIMESTAMP(6)")).one()
        utc = naive_utc.replace(tzinfo=UTC)
    elif dialect == "sqlite":
        now = conn.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
        wall = datetime.fromisoformat(now)
        utc = wall.replace(tzinfo=UTC)
    else:
        now = conn.execute(select(func.current_timestamp())).scalar_one()
        wall, utc = (now.replace(tzinfo=None), now) if now.tzinfo else (now, None)
    after = datetime.now(UTC)
    offset = None if utc is None else utc - (before + (after - before) / 2)
    return DatabaseClock(wall, utc, offset)


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _moment(value: Any) -> datetime | date | None:
    """The time a cursor value stands for: a datetime, a date, or ISO-8601 text (how SQLite
    keeps times); None for anything else (a version number), which has no window and no lag."""
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _after(moment: datetime | date, limit: datetime | date) -> bool:
    """Whether ``moment`` is later than ``limit``, a time of the same kind."""
    return bool(moment > limit)


def _earlier(moment: datetime | date, length: timedelta) -> datetime | date:
    """``length`` before ``moment``; for a date, the date of that instant before its start."""
    if isinstance(moment, datetime):
        return moment - length
    return (datetime.combine(moment, time.min) - length).date()


def _written_like(value: Any, moment: datetime | date) -> Any:
    """``moment`` in the form of the cursor value ``value``, for the database to compare like
    with like: text as ISO-8601 with the same separator and precision (so that text compares
    in time order), a datetime or date as itself."""
    if not isinstance(value, str) or not isinstance(moment, datetime):
        return moment
    if len(value) == len("2025-03-01"):
        return moment.date().isoformat()
    timespec = "microseconds" if "." in value else "seconds"
    return moment.isoformat(sep=value[10], timespec=timespec)


def _span(length: timedelta) -> str:
    """A duration as the configuration writes it: ``30s``, ``5m``, ``2h``, ``1d``."""
    seconds = length.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{int(seconds) // size}{unit}"
    return f"{seconds:g}s"


def _encode(value: Any) -> dict[str, str]:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return {"t": "datetime", "v": value.astimezone(UTC).isoformat()}
        return {"t": "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {"t": "date", "v": value.isoformat()}
    if isinstance(value, bool | int):
        return {"t": "int", "v": str(int(value))}
    if isinstance(value, Decimal):
        return {"t": "decimal", "v": str(value)}
    if isinstance(value, float):
        return {"t": "float", "v": repr(value)}
    return {"t": "str", "v": str(value)}


def _decode(item: dict[str, str]) -> Any:
    kind, value = item["t"], item["v"]
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "int":
        return int(value)
    if kind == "decimal":
        return Decimal(value)
    if kind == "float":
        return float(value)
    return value


def encode_position(position: Position) -> str:
    """A (cursor, id) pair as JSON that keeps each value's type; aware times in UTC."""
    return json.dumps([_encode(position[0]), _encode(position[1])])


def decode_position(saved: str) -> Position:
    cursor, record = json.loads(saved)
    return _decode(cursor), _decode(record)


_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_LITERALS = re.compile(r"'(?:[^']|'')*'")
_QUOTED_NAMES = re.compile(r'"([^"]+)"|`([^`]+)`|\[([^\]]+)\]')
_WHERE = re.compile(
    r"\bwhere\b(.*?)(?=\b(?:group\s+by|order\s+by|having|limit|offset|fetch|union|window)\b|$)",
    re.IGNORECASE | re.DOTALL,
)
_NAME = re.compile(r"[A-Za-z_][\w$]*")
_LIVENESS = frozenset({"status", "statecode", "statuscode", "active", "isactive", "archived"})
"""Folded column names (no case, no ``_``) that tell a live record from a retired one, besides
any name holding ``deleted``: SuiteCRM's ``deleted``, Salesforce's ``IsDeleted``, Rails' and
Laravel's ``deleted_at``, Dynamics' ``statecode`` and ``statuscode``, Odoo's ``active``."""


def hides_removed(query: str) -> tuple[str, str] | None:
    """The column, and the WHERE clause, by which a source query keeps only live records
    (``WHERE deleted = 0``, ``IsDeleted = false``, ``NOT deleted``, ``deleted_at IS NULL``,
    ``statecode = 0``); None when its WHERE reads no such column. Such a query never reads a
    soft-deleted contact, so nothing tells the connector to remove it from Kore: ``check`` says
    so. Comments and string literals are left out, quoted names read as names."""
    text = _LITERALS.sub("''", _COMMENTS.sub(" ", query))
    text = _QUOTED_NAMES.sub(lambda m: next(g for g in m.groups() if g is not None), text)
    for clause in _WHERE.finditer(text):
        for name in _NAME.findall(clause[1]):
            folded = name.replace("_", "").casefold()
            if "deleted" in folded or folded in _LIVENESS:
                return name, shown(" ".join(clause[0].split()), 80)
    return None
