"""``kore-connector daemon``: every tenant on its schedule until SIGTERM or SIGINT.

APScheduler (3.x, a background scheduler, jobs in memory) fires each tenant's job on its
trigger: one run per tenant at a time (``max_instances=1``), missed runs coalesced into one, and
a misfire grace of one period unless the schedule sets another. Nothing of the schedule outlives
the process; what a restart needs to know is in the state database, and each turn reads it there,
whoever wrote it (this process, an earlier one, a replica, a ``sync``):

- a tenant whose lease another process holds is skipped this turn, and tried again soon (below);
- a tenant whose last run left work undone (``interrupted``, ``abandoned``, still ``running``
  with its holder gone, or rows in flight, as a ``failed`` run may leave) runs at once;
- otherwise a tenant whose last run started less than half a period ago (by the state
  database's clock, runs that found nothing new and left no record included) is skipped, so N
  replicas keep one schedule between them.

A tenant's first turn in this process (at start, or when a reload adds it or changes its
schedule) comes at once for an interval schedule, and for a cron schedule when its work is
unfinished; one that finds a recent run moves the next turn to a period after that run, so a
restart keeps the schedule. A turn that finds the lease held comes back soon, whatever the
schedule, until the tenant is free: every ``BUSY_RETRY`` where a lock tells at once that a
holder died (its tenant, unfinished, is then this daemon's to resume within seconds), just after
the lease expires where none does (MySQL, ``daemon.lease_locks: false``). Every skipped turn is
logged at INFO with its reason, APScheduler's own skips too; a tenant found busy again and again
is said once. The gauges that describe a tenant (last success, last check, contacts delivered,
in flight) are set from the state at start and at every turn, so ``/metrics`` shows them from
the first scrape.

Beside the turns, an upkeep thread measures this machine's clock against the state database's
(``daemon.clock``: past ``daemon.max_clock_skew_seconds`` the daemon takes no lease) and prunes
old run records and settled batches (``state.pruning``, every ``PRUNE_SECONDS``, the first time
at start). A state database or a Kore host that stops answering is one outage in the log, two
lines, not one line a turn (``daemon.outages``).

SIGTERM/SIGINT stop scheduling, tell every run to stop at its next batch boundary, wait up to
``daemon.stop_grace_seconds`` for them to record themselves as ``interrupted`` and release their
leases, and exit 0. A run still in an upload when the grace ends is left as it is: the process
exits, its batch stays in flight for the next run to re-send, and its lease is free once the
process is gone (at expiry where no lock tells).
SIGHUP reloads the configuration and mappings; an invalid one is refused in one log line and
the one loaded before is kept. A tenant the new configuration removes stops at its next batch
boundary (``interrupted``, its lease released), and its series leave ``/metrics``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector import logs
from connector.daemon.clock import CHECK_SECONDS, ClockWatch
from connector.daemon.http import HealthServer, probe_check
from connector.daemon.metrics import Metrics
from connector.daemon.outages import Outage, span
from connector.errors import ConnectorError, KoreUnavailable, TenantBusy
from connector.mapping import load_mapping
from connector.settings import ScheduleSettings, Settings, TenantSettings, load_settings
from connector.state import PROCESS_ID, LeaseInfo, StateUnavailable, Store
from connector.state.history import History, histories
from connector.state.pruning import prune_once
from connector.sync.context import (
    Event,
    KoreAnswered,
    LeaseChanged,
    Observer,
    RunFinished,
    counted,
)
from connector.sync.observers import log_event
from connector.sync.run import run_tenant

log = logging.getLogger("connector.daemon")

BUSY_RETRY = timedelta(seconds=5)
"""How soon a turn that found the tenant busy comes back, where a lock tells that a holder
died: a dead replica's tenants move within seconds, whatever their schedule."""
PRUNE_SECONDS = 300.0
"""How often old run records and settled batches are pruned (the first time at start)."""


