"""XLSX exports, read within limits a hostile workbook cannot pass, by one of two readers.

Cells come back as the strings a CSV export of the same sheet would hold (see ``as_text``):
a phone typed into Excel and stored as a number becomes its digit string again. The sheet's
table is found and fitted as a CSV file's is (``Table``: a report's title rows above the header
and totals below the data are counted, not read), and its rows are tallied as a CSV file's lines.

A workbook is a zip of XML parts, and a small one can unpack to gigabytes. So before a part is
decompressed its size in the zip's directory is checked (zipfile never yields more than that
size, so the directory cannot lie): the worksheet read at most ``source.max_sheet_bytes``, the
shared strings ``source.max_strings_bytes``, any other part openpyxl reads whole (the workbook,
its styles and relationships) ``source.max_part_bytes``. openpyxl reads the workbook's structure
and styles. Then one of two readers reads the sheet's rows, the same rows either way:

- **The fast reader** (calamine, in Rust, through python-calamine), for a sheet and shared
  strings of ``FAST_MIN`` to ``FAST_BYTES`` unpacked that are written as spreadsheet programs
  write them. Calamine holds the whole sheet, as a grid from its first to its last cell, so
  what it is given is first checked here while it is unpacked (through the same bound on bytes
  without a ``<``), and only that is given to it: the sheet and the shared strings, with the
  styles, under a workbook and relationships written here, in a private temporary file. So
  calamine never reads the export's own zip, whose directory its zip reader does not hold each
  part to. The checks (``_copy_sheet``, ``_copy_strings``): only the tags spreadsheet programs
  write, the XML well-formed as expat has it; every row and cell with its reference first, rows
  ascending, each cell within the rows stored and the widest row's last cell (which bounds
  calamine's grid, to at most ``_FAST_CELLS`` cells) and ``source.max_columns``; at most
  ``source.max_shared_strings`` shared strings, counted and declared (calamine reserves room
  for the declared count); and nothing the two readers would read apart (an error cell like
  ``#N/A``, an ISO date cell, an ``_x000D_`` escape, text with white space at an end not
  marked to keep it, a whole number of 16 digits or more, an empty value, a negative number
  where dates are styled). A workbook that fails one goes to the streaming reader, which reads
  it or refuses it as ever.
- **The streaming reader**, for every other workbook: the shared strings and the worksheet are
  streamed here, element by element, keeping only the item being read (openpyxl keeps every
  element it has passed as an empty shell, and pads each row to its last cell: one cell in
  column XFD is 16,384 values). The shared strings are counted as they are read
  (``source.max_shared_strings``) and held packed (``_Strings``), every row's cells and columns
  checked against ``source.max_columns``.

What a streamed part holds at once is bounded too, so its size costs time, not memory: elements
nest at most ``_DEPTH`` deep, a part uses at most ``_NAMES`` distinct XML names (the parser keeps
each), one row or shared string holds at most ``_ITEM_CHARS`` characters of text and a number of
XML elements and attributes set by ``source.max_columns``, and no ``_MARKUP_GAP`` bytes pass
without a ``<`` (expat builds a whole start tag, all its attributes, before any of it is seen
here, so that bound is kept on the bytes before they reach it). Every XML part the streaming
reader parses is parsed by defusedxml, which refuses entity declarations (the "billion
laughs"). Past any limit the file fails in one line naming the limit's setting (or the part and
the fixed bound), and nothing of it is sent. Either reader reads a workbook once for its
header, the sampled rows and its rows (see ``XlsxFile.rows`` and ``release``).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import zipfile
import zlib
from array import array
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import IO, Any, Literal
from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, iterparse
from openpyxl.reader.excel import ExcelReader
from openpyxl.styles.stylesheet import apply_stylesheet
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import CALENDAR_MAC_1904, WINDOWS_EPOCH
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._reader import WorkSheetParser
from openpyxl.xml.constants import ARC_STYLE, SHARED_STRINGS, SHEET_MAIN_NS
from python_calamine import CalamineError, CalamineSheet, CalamineWorkbook

from connector.errors import ConfigError, SourceError
from connector.settings import XlsxSourceSettings
from connector.sources import (
    ExportFile,
    FileTally,
    Identity,
    SourceRow,
    Table,
    as_text,
    open_export,
)

_CHUNK = 1 << 20
_EXCEL_ROWS = 1_048_576
"""The last row a sheet can have (Excel's limit, ECMA-376's too)."""
_STRING_NODES = 8192
"""XML elements and attributes one shared string may hold (its rich-text runs and their
formatting, about 16 a run): a few dozen in any workbook; more is no text anyone typed."""
_CELL_NODES = 16
"""XML elements and attributes a row may hold for each cell ``source.max_columns`` allows (a
cell, its value and formula, or its inline string), beyond ``_STRING_NODES`` for one rich-text
cell."""
_ITEM_CHARS = 1 << 22
"""Characters of text one row (all its cells) or one shared string may hold: 4 Mi, as a CSV
record at ``source.max_row_chars``'s default. Excel holds at most 32,767 in a cell."""
_DEPTH = 32
"""How deep XML elements may nest in a streamed part: a worksheet's nest 7 deep at most
(worksheet, sheetData, row, c, is, r, rPr, and the formatting in it)."""
_NAMES = 1024
"""Distinct XML names (of elements and attributes) one streamed part may use: SpreadsheetML
has a few hundred, a worksheet uses a few dozen. The parser keeps every name it meets."""
_MARKUP_GAP = 1 << 20
"""Bytes a streamed part may hold without a ``<``: one start tag (a ``<`` cannot be in it) or
one stretch of text. A cell Excel wrote is at most 32,767 characters, 8 bytes each escaped."""
_ROW, _CELL, _STRING = (f"{{{SHEET_MAIN_NS}}}{tag}" for tag in ("row", "c", "si"))
_TEXT, _RUN = f"{{{SHEET_MAIN_NS}}}t", f"{{{SHEET_MAIN_NS}}}r"
_WORKSHEET = "/worksheet"
"""How a worksheet's relationship type ends (a chartsheet's ends ``/chartsheet``)."""
_UNREADABLE = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    InvalidFileException,
    KeyError,
    IndexError,
    ValueError,
    TypeError,
    AttributeError,
    SyntaxError,
    NotImplementedError,
    RuntimeError,
)
"""What openpyxl and zipfile raise for a broken or hostile workbook: a part missing, not
well-formed XML (``ParseError`` is a ``SyntaxError``), a value of the wrong type, a cell naming
a shared string that does not exist, an encrypted or oddly compressed part."""

