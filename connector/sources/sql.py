"""Database sources: a table or a query through any SQLAlchemy URL, read incrementally.

With a ``cursor`` column, each run reads the rows after where the last completed run stopped,
ordered by (cursor, record id): ``cursor > c OR (cursor = c AND id > i)``. Rows that share a
timestamp are neither lost nor read again, and every value is a bound parameter. Rows are
streamed (server-side cursors where the driver has them) inside a read-only transaction where
the database offers one. Rows whose cursor is NULL are read only by a run without a position
(the first, or ``--full``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Generator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    and_,
    column,
    create_engine,
    or_,
    select,
    table,
    text,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.expression import ColumnClause

from connector.errors import ConfigError, SourceError, missing_driver
from connector.mapping import normalise_header
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
        position = None
        if self.settings.cursor and self.state is not None and not self.full:
            saved = self.state.cursor(self.key)
            position = decode_position(saved) if saved else None
        self._unit = SqlTable(_engine(self.settings), self.settings, position, self.id_columns)
        return [self._unit]

    def checkpoint(self, rows: Mapping[str, int]) -> Checkpoint:
        unit = self._unit
        if unit is None or unit.last is None:
            return Checkpoint()
        return Checkpoint(cursors={self.key: encode_position(unit.last)})

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
        raise ConfigError(f"source.url {settings.display_url} is not usable: {exc}") from None
    except (NoSuchModuleError, ImportError) as exc:
        raise missing_driver("source.url", settings.display_url, exc) from None


class SqlTable:
    """One table or query, from a position on."""

    def __init__(
        self,
        engine: Engine,
        settings: SqlSourceSettings,
        position: Position | None,
        id_columns: list[str],
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.position = position
        self.id_columns = id_columns
        self.last: Position | None = None
        self._header: list[str] | None = None

    @property
    def ident(self) -> str:
        return _source_key(self.settings)

    @property
    def name(self) -> str:
        return self.settings.table or "query"

    def tally(self) -> None:
        return None

    def warnings(self) -> list[str]:
        return []

    def progress(self) -> tuple[int, None]:
        return 0, None

    @property
    def expect_rows(self) -> bool:
        return self.position is None

    def describe(self) -> str:
        what = f"table {self.settings.table}" if self.settings.table else "query"
        where = ""
        if self.settings.cursor:
            start = "the beginning" if self.position is None else f"{as_text(self.position[0])}"
            where = f", cursor {self.settings.cursor} from {start}"
        return f"{self.settings.display_url} {what}{where}"

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
        if self.settings.cursor:
            cursor_name = self._column(header, [self.settings.cursor], "cursor")
            id_name = self._column(header, self.id_columns, "the mapping's id")
            cursor_at, id_at = header.index(cursor_name), header.index(id_name)
            cursor_col: ColumnClause[Any] = column(cursor_name)
            id_col: ColumnClause[Any] = column(id_name)
            if self.position is not None:
                value, record = self.position
                statement = statement.where(
                    or_(cursor_col > value, and_(cursor_col == value, id_col > record))
                )
            statement = statement.order_by(cursor_col, id_col)
        with self._connect() as conn:
            result = conn.execution_options(
                stream_results=True, yield_per=self.settings.batch_rows
            ).execute(statement)
            try:
                for number, row in enumerate(result, start=1):
                    if cursor_at is not None and id_at is not None and row[cursor_at] is not None:
                        self.last = (row[cursor_at], row[id_at])
                    yield SourceRow([as_text(v) for v in row], number)
            except SQLAlchemyError as exc:
                raise self._error(exc) from exc

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