class Daemon:
    def __init__(self, config: Path, settings: Settings, store: Store) -> None:
        self.config = config
        self.settings = settings
        self.store = store
        self.metrics = Metrics()
        self.clock = ClockWatch(store, max_skew=settings.daemon.max_clock_skew_seconds)
        self.state_outage = Outage("the state database")
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(settings.daemon.workers)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self.scheduler.add_listener(self._not_started, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        # _not_started says the same at INFO, with the tenant: APScheduler's own WARNING
        # lines for these skips (and their job reprs) would say it twice, louder.
        for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self._running: dict[str, threading.Event] = {}
        self._first_turns: set[str] = set()
        """Tenants whose next turn is their first in this process (see the module's docstring)."""
        self._waiting: set[str] = set()
        """Tenants found busy and tried again soon: said at INFO once, then at DEBUG."""
        self._kore_outages: dict[str, Outage] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._quit = threading.Event()
        self._upkeep = threading.Thread(target=self._keep_up, name="upkeep", daemon=True)

    # scheduling

    def start(self) -> None:
        self._measure_clock()  # before the first turn: a clock that is off takes no lease
        self._schedule({}, self.settings)
        self.scheduler.start()
        self._upkeep.start()
        log.info(
            "daemon %s started: %s, state %s",
            PROCESS_ID,
            counted(len(self.settings.tenants), "tenant"),
            self.store.label,
        )

    def ready(self) -> bool:
        return bool(self.scheduler.running) and not self._stopping

    def _schedule(self, before: Mapping[str, TenantSettings], after: Settings) -> None:
        for name in before.keys() - after.tenants.keys():
            self.scheduler.remove_job(name)
            with self._lock:
                self._first_turns.discard(name)
                self._waiting.discard(name)
                running = name in self._running
            if running:
                log.info("tenant %s removed: its run stops at its next batch boundary", name)
            else:
                self.metrics.forget(name)
                log.info("tenant %s removed", name)
        changed = [
            name
            for name, tenant in after.tenants.items()
            if name not in before or before[name].schedule != tenant.schedule
        ]
        known = self._histories([name for name in changed if name not in before])
        for name in changed:
            tenant = after.tenants[name]
            history = known.get(name)
            if history is not None:
                self.metrics.restore(history)
            undone = _unfinished(history) if history is not None else None
            at_once = tenant.schedule.every is not None or undone is not None
            trigger, grace = _trigger(tenant.schedule)
            if at_once:
                with self._lock:
                    self._first_turns.add(name)
            self.scheduler.add_job(
                self._job,
                trigger,
                args=[name],
                id=name,
                name=name,
                replace_existing=True,
                misfire_grace_time=grace,
                **({"next_run_time": datetime.now(UTC)} if at_once else {}),
            )
            self.metrics.known(name)
            log.info(
                "tenant %s %s: %s%s",
                name,
                "rescheduled" if name in before else "scheduled",
                _describe(tenant.schedule),
                "; its work is unfinished, a turn comes at once"
                if undone is not None and tenant.schedule.every is None
                else "",
            )

    def _histories(self, names: Sequence[str]) -> dict[str, History]:
        """What the state remembers of ``names``; nothing when the state database does not
        answer (each turn reads it again, so only the gauges and a cron tenant's unfinished
        work wait for that)."""
        try:
            return histories(self.store, names)
        except ConnectorError as exc:
            log.warning("the state of %s could not be read: %s", ", ".join(names), exc.message)
            return {}

    def reload(self) -> None:
        """SIGHUP: read the config and every mapping again; keep the old ones if anything is
        wrong. A run of a tenant the new config removes is told to stop at its next batch
        boundary."""
        try:
            fresh = load_settings(self.config)
            for tenant in fresh.tenants.values():
                load_mapping(tenant.mapping, base=self.config.parent)
        except ConnectorError as exc:
            log.error("reload refused, the configuration loaded before stays: %s", exc.message)
            return
        if fresh.state_url != self.settings.state_url:
            log.error("reload refused: state_url cannot change while running; restart the daemon")
            return
        before = self.settings.tenants
        with self._lock:
            self.settings = fresh
            stops = [
                self._running[name]
                for name in before.keys() - fresh.tenants.keys()
                if name in self._running
            ]
        for stop in stops:
            stop.set()
        self._schedule(before, fresh)
        log.info("configuration reloaded: %s", counted(len(fresh.tenants), "tenant"))

    # one turn of one tenant

    def _job(self, name: str) -> None:
        settings = self.settings
        if name not in settings.tenants:
            return  # removed by a reload while this turn waited for a worker
        with self._lock:
            first = name in self._first_turns
            self._first_turns.discard(name)
            stopping = self._stopping
        if stopping:
            _skipped(name, "the daemon is stopping")
            return
        try:
            self._turn(name, settings, first=first)
        except StateUnavailable as exc:
            self.state_outage.failed(exc.message)
        except ConnectorError as exc:
            log.error("tenant %s: %s", name, exc.message)
        except Exception:  # a bug must not stop the other tenants' schedules
            log.exception("tenant %s: internal error", name)

    def _turn(self, name: str, settings: Settings, *, first: bool) -> None:
        """Skip this turn, saying why, or run the tenant; then show what the state holds."""
        off = self.clock.off
        if off is not None:  # said once, by the clock's watch
            log.debug("turn skipped: %s", off, extra={"tenant": name})
            return
        history = histories(self.store, [name])[name]
        self.state_outage.answered()
        self.metrics.restore(history)
        undone = _unfinished(history)
        if undone is None:
            recent = self._recent(name, history, settings.tenants[name].schedule, first=first)
            if recent is not None:
                with self._lock:
                    self._waiting.discard(name)
                _skipped(name, recent)
                return
        stop = threading.Event()
        with self._lock:
            why = "the daemon is stopping" if self._stopping else None
            if name not in self.settings.tenants:
                why = "a reload removed the tenant"
            if why is None:
                self._running[name] = stop
        if why is not None:
            _skipped(name, why)
            return
        run_log = _RunLog(self, name, settings.tenants[name].kore.host)
        observers: list[Observer] = [run_log, self.metrics.observe]
        if undone is not None:
            observers.insert(0, _resuming(undone))
        status, folded = None, False
        try:
            result = run_tenant(
                self.store,
                name,
                settings=settings,
                base_dir=self.config.parent,
                stop=stop,
                observers=observers,
            )
            status = result.status
            run_log.ended(result.error)
        except TenantBusy:
            self._busy(name, self.store.leases.current(name), locks=settings.daemon.lease_locks)
            return
        finally:
            with self._lock:
                self._running.pop(name, None)
                removed = name not in self.settings.tenants
            folded = run_log.flush()
            if removed:
                self.metrics.forget(name)
                if status is not None:
                    log.info("tenant %s removed: its run ended %s", name, status)
        with self._lock:
            self._waiting.discard(name)
        if not removed and not folded:
            self.metrics.restore(histories(self.store, [name])[name])

    def _busy(self, name: str, lease: LeaseInfo | None, *, locks: bool) -> None:
        """Skip a turn whose lease another process holds, and come back soon rather than at
        the next scheduled turn: while the holder lives, those turns are skipped too; once it
        dies, its tenant (whose run it left unfinished) is this daemon's to resume, whatever
        the schedule. Where a lock tells that a holder died, that is known at once: back in
        ``BUSY_RETRY``; where none does (MySQL, ``daemon.lease_locks: false``) only at
        expiry: back just after it. Said at INFO once while the tenant stays busy."""
        held = lease is not None and lease.held
        if lease is not None and held:
            why = (
                f"another process runs it (lease held by {lease.holder} "
                f"until {lease.expires_at:%H:%M:%S} UTC)"
            )
        else:
            why = "another process took its lease a moment ago"
        if lease is not None and held and not self.store.leases.notices_death(locks=locks):
            wait = lease.remaining + timedelta(seconds=1)
            then = "one more turn just after that lease expires"
        else:
            wait = BUSY_RETRY
            then = f"tried again every {span(BUSY_RETRY)} while it is held"
        at = datetime.now(UTC) + wait
        job = self.scheduler.get_job(name)
        due = job.next_run_time if job is not None else None
        if due is None or (due > at and not self._move(name, at)):
            _skipped(name, why)  # removed by a reload, or the daemon is stopping
            return
        with self._lock:
            again = name in self._waiting
            self._waiting.add(name)
        _skipped(name, f"{why}; {then}", level=logging.DEBUG if again else logging.INFO)

    def _recent(
        self, name: str, history: History, schedule: ScheduleSettings, *, first: bool
    ) -> str | None:
        """Why the tenant is not due (its newest run, recorded or not, started less than half
        a period ago by the state database's clock), or None. A first turn on an interval
        schedule moves the next turn to a period after that run: a restart does not push the
        schedule back by the time the daemon was down."""
        last = history.last_check
        if last is None:
            return None
        ago = history.read_at - last
        if ago >= _period(schedule) / 2:
            return None
        skew = datetime.now(UTC) - history.read_at  # the scheduler runs on this clock
        job = self.scheduler.get_job(name)
        due: datetime | None = job.next_run_time if job is not None else None
        if first and schedule.every is not None:
            after = last + schedule.every + skew
            if self._move(name, after):
                due = after
        until = f", next due in {span(due - datetime.now(UTC))}" if due is not None else ""
        recorded = history.last_run is not None and history.last_run.started_at == last
        what = history.last_run.status if history.last_run and recorded else "found nothing new"
        return f"it ran {span(ago)} ago ({what}){until}"

    def _move(self, name: str, at: datetime) -> bool:
        """Move the tenant's next turn to ``at``; later turns follow from there. False when the
        tenant is no longer scheduled (a reload removed it, or the daemon is stopping)."""
        try:
            self.scheduler.modify_job(name, next_run_time=at)
        except JobLookupError:
            return False
        return True

    def _not_started(self, event: Any) -> None:
        """Turns APScheduler skips before they reach ``_job``, logged like the others."""
        if event.code == EVENT_JOB_MAX_INSTANCES:
            _skipped(event.job_id, "its run from an earlier turn is still going")
        else:
            _skipped(
                event.job_id,
                f"it was due at {event.scheduled_run_time:%H:%M:%S} UTC and no worker was free "
                "within its misfire grace",
            )

    def outage_of(self, error: ConnectorError | None, host: str) -> Outage | None:
        """The outage that explains a run's failure: the state database's, or Kore's at
        ``host``; None for a failure of the tenant's own."""
        if isinstance(error, StateUnavailable):
            return self.state_outage
        if isinstance(error, KoreUnavailable):
            return self.kore_outage(host)
        return None

    def kore_outage(self, host: str) -> Outage:
        with self._lock:
            return self._kore_outages.setdefault(host, Outage(f"Kore at {host}"))

    # upkeep

    def _keep_up(self) -> None:
        """The clock measured every ``CHECK_SECONDS``, history pruned every
        ``PRUNE_SECONDS`` (at once the first time), until the daemon stops."""
        clock_due = time.monotonic() + CHECK_SECONDS
        prune_due = time.monotonic()
        while True:
            if time.monotonic() >= prune_due:
                self._prune()
                prune_due = time.monotonic() + PRUNE_SECONDS
            if time.monotonic() >= clock_due:
                self._measure_clock()
                clock_due = time.monotonic() + CHECK_SECONDS
            if self._quit.wait(max(0.0, min(clock_due, prune_due) - time.monotonic())):
                return

    def _measure_clock(self) -> None:
        try:
            self.clock.measure()
        except StateUnavailable as exc:
            self.state_outage.failed(exc.message, turn=False)
        except ConnectorError as exc:
            log.warning(
                "this machine's clock could not be compared with the state database's: %s",
                exc.message,
            )
        else:
            self.state_outage.answered()

    def _prune(self) -> None:
        """Delete run records and settled batches older than ``runs_keep_days`` (by default
        ``reports_keep_days``); not while this machine's clock is off, which takes no lease."""
        settings = self.settings
        keep = settings.runs_keep_days
        if keep is None:
            keep = settings.reports_keep_days
        if self.clock.off is not None or keep == 0:
            return
        try:
            pruned = prune_once(
                self.store,
                keep_days=keep,
                seconds=settings.daemon.lease_seconds,
                locks=settings.daemon.lease_locks,
            )
        except StateUnavailable as exc:
            self.state_outage.failed(exc.message, turn=False)
            return
        except ConnectorError as exc:
            log.warning("old runs could not be pruned: %s", exc.message)
            return
        if pruned is not None and (pruned.runs or pruned.batches):
            log.info(
                "pruned %s and %s older than %s (runs_keep_days)",
                counted(pruned.runs, "run record"),
                counted(pruned.batches, "settled batch"),
                counted(keep, "day"),
            )

    # stopping

    def stop(self, grace: float) -> bool:
        """Stop scheduling, ask every run to stop, and wait for them; False if the grace ran out."""
        with self._lock:
            self._stopping = True
            running = dict(self._running)
        self._quit.set()
        self.scheduler.shutdown(wait=False)
        for stop in running.values():
            stop.set()
        if running:
            log.info("stopping: waiting up to %.0fs for %s", grace, ", ".join(sorted(running)))
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    return True
            self._quit.wait(0.05)
        with self._lock:
            left = sorted(self._running)
        if left:
            log.error(
                "%s %s still in an upload after %.0fs; exiting anyway: the batch in flight "
                "is re-sent by the next run, and the lease is free once this process is gone",
                "tenant" if len(left) == 1 else "tenants",
                ", ".join(left),
                grace,
            )
            return False
        return True


class _RunLog:
    """A run's events to the log, as ``log_event`` writes them, but a failed run's last events
    (its end, its lease let go) wait until its error is known: a failure that an outage
    explains (``Daemon.outage_of``) is counted into that outage's two lines instead, at DEBUG.
    A Kore answer ends an outage of Kore at the tenant's host."""

    def __init__(self, daemon: Daemon, tenant: str, host: str) -> None:
        self._daemon = daemon
        self._tenant = tenant
        self._host = host
        self._held: list[Event] = []
        self._error: ConnectorError | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, KoreAnswered) and 0 < event.status < 500 and event.status != 429:
            self._daemon.kore_outage(self._host).answered()
        if self._held or (isinstance(event, RunFinished) and event.status == "failed"):
            self._held.append(event)
        else:
            log_event(event)

    def ended(self, error: ConnectorError | None) -> None:
        """The run's error, once ``run_tenant`` returned it."""
        self._error = error

    @logs.scoped
    def flush(self) -> bool:
        """Log what was held back, in the run's name, or count it into an outage (True)."""
        held, self._held = self._held, []
        if not held:
            return False
        first = held[0]
        assert isinstance(first, RunFinished)
        outage = self._daemon.outage_of(self._error, self._host)
        if outage is not None and self._error is not None:
            outage.failed(self._error.message)
            log.debug("tenant %s: run %s failed (%s)", self._tenant, first.run_id, first.error)
            return True
        logs.bind(tenant=self._tenant, run_id=first.run_id)
        for event in held:
            log_event(event)
        return False