FAST_MIN = 1 << 20
"""Unpacked bytes of a worksheet and its shared strings below which the streaming reader reads
a workbook: it takes under half a second for them, and holds each of its fixed bounds exactly
(the fast reader keeps to the tags spreadsheet programs write instead)."""
FAST_BYTES = 64 << 20
"""Unpacked bytes of a worksheet and its shared strings (as the zip's directory declares them)
up to which the fast reader reads a workbook; the streaming reader reads a larger one. The fast
reader's peak is about 2.5 times the bytes it reads (calamine's grid, its strings and the rows
made of them), so 64 MiB costs at most about 160 MiB above the process: a 100,000-row
Salesforce export (about 55 MiB) reads in about 3 s instead of 21 s, 135 MiB above the process.
Above it the streaming reader costs time (2,000 to 5,000 rows a second), and no memory but the
shared strings, held packed: the 1,000,000-row export of ``benchmarks/bench_xlsx.py`` (about
100 MiB of shared strings) peaks about 110 MiB above the same rows as CSV."""
_FAST_CELLS = FAST_BYTES // 16
"""Cells of calamine's grid (rows up to the last stored, columns up to the widest row's last
cell) the fast reader allows: a cell of it costs calamine about 35 bytes, filled or not, so
these 4 Mi cells (100,000 rows of 41 columns) cost about 140 MiB, as a full sheet of
``FAST_BYTES`` does. A sparser sheet is read by the streaming reader."""
_CELL_TAG = (
    rb'(?: s="[0-9]{1,5}")?(?: t="(?:s|n|b|str|inlineStr)")?(?: (?:cm|vm|ph)="[0-9]{1,5}")* ?/?>'
)
"""The rest of a cell's start tag after its reference, as spreadsheet programs write it: its
style, its type (not ``e``, an error, nor ``d``, an ISO date, which the readers tell apart),
its metadata. Nothing else, so no second reference."""
_RUNS = b"r|rPr|rPh|phoneticPr|b|i|u|strike|condense|extend|outline|shadow|sz|color|rFont|family"
_RUNS += b"|charset|vertAlign|scheme"
"""Elements of rich text: runs, their formatting, phonetic runs (which are not text)."""
_SHEET_PARTS = (
    b"f|worksheet|sheetPr|tabColor|outlinePr|pageSetUpPr|dimension|sheetViews|sheetView|pane"
    b"|selection|sheetFormatPr|cols|col|sheetData|sheetCalcPr|sheetProtection|protectedRanges"
    b"|protectedRange|autoFilter|filterColumn|filters|filter|customFilters|customFilter"
    b"|sortState|sortCondition|mergeCells|mergeCell|conditionalFormatting|cfRule|formula"
    b"|colorScale|dataBar|iconSet|cfvo|dataValidations|dataValidation|formula1|formula2"
    b"|hyperlinks|hyperlink|printOptions|pageMargins|pageSetup|headerFooter|oddHeader|oddFooter"
    b"|evenHeader|evenFooter|firstHeader|firstFooter|rowBreaks|colBreaks|brk|ignoredErrors"
    b"|ignoredError|drawing|legacyDrawing|legacyDrawingHF|picture|tableParts|tablePart|" + _RUNS
)
"""The other elements of a worksheet that spreadsheet programs write, without a prefix."""
_TEXT_TAGS = rb't>(?![ \t\r\n])|t xml:space="preserve">|/t>|t/>'
"""A text element, whose text does not start with white space unless it is marked to keep it
(calamine trims it, openpyxl keeps it)."""
_STRINGS_TAGS = re.compile(rb"<(?!" + _TEXT_TAGS + rb"|/?(?:si|sst|" + _RUNS + rb")[\s/>]|\?)")
"""A tag in the shared strings that spreadsheet programs do not write (or a comment, CDATA or
DTD): such strings are left to the streaming reader, which holds each to its fixed bounds."""
_CELL_BYTES = len(b'<c r="A1"/>')
"""The fewest bytes a cell takes: a row of fewer bytes than ``source.max_columns`` times this
cannot hold more cells than it allows."""
_ROW_REF = re.compile(rb'<row r="([0-9]{1,7})"')
_LAST_CELL = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"')
_ESCAPE = re.compile(rb"_x[0-9A-Fa-f]{4}_")
"""An ``_x000D_`` escape, which calamine unescapes and openpyxl does not."""
_TRAILING = (b" </t>", b"\t</t>", b"\n</t>", b"\r</t>")
_UNIQUE_COUNT = re.compile(rb"uniqueCount\s*=\s*[\"']([^\"']*)")
_FRAME = {
    "_rels/.rels": (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="xl/workbook.xml" Type="http://schemas.openxmlformats'
        '.org/officeDocument/2006/relationships/officeDocument"/></Relationships>'
    ),
    "xl/_rels/workbook.xml.rels": (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="http://schemas.openxml'
        'formats.org/officeDocument/2006/relationships/worksheet"/></Relationships>'
    ),
}
_WORKBOOK = (
    f'<workbook xmlns="{SHEET_MAIN_NS}" xmlns:r="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships">{properties}<sheets><sheet name="rows" sheetId="1"'
    ' r:id="rId1"/></sheets></workbook>'
)
"""The workbook the fast reader gives calamine: one sheet, and the export's calendar."""


