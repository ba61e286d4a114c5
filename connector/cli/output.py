"""What the commands print: run summaries, errors and ``status``, as text or (with
``--log-format json``) as one JSON object a line, so that everything a process prints parses;
and the documents ``--json`` prints instead, one a command.

Counts in text carry thousands separators and the plural only when it is one (``counted``)."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from connector import logs
from connector.errors import ConnectorError

if TYPE_CHECKING:
    from connector.settings import ScheduleSettings, TenantSettings
    from connector.state import Store
    from connector.state.tenant import RunRecord
    from connector.sync.reconcile import ReconcileResult
    from connector.sync.run import RunResult

log = logging.getLogger("connector")


def describe(result: RunResult, *, dry_run: bool, full: bool = False) -> str:
    """A run's summary line. Its parts add up: every row read (and every row re-sent from an
    earlier run) is sent or would be, rejected, already delivered, or not sent yet."""
    from connector.sync.context import counted

    c = result.counters
    read = f"{counted(c.rows_read, 'row')} read"
    if full and c.files_read:
        read += f" (re-read {counted(c.files_read, 'file')})"
    elif c.files_read:
        read += f" from {counted(c.files_read, 'new file')}"
    elif c.files_seen:
        read += " (no new file)"
    if c.files_waiting:
        read += f" ({counted(c.files_waiting, 'file')} still being written: read next run)"
    if c.unsafe_paths:
        read += (
            f" ({counted(c.unsafe_paths, 'file')} not read: outside the export folder"
            " or not a regular file)"
        )
    changes: tuple[tuple[str, int], ...]
    if dry_run:
        sent = f"{c.would_send:,} would be sent in {counted(c.batches, 'batch file')}"
        changes = (
            ("would update", c.would_update),
            ("would delete", c.would_delete),
            ("removals held back", c.removal_held_back),
        )
    else:
        outcomes = (
            ("created", c.created),
            ("adopted", c.adopted),
            ("already in Kore", c.already_in_kore),
            ("refused by Kore", c.kore_refused),
        )
        parts = ", ".join(f"{n:,} {what}" for what, n in outcomes if n)
        if c.pending_resent:
            parts += f"; {c.pending_resent:,} of them left in flight by an earlier run"
        sent = f"{c.sent:,} sent" + (f" ({parts})" if parts else "")
        changes = (
            ("updated", c.updated),
            ("update refused by Kore", c.update_refused),
            ("deleted", c.deleted),
            ("removals held back", c.removal_held_back),
        )
    delivered = f"{c.already_delivered + c.unchanged_rows:,} already delivered"
    if c.unchanged_rows:
        delivered += f" ({counted(c.unchanged_rows, 'row')} unchanged)"
    rejected = f"{c.rejected:,} rejected"
    if c.rejected_known:
        rejected += f" ({counted(c.rejected_known, 'row')} unchanged, rejected as before)"
    unsent = f", {c.unsent:,} not sent yet" if c.unsent else ""
    done = "".join(f", {n:,} {what}" for what, n in changes if n)
    if c.rate_limited:
        done += f", {c.rate_limited:,} rate limited by Kore ({c.waited_seconds:,.0f}s paced)"
    report = (
        f"report: {result.report_dir}"
        if result.report_dir
        else "no report (nothing was read or sent)"
        if result.status == "completed"
        else "no report"
    )
    return (
        f"{result.tenant}: {result.status} - {read}, {sent}, {rejected}, "
        f"{delivered}{unsent}{done}; {report}"
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


def _ending(status: str, error: ConnectorError | None) -> dict[str, str | None]:
    """How a run ended, for a document: an interruption is not an error, and says so."""
    interrupted = status == "interrupted"
    return {
        "error": error.message if error and not interrupted else None,
        "hint": error.hint if error and not interrupted else None,
        "interruption": error.message if error and interrupted else None,
    }


def run_document(result: RunResult, *, dry_run: bool) -> dict[str, Any]:
    """One tenant's run, as ``sync --json`` gives it."""
    return {
        "run_id": result.run_id,
        "status": result.status,
        "dry_run": dry_run,
        "counters": result.counters.as_dict(),
        "warnings": list(result.warnings),
        **_ending(result.status, result.error),
        "report": str(result.report_dir) if result.report_dir else None,
    }


def reconcile_document(result: ReconcileResult) -> dict[str, Any]:
    """One tenant's reconcile, as ``reconcile --json`` gives it."""
    return {
        "run_id": result.run_id,
        "status": result.status,
        "applied": result.applied,
        "found": result.found.as_dict(),
        "warnings": list(result.warnings),
        **_ending(result.status, result.error),
        "report": str(result.report_dir) if result.report_dir else None,
    }


