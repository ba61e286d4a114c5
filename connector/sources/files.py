"""Export files: a file or a glob; each new file is read once, remembered by content hash."""

from __future__ import annotations

import glob
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from connector.errors import SourceError
from connector.settings import CsvSourceSettings, XlsxSourceSettings
from connector.sources import SourceUnit
from connector.sources.csv_files import inspect_csv
from connector.sources.xlsx_files import inspect_xlsx

if TYPE_CHECKING:
    from connector.state import Store


class FileSource:
    def __init__(
        self,
        tenant: str,
        settings: CsvSourceSettings | XlsxSourceSettings,
        *,
        store: Store | None,
        full: bool,
    ) -> None:
        self.tenant = tenant
        self.settings = settings
        self.store = store
        self.full = full
        self.stats: Counter[str] = Counter()
        self._read: list[SourceUnit] = []

    def paths(self) -> list[Path]:
        pattern = self.settings.path
        if glob.has_magic(pattern):
            return sorted(p for p in map(Path, glob.glob(pattern, recursive=True)) if p.is_file())
        path = Path(pattern)
        if not path.is_file():
            raise SourceError(f"{pattern}: file not found", hint="check source.path")
        return [path]

    def units(self) -> list[SourceUnit]:
        """The files not read before (all with ``--full``), each content once."""
        seen = (
            set() if self.full or self.store is None else self.store.processed_hashes(self.tenant)
        )
        units: list[SourceUnit] = []
        for path in self.paths():
            self.stats["files_seen"] += 1
            unit = self._inspect(path)
            if unit.ident in seen:
                self.stats["files_skipped"] += 1
                continue
            seen.add(unit.ident)
            units.append(unit)
        self.stats["files_read"] = len(units)
        self._read = units
        return units

    def _inspect(self, path: Path) -> SourceUnit:
        if isinstance(self.settings, XlsxSourceSettings):
            return inspect_xlsx(path, self.settings)
        return inspect_csv(path, self.settings)

    def checkpoint(self, rows: Mapping[str, int]) -> None:
        if self.store is not None:
            self.store.mark_processed(
                self.tenant, [(u.ident, u.name, rows.get(u.ident, 0)) for u in self._read]
            )
