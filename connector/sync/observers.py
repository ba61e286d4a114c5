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
            "read %s: %d rows%s",
            event.name,
            event.rows,
            f" ({lines.lines:,} lines: {lines.header_lines} header, {lines.row_lines:,} in rows,"
            f" {lines.blank_lines:,} blank)"
            if lines
            else "",
            extra={"rows": event.rows},
        )
    elif isinstance(event, BatchSettled):
        log.info(
            "%s batch %d settled: %d rows, %d delivered",
            "re-sent" if event.resent else "new",
            event.batch_id,
            event.rows,
            event.delivered,
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
