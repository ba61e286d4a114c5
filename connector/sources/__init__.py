"""Sources: where contacts come from. Every kind yields units of plain string rows.

A unit is what is remembered as read: a file (by its content hash) or a table (by its cursor).
``Source.units()`` returns only what this run must read; ``Source.checkpoint()`` says what to
remember, and the run commits that once it has completed, so a failed or killed run reads the
same rows again. Sources read the tenant's state and never write it. Nothing holds a whole file or
table in memory.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from connector.settings import SourceSettings
    from connector.state import Checkpoint, TenantState


_EXACT_FLOAT_DIGITS = 15


def as_text(value: Any) -> str:
    """A typed cell (spreadsheet or database) as the text a CSV export would hold.

    Whole numbers lose their ``.0`` (a phone stored as a number is its digits again), dates and
    times are ISO-8601, booleans ``true``/``false``, missing values empty.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 10**_EXACT_FLOAT_DIGITS:
            return str(int(value))
        return repr(value)
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


@dataclass(slots=True)
class SourceRow:
    """One record: its cells, where it starts (line or row number), how many physical lines it
    spans, and why it is broken. (Not frozen: a frozen dataclass costs three times as much to
    make, and a million rows are made per million-row export.)"""

    values: list[str]
    line: int
    error: str | None = None
    span: int = 1


@dataclass
class FileTally:
    """Where every physical line (or sheet row) of an export went: ``lines`` = ``title_lines``
    (above the header row) + ``header_lines`` + ``row_lines`` (the lines of every record, read
    or rejected) + ``totals_lines`` (a report's totals below the data) + ``blank_lines``.

    ``short_rows`` counts records with trailing cells left out (read as empty) and
    ``long_rows`` records with extra cells that were all empty (ignored); both are among the
    rows read. ``encoding`` and ``encoding_confidence`` say how a text file was decoded (the
    confidence is 1.0 for a BOM, a declared encoding or valid UTF-8)."""

    lines: int = 0
    title_lines: int = 0
    header_lines: int = 0
    row_lines: int = 0
    totals_lines: int = 0
    blank_lines: int = 0
    short_rows: int = 0
    long_rows: int = 0
    encoding: str | None = None
    encoding_confidence: float | None = None


@dataclass
class ExportFile:
    """What every export file shares: it is remembered by its content and named by its name."""

    path: Path
    content_hash: str
    expect_rows = True

    @property
    def ident(self) -> str:
        return self.content_hash

    @property
    def name(self) -> str:
        return self.path.name

    def tally(self) -> FileTally | None:
        return None

    def warnings(self) -> list[str]:
        return []

    def progress(self) -> tuple[int, int | None]:
        """Bytes read so far and the file's size (read whole only at its end, unless the
        format says better)."""
        return 0, self.path.stat().st_size


class SourceUnit(Protocol):
    @property
    def ident(self) -> str:
        """What the unit is remembered by: a content hash, or the table and its cursor."""

    @property
    def name(self) -> str:
        """How reports name it: the file name, or the table."""

    @property
    def expect_rows(self) -> bool:
        """Whether a unit with no rows is suspicious (a new export with a header only)."""

    def describe(self) -> str: ...

    def tally(self) -> FileTally | None:
        """Where each physical line of a text file went, once its rows are read; else None."""

    def warnings(self) -> list[str]:
        """What a run and ``check`` must say about how the unit is read (an encoding guessed
        with little confidence); empty when there is nothing to say."""

    def progress(self) -> tuple[int, int | None]:
        """While its rows are read: bytes done and bytes in all (None when unknown)."""

    def header(self) -> list[str]: ...

    def rows(self) -> Generator[SourceRow, None, None]: ...


@dataclass
class SourceStats:
    files_seen: int = 0
    files_read: int = 0
    files_skipped: int = 0
    remembered: list[tuple[str, str]] = field(default_factory=list)
    """Files skipped because a completed run read them: ``(content hash, name)``."""


class Source(Protocol):
    stats: SourceStats

    def units(self) -> list[SourceUnit]: ...

    @property
    def complete(self) -> bool:
        """Whether the units read are the whole contact list (``snapshot: true``), so that a
        number delivered before and absent now was removed from the CRM."""

    def checkpoint(self, rows: Mapping[str, int]) -> Checkpoint:
        """What a completed run read (``rows`` by unit ident), for the run to commit."""


def open_source(
    settings: SourceSettings,
    *,
    state: TenantState | None,
    full: bool = False,
    id_columns: list[str] | None = None,
) -> Source:
    """The source a tenant's settings name. Without state, every unit is read (``check``)."""
    if settings.kind == "sql":
        from connector.sources.sql import SqlSource

        return SqlSource(settings, state=state, full=full, id_columns=id_columns or [])
    from connector.sources.files import FileSource

    return FileSource(settings, state=state, full=full)
