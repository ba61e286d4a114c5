"""The run's events as log records: start, each file or table read, each batch settled, end.

Records carry counts only: never a phone number or a name."""

from __future__ import annotations

import logging

from connector.sync.context import (
    BatchSettled,
    Event,
    LeaseChanged,
    RunFinished,
    RunStarted,
    UnitRead,
    counted,
)

log = logging.getLogger("connector.run")


def log_event(event: Event) -> None:
    if isinstance(event, LeaseChanged):
        what = "taken" if event.held else "released"
        log.info("lease on tenant %s %s (token %d)", event.tenant, what, event.token)
    elif isinstance(event, RunStarted):
        log.info("run started")
    elif isinstance(event, UnitRead):
        lines = event.tally
        log.info(
            "read %s: %s%s",
            event.name,
            counted(event.rows, "row"),
            f" ({counted(lines.lines, 'line')}: {lines.header_lines:,} header,"
            f" {lines.row_lines:,} in rows, {lines.blank_lines:,} blank)"
            if lines
            else "",
            extra={"rows": event.rows},
        )
    elif isinstance(event, BatchSettled):
        log.info(
            "%s %s settled: %s, %s delivered",
            "re-sent batch" if event.resent else "batch",
            f"{event.number:,}" if event.of is None else f"{event.number:,} of {event.of:,}",
            counted(event.rows, "row"),
            f"{event.delivered:,}",
            extra={"batch_id": event.batch_id, "rows": event.rows},
        )
    elif isinstance(event, RunFinished):
        shown = ", ".join(f"{k} {v:,}" for k, v in event.counters.as_dict().items() if v)
        log.log(
            logging.INFO if event.status in ("completed", "empty") else logging.WARNING,
            "run %s%s%s",
            event.status,
            f": {shown}" if shown else "",
            f" ({event.error})" if event.error else "",
            extra={"status": event.status, "counters": event.counters.as_dict()},
        )