def _unfinished(history: History) -> str | None:
    """Why the tenant's last run left work undone, or None. A run still marked ``running`` may
    be alive: the turn tries the lease, and says this only once it has it (``_resuming``), when
    the run's holder is known to be gone."""
    last = history.last_run
    pending = history.pending
    in_flight = f", {pending:,} rows in flight" if pending else ""
    if last is not None and last.status == "running":
        holder = last.holder or "a process"
        return f"its run {last.id} was left running by {holder}, which holds it no more{in_flight}"
    if last is not None and last.status in ("interrupted", "abandoned"):
        return f"its run {last.id} was {last.status}{in_flight}"
    if pending:
        after = f" after its run {last.id} ended {last.status}" if last is not None else ""
        return f"{pending:,} rows are in flight{after}"
    return None


def _resuming(why: str) -> Observer:
    """Says why a run resumes, once it holds the lease: a turn that finds the lease held is
    skipped instead, and says that."""

    def observe(event: Event) -> None:
        if isinstance(event, LeaseChanged) and event.held:
            log.info("resuming at once: %s", why)

    return observe


def _skipped(name: str, why: str, *, level: int = logging.INFO) -> None:
    log.log(level, "turn skipped: %s", why, extra={"tenant": name})


def _trigger(schedule: ScheduleSettings) -> tuple[BaseTrigger, int]:
    jitter = int(schedule.jitter.total_seconds()) if schedule.jitter else None
    grace = int((schedule.misfire_grace or _period(schedule)).total_seconds())
    if schedule.every is not None:
        return IntervalTrigger(
            seconds=schedule.every.total_seconds(), jitter=jitter, timezone=UTC
        ), grace
    trigger = CronTrigger.from_crontab(schedule.cron or "", timezone=UTC)
    trigger.jitter = jitter
    return trigger, grace