@dataclass(frozen=True)
class XlsxLimits:
    """The source's limits (``XlsxSourceSettings``), in bytes and counts; and the unpacked
    bytes of a sheet and its shared strings the fast reader reads (``FAST_MIN`` to
    ``FAST_BYTES``), which no setting changes."""

    sheet_bytes: int
    strings_bytes: int
    part_bytes: int
    shared_strings: int
    columns: int
    fast_from: int = field(default=FAST_MIN, kw_only=True)
    fast_up_to: int = field(default=FAST_BYTES, kw_only=True)

    @classmethod
    def of(cls, settings: XlsxSourceSettings) -> XlsxLimits:
        return cls(
            int(settings.max_sheet_bytes),
            int(settings.max_strings_bytes),
            int(settings.max_part_bytes),
            settings.max_shared_strings,
            settings.max_columns,
        )


def inspect_xlsx(
    path: Path, settings: XlsxSourceSettings, *, folder: Path | None = None
) -> XlsxFile:
    """Hash the workbook. With ``folder`` (the export folder's real path) it must lie inside
    it (``open_export``)."""
    digest = hashlib.sha256()
    opened, identity = open_export(path, folder)
    try:
        with opened as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise SourceError(
            f"{path}: cannot read: {exc.strerror}",
            hint="check that source.path names the file and that this user may read it",
        ) from None
    return XlsxFile(
        path,
        digest.hexdigest(),
        settings.sheet,
        settings.header_row,
        limits=XlsxLimits.of(settings),
        identity=identity,
    )


class _TooBig(Exception):
    """A part, a count or a row past one of the source's limits: the message names it."""


@dataclass(frozen=True)
class _Book:
    """What the rows of a workbook need, read once: how it tells dates, its sheets as (name,
    part, whether a worksheet), and its shared strings' part (None without)."""

    epoch: datetime
    date_formats: frozenset[int]
    timedelta_formats: frozenset[int]
    sheets: list[tuple[str, str, bool]]
    strings: str | None
    fast: bool = False
    """Whether the fast reader is to try the sheet chosen (its size is within its range)."""

    def pick(self, sheet: str | None) -> tuple[str, str, bool] | None:
        """The sheet named ``sheet`` (None: the first), or None when there is none such."""
        found = [s for s in self.sheets if sheet is None or s[0] == sheet]
        return found[0] if found else None


@dataclass
class XlsxFile(ExportFile):
    sheet: str | None
    header_row: int | None = None
    limits: XlsxLimits = field(kw_only=True)
    _tally: FileTally = field(default_factory=FileTally)

    def tally(self) -> FileTally:
        return self._tally

    def describe(self) -> str:
        name, _ = self._sheet(self._book())
        return f"{self.path} (sheet {name!r})"

    def reader(self) -> Literal["fast", "streaming"]:
        """Which reader reads the sheet's rows (see the module's docstring)."""
        book = self._book()
        _, part = self._sheet(book)
        return "streaming" if self._grid(book, part) is None else "fast"

    def header(self) -> list[str]:
        tally = FileTally()
        with closing(self._records(tally)) as records:
            found = self._table(tally).header(records)
        if found is None:
            raise SourceError(
                f"{self.path}: the sheet is empty; expected a header row",
                hint="check the CRM's export job, or set source.sheet to the sheet that holds "
                "the contacts",
            )
        return _columns(found[0]).values

    def rows(self) -> Generator[SourceRow, None, None]:
        """Every row of the table below the header, as wide as the header; then the file is
        checked unchanged since it was hashed, and ``tally()`` says where every sheet row went.
        The streaming reader's shared strings, read for the header, are let go once all rows
        are read; the fast reader's sheet is kept for another reading of all rows (a run reads
        them twice when it uploads while it reads) until ``release``, or until another
        workbook's sheet takes its place."""
        self._tally = tally = FileTally()
        table = self._table(tally)
        with closing(self._records(tally)) as records:
            found = table.header(records)
            if found is not None:
                head, ahead = found
                yield from table.rows(_columns(head), chain(ahead, records))
        _load.cache_clear()
        _strings.cache_clear()
        self.unchanged()

    def release(self) -> None:
        """Let go of what is held to read the workbook again (the fast reader's sheet: up to
        about 160 MiB); the next reading reads it anew."""
        _load.cache_clear()
        _grid.cache_clear()
        _strings.cache_clear()

    def _table(self, tally: FileTally) -> Table:
        return Table(str(self.path), tally, self.header_row, unit="row", whole="sheet")

    def _book(self) -> _Book:
        return _load(self.path, self.content_hash, self.identity, self.limits, self.sheet)

    def _grid(self, book: _Book, part: str) -> _Grid | None:
        if not book.fast:
            return None
        dated = bool(book.date_formats or book.timedelta_formats)
        calendar_1904 = book.epoch == CALENDAR_MAC_1904
        key = (self.path, self.content_hash, self.identity, self.limits)
        return _grid(*key, part, book.strings, calendar_1904=calendar_1904, dated=dated)

    def _sheet(self, book: _Book) -> tuple[str, str]:
        """The sheet to read (``source.sheet``, else the first) and its part."""
        found = book.pick(self.sheet)
        if found is None and self.sheet is None:
            raise SourceError(
                f"{self.path}: the workbook has no sheet",
                hint="export the contacts as .xlsx with the contacts on a sheet",
            )
        if found is None:
            raise ConfigError(
                f"{self.path}: no sheet named {self.sheet!r}",
                hint=f"sheets there: {', '.join(name for name, _, _ in book.sheets)}",
            )
        name, part, worksheet = found
        if not worksheet:
            raise SourceError(
                f"{self.path}: sheet {name!r} is a chart, not a worksheet",
                hint="set source.sheet to the sheet that holds the contacts",
            )
        return name, part

    def _records(self, tally: FileTally) -> Generator[SourceRow, None, None]:
        """Every sheet row as it is stored (a row's empty cells at its end may be left out or
        kept), counted as ``row_lines`` for ``Table`` to sort out; rows the sheet leaves out
        are blank lines. The fast reader's rows when it takes the sheet, else the streaming
        reader's."""
        book = self._book()
        _, part = self._sheet(book)
        grid = self._grid(book, part)
        for number, values in self._streamed(book, part) if grid is None else grid.rows():
            tally.blank_lines += number - tally.lines - 1
            tally.lines = number
            tally.row_lines += 1
            yield SourceRow(values, number)

    def _streamed(self, book: _Book, part: str) -> Iterator[tuple[int, list[str]]]:
        """The streaming reader's rows: each row's number and its cells' text."""
        with _reading(self.path), self._archive() as archive:
            source = archive.stream(part, "sheet")
            strings = _strings(
                self.path, self.content_hash, self.identity, self.limits, book.strings
            )
            for number, values in _sheet_rows(source, strings, book, self.limits.columns):
                yield number, [as_text(v) for v in values]

    @contextmanager
    def _archive(self) -> Iterator[_Archive]:
        with self.open_bytes() as handle, _Archive(handle, self.limits) as archive:
            yield archive