def not_run_document(error: ConnectorError | None) -> dict[str, Any]:
    """A tenant whose turn began no run: refused (``failed``: another process holds it, the
    state could not be used), or ``skipped`` because a signal stopped the command first."""
    return {
        "run_id": None,
        "status": "failed" if error else "skipped",
        "counters": None,
        "warnings": [],
        "error": error.message if error else None,
        "hint": error.hint if error else None,
        "interruption": None if error else "not run: the command was stopped before its turn",
        "report": None,
    }


def say(
    text: str,
    *,
    result: RunResult | None = None,
    details: dict[str, Any] | None = None,
    error: bool = False,
    level: str = "info",
) -> None:
    """A line for the user: one line of text, or a JSON object in JSON mode (with ``details``).
    In text the line passes through ``logs.printable``: a line break, an escape sequence or a
    bidirectional override in a file name, header or cell it quotes is shown as ``\\n``,
    ``\\x1b`` or ``\\u202e``, never acted on."""
    stream = sys.stderr if error else sys.stdout
    if logs.current_format() != "json":
        print(logs.printable(text), file=stream, flush=True)
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
    print(logs.json_line(entry), file=stream, flush=True)


def print_error(exc: ConnectorError, *, verbose: bool) -> None:
    say(f"error: {exc.message}", error=True, level="error")
    if exc.hint:
        say(f"hint: {exc.hint}", error=True, level="error")
    if verbose and exc.__cause__ is not None:
        log.debug("cause", exc_info=exc.__cause__)


def status_of(store: Store, name: str, tenant: TenantSettings, *, locks: bool) -> dict[str, Any]:
    """One tenant's status as plain data: ``status`` prints it, ``status --json`` dumps it.

    ``last_delivery`` is the newest run that changed Kore: a quiet turn since (a run that found
    nothing new) must not hide when contacts last went out. A run still marked ``running``
    whose process no longer holds the lease (it died, or lost the lease) is shown as
    ``abandoned``; the next run of the tenant records it so. A lease whose holder died is shown
    as held by nobody where its lock tells (``locks``: ``daemon.lease_locks``), as the next run
    takes the tenant at once. ``last_check`` is when the newest
    run started, the runs that found nothing new (and left no record) included.
    """
    from connector.state.tenant import last_delivery

    state = store.tenant(name)
    last = state.last_run()
    checked = state.last_check()
    delivery = last_delivery(state)
    lease = store.leases.current(name)
    if lease is not None and store.leases.holder_gone(name, lease, locks=locks):
        lease = None
    holder = lease.holder if lease is not None and lease.held else None

    def shown(record: RunRecord | None) -> dict[str, Any] | None:
        if record is None:
            return None
        status = record.status
        if status == "running" and (holder is None or record.holder != holder):
            status = "abandoned"
        interrupted = status == "interrupted"
        return {
            "id": record.id,
            "status": status,
            "started_at": record.started_at.isoformat(timespec="seconds"),
            "finished_at": record.finished_at.isoformat(timespec="seconds")
            if record.finished_at
            else None,
            "counters": record.counters,
            "error": None if interrupted else record.error,
            "interruption": record.error if interrupted else None,
        }

    pending = state.pending_count()
    unfinished = pending > 0 or (
        last is not None and (shown(last) or {}).get("status") in ("interrupted", "abandoned")
    )
    # A daemon resumes unfinished work as soon as it can, whatever the schedule says.
    due = datetime.now(UTC) if unfinished else next_run(tenant.schedule, checked)
    return {
        "last_run": shown(last),
        "last_delivery": shown(delivery),
        "last_check": checked.isoformat(timespec="seconds") if checked else None,
        "delivered": state.delivered_count(),
        "pending": pending,
        "schedule": schedule_of(tenant.schedule),
        "next_run": due.isoformat(timespec="seconds") if due else None,
        "lease": {
            "holder": lease.holder,
            "token": lease.token,
            "expires_at": lease.expires_at.isoformat(timespec="seconds"),
        }
        if lease is not None and lease.held
        else None,
    }


def schedule_of(schedule: ScheduleSettings) -> dict[str, str]:
    """A tenant's schedule the way the config file writes it: ``{"every": "15m"}`` or
    ``{"cron": "*/15 * * * *"}``, with its ``jitter`` when it has one."""
    when = {"cron": schedule.cron} if schedule.cron else {"every": duration(_period(schedule))}
    return when | ({"jitter": duration(schedule.jitter)} if schedule.jitter else {})


def next_run(schedule: ScheduleSettings, last_start: datetime | None) -> datetime | None:
    """When a daemon would run the tenant next: one period after its last run began (now, when
    that is past), or the cron's next time; None when the cron has no next time."""
    now = datetime.now(UTC)
    if schedule.cron:
        from apscheduler.triggers.cron import CronTrigger

        fire: datetime | None = CronTrigger.from_crontab(
            schedule.cron, timezone=UTC
        ).get_next_fire_time(None, now)
        return fire
    return max(now, last_start + _period(schedule)) if last_start else now


def _period(schedule: ScheduleSettings) -> timedelta:
    return schedule.every or timedelta(minutes=15)


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