def _period(schedule: ScheduleSettings) -> timedelta:
    if schedule.every is not None:
        return schedule.every
    trigger = CronTrigger.from_crontab(schedule.cron or "", timezone=UTC)
    first = trigger.get_next_fire_time(None, datetime.now(UTC))
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    gap: timedelta = second - first
    return max(timedelta(seconds=1), gap)


def _describe(schedule: ScheduleSettings) -> str:
    from connector.cli.output import duration

    what = f"every {duration(schedule.every)}" if schedule.every else f"cron {schedule.cron} (UTC)"
    return what + (f", jitter {duration(schedule.jitter)}" if schedule.jitter else "")


def serve(config: Path, *, listen: str | None) -> int:
    """Run until SIGTERM/SIGINT; exit 0 once runs are recorded and leases released."""
    from connector.sync.pool import start_resource_tracker

    start_resource_tracker()  # while this process has one thread
    settings = load_settings(config)
    for tenant in settings.tenants.values():
        load_mapping(tenant.mapping, base=config.parent)
    store = Store(settings.state_url)
    daemon = Daemon(config, settings, store)
    health = None
    if listen:
        health = HealthServer(
            listen,
            checks=[
                probe_check(store.ping, "state database unreachable", daemon.state_outage),
                daemon.clock.check,
            ],
            ready=daemon.ready,
            registry=daemon.metrics.registry,
            timeout=settings.daemon.listen_timeout_seconds,
        )
    wake = threading.Event()
    asked: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        asked.append(signum)
        wake.set()

    for handled in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(handled, on_signal)
    daemon.start()
    if health is not None:
        health.start()
        log.info("serving /healthz, /readyz and /metrics on http://%s", health.address)
    while True:
        wake.wait()
        wake.clear()
        while asked:
            signum = asked.pop(0)
            if signum == signal.SIGHUP:
                log.info("SIGHUP: reloading %s", config)
                daemon.reload()
                continue
            log.info("%s: stopping", signal.Signals(signum).name)
            clean = daemon.stop(daemon.settings.daemon.stop_grace_seconds)
            if health is not None:
                health.stop()
            if not clean:
                logging.shutdown()
                os._exit(0)
            store.close()
            log.info("daemon stopped")
            return 0
