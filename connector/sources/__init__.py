"""Sources: where contacts come from. Every kind yields units of plain string rows.

A unit is what is remembered as read: a file (by its content hash) or a table (by its cursor).
``Source.units()`` returns only what this run must read; ``Source.checkpoint()`` says what to
remember, and the run commits that once it has completed, so a failed or killed run reads the
same rows again. Sources read the tenant's state and never write it. Nothing holds a whole file or
table in memory.

Export files share one layout (``Table``): the header row is found among the leading rows, not
assumed to be the first; a report's title lines above it and its totals below the data are
counted, never read as contacts; and every row a file yields has exactly the header's width, or
carries its error. ``Stamp`` tells a file still being written.

An export folder is a boundary (``open_export``): a file is read only when its real path lies
inside the folder the source names, and every later open of it must find the same file.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Protocol

from connector.errors import ConfigError, SourceError
from connector.mapping.headers import looks_like_header, shown

if TYPE_CHECKING:
    from connector.settings import SourceSettings
    from connector.state import Checkpoint, TenantState


_EXACT_FLOAT_DIGITS = 15


def shown_path(path: str | os.PathLike[str]) -> str:
    r"""``path`` as the text that names it wherever it is stored or written (staging, the state
    database, reports, ``summary.json``, logs): its bytes decoded as UTF-8, each byte that is not
    UTF-8 shown as ``\xff``. A name a Windows or SMB export wrote in Latin-1 (``Müller.csv`` with
    one byte for the ``ü``) thus reaches no encoder as the lone surrogate Python reads it as; the
    file itself is opened by its real path."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


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


@dataclass(frozen=True)
class Stamp:
    """A file's size and modification time: what tells a file still being written."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Stamp:
        try:
            status = path.stat()
        except OSError as exc:
            raise SourceError(
                f"{shown_path(path)}: cannot read: {exc.strerror}",
                hint="check that source.path names the file and that this user may read it",
            ) from None
        return cls(status.st_size, status.st_mtime_ns)

    def age(self, now: float) -> float:
        """Seconds since the file was last modified (negative for a time in the future)."""
        return now - self.mtime_ns / 1e9

    def change(self, later: Stamp) -> str | None:
        """What changed between this stamp and ``later``, in words; None when nothing did."""
        if later.size != self.size:
            return f"its size went from {self.size:,} to {later.size:,} bytes"
        if later.mtime_ns != self.mtime_ns:
            return "it was modified again"
        return None


Identity = tuple[int, int]
"""A file's device and inode: which file a name led to when it was opened."""


def open_export(path: Path, folder: Path | None) -> tuple[BinaryIO, Identity]:
    """``path`` opened for reading, and the identity of the file opened.

    With ``folder`` (a real path: no link, no ``..``), the file opened must lie inside it. The
    check is made on the file actually opened (its path as the kernel tells it,
    ``/proc/self/fd``), so a link put in place between listing the folder and opening the file
    leads nowhere. Raises ``SourceError`` for a file that cannot be read, is not a regular
    file (a FIFO would block the run, a device never end), or lies outside ``folder``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise SourceError(
            f"{shown_path(path)}: cannot read: {exc.strerror}",
            hint="check that source.path names the file and that this user may read it",
        ) from None
    handle = os.fdopen(fd, "rb")
    status = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(status.st_mode):
        problem = "not a regular file"
    elif folder is not None and not _opened_path(fd, path).is_relative_to(folder):
        problem = f"its real path leaves the export folder {folder}"
    if problem is not None:
        handle.close()
        raise SourceError(
            f"{shown_path(path)}: {problem}; nothing of it was read",
            hint="export folders hold the export files themselves, not links out of them",
        )
    return handle, (status.st_dev, status.st_ino)


def _opened_path(fd: int, path: Path) -> Path:
    """The real path of the file open as ``fd``: the kernel's word on Linux, else the path's
    real path now."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return Path(os.path.realpath(path))


