"""``kore-connector daemon``: every tenant on its schedule until SIGTERM or SIGINT.

APScheduler (3.x, a background scheduler) fires each tenant's job on its trigger: one run per
tenant at a time (``max_instances=1``), missed runs coalesced into one, and a misfire grace of
one period unless the schedule sets another. A job takes the tenant's lease in the state
database; when another process (a replica, or a ``sync``) holds it, the job skips this turn. A
job also skips when a run of the tenant started less than half a period ago, by any process,
so N replicas keep one schedule between them.

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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector.daemon.http import HealthServer
from connector.daemon.metrics import Metrics
from connector.errors import ConnectorError, TenantBusy
from connector.mapping import load_mapping
from connector.settings import ScheduleSettings, Settings, load_settings
from connector.state import PROCESS_ID, Store
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
        self._running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stopping = False

    # scheduling

    def start(self) -> None:
        self._schedule({}, self.settings)
        self.scheduler.start()
        log.info(
            "daemon %s started: %d tenant(s), state %s",
            PROCESS_ID,
            len(self.settings.tenants),
            self.store.label,
        )

    def ready(self) -> bool:
        return bool(self.scheduler.running) and not self._stopping

    def _schedule(self, before: dict[str, Any], after: Settings) -> None:
        for name in before.keys() - after.tenants.keys():
            self.scheduler.remove_job(name)
            log.info("tenant %s removed", name)
        for name, tenant in after.tenants.items():
            if name in before and before[name].schedule == tenant.schedule:
                continue
            trigger, grace = _trigger(tenant.schedule)
            first = datetime.now(UTC) if tenant.schedule.every else None
            self.scheduler.add_job(
                self._job,
                trigger,
                args=[name],
                id=name,
                name=name,
                replace_existing=True,
                misfire_grace_time=grace,
                **({"next_run_time": first} if first else {}),
            )
            self.metrics.known(name)
            log.info(
                "tenant %s %s: %s",
                name,
                "rescheduled" if name in before else "scheduled",
                _describe(tenant.schedule),
            )

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
        before = dict(self.settings.tenants)
        self.settings = fresh
        self._schedule(before, fresh)
        log.info("configuration reloaded: %d tenant(s)", len(fresh.tenants))

    # one turn of one tenant

    def _job(self, name: str) -> None:
        settings = self.settings
        if name not in settings.tenants or self._stopping:
            return
        try:
            if self._ran_recently(name, settings.tenants[name].schedule):
                log.debug("tenant %s ran less than half a period ago; skipping this turn", name)
                return
            stop = threading.Event()
            with self._lock:
                if self._stopping:
                    return
                self._running[name] = stop
            try:
                run_tenant(
                    self.store,
                    name,
                    settings=settings,
                    base_dir=self.config.parent,
                    stop=stop,
                    observers=[log_event, self.metrics.observe],
                )
            finally:
                with self._lock:
                    self._running.pop(name, None)
        except TenantBusy as exc:
            log.debug("%s; skipping this turn", exc.message)
        except ConnectorError as exc:
            log.error("tenant %s: %s", name, exc.message)
        except Exception:  # a bug must not stop the other tenants' schedules
            log.exception("tenant %s: internal error", name)

    def _ran_recently(self, name: str, schedule: ScheduleSettings) -> bool:
        last = self.store.tenant(name).last_run()
        if last is None:
            return False
        return datetime.now(UTC) - last.started_at < _period(schedule) / 2

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
                "tenant(s) %s still in an upload after %.0fs; exiting anyway: the batch in flight "
                "is re-sent by the next run and the lease expires by itself",
                ", ".join(left),
                grace,
            )
            return False
        return True


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
