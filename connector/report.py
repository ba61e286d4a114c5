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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from connector.contacts import KORE_COLUMNS, Contact, Rejection
from connector.errors import ConnectorError
from connector.sync.context import RUN_ID_TIME, Event, RowRejected

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
        self._batches = 0
        self._rejected_file: IO[str] | None = None
        self._rejected: Any = None

    def _open(self) -> None:
        try:
            private_folder(self.directory)
            self._rejected_file = private_file(self.directory / "rejected.csv")
        except OSError as exc:
            raise ConnectorError(
                f"cannot write the report to {self.directory}: {exc.strerror}",
                hint="check reports_dir and its permissions",
            ) from None
        self._rejected = csv.writer(self._rejected_file)
        self._rejected.writerow(REJECTED_COLUMNS)

    def reject(self, rejection: Rejection) -> None:
        if self._rejected is None:
            self._open()
        self.reasons[rejection.reason] += 1
        if rejection.reason == "country_unknown":
            self.unknown_countries[rejection.subject] += 1
        values = json.dumps(rejection.values, ensure_ascii=False) if rejection.values else ""
        self._rejected.writerow(
            [
                neutralise(str(cell))
                for cell in (
                    rejection.source,
                    rejection.row,
                    rejection.record_id,
                    rejection.reason,
                    rejection.detail,
                    values,
                )
            ]
        )

    def observe(self, event: Event) -> None:
        """The report is an observer of the run: it writes every ``RowRejected``."""
        if isinstance(event, RowRejected):
            self.reject(event.rejection)

    def write_batch(self, body: bytes) -> Path:
        """Keep a batch file (dry runs): what would have been uploaded, byte for byte."""
        if self._rejected is None:
            self._open()
        self._batches += 1
        path = self.directory / f"batch-{self._batches:04d}.csv"
        with private_file(path) as handle:
            handle.write(body.decode("utf-8"))
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
            raise ConnectorError(
                f"cannot write the report to {self.directory / name}: {exc.strerror}",
                hint="check reports_dir and its permissions",
            ) from None

    def close(self, summary: dict[str, Any], *, keep: bool) -> bool:
        """Write ``summary.json`` if the folder exists or ``keep`` asks for it; say whether."""
        if keep and self._rejected is None:
            self._open()
        if self._rejected_file is None:
            return False
        self._rejected_file.close()
        summary = {
            **summary,
            "rejected_by_reason": dict(sorted(self.reasons.items())),
            "unknown_countries": dict(self.unknown_countries.most_common()),
        }
        try:
            with private_file(self.directory / "summary.json") as handle:
                handle.write(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
        except OSError as exc:
            raise ConnectorError(
                f"cannot write the report to {self.directory}: {exc.strerror}",
                hint="check reports_dir and its permissions",
            ) from None
        return True


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
        log.info("removed %d report folder(s) older than %d days", removed, keep_days)
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