@dataclass
class ExportFile:
    """What every export file shares: it is remembered by its content and named by its name."""

    path: Path
    content_hash: str
    stamp: Stamp | None = field(default=None, kw_only=True)
    """The file's size and time when it was hashed: the rows read must be that same file's.
    None reads the file as it is (``check``, which remembers nothing)."""
    identity: Identity | None = field(default=None, kw_only=True)
    """The file hashed (``open_export``): every later open must find that file under its name,
    not another one linked or moved there since."""
    expect_rows = True

    @property
    def ident(self) -> str:
        return self.content_hash

    @property
    def name(self) -> str:
        """The file's name as reports, the state and logs hold it (``shown_path``)."""
        return shown_path(self.path.name)

    @property
    def where(self) -> str:
        """The file's path as messages name it (``shown_path``)."""
        return shown_path(self.path)

    def tally(self) -> FileTally | None:
        return None

    def warnings(self) -> list[str]:
        return []

    def progress(self) -> tuple[int, int | None]:
        """Bytes read so far and the file's size (read whole only at its end, unless the
        format says better)."""
        return 0, self.path.stat().st_size

    def open_bytes(self) -> BinaryIO:
        """The file opened again to read its rows: the very file that was hashed, or a
        ``SourceError``."""
        handle, identity = open_export(self.path, None)
        if self.identity is not None and identity != self.identity:
            handle.close()
            raise SourceError(
                f"{self.where}: another file took its name while it was read; nothing of it"
                " was sent, and it is read again next run",
                hint="export folders hold the export files themselves, not links out of them",
            )
        return handle

    def release(self) -> None:
        """Nothing is kept between readings of a file (an XLSX workbook's reader may keep its
        sheet)."""

    def unchanged(self) -> None:
        """Raise when the file changed since it was hashed: its rows, all read now, may be a
        copy's first part (a do-not-call flag not yet written), and the hash remembered would
        not be theirs. The run fails before it sends anything; the next run reads the file."""
        if self.stamp is None:
            return
        change = self.stamp.change(Stamp.of(self.path))
        if change is not None:
            raise SourceError(
                f"{self.where}: changed while it was read ({change}); nothing of it was sent, and"
                " it is read again next run",
                hint="files still being copied are left alone for source.min_file_age; make it"
                " longer than a copy takes",
            )


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

    def release(self) -> None:
        """Let go of what is kept to read the unit again (once the run is done with it)."""


@dataclass
class SourceStats:
    files_seen: int = 0
    files_read: int = 0
    files_skipped: int = 0
    remembered: list[tuple[str, str]] = field(default_factory=list)
    """Files skipped because a completed run read them: ``(content hash, name)``."""
    files_waiting: int = 0
    """Files left for the next run: modified less than ``source.min_file_age`` ago, or changed
    while they were hashed (still being written)."""
    waiting: list[str] = field(default_factory=list)
    """One warning naming each of them."""
    unsafe_paths: int = 0
    """Files matched whose real path leaves the export folder (a link, ``..``), or that are
    not regular files (a FIFO, a device): never read."""
    unsafe: list[str] = field(default_factory=list)
    """One warning naming each of them."""


class Source(Protocol):
    stats: SourceStats

    def units(self) -> list[SourceUnit]: ...

    @property
    def complete(self) -> bool:
        """Whether the units read are the whole contact list (``snapshot: true``), so that a
        number delivered before and absent now was removed from the CRM."""

    def checkpoint(self, rows: Mapping[str, int]) -> Checkpoint:
        """What a completed run read (``rows`` by unit ident), for the run to commit."""


HEADER_SEARCH_ROWS = 50
"""Leading rows (not counting blank ones) searched for the header row. A report's title block
is a handful of rows (its name, "As of …", a few filters); 50 leaves room for long filter lists
and bounds what is held while searching."""
HEADER_SEARCH_CHARS = 1 << 20
"""Characters of leading rows held while searching for the header row: the search also ends
past them (a title block is a few hundred), so that 50 long rows are never held at once."""
_TOTALS = re.compile(r"(?:grand\s+|sub)?totals?\b|(?:record\s+)?count\b", re.IGNORECASE)
"""How a report's totals line starts: ``Grand Totals (2 records)``, ``Subtotal``, ``Count: 3``."""
_LISTED_CELLS = 3
_Count = Literal["header_lines", "title_lines", "totals_lines", "blank_lines"]


