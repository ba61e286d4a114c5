"""Where a run's batches go: to Kore, or (a dry run) to batch files. A dry run is a choice of
sink, not a branch in the run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from connector.contacts import Contact
from connector.kore.wire import batch_csv, kore_row
from connector.report import Report
from connector.state import Store
from connector.sync.context import KoreAnswered, RunContext, counted

if TYPE_CHECKING:
    import httpx

    from connector.delivery import Deliverer
    from connector.kore.client import Answer, KoreClient

Changed = list[tuple[Contact, str]]


class Sink(Protocol):
    def resume(self) -> None:
        """Settle what an earlier run left in flight, before anything new."""

    def send(self, contacts: list[Contact]) -> None: ...

    def update(self, changed: Changed) -> None:
        """Delivered numbers whose names changed since (with their Kore id)."""

    def delete(self, doomed: list[tuple[str, str | None]]) -> None:
        """``(key, kore_id)`` of contacts to delete from Kore."""

    def close(self) -> None: ...


class KoreSink:
    """Kore, reached only when there is something to send: a run with nothing to do does not
    even load the HTTP client."""

    def __init__(
        self, ctx: RunContext, store: Store, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.ctx = ctx
        self._store = store
        self._transport = transport
        self._client: KoreClient | None = None
        self._deliverer: Deliverer | None = None

    @property
    def client(self) -> KoreClient:
        if self._client is None:
            from connector.kore.client import API, KoreClient, limits_of
            from connector.state.budget import SharedPacer

            ctx, kore = self.ctx, self.ctx.settings.kore

            def budget(api: API) -> SharedPacer:
                """Each API of the bot has a budget of its own (uploads keep the bot's name)."""
                name = f"{kore.host}|{kore.bot_id}" + ("" if api == "import" else f"|{api}")
                return SharedPacer(self._store, name, limits_of(kore, api), sleep=ctx.sleep)

            self._client = KoreClient(
                kore,
                transport=self._transport,
                sleep=ctx.sleep,
                pacers=budget,
                observe=self._answered,
            )
        return self._client

    @property
    def deliverer(self) -> Deliverer:
        if self._deliverer is None:
            from connector.delivery import Deliverer

            self._deliverer = Deliverer(self.ctx, client=self.client)
        return self._deliverer

    def _answered(self, answer: Answer) -> None:
        counters = self.ctx.counters
        counters.rate_limited += answer.status == 429
        counters.waited_seconds += answer.waited
        self.ctx.emit(
            KoreAnswered(
                self.ctx.tenant,
                answer.method,
                answer.path,
                answer.status,
                answer.seconds,
                answer.waited,
            )
        )

    def resume(self) -> None:
        batches = self.ctx.state.pending_batches()
        for number, batch in enumerate(batches, 1):
            self.ctx.check_stop()
            self.deliverer.resume(batch, number=number, of=len(batches))

    def send(self, contacts: list[Contact]) -> None:
        self.deliverer.send(contacts)

    def update(self, changed: Changed) -> None:
        self.deliverer.update(changed)

    def delete(self, doomed: list[tuple[str, str | None]]) -> None:
        self.deliverer.delete(doomed)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class DryRunSink:
    """Batch files, exactly as they would be uploaded; nothing sent, no state changed. The
    plan's ``updates.csv`` and ``deletes.csv`` are in the report either way."""

    def __init__(self, ctx: RunContext, report: Report, warnings: list[str]) -> None:
        self.ctx = ctx
        self.report = report
        self.warnings = warnings

    def resume(self) -> None:
        in_flight = self.ctx.state.pending_count()
        if in_flight:
            self.warnings.append(
                f"{counted(in_flight, 'row')} of an interrupted run "
                f"{'is' if in_flight == 1 else 'are'} in flight; "
                "a real run re-sends them before anything else"
            )

    def send(self, contacts: list[Contact]) -> None:
        kore = self.ctx.settings.kore
        self.report.write_batch(batch_csv([kore_row(c, kore) for c in contacts]))
        self.ctx.counters.batches += 1
        self.ctx.counters.would_send += len(contacts)

    def update(self, changed: Changed) -> None:
        self.ctx.counters.would_update += len(changed)

    def delete(self, doomed: list[tuple[str, str | None]]) -> None:
        self.ctx.counters.would_delete += len(doomed)

    def close(self) -> None:
        pass
