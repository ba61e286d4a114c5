"""Prometheus metrics, per tenant (label ``tenant``), fed by the runs' events.

Counters count what this process did since it started, as Prometheus expects. Gauges that
describe the tenant rather than this process (the last success, the last check, contacts
delivered, contacts in flight) are also set from the state database (``restore``), at start and
at every turn: a restarted daemon shows them from its first scrape, and a replica shows what
another one did, so a staleness alert has no gap. A tenant a reload removes loses every series
(``forget``) once its run has ended.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from connector.state.history import History
from connector.sync.context import Event, KoreAnswered, LeaseChanged, RunFinished

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series add only noise

ROW_OUTCOMES = (
    "rows_read",
    "sent",
    "created",
    "adopted",
    "already_delivered",
    "already_in_kore",
    "kore_refused",
    "changed_skipped",
    "updated",
    "rejected",
    "rejected_known",
    "dnc_in_kore",
    "removed",
    "removal_held_back",
    "deleted",
    "delete_failed",
    "not_ours",
)
"""The counters ``kore_connector_rows_total`` shows, as its ``outcome``. They overlap (``sent``
is ``created`` and the rest; ``rejected_known`` is part of ``rejected``): never sum them."""


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "kore_connector_runs", "Runs, by how they ended", ["tenant", "status"], registry=r
        )
        self.rows = Counter(
            "kore_connector_rows", "Rows, by outcome", ["tenant", "outcome"], registry=r
        )
        self.rejected = Counter(
            "kore_connector_rejected_rows",
            "Rejected rows, by reason",
            ["tenant", "reason"],
            registry=r,
        )
        self.in_flight = Gauge(
            "kore_connector_contacts_in_flight",
            "Rows handed to Kore whose outcome is not yet settled",
            ["tenant"],
            registry=r,
        )
        self.delivered = Gauge(
            "kore_connector_contacts_delivered",
            "Numbers the state records as delivered to Kore",
            ["tenant"],
            registry=r,
        )
        self.last_success = Gauge(
            "kore_connector_last_success_timestamp_seconds",
            "When the tenant's last completed run ended (Unix time)",
            ["tenant"],
            registry=r,
        )
        self.last_check = Gauge(
            "kore_connector_last_check_timestamp_seconds",
            "When the tenant's newest run started, those that found nothing new and left no "
            "run record included (Unix time)",
            ["tenant"],
            registry=r,
        )
        self.upload_seconds = Histogram(
            "kore_connector_upload_seconds",
            "How long Kore took to answer an upload",
            ["tenant"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.kore_errors = Counter(
            "kore_connector_kore_errors",
            "Kore answers that were not a success: rate_limited (429), server_error (5xx), "
            "no_answer (timeouts, refused or dropped connections)",
            ["tenant", "kind"],
            registry=r,
        )
        self.waited = Counter(
            "kore_connector_budget_wait_seconds",
            "Seconds spent waiting for the bot's rate budget: even pacing and pauses after 429s",
            ["tenant"],
            registry=r,
        )
        self.lease_held = Gauge(
            "kore_connector_lease_held",
            "1 while this process holds the tenant's lease",
            ["tenant"],
            registry=r,
        )

    def forget(self, tenant: str) -> None:
        """Every series of ``tenant`` leaves ``/metrics`` (a reload removed it)."""
        for metric in (
            self.runs,
            self.rows,
            self.rejected,
            self.in_flight,
            self.delivered,
            self.last_success,
            self.last_check,
            self.upload_seconds,
            self.kore_errors,
            self.waited,
            self.lease_held,
        ):
            metric.remove_by_labels({"tenant": tenant})

    def known(self, tenant: str) -> None:
        """Show a configured tenant from the start, before its first run."""
        self.lease_held.labels(tenant).set(0)
        self.waited.labels(tenant)
        for kind in ("rate_limited", "server_error", "no_answer"):
            self.kore_errors.labels(tenant, kind)

    def restore(self, history: History) -> None:
        """Set the gauges that describe the tenant from what the state remembers. A tenant that
        never succeeded has no last-success series, as before its first success."""
        tenant = history.tenant
        if history.last_success is not None:
            self.last_success.labels(tenant).set(history.last_success.timestamp())
        if history.last_check is not None:
            self.last_check.labels(tenant).set(history.last_check.timestamp())
        self.delivered.labels(tenant).set(history.delivered)
        self.in_flight.labels(tenant).set(history.pending)

    def observe(self, event: Event) -> None:
        if isinstance(event, LeaseChanged):
            self.lease_held.labels(event.tenant).set(1 if event.held else 0)
        elif isinstance(event, KoreAnswered):
            self._answered(event)
        elif isinstance(event, RunFinished):
            self._finished(event)

    def _answered(self, event: KoreAnswered) -> None:
        self.waited.labels(event.tenant).inc(event.waited)
        if event.status == 429:
            self.kore_errors.labels(event.tenant, "rate_limited").inc()
        elif event.status >= 500:
            self.kore_errors.labels(event.tenant, "server_error").inc()
        elif event.status == 0:
            self.kore_errors.labels(event.tenant, "no_answer").inc()
        elif event.path.endswith("/import-contacts"):
            self.upload_seconds.labels(event.tenant).observe(event.seconds)

    def _finished(self, event: RunFinished) -> None:
        tenant = event.tenant
        self.runs.labels(tenant, event.status).inc()
        counters = event.counters.as_dict()
        for outcome in ROW_OUTCOMES:
            self.rows.labels(tenant, outcome).inc(counters[outcome])
        for reason, count in event.rejected_by_reason.items():
            self.rejected.labels(tenant, reason).inc(count)
        if event.pending is not None:
            self.in_flight.labels(tenant).set(event.pending)
        if event.status in ("completed", "empty"):
            self.last_success.labels(tenant).set_to_current_time()
