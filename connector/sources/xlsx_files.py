"""XLSX exports, streamed with openpyxl's read-only mode.

Cells come back as the strings a CSV export of the same sheet would hold (see ``as_text``):
a phone typed into Excel and stored as a number becomes its digit string again.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

from connector.errors import ConfigError, SourceError
from connector.settings import XlsxSourceSettings
from connector.sources import ExportFile, SourceRow, as_text

_CHUNK = 1 << 20


def inspect_xlsx(path: Path, settings: XlsxSourceSettings) -> XlsxFile:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror}") from None
    return XlsxFile(path, digest.hexdigest(), settings.sheet)


@dataclass
class XlsxFile(ExportFile):
    sheet: str | None

    def describe(self) -> str:
        with self._worksheet() as sheet:
            return f"{self.path} (sheet {sheet.title!r})"

    def header(self) -> list[str]:
        for row in self._records():
            return row.values
        raise SourceError(f"{self.path}: the sheet is empty; expected a header row")

    def rows(self) -> Generator[SourceRow, None, None]:
        records = self._records()
        first = next(records, None)
        width = len(first.values) if first else 0
        for row in records:
            values = row.values
            if len(values) > width and not any(values[width:]):
                values = values[:width]
            elif len(values) < width:
                values = values + [""] * (width - len(values))
            yield SourceRow(values, row.line)

    def _records(self) -> Iterator[SourceRow]:
        with self._worksheet() as sheet:
            for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
                values = [as_text(v) for v in cells]
                while values and values[-1] == "":
                    values.pop()
                if values:
                    yield SourceRow(values, number)

    @contextmanager
    def _worksheet(self) -> Iterator[ReadOnlyWorksheet]:
        try:
            book = load_workbook(self.path, read_only=True, data_only=True)
        except (OSError, zipfile.BadZipFile, InvalidFileException, KeyError) as exc:
            raise SourceError(f"{self.path}: not a readable XLSX workbook ({exc})") from None
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
                raise SourceError(f"{self.path}: the first sheet is not a worksheet")
            sheet.reset_dimensions()
            yield sheet
        finally:
            book.close()
