"""What the commands print: run summaries, errors and ``status``, as text or (with
``--log-format json``) as one JSON object a line, so that everything a process prints parses."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from connector import logs
from connector.errors import ConnectorError

if TYPE_CHECKING:
    from connector.settings import TenantSettings
    from connector.state import Store
    from connector.sync.reconcile import ReconcileResult
    from connector.sync.run import RunResult

log = logging.getLogger("connector")


def describe(result: RunResult, *, dry_run: bool) -> str:
    c = result.counters
    if dry_run:
        sent = f"{c.would_send:,} would be sent in {c.batches:,} batch files"
        changes = (
            ("would update", c.would_update),
            ("would delete", c.would_delete),
            ("removals held back", c.removal_held_back),
        )
    else:
        parts = [f"{c.created:,} created"]
        parts += [f"{c.adopted:,} adopted"] if c.adopted else []
        sent = f"{c.sent:,} sent ({', '.join(parts)})"
        changes = (
            ("updated", c.updated),
            ("deleted", c.deleted),
            ("removals held back", c.removal_held_back),
        )
    files = f" from {c.files_read:,} new file(s)" if c.files_seen else ""
    if c.files_waiting:
        files += f" ({c.files_waiting:,} still being written: read next run)"
    sent += "".join(f", {n:,} {what}" for what, n in changes if n)
    if c.rate_limited:
        sent += f", {c.rate_limited:,} rate limited by Kore ({c.waited_seconds:,.0f}s paced)"
    report = (
        f"report: {result.report_dir}"
        if result.report_dir
        else "no report (nothing was read or sent)"
    )
    return (
        f"{result.tenant}: {result.status} - {c.rows_read:,} rows read{files}, {sent}, "
        f"{c.rejected:,} rejected, {c.already_delivered + c.unchanged_rows:,} already delivered"
        f"{f' ({c.unchanged_rows:,} rows unchanged)' if c.unchanged_rows else ''}; {report}"
    )


def describe_reconcile(result: ReconcileResult) -> list[str]:
    """What reconcile found and did, in a few lines."""
    f = result.found
    lines = [
        f"{result.tenant}: reconcile {result.status} - Kore has {f.in_kore:,} contacts, the state "
        f"knows {f.in_state:,}: {f.missing:,} missing from Kore, {f.unknown:,} unknown to the "
        f"state ({f.unknown_in_source:,} of them in the source), {f.names_differ:,} with other "
        "names"
    ]
    if result.applied:
        lines.append(
            f"{result.tenant}: applied - {f.recreated:,} created again, {f.adopted:,} adopted, "
            f"{f.corrected:,} names corrected, {f.held_back:,} held back"
        )
    elif f.missing or f.unknown_in_source or f.names_differ:
        lines.append(f"{result.tenant}: run 'reconcile --apply' to bring Kore back in line")
    if result.report_dir:
        lines.append(f"{result.tenant}: report: {result.report_dir}")
    return lines


def say(
    text: str,
    *,
    result: RunResult | None = None,
    details: dict[str, Any] | None = None,
    error: bool = False,
    level: str = "info",
) -> None:
    """A line for the user: as it is, or as a JSON object in JSON mode (with ``details``)."""
    stream = sys.stderr if error else sys.stdout
    if logs.current_format() != "json":
        print(text, file=stream, flush=True)
        return
    entry: dict[str, Any] = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "message": text,
    }
    if result is not None:
        entry |= {
            "tenant": result.tenant,
            "run_id": result.run_id,
            "status": result.status,
            "counters": result.counters.as_dict(),
            "report": str(result.report_dir) if result.report_dir else None,
        }
    entry |= details or {}
    print(json.dumps(entry, ensure_ascii=False), file=stream, flush=True)


def print_error(exc: ConnectorError, *, verbose: bool) -> None:
    say(f"error: {exc.message}", error=True, level="error")
    if exc.hint:
        say(f"hint: {exc.hint}", error=True, level="error")
    if verbose and exc.__cause__ is not None:
        log.debug("cause", exc_info=exc.__cause__)


def status_of(store: Store, name: str, tenant: TenantSettings) -> dict[str, Any]:
    """One tenant's status as plain data: ``status`` prints it, ``status --json`` dumps it.

    A run still marked ``running`` whose process no longer holds the lease (it died, or lost
    the lease) is shown as ``abandoned``; the next run of the tenant records it so.
    """
    state = store.tenant(name)
    last = state.last_run()
    lease = store.leases.current(name)
    held = lease is not None and lease.held
    run: dict[str, Any] | None = None
    if last is not None:
        status = last.status
        if status == "running" and not (held and lease is not None and lease.holder == last.holder):
            status = "abandoned"
        run = {
            "id": last.id,
            "status": status,
            "started_at": last.started_at.isoformat(timespec="seconds"),
            "finished_at": last.finished_at.isoformat(timespec="seconds")
            if last.finished_at
            else None,
            "counters": last.counters,
            "error": last.error,
        }
    return {
        "last_run": run,
        "delivered": state.delivered_count(),
        "pending": state.pending_count(),
        "next_run": next_run(tenant, last.started_at if last else None),
        "lease": {
            "holder": lease.holder,
            "token": lease.token,
            "expires_at": lease.expires_at.isoformat(timespec="seconds"),
        }
        if held and lease is not None
        else None,
    }


def next_run(tenant: TenantSettings, last_start: datetime | None) -> str:
    now = datetime.now(UTC)
    schedule = tenant.schedule
    if schedule.cron:
        from apscheduler.triggers.cron import CronTrigger

        fire = CronTrigger.from_crontab(schedule.cron, timezone=UTC).get_next_fire_time(None, now)
        return f"{fire.isoformat(timespec='seconds')} (cron {schedule.cron}, when the daemon runs)"
    every = schedule.every or timedelta(minutes=15)
    due = max(now, last_start + every) if last_start else now
    return f"{due.isoformat(timespec='seconds')} (every {duration(every)}, when the daemon runs)"


def duration(span: timedelta) -> str:
    """``15m``, ``2h``, ``1d`` or ``90s``: the way the config file writes it."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def records(args: argparse.Namespace) -> bool:
    """Whether a command logs its run's records: always in JSON mode, with -v in text mode."""
    return logs.current_format() == "json" or bool(getattr(args, "verbose", False))