@lru_cache(maxsize=1)
def _load(
    path: Path, content_hash: str, identity: Identity | None, limits: XlsxLimits, sheet: str | None
) -> _Book:
    """The workbook's structure and styles, read once for its header and its rows (the
    arguments are the cache's key: the same file, hashed alike, read within the same limits,
    for the same sheet). When the streaming reader is to read ``sheet`` (its part and the
    shared strings unpack to less than ``limits.fast_from`` or more than ``limits.fast_up_to``),
    its shared strings are read too (``_strings``). One workbook is held at a time, and
    ``rows`` lets it go once all are read: a glob of many workbooks holds one, not all (so do
    ``_grid`` and ``_strings``)."""
    with _reading(path), _opened(path, identity, limits) as archive:
        book = _Reader(archive).book()
        found = book.pick(sheet)
        parts = [found[1], book.strings] if found is not None else []
        unpacked = sum(archive.getinfo(part).file_size for part in parts if part)
    if found is not None and limits.fast_from <= unpacked <= limits.fast_up_to:
        return replace(book, fast=True)
    _strings(path, content_hash, identity, limits, book.strings)
    return book


@lru_cache(maxsize=1)
def _strings(
    path: Path, content_hash: str, identity: Identity | None, limits: XlsxLimits, part: str | None
) -> _Strings:
    """The shared strings (their ``part``) for the streaming reader, read once for its header
    and its rows."""
    if part is None:
        return _Strings()
    with _reading(path), _opened(path, identity, limits) as archive:
        return _shared_strings(archive.stream(part, "strings"), limits.shared_strings)


@contextmanager
def _opened(path: Path, identity: Identity | None, limits: XlsxLimits) -> Iterator[_Archive]:
    """The workbook's zip, opened again: the very file that was hashed, or a ``SourceError``."""
    handle, opened = open_export(path, None)
    if identity is not None and opened != identity:
        handle.close()
        raise SourceError(
            f"{path}: another file took its name while it was read; nothing of it was sent,"
            " and it is read again next run",
            hint="export folders hold the export files themselves, not links out of them",
        )
    with handle, _Archive(handle, limits) as archive:
        yield archive


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A workbook that cannot be read, or passes a limit, as one ``SourceError`` line."""
    try:
        yield
    except _TooBig as exc:
        raise SourceError(
            f"{path}: {exc}; nothing of it was sent",
            hint="a workbook that is really this large is read once the setting named is raised",
        ) from None
    except DefusedXmlException:
        raise SourceError(
            f"{path}: not a readable XLSX workbook: an XML part declares entities or a DTD,"
            " which no workbook has (an XML bomb is made so); nothing of it was sent",
            hint="export the contacts again from the CRM",
        ) from None
    except _UNREADABLE as exc:
        raise SourceError(
            f"{path}: not a readable XLSX workbook ({_reason(exc)})",
            hint="export the contacts as .xlsx (not the older .xls), or set source.kind: csv "
            "for a CSV file",
        ) from None


def _reason(exc: BaseException) -> str:
    """An exception's first line, printable and short: what openpyxl or zipfile said."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= 160 else text[:159] + "…"


