"""CSV exports in any common encoding and delimiter, streamed."""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from connector.errors import SourceError
from connector.settings import CsvSourceSettings
from connector.sources import ExportFile, SourceRow

_CHUNK = 1 << 20
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_DELIMITERS = (",", ";", "\t")
_SEP_HINT = re.compile(r"^sep=(.)\r?\n?$")


def inspect_csv(path: Path, settings: CsvSourceSettings) -> CsvFile:
    """Hash the file and settle its encoding in one streamed pass.

    A declared or BOM-marked encoding must decode the whole file (else one error naming the
    line); without either, UTF-8 is tried, then cp1252, then Latin-1, which never fails.
    """
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
            declared = settings.encoding or _bom_encoding(head)
            candidates = [declared] if declared else ["utf-8", "cp1252"]
            decoders = {name: codecs.getincrementaldecoder(name)() for name in candidates}
            failed: dict[str, int] = {}
            newlines = 0
            chunk = head + handle.read(_CHUNK)
            while chunk:
                digest.update(chunk)
                for name, decoder in decoders.items():
                    if name in failed:
                        continue
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError as exc:
                        failed[name] = newlines + chunk.count(b"\n", 0, exc.start) + 1
                newlines += chunk.count(b"\n")
                chunk = handle.read(_CHUNK)
            for name, decoder in decoders.items():
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    failed.setdefault(name, newlines + 1)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror}") from None
    if declared and declared in failed:
        raise SourceError(
            f"{path} line {failed[declared]}: not valid {declared}",
            hint="fix the file, or set source.encoding to the encoding it was written in",
        )
    encoding = declared or next((n for n in candidates if n not in failed), "latin-1")
    return CsvFile(path, digest.hexdigest(), encoding, settings.delimiter)


def _bom_encoding(head: bytes) -> str | None:
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    return None


@dataclass
class CsvFile(ExportFile):
    encoding: str
    delimiter: str | None

    def describe(self) -> str:
        with self._open() as handle:
            delimiter, _ = self._dialect(handle.readline())
        name = {",": "comma", ";": "semicolon", "\t": "tab"}.get(delimiter, repr(delimiter))
        return f"{self.path} ({self.encoding}, {name}-separated)"

    def _dialect(self, first: str) -> tuple[str, bool]:
        """The delimiter (declared, else Excel's ``sep=`` hint, else the header's commonest) and
        whether ``first`` is such a hint line, to be skipped."""
        hint = _SEP_HINT.match(first)
        if self.delimiter:
            return self.delimiter, hint is not None
        return (hint[1] if hint else max(_DELIMITERS, key=first.count)), hint is not None

    def _open(self) -> TextIO:
        try:
            return self.path.open(encoding=self.encoding, newline="")
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot read: {exc.strerror}") from None

    def header(self) -> list[str]:
        for row in self._records():
            return row.values
        raise SourceError(f"{self.path}: the file is empty; expected a header row")

    def rows(self) -> Generator[SourceRow, None, None]:
        """Every record after the header; a record the CSV parser cannot read comes with its error."""
        records = self._records()
        next(records, None)
        yield from records

    def _records(self) -> Iterator[SourceRow]:
        with self._open() as handle:
            first = handle.readline()
            delimiter, skip_hint = self._dialect(first)
            skipped = 1 if skip_hint else 0
            if not skip_hint:
                handle.seek(0)
            line = 1 + skipped
            reader = csv.reader(handle, delimiter=delimiter, strict=False)
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield SourceRow([], line, f"unreadable CSV record: {exc}")
                    line = reader.line_num + 1 + skipped
                    continue
                except UnicodeDecodeError:
                    raise SourceError(
                        f"{self.path}: changed while it was read; it is read again next run"
                    ) from None
                if values:
                    yield SourceRow(values, line)
                line = reader.line_num + 1 + skipped
