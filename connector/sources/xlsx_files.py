"""XLSX exports, streamed with openpyxl's read-only mode.

Cells come back as the strings a CSV export of the same sheet would hold (see ``as_text``):
a phone typed into Excel and stored as a number becomes its digit string again. The sheet's
table is found and fitted as a CSV file's is (``Table``: a report's title rows above the header
and totals below the data are counted, not read), and its rows are tallied as a CSV file's lines.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

from connector.errors import ConfigError, SourceError
from connector.settings import XlsxSourceSettings
from connector.sources import ExportFile, FileTally, SourceRow, Table, as_text

_CHUNK = 1 << 20


def inspect_xlsx(path: Path, settings: XlsxSourceSettings) -> XlsxFile:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise SourceError(
            f"{path}: cannot read: {exc.strerror}",
            hint="check that source.path names the file and that this user may read it",
        ) from None
    return XlsxFile(path, digest.hexdigest(), settings.sheet, settings.header_row)


@dataclass
class XlsxFile(ExportFile):
    sheet: str | None
    header_row: int | None = None
    _tally: FileTally = field(default_factory=FileTally)

    def tally(self) -> FileTally:
        return self._tally

    def describe(self) -> str:
        with self._worksheet() as sheet:
            return f"{self.path} (sheet {sheet.title!r})"

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
        checked unchanged since it was hashed, and ``tally()`` says where every sheet row went."""
        self._tally = tally = FileTally()
        table = self._table(tally)
        with closing(self._records(tally)) as records:
            found = table.header(records)
            if found is not None:
                head, ahead = found
                yield from table.rows(_columns(head), chain(ahead, records))
        self.unchanged()

    def _table(self, tally: FileTally) -> Table:
        return Table(str(self.path), tally, self.header_row, unit="row", whole="sheet")

    def _records(self, tally: FileTally) -> Generator[SourceRow, None, None]:
        """Every sheet row as it is stored (a row's empty cells at its end may be left out or
        kept), counted as ``row_lines`` for ``Table`` to sort out."""
        with self._worksheet() as sheet:
            for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
                tally.lines = number
                tally.row_lines += 1
                yield SourceRow([as_text(v) for v in cells], number)

    @contextmanager
    def _worksheet(self) -> Iterator[ReadOnlyWorksheet]:
        try:
            book = load_workbook(self.path, read_only=True, data_only=True)
        except (OSError, zipfile.BadZipFile, InvalidFileException, KeyError) as exc:
            raise SourceError(
                f"{self.path}: not a readable XLSX workbook ({exc})",
                hint="export the contacts as .xlsx (not the older .xls), or set source.kind: csv "
                "for a CSV file",
            ) from None
        try:
            if self.sheet is None:
                sheet = book.worksheets[0]
            elif self.sheet in book.sheetnames:
                sheet = book[self.sheet]
            else:
                raise ConfigError(
                    f"{self.path}: no sheet named {self.sheet!r}",
                    hint=f"sheets there: {', '.join(book.sheetnames)}",
                )
            if not isinstance(sheet, ReadOnlyWorksheet):
                raise SourceError(
                    f"{self.path}: the first sheet is not a worksheet",
                    hint="set source.sheet to the sheet that holds the contacts",
                )
            sheet.reset_dimensions()
            yield sheet
        finally:
            book.close()


def _columns(head: SourceRow) -> SourceRow:
    """The header without the empty cells a sheet keeps at its end (cells once formatted):
    they are no columns, and would make every row short."""
    values = head.values
    while values and values[-1] == "":
        values.pop()
    return head
