"""Run reports: ``reports/<tenant>/<run-id>/rejected.csv`` and ``summary.json``.

Rejected rows are written as they happen (streamed). Cells a spreadsheet would evaluate as a
formula are prefixed with a quote here, in the report only, never in uploads. The folder is made
when the run first has something to say; a run that read and sent nothing leaves none (its
counters are in the runs table), so a daemon on a short schedule does not fill the disk with
empty folders. ``prune`` removes folders older than the configured number of days.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from connector.contacts import KORE_COLUMNS, Contact, Rejection
from connector.errors import ConnectorError
from connector.sources import FileTally
from connector.sync.context import RUN_ID_TIME, Event, RowRejected, UnitRead, counted

log = logging.getLogger(__name__)

REJECTED_COLUMNS = ("source", "row", "record_id", "reason", "detail", "values")

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """A cell a spreadsheet would run as a formula, quoted; a phone key (``+`` and digits) is
    no formula and stays as it is."""
    if cell.startswith(_FORMULA_START) and not (cell[:1] == "+" and cell[1:].isdigit()):
        return "'" + cell
    return cell


class Report:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.reasons: Counter[str] = Counter()
        self.unknown_countries: Counter[str] = Counter()
        self.files: list[dict[str, object]] = []
        self._batches = 0
        self._rejected_file: IO[str] | None = None
        self._rejected: Any = None
        self.broken: ConnectorError | None = None
        """Why a rejected row could not be written (a full disk): the run fails at its next
        batch boundary (``check``), once the batch in flight has settled."""

    def _open(self) -> None:
        try:
            private_folder(self.directory)
            self._rejected_file = private_file(self.directory / "rejected.csv")
            self._rejected = csv.writer(self._rejected_file)
            self._rejected.writerow(REJECTED_COLUMNS)
        except OSError as exc:
            raise self._error(exc, self.directory / "rejected.csv") from None

    def _error(self, exc: OSError, path: Path) -> ConnectorError:
        return ConnectorError(
            f"cannot write the report to {path}: {exc.strerror}",
            hint="free space in reports_dir, or check it and its permissions; the next run "
            "reads this run's files again",
        )

    def reject(self, rejection: Rejection) -> None:
        """Count the row and write it to ``rejected.csv``; a write that fails breaks the report
        (``broken``) instead of raising, so that the batch in flight settles first."""
        self.reasons[rejection.reason] += 1
        if rejection.reason == "country_unknown":
            self.unknown_countries[rejection.subject] += 1
        if self.broken is not None:
            return
        values = json.dumps(rejection.values, ensure_ascii=False) if rejection.values else ""
        cells = (
            rejection.source,
            rejection.row,
            rejection.record_id,
            rejection.reason,
            rejection.detail,
            values,
        )
        try:
            if self._rejected is None:
                self._open()
            self._rejected.writerow([neutralise(str(cell)) for cell in cells])
        except OSError as exc:
            self.broken = self._error(exc, self.directory / "rejected.csv")
        except ConnectorError as exc:
            self.broken = exc

    def preflight(self) -> None:
        """Before a run reads or sends anything: the folder its report goes in can be made
        (a read-only or missing-permission reports_dir fails the run here, not after it sent)."""
        existing = next(p for p in (self.directory, *self.directory.parents) if p.exists())
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConnectorError(
                f"cannot write the report to {self.directory}: {existing} is not writable",
                hint="check reports_dir, its permissions and that its disk is not read-only",
            )

    def check(self) -> None:
        """Raise what broke the report, if anything did: at a batch boundary, the run ends."""
        if self.broken is not None:
            raise self.broken

    def observe(self, event: Event) -> None:
        """The report is an observer of the run: it writes every ``RowRejected`` and keeps
        every ``UnitRead`` for the summary's ``files``. Like every observer, it never raises."""
        if isinstance(event, RowRejected):
            self.reject(event.rejection)
        elif isinstance(event, UnitRead):
            self.files.append({"name": event.name, "rows": event.rows, **_lines(event.tally)})

    def write_batch(self, body: bytes) -> Path:
        """Keep a batch file (dry runs): what would have been uploaded, byte for byte."""
        if self._rejected is None:
            self._open()
        self._batches += 1
        path = self.directory / f"batch-{self._batches:04d}.csv"
        try:
            with private_file(path) as handle:
                handle.write(body.decode("utf-8"))
        except OSError as exc:
            raise self._error(exc, path) from None
        return path

    def write_table(self, name: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
        """One more CSV in the run's folder (``dnc_in_kore.csv``, ``updates.csv``…); cells a
        spreadsheet would run as a formula are neutralised as in ``rejected.csv``."""
        if self._rejected is None:
            self._open()
        try:
            with private_file(self.directory / name) as handle:
                writer = csv.writer(handle)
                writer.writerow(header)
                writer.writerows([neutralise(str(cell)) for cell in row] for row in rows)
        except OSError as exc:
            raise self._error(exc, self.directory / name) from None

    def close(self, summary: dict[str, Any], *, keep: bool) -> bool:
        """Write ``summary.json`` if the folder exists or ``keep`` asks for it; say whether.
        The summary is written whole or not at all (beside, then renamed): never 0 bytes."""
        if keep and self._rejected is None and self.broken is None:
            self._open()
        if self._rejected_file is None:
            return False
        try:
            self._rejected_file.close()
        except OSError as exc:
            raise self._error(exc, self.directory / "rejected.csv") from None
        summary = {
            **summary,
            "rejected_by_reason": dict(sorted(self.reasons.items())),
            "unknown_countries": dict(self.unknown_countries.most_common()),
            "files": self.files,
        }
        path = self.directory / "summary.json"
        part = path.with_name(path.name + ".part")
        try:
            with private_file(part) as handle:
                handle.write(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
            part.replace(path)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise self._error(exc, path) from None
        return True


def _lines(tally: FileTally | None) -> dict[str, int]:
    return asdict(tally) if tally else {}


def private_folder(directory: Path) -> None:
    """Make the folder and any missing parent, each open to its owner only (0700) whatever the
    umask: reports hold names and phone numbers."""
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)


def private_file(path: Path) -> IO[str]:
    """A report file for writing, readable by its owner only (0600) whatever the umask."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, "w", encoding="utf-8", newline="")


def prune(tenant_dir: Path, *, keep_days: int) -> int:
    """Remove run folders that started more than ``keep_days`` ago (0 keeps every folder)."""
    if keep_days <= 0 or not tenant_dir.is_dir():
        return 0
    oldest = datetime.now(UTC) - timedelta(days=keep_days)
    removed = 0
    for folder in tenant_dir.iterdir():
        try:
            started = datetime.strptime(folder.name.split("-")[0], RUN_ID_TIME).replace(tzinfo=UTC)
        except ValueError:
            continue  # not a run folder: never touched
        if folder.is_dir() and started < oldest:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if removed:
        log.info("removed %s older than %d days", counted(removed, "report folder"), keep_days)
    return removed


def contact_rejection(contact: Contact, reason: str, detail: str) -> Rejection:
    """A contact that was mapped but is not sent, with the six columns it would have had."""
    return Rejection(
        reason,
        detail,
        contact.source,
        contact.row,
        contact.record_id,
        dict(zip(KORE_COLUMNS, contact.csv_row(), strict=True)),
    )
