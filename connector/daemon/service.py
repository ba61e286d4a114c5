"""``kore-connector daemon``: every tenant on its schedule until SIGTERM or SIGINT.

APScheduler (3.x, a background scheduler, jobs in memory) fires each tenant's job on its
trigger: one run per tenant at a time (``max_instances=1``), missed runs coalesced into one, and
a misfire grace of one period unless the schedule sets another. Nothing of the schedule outlives
the process; what a restart needs to know is in the state database, and each turn reads it there,
whoever wrote it (this process, an earlier one, a replica, a ``sync``):

- a tenant whose lease another process holds is skipped this turn;
- a tenant whose last run left work undone (``interrupted``, ``abandoned``, still ``running``
  with its holder gone, or rows in flight, as a ``failed`` run may leave) runs at once;
- otherwise a tenant whose last run started less than half a period ago is skipped, so N
  replicas keep one schedule between them.

A tenant's first turn in this process (at start, or when a reload adds it or changes its
schedule) comes at once for an interval schedule, and for a cron schedule when its work is
unfinished. A first turn that finds the lease held comes once more just after the lease expires
(where no lock tells that a holder died, a dead one, such as this daemon's previous process,
holds it until then); one that finds a recent run moves the next turn to a period after that
run, so a restart keeps the schedule. Every skipped turn is logged at INFO with its reason, APScheduler's own skips too.
The gauges that describe a tenant (last success, contacts delivered, in flight) are set from the
state at start and at every turn, so ``/metrics`` shows them from the first scrape.

SIGTERM/SIGINT stop scheduling, tell every run to stop at its next batch boundary, wait up to
``daemon.stop_grace_seconds`` for them to record themselves as ``interrupted`` and release their
leases, and exit 0. A run still in an upload when the grace ends is left as it is: the process
exits, its batch stays in flight for the next run to re-send, and its lease expires.
SIGHUP reloads the configuration and mappings; an invalid one is refused in one log line and
the one loaded before is kept.
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

from connector.daemon.http import HealthServer
from connector.daemon.metrics import Metrics
from connector.errors import ConnectorError, TenantBusy
from connector.mapping import load_mapping
from connector.settings import ScheduleSettings, Settings, TenantSettings, load_settings
from connector.state import PROCESS_ID, LeaseInfo, Store
from connector.state.history import History, histories
from connector.sync.context import Event, LeaseChanged, Observer, counted
from connector.sync.observers import log_event
from connector.sync.run import run_tenant

log = logging.getLogger("connector.daemon")


class Daemon:
    def __init__(self, config: Path, settings: Settings, store: Store) -> None:
        self.config = config
        self.settings = settings
        self.store = store
        self.metrics = Metrics()
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
        self._lock = threading.Lock()
        self._stopping = False

    # scheduling

    def start(self) -> None:
        self._schedule({}, self.settings)
        self.scheduler.start()
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
        """SIGHUP: read the config and every mapping again; keep the old ones if anything is wrong."""
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
        self.settings = fresh
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
        except ConnectorError as exc:
            log.error("tenant %s: %s", name, exc.message)
        except Exception:  # a bug must not stop the other tenants' schedules
            log.exception("tenant %s: internal error", name)

    def _turn(self, name: str, settings: Settings, *, first: bool) -> None:
        """Skip this turn, saying why, or run the tenant; then show what the state holds."""
        history = histories(self.store, [name])[name]
        self.metrics.restore(history)
        undone = _unfinished(history)
        if undone is None:
            recent = self._recent(name, history, settings.tenants[name].schedule, first=first)
            if recent is not None:
                _skipped(name, recent)
                return
        stop = threading.Event()
        with self._lock:
            stopping = self._stopping
            if not stopping:
                self._running[name] = stop
        if stopping:
            _skipped(name, "the daemon is stopping")
            return
        observers: list[Observer] = [log_event, self.metrics.observe]
        if undone is not None:
            observers.insert(0, _resuming(undone))
        try:
            run_tenant(
                self.store,
                name,
                settings=settings,
                base_dir=self.config.parent,
                stop=stop,
                observers=observers,
            )
        except TenantBusy:
            locks = settings.daemon.lease_locks
            again = first and not self.store.leases.notices_death(locks=locks)
            self._busy(name, self.store.leases.current(name), again=again)
            return
        finally:
            with self._lock:
                self._running.pop(name, None)
        self.metrics.restore(histories(self.store, [name])[name])

    def _busy(self, name: str, lease: LeaseInfo | None, *, again: bool) -> None:
        """Skip a turn whose lease another process holds. ``again`` (a first turn): come back
        just after the lease expires, since where no lock tells that a holder died (MySQL,
        ``daemon.lease_locks: false``) a dead one keeps it until then, and its run is for this
        daemon to resume; a live holder will have renewed it, and that turn is skipped too."""
        if lease is None or not lease.held:
            _skipped(name, "another process took its lease a moment ago")
            return
        _skipped(
            name,
            f"another process runs it (lease held by {lease.holder} "
            f"until {lease.expires_at:%H:%M:%S} UTC)",
        )
        if again:
            at = max(lease.expires_at, datetime.now(UTC)) + timedelta(seconds=1)
            if self._move(name, at):
                log.info(
                    "one more turn at %s UTC, after that lease expires",
                    f"{at:%H:%M:%S}",
                    extra={"tenant": name},
                )

    def _recent(
        self, name: str, history: History, schedule: ScheduleSettings, *, first: bool
    ) -> str | None:
        """Why the tenant is not due (its last run started less than half a period ago), or
        None. A first turn on an interval schedule moves the next turn to a period after that
        run: a restart does not push the schedule back by the time the daemon was down."""
        last = history.last_run
        if last is None:
            return None
        now = datetime.now(UTC)
        ago = now - last.started_at
        if ago >= _period(schedule) / 2:
            return None
        job = self.scheduler.get_job(name)
        due: datetime | None = job.next_run_time if job is not None else None
        if (
            first
            and schedule.every is not None
            and self._move(name, last.started_at + schedule.every)
        ):
            due = last.started_at + schedule.every
        until = f", next due in {_span(due - now)}" if due is not None else ""
        return f"it ran {_span(ago)} ago ({last.status}){until}"

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

    # stopping

    def stop(self, grace: float) -> bool:
        """Stop scheduling, ask every run to stop, and wait for them; False if the grace ran out."""
        with self._lock:
            self._stopping = True
            running = dict(self._running)
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
            time.sleep(0.05)
        with self._lock:
            left = sorted(self._running)
        if left:
            log.error(
                "%s %s still in an upload after %.0fs; exiting anyway: the batch in flight "
                "is re-sent by the next run and the lease expires by itself",
                "tenant" if len(left) == 1 else "tenants",
                ", ".join(left),
                grace,
            )
            return False
        return True


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


def _skipped(name: str, why: str) -> None:
    log.info("turn skipped: %s", why, extra={"tenant": name})


def _span(span: timedelta) -> str:
    """``40s``, ``14m 20s``, ``2h 5m``: an age or a wait as an operator reads it."""
    seconds = max(0, round(span.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


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
    settings = load_settings(config)
    for tenant in settings.tenants.values():
        load_mapping(tenant.mapping, base=config.parent)
    store = Store(settings.state_url)
    daemon = Daemon(config, settings, store)
    health = None
    if listen:
        health = HealthServer(
            listen, ping=store.ping, ready=daemon.ready, registry=daemon.metrics.registry
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