class _Archive(zipfile.ZipFile):
    """A workbook's zip whose parts open only within their size limits: any part openpyxl
    reads (``open``, ``read``) within ``max_part_bytes``; the parts streamed here
    (``stream``) within theirs. The size checked is the one the zip's directory declares,
    before a byte is decompressed; zipfile stops at it."""

    def __init__(self, handle: IO[bytes], limits: XlsxLimits) -> None:
        super().__init__(handle)
        self.limits = limits

    def open(
        self,
        name: str | zipfile.ZipInfo,
        mode: Literal["r", "w"] = "r",
        pwd: bytes | None = None,
        *,
        force_zip64: bool = False,
    ) -> IO[bytes]:
        if mode == "r":
            self._within(name, self.limits.part_bytes, "source.max_part_bytes")
        return super().open(name, mode, pwd, force_zip64=force_zip64)

    def stream(self, name: str, what: Literal["sheet", "strings"]) -> _Part:
        """A part read element by element here: the worksheet, or the shared strings."""
        if what == "sheet":
            self._within(name, self.limits.sheet_bytes, "source.max_sheet_bytes")
        else:
            self._within(name, self.limits.strings_bytes, "source.max_strings_bytes")
        return _Part(super().open(name), name)

    def _within(self, name: str | zipfile.ZipInfo, limit: int, setting: str) -> None:
        info = name if isinstance(name, zipfile.ZipInfo) else self.getinfo(name)
        if info.file_size > limit:
            raise _TooBig(
                f"its part {info.filename} unpacks to {info.file_size:,} bytes, more than"
                f" {setting} ({limit:,})"
            )


class _Part:
    """A streamed part's bytes as the XML parser reads them, past which no more than
    ``_MARKUP_GAP`` bytes go without a ``<``: an attribute value cannot hold one, so no start
    tag is longer, and expat never holds a longer one whole."""

    def __init__(self, raw: IO[bytes], name: str) -> None:
        self.name = name
        self._raw = raw
        self._since = 0
        """Bytes read since the last ``<``."""

    def read(self, size: int = -1) -> bytes:
        """At most ``size`` bytes (and at most ``_MARKUP_GAP``, so that no stretch without a
        ``<`` lies wholly inside one chunk and goes unchecked); ``_TooBig`` past the gap."""
        chunk = self._raw.read(_MARKUP_GAP if size < 0 else min(size, _MARKUP_GAP))
        first = chunk.find(b"<")
        if first < 0:
            self._since += len(chunk)
        else:
            self._since += first
            if self._since <= _MARKUP_GAP:
                self._since = len(chunk) - chunk.rfind(b"<") - 1
        if self._since > _MARKUP_GAP:
            raise _TooBig(
                f"its part {self.name} has more than {_MARKUP_GAP:,} bytes without a '<',"
                " an XML tag or text longer than any workbook's"
            )
        return chunk


class _Builder(TreeBuilder):
    """The tree builder of a streamed part, counting what it holds as it builds it: how deep
    the open elements nest (``_DEPTH``), the distinct names met (``_NAMES``), and in each
    ``item`` element (a row, a shared string) the XML elements and attributes (``most``) and
    the characters of text (``_ITEM_CHARS``, with any text before it since the last item).
    Outside an item an element ended is let go of (``_items`` clears it), so what counts there
    is the elements still open. Past a bound ``_TooBig`` names it."""

    def __init__(self, part: str, item: str, most: int, what: str) -> None:
        super().__init__()
        self.part, self.item, self.most, self.what = part, item, most, what
        self.open: list[int] = []
        """For each open element, its elements and attributes held (with its descendants')."""
        self.inside = 0
        """The depth of the open item, 0 outside one."""
        self.held = 0
        self.chars = 0
        self.names: set[str] = set()

    def start(self, tag: str, attrs: dict[str, str], /) -> Element:
        nodes = 1 + len(attrs)
        self.open.append(nodes)
        self.held += nodes
        if len(self.open) > _DEPTH:
            raise _TooBig(f"its part {self.part} nests XML elements more than {_DEPTH} deep")
        if not self.inside and tag == self.item:
            self.inside = len(self.open)
        if self.held > self.most:
            where = self.what if self.inside else "an element outside its rows"
            raise _TooBig(
                f"its part {self.part} holds {where} of more than {self.most:,} XML elements"
                " and attributes"
            )
        names = self.names
        names.add(tag)
        if attrs:
            names.update(attrs)
        if len(names) > _NAMES:
            raise _TooBig(f"its part {self.part} uses more than {_NAMES:,} distinct XML names")
        return super().start(tag, attrs)

    def end(self, tag: str, /) -> Element:
        nodes = self.open.pop()
        if self.inside and len(self.open) >= self.inside:
            self.open[-1] += nodes
        else:
            self.held -= nodes
            if self.inside:
                self.inside = self.chars = 0
        return super().end(tag)

    def data(self, data: str, /) -> None:
        self.chars += len(data)
        if self.chars > _ITEM_CHARS:
            raise _TooBig(
                f"its part {self.part} holds {self.what} of more than {_ITEM_CHARS:,}"
                " characters of text"
            )
        super().data(data)


class _Reader(ExcelReader):  # type: ignore[misc]
    """openpyxl's workbook reader (openpyxl 3.1), for what the rows need only: the manifest,
    the workbook (its sheets and epoch) and the styles (which cells are dates). Nothing of the
    worksheets or the shared strings is read here."""

    def __init__(self, archive: _Archive) -> None:
        # ExcelReader.__init__ opens a file of its own; these are the fields its steps read.
        self.archive = archive
        self.valid_files = archive.namelist()
        self.read_only = True
        self.keep_vba = False
        self.data_only = True
        self.keep_links = False
        self.rich_text = False

    def book(self) -> _Book:
        self.read_manifest()
        self.read_workbook()
        apply_stylesheet(self.archive, self.wb)
        strings = self.package.find(SHARED_STRINGS)
        return _Book(
            self.wb.epoch,
            frozenset(self.wb._date_formats),
            frozenset(self.wb._timedelta_formats),
            [
                (sheet.name, rel.target, rel.Type.endswith(_WORKSHEET))
                for sheet, rel in self.parser.find_sheets()
            ],
            None if strings is None else strings.PartName[1:],
        )