@dataclass
class Table:
    """Where a file's table is: its header row, its rows, and what is neither.

    The header is the first of the leading ``HEADER_SEARCH_ROWS`` rows (fewer when they hold
    more than ``HEADER_SEARCH_CHARS`` characters) that reads as a header by the synonym table
    (``looks_like_header``); when none does, the first row is, as ever (a
    header the table does not know still works). ``source.header_row`` overrules the search.
    Rows above the header are a report's title lines (``title_lines``), never contacts.

    Below the header, a row is a totals line (``totals_lines``, never a row) when it has one
    non-empty cell, that cell is words (more letters than digits), and either it starts with
    Total, Grand Total, Subtotal, Count or Record Count, or a blank line came before it: a
    report's totals and the footer Salesforce writes after a blank line (its name, copyright,
    "Confidential Information", "Generated By"). A contact needs a name and a phone, two cells,
    and a lone number is no words, so no contact and no number is ever taken for one. A row with
    no non-empty cell is a blank line (``blank_lines``), as a spreadsheet's empty row is.

    A row shorter than the header gets empty cells (Outlook leaves out trailing empty fields:
    ``short_rows``); a longer one loses its extra cells when they are all empty (Excel appends
    them: ``long_rows``), and is ``malformed_row`` naming them when any holds something.

    The reader counts every record it yields as ``row_lines`` (a blank line it skips itself as
    ``blank_lines``); the table moves what it finds to the other counts."""

    where: str
    tally: FileTally
    header_row: int | None = None
    unit: str = "line"
    """What the file's numbered parts are called: lines of a text file, rows of a sheet."""
    whole: str = "file"

    def header(self, records: Iterator[SourceRow]) -> tuple[SourceRow, list[SourceRow]] | None:
        """The header row and the rows read past it while looking (the table's first rows),
        or None for a file without any row."""
        n = self.header_row
        found = self._search(records) if n is None else self._at(records, n)
        if found is not None and found[0].error:
            raise SourceError(
                f"{self.where}: the header row is unreadable: {found[0].error}",
                hint="fix the export's header row, or set source.header_row to the line that "
                "holds it",
            )
        return found

    def rows(self, head: SourceRow, records: Iterable[SourceRow]) -> Iterator[SourceRow]:
        """The table's rows below ``head``, each as wide as it, or carrying its error."""
        self._moved(head, "header_lines")
        width = len(head.values)
        end = head.line + head.span
        after_blank = False
        for record in records:
            after_blank = after_blank or record.line > end
            end = record.line + record.span
            if record.error is None:
                filled = _filled(record.values)
                if filled == 0:
                    self._moved(record, "blank_lines")
                    after_blank = True
                    continue
                if filled == 1 and _totals(record.values, after_blank):
                    self._moved(record, "totals_lines")
                    continue
                if len(record.values) != width:
                    self._fit(record, width)
            yield record

    def _search(self, records: Iterator[SourceRow]) -> tuple[SourceRow, list[SourceRow]] | None:
        ahead: list[SourceRow] = []
        held = 0
        for record in records:
            if record.error is None and not _filled(record.values):
                self._moved(record, "blank_lines")
                continue
            ahead.append(record)
            if record.error is None and looks_like_header(record.values):
                for title in ahead[:-1]:
                    self._moved(title, "title_lines")
                return record, []
            held += sum(map(len, record.values))
            if len(ahead) == HEADER_SEARCH_ROWS or held > HEADER_SEARCH_CHARS:
                break
        return (ahead[0], ahead[1:]) if ahead else None

    def _at(self, records: Iterator[SourceRow], n: int) -> tuple[SourceRow, list[SourceRow]]:
        """The row starting at ``n`` (``header_row``); every row above it is a title line."""
        where = f"{self.where}: source.header_row is {n}, but {self.unit} {n}"
        hint = f"set source.header_row to the {self.unit} of the header, or leave it out"
        for record in records:
            blank = record.error is None and not _filled(record.values)
            if record.line == n and not blank:
                return record, []
            if record.line + record.span > n:
                inside = record.line < n
                what = f"is inside the row of {self.unit} {record.line}" if inside else "is blank"
                raise ConfigError(f"{where} {what}", hint=hint)
            self._moved(record, "blank_lines" if blank else "title_lines")
        what = "is blank" if n <= self.tally.lines else f"is past the end of the {self.whole}"
        raise ConfigError(f"{where} {what}", hint=hint)

    def _fit(self, record: SourceRow, width: int) -> None:
        values = record.values
        if len(values) < width:
            values.extend([""] * (width - len(values)))
            self.tally.short_rows += 1
        elif len(values) > width:
            extra = [(i, v) for i, v in enumerate(values[width:], start=width + 1) if v.strip()]
            if extra:
                record.error = _overflow(len(values), width, extra)
                return
            del values[width:]
            self.tally.long_rows += 1

    def _moved(self, record: SourceRow, to: _Count) -> None:
        """Count ``record``'s lines as ``to`` instead of ``row_lines``."""
        self.tally.row_lines -= record.span
        setattr(self.tally, to, getattr(self.tally, to) + record.span)


def _filled(values: list[str]) -> int:
    """How many cells hold something other than white space, counted up to two."""
    count = 0
    for value in values:
        if value and not value.isspace():
            if count:
                return 2
            count = 1
    return count


def _totals(values: list[str], after_blank: bool) -> bool:
    """Whether a row of one non-empty cell is a report's totals or footer line."""
    text = next(v for v in values if v and not v.isspace()).strip()
    words = sum(c.isalpha() for c in text) > sum(c.isdigit() for c in text)
    return words and (after_blank or _TOTALS.match(text) is not None)


def _overflow(cells: int, width: int, extra: list[tuple[int, str]]) -> str:
    listed = ", ".join(f"cell {i} '{shown(v)}'" for i, v in extra[:_LISTED_CELLS])
    more = f" and {len(extra) - _LISTED_CELLS:,} more" if len(extra) > _LISTED_CELLS else ""
    return (
        f"{cells:,} cells where the header has {width:,}, and the extra cells are not empty:"
        f" {listed}{more}"
    )


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
