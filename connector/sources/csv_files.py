"""CSV exports in any common encoding and delimiter, streamed, never out of step with the file.

Python's csv module alone can lose its place: a quoted field longer than its field limit makes
it stop mid-field and read the rest of the field as new records, and a quote never closed makes
it swallow the rest of the file as one silent record. So the reader finds where each record
ends itself, with the csv module's own rules (a quote opens a field only at its start, a
doubled quote is one quote, a stray quote elsewhere is text), and hands the csv module one whole
record at a time. A record longer than ``source.max_row_chars`` is rejected without being held
in memory; a record of more cells than ``source.max_columns`` fails the file (a line of commas
is no contact); a quote still open at the end of the file fails the file, naming the line it
opened on. Records go to the csv module in batches of at most ``_BATCH`` records and
``_BATCH_CHARS`` characters (and the one that crosses it), so what is held stays small whatever
the lines hold. Every physical line is accounted for: a title line above the header, the
header, a record's lines, a report's totals lines, or a blank line (``Table`` in
``connector.sources`` finds the header and fits each row to its width).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import TextIO

from connector.errors import SourceError
from connector.mapping.headers import looks_like_header, shown
from connector.settings import CsvSourceSettings
from connector.sources import (
    HEADER_SEARCH_ROWS,
    ExportFile,
    FileTally,
    SourceRow,
    Table,
    open_export,
    shown_path,
)
from connector.sources.encodings import Detection, Scan

_CHUNK = 1 << 20
_PIECE = 1 << 20
"""Characters read at a time: a longer physical line is read in pieces, never whole."""
_SNIFFED = 1 << 16
"""Characters of each leading line the delimiter is sniffed from (a header of 4,096 columns
of 16 characters), and of the longest line a regular expression settles: past it, the walk
does (the expression's backtracking would hold memory for every field of the line)."""
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_WIDE = ("utf-32-le", "utf-32-be", "utf-16-le", "utf-16-be")
_MAGIC = (
    (b"\x1f\x8b", "gzip data"),
    (b"PK\x03\x04", "a zip archive (an .xlsx workbook is one)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) workbook"),
    (b"%PDF", "a PDF document"),
    (b"BZh", "bzip2 data"),
    (b"\xfd7zXZ\x00", "xz data"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
)
_SAMPLE = 1 << 16
"""Bytes of a file with NUL bytes tried as UTF-16 and UTF-32."""
_CONTROL = [byte for byte in range(32) if byte not in b"\t\n\r"]
_DELIMITERS = (",", ";", "\t")
_SEP_HINT = re.compile(r"^sep=(.)\r?\n?$")
_BLANK = frozenset({"\n", "\r\n", "\r"})


def inspect_csv(path: Path, settings: CsvSourceSettings, *, folder: Path | None = None) -> CsvFile:
    """Hash the file and settle its encoding in one streamed pass (``Scan``). With ``folder``
    (the export folder's real path) the file must lie inside it (``open_export``).

    A declared or BOM-marked encoding must decode the whole file (else one error naming the
    line). Without either, a file with NUL bytes is UTF-16 or UTF-32 written without a BOM, or
    not text at all (refused); a file that is valid UTF-8 throughout is UTF-8; any other is in
    the legacy code page detected among those that decode all of it
    (``connector.sources.encodings``; docs/configuration.md, "Encodings").
    """
    digest = hashlib.sha256()
    opened, identity = open_export(path, folder)
    try:
        with opened as handle:
            chunk = handle.read(_CHUNK)
            declared = settings.encoding or _bom_encoding(chunk) or _wide_encoding(path, chunk)
            scan = Scan(declared)
            while chunk:
                digest.update(chunk)
                scan.feed(chunk)
                chunk = handle.read(_CHUNK)
            scan.close()
    except OSError as exc:
        raise SourceError(
            f"{shown_path(path)}: cannot read: {exc.strerror}",
            hint="check that source.path names the file and that this user may read it",
        ) from None
    if declared and declared in scan.failed:
        raise SourceError(
            f"{shown_path(path)} line {scan.failed[declared]}: not valid {declared}",
            hint="fix the file, or set source.encoding to the encoding it was written in",
        )
    detection = scan.detection()
    return CsvFile(
        path,
        digest.hexdigest(),
        detection.encoding,
        settings.delimiter,
        max_row_chars=settings.max_row_chars,
        max_columns=settings.max_columns,
        header_row=settings.header_row,
        detection=detection,
        identity=identity,
    )


def _bom_encoding(head: bytes) -> str | None:
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    return None


def _wide_encoding(path: Path, head: bytes) -> str | None:
    """For a file starting with ``head`` that has NUL bytes: the UTF-16 or UTF-32 it is written
    in without a BOM, or a ``SourceError`` saying it is not text. ``None`` for text (a few stray
    NULs in a name are text: the names are cleaned later).

    A CSV export is mostly ASCII (digits, delimiters, Latin letters), so its UTF-16 or UTF-32
    decodes to mostly ASCII without NULs; binary data is neither UTF-8 nor sparing with control
    bytes."""
    if b"\x00" not in head:
        return None
    what = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    sample = head[:_SAMPLE]
    if what is None:
        for name in _WIDE:
            try:
                text = codecs.getincrementaldecoder(name)().decode(sample)
            except UnicodeDecodeError:
                continue
            if "\x00" not in text and sum(c < "\x80" for c in text) >= len(text) / 2:
                return name
        control = sum(sample.count(byte) for byte in _CONTROL)
        if _is_utf8(sample) or control <= len(sample) * 0.05:
            return None
        what = f"binary data ({control:,} control bytes in its first {len(sample):,})"
    raise SourceError(
        f"{shown_path(path)}: not a CSV text file: it holds {what}; nothing of it was read",
        hint="export the contacts as CSV, or set source.kind: xlsx for a workbook"
        if "xls" in what
        else "export the contacts as CSV, or set source.encoding if it is text in another encoding",
    )


def _is_utf8(sample: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample)
    except UnicodeDecodeError:
        return False
    return True


@dataclass
class CsvFile(ExportFile):
    encoding: str
    delimiter: str | None
    max_row_chars: int = 4_194_304
    max_columns: int = 4096
    header_row: int | None = None
    detection: Detection | None = None
    """How ``encoding`` was settled (``inspect_csv`` always says; None counts as certain)."""
    _tally: FileTally = field(default_factory=FileTally)
    _reading: TextIO | None = None

    def tally(self) -> FileTally:
        return self._tally

    @property
    def encoding_confidence(self) -> float:
        return self.detection.confidence if self.detection else 1.0

    @property
    def pinned_encoding(self) -> str | None:
        """The encoding ``init`` writes into a config: the one the file is read in, unless it
        is a guess below ``encodings.CONFIDENT``, or UTF-8 with stray bytes (then every run
        detects it afresh, and warns)."""
        found = self.detection
        if found and (not found.confident or found.stray_line is not None):
            return None
        return self.encoding

    def warnings(self) -> list[str]:
        """One line when the encoding is a guess below ``encodings.CONFIDENT``: the guess, the
        runner-up and one value as each reads it, so that a person can tell which is right."""
        found = self.detection
        if found is not None and found.stray_line is not None:
            return [
                f"{self.where}: UTF-8, but line {found.stray_line:,} (and maybe others) holds "
                "bytes that are not: they are read as cp1252; check those names, or set "
                "source.encoding"
            ]
        if found is None or found.confident:
            return []
        line = (
            f"{self.where}: the encoding is a guess: {found.encoding}"
            f" (confidence {found.confidence:.2f})"
        )
        if found.runner_up:
            line += f", runner-up {found.runner_up}"
            if found.sample is not None and found.runner_up_sample is not None:
                line += (
                    f"; a cell reads '{shown(found.sample)}' as {found.encoding}"
                    f" and '{shown(found.runner_up_sample)}' as {found.runner_up}"
                )
        return [line + "; set source.encoding to be sure"]

    def progress(self) -> tuple[int, int | None]:
        """Bytes read so far (the reader's buffer may be a little ahead of the rows)."""
        size = self.path.stat().st_size
        handle = self._reading
        if handle is None:
            return 0, size
        return (size if handle.closed else handle.buffer.tell()), size

    def describe(self) -> str:
        delimiter = self.dialect()
        name = {",": "comma", ";": "semicolon", "\t": "tab"}.get(delimiter, repr(delimiter))
        return f"{self.where} ({self.encoding}, {name}-separated)"

    def dialect(self) -> str:
        """The delimiter this file is read with."""
        with self._open() as handle:
            delimiter, _ = self._dialect(handle)
        return delimiter

    def _dialect(self, handle: TextIO) -> tuple[str, bool]:
        """The delimiter (declared, else Excel's ``sep=`` hint, else sniffed from the leading
        lines) and whether the first line is such a hint, to be skipped. Leaves ``handle`` at
        the start of the file."""
        first = handle.readline(_SNIFFED)
        hint = _SEP_HINT.match(first)
        if self.delimiter or hint:
            handle.seek(0)
            return self.delimiter or (hint[1] if hint else ","), hint is not None
        leading = max(HEADER_SEARCH_ROWS, self.header_row or 0)
        lines = [first, *islice(iter(partial(handle.readline, _SNIFFED), ""), leading - 1)]
        handle.seek(0)
        return self._sniffed(lines), False

    def _sniffed(self, lines: list[str]) -> str:
        """The delimiter of , ; and tab that splits the first line reading as a header (by the
        synonym table) into such a header: a report's title lines above it hold few
        delimiters, or others. Else the commonest in the header row named by
        ``source.header_row``, or in the first line, as ever."""
        if self.header_row is None:
            for line in lines:
                for delimiter in sorted(_DELIMITERS, key=line.count, reverse=True):
                    cells = [c.strip().strip('"') for c in line.split(delimiter)]
                    if delimiter in line and looks_like_header(cells):
                        return delimiter
        at = min(self.header_row or 1, len(lines)) - 1
        return max(_DELIMITERS, key=lines[at].count)

    def _open(self) -> TextIO:
        errors = self.detection.errors if self.detection else "strict"
        return io.TextIOWrapper(
            self.open_bytes(), encoding=self.encoding, errors=errors, newline=""
        )

    def header(self) -> list[str]:
        tally = FileTally()
        with closing(self._records(tally)) as records:
            found = self._table(tally).header(records)
        if found is None:
            raise SourceError(
                f"{self.where}: the file is empty; expected a header row",
                hint="check the CRM's export job: an export starts with its header row",
            )
        return found[0].values

    def rows(self) -> Generator[SourceRow, None, None]:
        """Every record of the table below the header, as wide as the header; a record that
        cannot be read comes with its error. When the rows are all read, the file is checked
        unchanged since it was hashed, and ``tally()`` says where every physical line went."""
        self._tally = tally = FileTally(
            encoding=self.encoding, encoding_confidence=self.encoding_confidence
        )
        table = self._table(tally)
        with closing(self._records(tally)) as records:
            found = table.header(records)
            if found is not None:
                head, ahead = found
                yield from table.rows(head, chain(ahead, records))
        self.unchanged()

    def _table(self, tally: FileTally) -> Table:
        return Table(self.where, tally, self.header_row)

    def _records(self, tally: FileTally) -> Generator[SourceRow, None, None]:
        with self._open() as handle:
            self._reading = handle
            try:
                delimiter, skip_hint = self._dialect(handle)
                if skip_hint:
                    handle.readline(_PIECE)
                    tally.lines = tally.header_lines = 1
                splitter = _Splitter(delimiter, self.max_row_chars, self.max_columns, tally)
                yield from splitter.rows(handle)
            except UnicodeDecodeError:
                raise SourceError(
                    f"{self.where}: changed while it was read; it is read again next run",
                    hint="exports still being copied when a run starts are left alone for "
                    "source.min_file_age: make it longer than a copy takes",
                ) from None
            except _Unsplit as exc:
                raise SourceError(
                    f"{self.where} line {exc.line}: where this record ends cannot be told for sure;"
                    " nothing of this file was sent",
                    hint="check the quoting around this line in the export",
                ) from None
            except _TooWide as exc:
                raise SourceError(
                    f"{self.where} line {exc.line}: a record of {exc.cells:,} cells, more than"
                    f" source.max_columns ({self.max_columns:,}); nothing of this file was sent",
                    hint="raise source.max_columns if the export really has that many columns",
                ) from None
            except _Unclosed as exc:
                raise SourceError(
                    f"{self.where} line {exc.line}: a quote opened in this record is never closed;"
                    " nothing of this file was sent",
                    hint="fix the quoting in the export (a quote inside a quoted field is "
                    'written twice: "")',
                ) from None


_Record = tuple[int, int, "str | None", int]
"""A record as the splitter cut it: its first line, the lines it spans, its text (None when it
is longer than the ceiling), and its length in characters."""
_BATCH = 2000
_BATCH_CHARS = 1 << 20
"""Records handed to the csv module together: up to 2,000 of them, ending with the one that
takes their characters past 1 Mi."""


class _Unclosed(Exception):
    """A quote still open at the end of the file; ``line`` is where its record starts."""

    def __init__(self, line: int) -> None:
        self.line = line


class _Unsplit(_Unclosed):
    """The csv module read a record across the end the splitter found for it."""


class _TooWide(Exception):
    """A record of more cells than ``source.max_columns``, starting at ``line``."""

    def __init__(self, line: int, cells: int) -> None:
        self.line = line
        self.cells = cells


_START, _FIELD, _QUOTED, _END = range(4)


class _Splitter:
    """Finds where each record ends, by the csv module's rules (non-strict, quotes doubled).

    Three states suffice: at a field's start (also right after a quote that closed a quoted
    field: the same characters do the same there), inside an unquoted field, inside a quoted
    one. Lines holding no quote, and lines that are plainly well-formed, are settled by one
    string test or one regular expression; the rest are walked field by field."""

    def __init__(self, delimiter: str, ceiling: int, columns: int, tally: FileTally) -> None:
        self.delimiter = delimiter
        self.ceiling = ceiling
        self.columns = columns
        self.tally = tally
        d = re.escape(delimiter)
        self._field_end = re.compile(f"[{d}\r\n]")
        one = f'(?:"[^"]*(?:""[^"]*)*"|[^"{d}\r\n][^{d}\r\n]*|)'
        self._plain = re.compile(f"{one}(?:{d}{one})*(?:\r\n|\r|\n)")
        csv.field_size_limit(max(csv.field_size_limit(), ceiling + 1))

    def rows(self, handle: TextIO) -> Iterator[SourceRow]:
        """Each record as a row: the csv module parses the texts the splitter cut, a batch at a
        time, and must find exactly one record in each."""
        for batch in self._batches(handle):
            reader = csv.reader(
                [text for _, _, text, _ in batch if text is not None],
                delimiter=self.delimiter,
                strict=False,
            )
            parsed = 0
            for line, span, text, chars in batch:
                if text is None:
                    yield self._rejected(line, span, chars)
                    continue
                values = next(reader, None)
                parsed += 1
                if values is None or reader.line_num != parsed:
                    raise _Unsplit(line)
                if len(values) > self.columns:
                    raise _TooWide(line, len(values))
                yield SourceRow(values, line, None, span)

    def _rejected(self, line: int, span: int, chars: int) -> SourceRow:
        lines = f"line {line}" if span == 1 else f"lines {line}-{line + span - 1}"
        return SourceRow(
            [],
            line,
            f"a record of {chars:,} characters ({lines}), more than"
            f" source.max_row_chars ({self.ceiling:,})",
            span,
        )

    def _batches(self, handle: TextIO) -> Iterator[list[_Record]]:
        tally = self.tally
        readline = handle.readline
        plain = self._plain.fullmatch
        line = tally.lines + 1
        batch: list[_Record] = []
        chars = 0
        while True:
            piece = readline(_PIECE)
            if not piece:
                break
            if len(piece) == _PIECE and piece[-1] == "\r":
                piece += _line_feed_after(handle)
            if piece in _BLANK:
                tally.blank_lines += 1
                line += 1
                continue
            if ('"' not in piece and piece[-1] in "\r\n") or (
                len(piece) <= _SNIFFED and plain(piece)
            ):
                batch.append((line, 1, piece, len(piece)))
                line += 1
            else:
                record = self._long(piece, handle, line)
                batch.append(record)
                line += record[1]
            chars += batch[-1][3] if batch[-1][2] is not None else 0
            if len(batch) >= _BATCH or chars >= _BATCH_CHARS:
                self._count(batch, line)
                yield batch
                batch = []
                chars = 0
        self._count(batch, line)
        if batch:
            yield batch

    def _count(self, batch: list[_Record], line: int) -> None:
        self.tally.row_lines += sum(span for _, span, _, _ in batch)
        self.tally.lines = line - 1

    def _long(self, piece: str, handle: TextIO, line: int) -> _Record:
        """A record whose first piece is ``piece`` and that needs walking: quoted line breaks,
        stray quotes, a line longer than a piece, or the last line without a line break."""
        kept: list[str] | None = [piece]
        chars = len(piece)
        ended = piece[-1] in "\r\n"
        span = int(ended)
        state = self._advance(piece, _START)
        while state != _END:
            piece = handle.readline(_PIECE)
            if not piece:
                if state == _QUOTED:
                    raise _Unclosed(line)
                return line, span + int(not ended), None if kept is None else "".join(kept), chars
            if len(piece) == _PIECE and piece[-1] == "\r":
                piece += _line_feed_after(handle)
            chars += len(piece)
            ended = piece[-1] in "\r\n"
            span += int(ended)
            if kept is not None:
                kept.append(piece)
                if chars > self.ceiling:
                    kept = None
            state = self._advance(piece, state)
        return line, span, None if kept is None or chars > self.ceiling else "".join(kept), chars

    def _advance(self, piece: str, state: int) -> int:
        """The state after ``piece``, or ``_END`` when the record ends with it (only ever at its
        line break: a line break ends a record anywhere but inside a quoted field)."""
        i, n = 0, len(piece)
        while i < n:
            if state == _QUOTED:
                j = piece.find('"', i)
                if j < 0:
                    return _QUOTED
                state, i = _START, j + 1
            elif state == _FIELD:
                match = self._field_end.search(piece, i)
                if match is None:
                    return _FIELD
                if match[0] != self.delimiter:
                    return _END
                state, i = _START, match.end()
            else:
                c = piece[i]
                if c == '"':
                    state, i = _QUOTED, i + 1
                elif c == self.delimiter:
                    i += 1
                elif c in "\r\n":
                    return _END
                else:
                    state = _FIELD
        return state


def _line_feed_after(handle: TextIO) -> str:
    """A piece cut right after ``\\r``: the ``\\n`` that follows belongs to the same line break."""
    at = handle.tell()
    if handle.read(1) == "\n":
        return "\n"
    handle.seek(at)
    return ""