class _Strings:
    """The shared strings, packed: their UTF-8 one after another and where each starts (8
    bytes). A million strings of 20 characters take 28 MB so, against 77 MB as a list of str;
    a string is decoded when a cell names it."""

    def __init__(self) -> None:
        self._text = bytearray()
        self._starts = array("Q", [0])

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __getitem__(self, index: int) -> str:
        if not 0 <= index < len(self):
            raise IndexError(f"no shared string {index:,}: there are {len(self):,}")
        return self._text[self._starts[index] : self._starts[index + 1]].decode()

    def append(self, text: str) -> None:
        self._text += text.encode()
        self._starts.append(len(self._text))


def _shared_strings(source: _Part, limit: int) -> _Strings:
    """The shared strings, counted against ``limit`` as they are read. A string's text is its
    ``t`` and the ``t`` of each rich-text run, as openpyxl reads it (``Text.content``, and its
    ``x005F_`` unescaping); phonetic runs are not text."""
    strings = _Strings()
    for item in _items(source, _STRING, _STRING_NODES, "a shared string"):
        if len(strings) == limit:
            raise _TooBig(f"more than source.max_shared_strings ({limit:,}) shared strings")
        plain = item.find(_TEXT)
        if plain is not None:
            text = plain.text or ""
        else:
            text = "".join(run.findtext(_TEXT) or "" for run in item.iterfind(_RUN))
        strings.append(text.replace("x005F_", ""))
    return strings


def _items(source: _Part, tag: str, most: int, what: str) -> Iterator[Element]:
    """Each ``tag`` element of an XML part, whole, once it ends; every other element is let
    go of as soon as it ends, so what is held is the item being read and the elements still
    open around it, within the bounds ``_Builder`` keeps (``most`` elements and attributes in
    an item)."""
    parser = DefusedXMLParser(target=_Builder(source.name, tag, most, what), forbid_dtd=True)
    open_: list[Element] = []
    inside = False
    for event, element in iterparse(source, events=("start", "end"), parser=parser):
        if event == "start":
            open_.append(element)
            inside = inside or element.tag == tag
            continue
        open_.pop()
        if element.tag == tag and inside:
            inside = False
            yield element
        if not inside and open_:
            open_[-1].clear()


def _sheet_rows(
    source: _Part, strings: _Strings, book: _Book, columns: int
) -> Iterator[tuple[int, list[Any]]]:
    """Each row of a worksheet part: its number and its values, as wide as its last cell.
    openpyxl's ``WorkSheetParser.parse_cell`` reads each cell (numbers, dates by the styles,
    shared and inline strings, booleans); the rows are assembled here, within ``columns``
    (``source.max_columns``) and Excel's last row, and numbered as the sheet numbers them."""
    cells = WorkSheetParser(
        None,
        strings,
        data_only=True,
        epoch=book.epoch or WINDOWS_EPOCH,
        date_formats=book.date_formats,
        timedelta_formats=book.timedelta_formats,
    )
    number = 0
    most = columns * _CELL_NODES + _STRING_NODES
    what = f"a row (of at most source.max_columns, {columns:,} cells)"
    for row in _items(source, _ROW, most, what):
        at = _number(row.get("r"), after=number)
        if not number < at <= _EXCEL_ROWS:
            raise ValueError(f"row number {at:,} after row {number:,}")
        number = cells.row_counter = at
        cells.col_counter = 0
        if len(row) > columns:
            raise _TooBig(
                f"row {number:,} has {len(row):,} cells, more than source.max_columns ({columns:,})"
            )
        values: dict[int, Any] = {}
        for element in row:
            if element.tag != _CELL:
                continue
            cell = cells.parse_cell(element)
            column = cell["column"]
            if column > columns:
                raise _TooBig(
                    f"row {number:,} has a cell in column {get_column_letter(column)}"
                    f" ({column:,}), past source.max_columns ({columns:,})"
                )
            values[column] = cell["value"]
        width = max(values, default=0)
        yield number, [values.get(i) for i in range(1, width + 1)]


def _number(given: str | None, *, after: int) -> int:
    """A row's number: its ``r`` (``3``, or ``3.0`` as some writers have it, which openpyxl
    reads too), else the one after the row before."""
    if given is None:
        return after + 1
    value = float(given)
    if not value.is_integer():
        raise ValueError(f"{given!r} is not a row number")
    return int(value)


def _columns(head: SourceRow) -> SourceRow:
    """The header without the empty cells a sheet keeps at its end (cells once formatted):
    they are no columns, and would make every row short."""
    values = head.values
    while values and values[-1] == "":
        values.pop()
    return head


@dataclass(frozen=True)
class _Grid:
    """A sheet as calamine read it, and the rows the sheet stores: each row's number and the
    column of its last cell (``widths``, 0 for a row without cells), as the streaming reader
    would yield them."""

    sheet: CalamineSheet
    numbers: array[int]
    widths: array[int]

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Each stored row's number and its cells' text, as wide as its last cell (or its last
        cell holding something, should a cell come after it): the streaming reader's rows."""
        start = self.sheet.start
        first, left = start if start is not None else (0, 0)
        end = first + self.sheet.height if start is not None else 0
        grid = self.sheet.iter_rows() if start is not None else iter(())
        at = -1
        row: list[Any] = []
        for number, width in zip(self.numbers, self.widths, strict=True):
            if number > end:
                yield number, [""] * width
                continue
            while at < number - 1:
                row = next(grid)
                at += 1
            values = [""] * left + row if left else row
            last = len(values)
            while last > width and values[last - 1] == "":
                last -= 1
            del values[last:]
            values.extend([""] * (width - last))
            yield number, [v if v.__class__ is str else _text(v) for v in values]


