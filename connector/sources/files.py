"""Export files: a file or a glob; each new file is read once, remembered by content hash."""

from __future__ import annotations

import glob
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from connector.errors import SourceError
from connector.settings import CsvSourceSettings, XlsxSourceSettings
from connector.sources import SourceStats, SourceUnit
from connector.sources.csv_files import inspect_csv
from connector.state import Checkpoint

if TYPE_CHECKING:
    from connector.state import TenantState


class FileSource:
    def __init__(
        self,
        settings: CsvSourceSettings | XlsxSourceSettings,
        *,
        state: TenantState | None,
        full: bool,
    ) -> None:
        self.settings = settings
        self.state = state
        self.full = full
        self.stats = SourceStats()
        self._read: list[SourceUnit] = []

    def paths(self) -> list[Path]:
        pattern = self.settings.path
        if glob.has_magic(pattern):
            found = sorted(p for p in map(Path, glob.glob(pattern, recursive=True)) if p.is_file())
            folder = _folder_of(pattern)
            if not found and not folder.is_dir():
                raise SourceError(
                    f"source.path {pattern}: the folder {folder} does not exist",
                    hint="check source.path: a glob in a missing folder would match nothing, ever",
                )
            return found
        path = Path(pattern)
        if not path.is_file():
            raise SourceError(f"{pattern}: file not found", hint="check source.path")
        return [path]

    def units(self) -> list[SourceUnit]:
        """The files not read before (all with ``--full``), each content once. A snapshot
        source reads only the newest file (by modification time, then name): it is the whole
        contact list, and older files are history."""
        remembered = set() if self.full or self.state is None else self.state.processed_hashes()
        seen = set(remembered)
        units: list[SourceUnit] = []
        paths = self.paths()
        if self.settings.snapshot and paths:
            newest = max(paths, key=lambda p: (p.stat().st_mtime_ns, p.name))
            self.stats.files_seen = self.stats.files_skipped = len(paths) - 1
            paths = [newest]
        for path in paths:
            self.stats.files_seen += 1
            unit = self._inspect(path)
            if unit.ident in seen:
                self.stats.files_skipped += 1
                if unit.ident in remembered:
                    self.stats.remembered.append((unit.ident, unit.name))
                continue
            seen.add(unit.ident)
            units.append(unit)
        self.stats.files_read = len(units)
        self._read = units
        return units

    @property
    def complete(self) -> bool:
        """Whether what this run reads is the whole contact list (a snapshot's newest file)."""
        return self.settings.snapshot and bool(self._read)

    def _inspect(self, path: Path) -> SourceUnit:
        if isinstance(self.settings, XlsxSourceSettings):
            from connector.sources.xlsx_files import inspect_xlsx  # openpyxl, for xlsx only

            return inspect_xlsx(path, self.settings)
        return inspect_csv(path, self.settings)

    def checkpoint(self, rows: Mapping[str, int]) -> Checkpoint:
        return Checkpoint(processed=[(u.ident, u.name, rows.get(u.ident, 0)) for u in self._read])


def _folder_of(pattern: str) -> Path:
    """The folder a glob looks in: its path up to the first part with a wildcard."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    return Path(*parts[:fixed]) if fixed else Path(".")
