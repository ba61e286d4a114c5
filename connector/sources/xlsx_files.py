"""XLSX exports, streamed within limits a hostile workbook cannot pass.

Cells come back as the strings a CSV export of the same sheet would hold (see ``as_text``):
a phone typed into Excel and stored as a number becomes its digit string again. The sheet's
table is found and fitted as a CSV file's is (``Table``: a report's title rows above the header
and totals below the data are counted, not read), and its rows are tallied as a CSV file's lines.

A workbook is a zip of XML parts, and a small one can unpack to gigabytes. So before a part is
decompressed its size in the zip's directory is checked (zipfile never yields more than that
size, so the directory cannot lie): the worksheet read at most ``source.max_sheet_bytes``, the
shared strings ``source.max_strings_bytes``, any other part openpyxl reads whole (the workbook,
its styles and relationships) ``source.max_part_bytes``. openpyxl reads the workbook's structure
and styles; the shared strings and the worksheet are streamed here, element by element, keeping
only the item being read (openpyxl keeps every element it has passed as an empty shell, and pads
each row to its last cell: one cell in column XFD is 16,384 values). The shared strings are
counted as they are read (``source.max_shared_strings``), every row's cells and columns against
``source.max_columns``, and a workbook is read once for its header and its rows.

What a streamed part holds at once is bounded too, so its size costs time, not memory: elements
nest at most ``_DEPTH`` deep, a part uses at most ``_NAMES`` distinct XML names (the parser keeps
each), one row or shared string holds at most ``_ITEM_CHARS`` characters of text and a number of
XML elements and attributes set by ``source.max_columns``, and no ``_MARKUP_GAP`` bytes pass
without a ``<`` (expat builds a whole start tag, all its attributes, before any of it is seen
here, so that bound is kept on the bytes before they reach it). Every XML part is parsed by
defusedxml, which refuses entity declarations (the "billion laughs"). Past any limit the file
fails in one line naming the limit's setting (or the part and the fixed bound), and nothing of
it is sent.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from collections.abc import Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import IO, Any, Literal
from xml.etree.ElementTree import Element, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, iterparse
from openpyxl.reader.excel import ExcelReader
from openpyxl.styles.stylesheet import apply_stylesheet
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import WINDOWS_EPOCH
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._reader import WorkSheetParser
from openpyxl.xml.constants import SHARED_STRINGS, SHEET_MAIN_NS

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


@dataclass(frozen=True)
class XlsxLimits:
    """The source's limits (``XlsxSourceSettings``), in bytes and counts."""

    sheet_bytes: int
    strings_bytes: int
    part_bytes: int
    shared_strings: int
    columns: int

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
    """What the rows of a workbook need, read once: its shared strings, how it tells dates,
    and its sheets as (name, part, whether a worksheet)."""

    strings: list[str]
    epoch: datetime
    date_formats: frozenset[int]
    timedelta_formats: frozenset[int]
    sheets: list[tuple[str, str, bool]]


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
        The workbook read for the header is read no more once all rows are."""
        self._tally = tally = FileTally()
        table = self._table(tally)
        with closing(self._records(tally)) as records:
            found = table.header(records)
            if found is not None:
                head, ahead = found
                yield from table.rows(_columns(head), chain(ahead, records))
        _load.cache_clear()
        self.unchanged()

    def _table(self, tally: FileTally) -> Table:
        return Table(str(self.path), tally, self.header_row, unit="row", whole="sheet")

    def _book(self) -> _Book:
        return _load(self.path, self.content_hash, self.identity, self.limits)

    def _sheet(self, book: _Book) -> tuple[str, str]:
        """The sheet to read (``source.sheet``, else the first) and its part."""
        if self.sheet is None:
            if not book.sheets:
                raise SourceError(
                    f"{self.path}: the workbook has no sheet",
                    hint="export the contacts as .xlsx with the contacts on a sheet",
                )
            name, part, worksheet = book.sheets[0]
        else:
            found = [sheet for sheet in book.sheets if sheet[0] == self.sheet]
            if not found:
                raise ConfigError(
                    f"{self.path}: no sheet named {self.sheet!r}",
                    hint=f"sheets there: {', '.join(name for name, _, _ in book.sheets)}",
                )
            name, part, worksheet = found[0]
        if not worksheet:
            raise SourceError(
                f"{self.path}: sheet {name!r} is a chart, not a worksheet",
                hint="set source.sheet to the sheet that holds the contacts",
            )
        return name, part

    def _records(self, tally: FileTally) -> Generator[SourceRow, None, None]:
        """Every sheet row as it is stored (a row's empty cells at its end may be left out or
        kept), counted as ``row_lines`` for ``Table`` to sort out; rows the sheet leaves out
        are blank lines."""
        book = self._book()
        _, part = self._sheet(book)
        with _reading(self.path), self._archive() as archive:
            source = archive.stream(part, "sheet")
            for number, values in _sheet_rows(source, book, self.limits.columns):
                tally.blank_lines += number - tally.lines - 1
                tally.lines = number
                tally.row_lines += 1
                yield SourceRow([as_text(v) for v in values], number)

    @contextmanager
    def _archive(self) -> Iterator[_Archive]:
        with self.open_bytes() as handle, _Archive(handle, self.limits) as archive:
            yield archive


@lru_cache(maxsize=1)
def _load(path: Path, content_hash: str, identity: Identity | None, limits: XlsxLimits) -> _Book:
    """The workbook's structure, styles and shared strings, read once for its header and its
    rows (the arguments are the cache's key: the same file, hashed alike, read within the same
    limits). One workbook is held at a time, and ``rows`` lets it go once all are read: a glob
    of many workbooks holds one, not all."""
    with _reading(path):
        handle, opened = open_export(path, None)
        if identity is not None and opened != identity:
            handle.close()
            raise SourceError(
                f"{path}: another file took its name while it was read; nothing of it was sent,"
                " and it is read again next run",
                hint="export folders hold the export files themselves, not links out of them",
            )
        with handle, _Archive(handle, limits) as archive:
            return _Reader(archive, limits).book()


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
    the workbook (its sheets and epoch) and the styles (which cells are dates) through
    openpyxl, the shared strings streamed here. Nothing of the worksheets is opened."""

    def __init__(self, archive: _Archive, limits: XlsxLimits) -> None:
        # ExcelReader.__init__ opens a file of its own; these are the fields its steps read.
        self.archive = archive
        self.valid_files = archive.namelist()
        self.read_only = True
        self.keep_vba = False
        self.data_only = True
        self.keep_links = False
        self.rich_text = False
        self.shared_strings: list[str] = []
        self.limits = limits

    def book(self) -> _Book:
        self.read_manifest()
        self.read_strings()
        self.read_workbook()
        apply_stylesheet(self.archive, self.wb)
        return _Book(
            self.shared_strings,
            self.wb.epoch,
            frozenset(self.wb._date_formats),
            frozenset(self.wb._timedelta_formats),
            [
                (sheet.name, rel.target, rel.Type.endswith(_WORKSHEET))
                for sheet, rel in self.parser.find_sheets()
            ],
        )

    def read_strings(self) -> None:
        part = self.package.find(SHARED_STRINGS)
        if part is not None:
            source = self.archive.stream(part.PartName[1:], "strings")
            self.shared_strings = _shared_strings(source, self.limits.shared_strings)


def _shared_strings(source: _Part, limit: int) -> list[str]:
    """The shared strings, counted against ``limit`` as they are read. A string's text is its
    ``t`` and the ``t`` of each rich-text run, as openpyxl reads it (``Text.content``, and its
    ``x005F_`` unescaping); phonetic runs are not text."""
    strings: list[str] = []
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


def _sheet_rows(source: _Part, book: _Book, columns: int) -> Iterator[tuple[int, list[Any]]]:
    """Each row of a worksheet part: its number and its values, as wide as its last cell.
    openpyxl's ``WorkSheetParser.parse_cell`` reads each cell (numbers, dates by the styles,
    shared and inline strings, booleans); the rows are assembled here, within ``columns``
    (``source.max_columns``) and Excel's last row, and numbered as the sheet numbers them."""
    cells = WorkSheetParser(
        None,
        book.strings,
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