def _text(value: Any) -> str:
    """A value calamine read as ``as_text`` reads openpyxl's: a date is a date and time at
    midnight, as openpyxl reads every date."""
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return as_text(value)


@lru_cache(maxsize=1)
def _grid(
    path: Path,
    content_hash: str,
    identity: Identity | None,
    limits: XlsxLimits,
    part: str,
    strings: str | None,
    *,
    calendar_1904: bool,
    dated: bool,
) -> _Grid | None:
    """The sheet ``part`` read by the fast reader, or None when the streaming reader is to read
    it: a check of ``_copy_sheet``, ``_copy_strings`` or ``_well_formed`` fails, or calamine
    cannot read what passed them. The sizes are checked first, as the streaming reader checks
    them, with the same messages. ``strings`` is the shared strings' part, ``calendar_1904``
    whether dates count from 1904, ``dated`` whether the workbook styles any cell as a date or
    a duration. The copy given to calamine is a private temporary file (0600, in ``$TMPDIR``),
    deleted once calamine has read it."""
    with _reading(path), _opened(path, identity, limits) as archive:
        text = None if strings is None else archive.stream(strings, "strings")
        sheet = archive.stream(part, "sheet")
        with tempfile.NamedTemporaryFile(prefix="connector-", suffix=".xlsx") as copy:
            with zipfile.ZipFile(copy, "w") as target:
                for name, frame in _FRAME.items():
                    target.writestr(name, frame)
                calendar = '<workbookPr date1904="1"/>' if calendar_1904 else ""
                target.writestr("xl/workbook.xml", _WORKBOOK.format(properties=calendar))
                if ARC_STYLE in archive.NameToInfo:
                    target.writestr(ARC_STYLE, archive.read(ARC_STYLE))
                if text is not None and not _copy_strings(text, target, limits):
                    return None
                stored = _copy_sheet(sheet, target, columns=limits.columns, dated=dated)
            if stored is None:
                return None
            copy.flush()
            with ThreadPoolExecutor(1, thread_name_prefix="calamine") as calamine:
                # calamine lets go of the GIL: the check below runs on another core meanwhile
                grid = calamine.submit(_calamine, copy.name, *stored)
                formed = _well_formed(copy.name)
                return grid.result() if formed else None


def _calamine(copy: str, numbers: array[int], widths: array[int]) -> _Grid | None:
    """The one sheet of the workbook ``copy`` as calamine reads it (its shared strings let go
    of once the sheet holds its cells), or None when calamine cannot read it."""
    try:
        with CalamineWorkbook.from_path(copy) as workbook:
            sheet = workbook.get_sheet_by_index(0)
    except CalamineError:
        return None
    except BaseException as exc:
        # pyo3 raises a panic in Rust as PanicException, which derives from BaseException.
        if type(exc).__name__ != "PanicException":
            raise
        return None
    bottom, right = sheet.end or (-1, -1)
    if bottom >= (numbers[-1] if numbers else 0) or right >= max(widths, default=0):
        return None  # cells past those the checks saw: not the sheet they passed
    return _Grid(sheet, numbers, widths)


def _copy_strings(source: _Part, target: zipfile.ZipFile, limits: XlsxLimits) -> bool:
    """Copy the shared strings into ``target``; False when the fast reader must not read them:
    more than ``source.max_shared_strings`` (counted from above: every ``si`` element's start,
    with or without a prefix, and any end with one), a declared ``uniqueCount`` past it
    (calamine reserves room for that many), a tag of ``_STRINGS_TAGS``, an ``_ESCAPE`` or a
    text ending in white space not marked to keep it."""
    count = 0
    with target.open("xl/sharedStrings.xml", "w") as copy:
        for piece in _pieces(source, b"<si"):
            if _STRINGS_TAGS.search(piece) or _ESCAPE.search(piece) or _trailing_spaces(piece):
                return False
            count += piece.count(b"<si") + piece.count(b":si")
            declared = (
                int(digits)
                for found in _UNIQUE_COUNT.finditer(piece)
                for digits in re.findall(rb"[0-9]+", found[1])
            )
            if count > limits.shared_strings or max(declared, default=0) > limits.shared_strings:
                return False
            copy.write(piece)
    return True


def _copy_sheet(
    source: _Part, target: zipfile.ZipFile, *, columns: int, dated: bool
) -> tuple[array[int], array[int]] | None:
    """Copy the worksheet into ``target`` and list its rows (numbers and the column of each
    one's last cell); None when the fast reader must not read it.

    It must not when a row is out of order or past Excel's last; a row's last cell names
    another row, lies past ``columns`` (``source.max_columns``) or the row holds more cells; a
    tag is not one ``_sheet_tags`` allows (a cell's reference past the rows stored so far or
    the widest row's last cell among them: calamine would lay out a grid that far); the grid
    would be larger than ``_FAST_CELLS``; or it holds an ``_ESCAPE`` or a text ending in white
    space not marked to keep it. (``_well_formed`` checks the XML of the copy.)"""
    numbers, widths = array("l"), array("l")
    last = widest = 0
    with target.open("xl/worksheets/sheet1.xml", "w") as copy:
        for piece in _pieces(source, b"<row "):
            if _ESCAPE.search(piece) or _trailing_spaces(piece):
                return None
            found = [(row.start(), int(row[1])) for row in _ROW_REF.finditer(piece)]
            ends = [begin for begin, _ in found[1:]] + [len(piece)] * bool(found)
            for (begin, number), end in zip(found, ends, strict=True):
                if not last < number <= _EXCEL_ROWS:
                    return None
                if (
                    end - begin > columns * _CELL_BYTES
                    and piece.count(b"<c ", begin, end) > columns
                ):
                    return None
                last = number
                width = 0
                at = piece.rfind(b'<c r="', begin, end)
                if at >= 0:
                    cell = _LAST_CELL.match(piece, at)
                    if cell is None or int(cell[2]) != number:
                        return None
                    width = _column(cell[1])
                numbers.append(number)
                widths.append(width)
                widest = max(widest, width)
            if widest > columns or last * widest > _FAST_CELLS:
                return None
            if _sheet_tags(widest, last, dated).search(piece):
                return None
            copy.write(piece)
    return numbers, widths


