"""Export files: a file or a glob; each new file is read once, remembered by content hash.

Only finished files are read. A file modified less than ``source.min_file_age`` ago, or whose
size or modification time changed while it was hashed, is still being written (an SFTP upload,
a copy into a shared folder): the run leaves it for the next run, counted (``files_waiting``)
and named in a warning, and does not remember it. The rows read are checked against the same
stamp once read (``ExportFile.unchanged``).

The export folder is a boundary. A glob's folder is its path up to the first part with a
wildcard; a single file's is the folder it is named in. A file whose real path leaves that
folder (a link to another tenant's export or to ``/etc/shadow``, a ``..`` matched by the glob)
is not read: the run counts it (``unsafe_paths``), names it in a warning, and reads the rest.
The folder itself may be a link (a mount set up by the operator); what is checked is where each
file really is, against where the folder really is. A link the operator names directly in
``source.path`` is held to the same rule: the connector cannot tell it from one a tenant made in
its upload folder, and naming the file it points to reads it. A FIFO or a device a glob matches
is never opened (a FIFO would block the run): it is counted with them and named in a warning.
"""

from __future__ import annotations

import glob
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from connector.errors import SourceError
from connector.settings import CsvSourceSettings, XlsxSourceSettings
from connector.sources import SourceStats, SourceUnit, Stamp, shown_path
from connector.sources.csv_files import CsvFile, inspect_csv
from connector.state import Checkpoint

if TYPE_CHECKING:
    from connector.sources.xlsx_files import XlsxFile
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
        pattern = settings.path
        self.folder = _folder_of(pattern) if glob.has_magic(pattern) else Path(pattern).parent
        """The export folder as ``source.path`` names it."""
        self._inside = Path(os.path.realpath(self.folder))

    def paths(self) -> list[Path]:
        """The regular files ``source.path`` names that lie inside the export folder; the others
        are counted and named (``SourceStats.unsafe``). A folder a glob matches is passed over
        without a word (``*.csv`` may match one); a path that is gone (a dangling link) too.

        Raises ``SourceError`` for a single file that does not exist or is not a regular file."""
        pattern = self.settings.path
        if glob.has_magic(pattern):
            found = sorted(
                p for p in map(Path, glob.glob(pattern, recursive=True)) if not p.is_dir()
            )
            if not found and not self.folder.is_dir():
                raise SourceError(
                    f"source.path {pattern}: the folder {self.folder} does not exist",
                    hint="check source.path: a glob in a missing folder would match nothing, ever",
                )
            return [p for p in found if self._safe(p, named=False) and self._regular(p)]
        path = Path(pattern)
        if not path.exists():
            raise SourceError(f"{pattern}: file not found", hint="check source.path")
        if not self._safe(path, named=True):
            return []
        if not path.is_file():
            raise SourceError(
                f"{pattern} is not a regular file (a FIFO, a device or a folder); nothing of it"
                " was read",
                hint="source.path names an export file, or a glob such as exports/acme/*.csv",
            )
        return [path]

    def _regular(self, path: Path) -> bool:
        """Whether ``path`` is a regular file. A FIFO or a device is never opened (a FIFO would
        block the run, a device never end): it is counted with the files not read for safety
        (``unsafe_paths``) and named in one warning. A path gone since the glob is passed over."""
        try:
            mode = path.stat().st_mode
        except OSError:
            return False
        if stat.S_ISREG(mode):
            return True
        self.stats.files_seen += 1
        self.stats.unsafe_paths += 1
        self.stats.unsafe.append(
            f"{shown_path(path)} is not a regular file (a FIFO or a device); not read"
        )
        return False

    def _safe(self, path: Path, *, named: bool) -> bool:
        """Whether ``path`` really lies inside the export folder; if not, it is counted, and
        named in one warning (which says nothing of where it leads)."""
        if Path(os.path.realpath(path)).is_relative_to(self._inside):
            return True
        self.stats.files_seen += 1
        self.stats.unsafe_paths += 1
        fix = (
            "if the link is yours, name the file it leads to in source.path"
            if named
            else "put the export itself in the folder"
        )
        self.stats.unsafe.append(
            f"{shown_path(path)} is not read: its real path leaves the export folder {self.folder}"
            f" (a link or '..' leads out of it); {fix}"
        )
        return False

    def units(self) -> list[SourceUnit]:
        """The files not read before (all with ``--full``), each content once, when they are
        finished. A snapshot source reads only the newest file (by modification time, then
        name): it is the whole contact list, and older files are history, so while the newest
        is still being written nothing is read (and no removal judged) rather than an older,
        already read file."""
        remembered = set() if self.full or self.state is None else self.state.processed_hashes()
        seen = set(remembered)
        units: list[SourceUnit] = []
        paths = self.paths()
        if self.settings.snapshot and paths:
            newest = max(paths, key=lambda p: (p.stat().st_mtime_ns, p.name))
            self.stats.files_seen += len(paths) - 1
            self.stats.files_skipped = len(paths) - 1
            paths = [newest]
        for path in paths:
            self.stats.files_seen += 1
            unit = self._finished(path)
            if unit is None:
                continue
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

    def _finished(self, path: Path) -> CsvFile | XlsxFile | None:
        """The file inspected (hashed), or None when it is still being written: then it is
        counted and named. Without state (``check``, ``reconcile``: they remember nothing) every
        file is read as it is now."""
        if self.state is None:
            return self._inspect(path)
        before = Stamp.of(path)
        age = before.age(time.time())
        wait = self.settings.min_file_age.total_seconds()
        if wait and age < wait:
            when = (
                f"modified {age:.0f} s ago"
                if age >= 0
                else f"modified {-age:.0f} s in the future by this machine's clock"
            )
            self._waiting(path, f"{when}, source.min_file_age is {wait:.0f} s")
            return None
        unit = self._inspect(path)
        change = before.change(Stamp.of(path))
        if change is not None:
            self._waiting(path, f"{change} while it was read")
            return None
        unit.stamp = before
        return unit

    def _waiting(self, path: Path, why: str) -> None:
        self.stats.files_waiting += 1
        self.stats.waiting.append(
            f"{shown_path(path)} is still being written ({why}); it is read next run"
        )

    def _inspect(self, path: Path) -> CsvFile | XlsxFile:
        if isinstance(self.settings, XlsxSourceSettings):
            from connector.sources.xlsx_files import inspect_xlsx  # openpyxl, for xlsx only

            return inspect_xlsx(path, self.settings, folder=self._inside)
        return inspect_csv(path, self.settings, folder=self._inside)

    def checkpoint(self, rows: Mapping[str, int]) -> Checkpoint:
        return Checkpoint(processed=[(u.ident, u.name, rows.get(u.ident, 0)) for u in self._read])


def _folder_of(pattern: str) -> Path:
    """The folder a glob looks in: its path up to the first part with a wildcard."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    return Path(*parts[:fixed]) if fixed else Path(".")
