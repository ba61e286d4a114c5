"""Run reports: ``reports/<tenant>/<run-id>/rejected.csv`` and ``summary.json``.

Rejected rows are written as they happen (streamed). Cells a spreadsheet would evaluate as a
formula are prefixed with a quote here, in the report only, never in uploads.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from io import StringIO
from pathlib import Path
from typing import Any

from connector.errors import ConnectorError
from connector.mapping import KORE_COLUMNS, Contact, Rejection

REJECTED_COLUMNS = ("source", "row", "record_id", "reason", "detail", "values")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


class Report:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._rejected_file = (directory / "rejected.csv").open(
                "w", encoding="utf-8", newline=""
            )
        except OSError as exc:
            raise ConnectorError(
                f"cannot write the report to {directory}: {exc.strerror}",
                hint="check reports_dir and its permissions",
            ) from None
        self._rejected = csv.writer(self._rejected_file)
        self._rejected.writerow(REJECTED_COLUMNS)
        self.reasons: Counter[str] = Counter()
        self._batches = 0

    def reject(self, rejection: Rejection) -> None:
        self.reasons[rejection.reason] += 1
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

    def reject_contact(self, contact: Contact, reason: str, detail: str) -> None:
        self.reject(
            Rejection(
                reason,
                detail,
                contact.source,
                contact.row,
                contact.record_id,
                dict(zip(KORE_COLUMNS, contact.csv_row(), strict=True)),
            )
        )

    def write_batch(self, body: bytes) -> Path:
        """Keep a batch file (dry runs): what would have been uploaded, byte for byte."""
        self._batches += 1
        path = self.directory / f"batch-{self._batches:04d}.csv"
        path.write_bytes(body)
        return path

    def close(self, summary: dict[str, Any]) -> None:
        self._rejected_file.close()
        summary = {**summary, "rejected_by_reason": dict(sorted(self.reasons.items()))}
        (self.directory / "summary.json").write_text(
            json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
        )


def batch_csv(rows: Sequence[Sequence[str]]) -> bytes:
    """The six-column file Kore's bulk import takes, UTF-8 without a BOM."""
    buffer = StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(KORE_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")