def _well_formed(copy: str) -> bool:
    """Whether the sheet and the shared strings in ``copy`` are well-formed XML as the
    streaming reader's parser (expat) has them: calamine reads a tag that does not close, or
    closes another, and an attribute given twice, where expat refuses the part. The checks of
    the copy let no DTD through, and it calls nothing back, so it holds no more than the
    elements open."""
    with zipfile.ZipFile(copy) as archive:
        for part in {"xl/worksheets/sheet1.xml", "xl/sharedStrings.xml"} & set(archive.namelist()):
            xml = expat.ParserCreate()
            try:
                with archive.open(part) as source:
                    while piece := source.read(_CHUNK):
                        xml.Parse(piece, False)
                xml.Parse(b"", True)
            except expat.ExpatError:
                return False
    return True


def _pieces(source: _Part, cut: bytes) -> Iterator[bytes]:
    """A part's bytes in pieces of about ``_CHUNK``, each but the last ending where ``cut``
    starts (what follows is carried into the next piece), so that no element starting with
    ``cut`` (a row, a shared string) is split between two."""
    rest = b""
    while chunk := source.read(_CHUNK):
        data = rest + chunk
        at = data.rfind(cut, max(len(rest) - len(cut), 1))
        if at < 0:
            rest = data
            continue
        yield data[:at]
        rest = data[at:]
    if rest:
        yield rest


def _trailing_spaces(piece: bytes) -> bool:
    """Whether a ``<t>`` not marked ``xml:space="preserve"`` ends its text with white space,
    which calamine trims and openpyxl keeps."""
    if b"<t>" not in piece:
        return False
    for ending in _TRAILING:
        at = piece.find(ending)
        while at >= 0:
            opened = piece.rfind(b"<t", 0, at)
            if piece.startswith(b"<t>", opened):
                return True
            at = piece.find(ending, at + 1)
    return False


@lru_cache(maxsize=16)
def _sheet_tags(widest: int, last: int, dated: bool) -> re.Pattern[bytes]:
    """A tag in a worksheet that spreadsheet programs do not write (or a comment, CDATA or
    DTD); or a cell's not as ``_CELL_TAG`` has it, or whose reference lies past column
    ``widest`` or row ``last``; an inline string in a cell not typed so (openpyxl reads none
    there, calamine reads it); or a value that is empty, a whole number of 16 digits or more
    (openpyxl keeps every digit, calamine a float's), or (``dated``: the workbook styles dates)
    negative, which openpyxl reads as a date before 1900 and calamine as a time of day. The
    tags most frequent first: the search tries them in turn at each ``<``."""
    reference = _up_to(_letters_up_to(widest), _digits_up_to(last))
    value = rb"v>(?!-?[0-9]{16}|</v>" + (rb"|-" if dated else b"") + rb")"
    allowed = [
        rb'c r="' + reference + rb'"' + _CELL_TAG,
        rb"/c>",
        value,
        rb"/v>",
        rb'row r="[0-9]{1,7}"[\s/>]',
        rb"/row>",
        _TEXT_TAGS,
        rb'(?<=t="inlineStr"><)is>|/is>',
        rb"/?(?:" + _SHEET_PARTS + rb")[\s/>]",
        rb"\?",
    ]
    return re.compile(rb"<(?!" + b"|".join(allowed) + rb")")


def _up_to(columns: bytes, rows: bytes) -> bytes:
    if not columns or not rows:
        return rb"(?!)"
    return rb"(?:" + columns + rb")(?:" + rows + rb")"


def _digits_up_to(most: int) -> bytes:
    """A pattern of the numbers 1 to ``most`` written without leading zeros."""
    text = str(most) if most > 0 else ""
    shorter = [rb"[1-9][0-9]{0,%d}" % (len(text) - 2)] if len(text) > 1 else []
    return _at_most(text.encode(), shorter, "123456789", "0123456789")


def _letters_up_to(most: int) -> bytes:
    """A pattern of the column names A to ``most``'s (1 is A)."""
    text = get_column_letter(most) if most > 0 else ""
    shorter = [rb"[A-Z]{1,%d}" % (len(text) - 1)] if len(text) > 1 else []
    return _at_most(text.encode(), shorter, _ALPHABET, _ALPHABET)


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _at_most(text: bytes, shorter: list[bytes], first: str, rest: str) -> bytes:
    """A pattern of the strings of ``text``'s length that sort at most ``text`` (digits
    ``first`` then ``rest`` at each place), or of ``shorter``."""
    if not text:
        return b""
    choices = list(shorter)
    for place, symbol in enumerate(text.decode()):
        symbols = first if place == 0 else rest
        below = symbols[: symbols.index(symbol)]
        if below:
            tail = len(text) - place - 1
            choices.append(
                re.escape(text[:place])
                + f"[{below}]".encode()
                + (f"[{rest}]{{{tail}}}".encode() if tail else b"")
            )
    choices.append(re.escape(text))
    return b"|".join(choices)


def _column(letters: bytes) -> int:
    """A column's number from its name (A is 1)."""
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number
