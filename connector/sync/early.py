"""Uploads while the run still reads: a first sync's contacts go to Kore a batch at a time as
they are mapped, instead of after the whole export is planned. At Kore's documented 60 uploads
a minute, 100,000 contacts take 100 s to upload whatever the connector does; reading and
mapping them first would add its own time to that.

**When.** A real run (a dry run plans first: what it previews is where the run ends) of a
tenant that has nothing delivered and nothing in flight (a first sync, or one whose
runs so far delivered nothing), reading export files that are no snapshot and hold ``MIN_BYTES``
or more. (A SQL source is planned first: the scan below would be a second query, and a row could
change between the two.) With no number
delivered before, no update or delete can be planned, so the plan-first order (deletes, then
updates, then creates) has nothing to keep; a snapshot's removals are judged on the plan. Every
other run plans first, as before.

**What goes early.** Before the first upload the export is read once for the rows a
``skip_when`` or ``removed_when`` rule marks (``Marks``; only those rows' numbers are parsed):
do-not-call belongs to the number, so a number a later row flags must never go out from an
earlier one. A contact then goes out early when its row is the first of its number in the run,
its number is flagged neither in this export nor by an earlier one, and its record is not
marked removed. What is left when the export ends (less than a batch), and every later row of
a number, is planned at the end as in any run.

**A later row that wins.** When a later row of a number sent early wins its contest (it was
updated more recently), the plan updates the contact to the winner's names in the same run,
whatever ``changes.renamed`` says: the contact was created by this run from a row that turned
out to lose, and Kore ends as planning first would have left it. The early row is reported as
``duplicate_in_source``, saying that it was uploaded and then overwritten.

**A run that does not finish** (stopped, failed, killed) may leave in Kore a contact uploaded
early from a row that a later row beats: the next run, which reads the export again, gives it the
winner's names whatever ``changes.renamed`` says, as it does any number delivered by a run that
did not finish (``plan._renamed``).

The uploads run in a thread of their own, one batch queued at most, so that mapping goes on
while an upload waits for its turn; a failure or a stop there ends the run as it would in the
plan's sending.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass

from connector.contacts import Contact
from connector.mapping import BoundMapping
from connector.mapping.apply import REMOVED_IN_CRM
from connector.sources import Source, SourceUnit
from connector.staging import Staging
from connector.sync.context import RunContext
from connector.sync.pool import map_row
from connector.sync.sinks import Sink

_WAIT = 0.2
"""Seconds between looks at the sending thread while waiting for room in its queue."""
_SCAN_STOP_ROWS = 5000
"""Rows the scan reads between looks at a stop."""


@dataclass(frozen=True)
class Marks:
    """What the rules mark in the whole export: the numbers of rows flagged do-not-call
    (``skip_when``), and the record ids and numbers of rows marked removed (``removed_when``)."""

    flagged: frozenset[str] = frozenset()
    removed_ids: frozenset[str] = frozenset()
    removed_keys: frozenset[str] = frozenset()

    def hold(self, contact: Contact) -> bool:
        """Whether the contact must wait for the plan."""
        return (
            contact.key in self.flagged
            or contact.key in self.removed_keys
            or (bool(contact.record_id) and contact.record_id in self.removed_ids)
        )


MIN_BYTES = 2 * 1024 * 1024
"""Exports smaller than this (about 10,000 rows of a CRM's export, ten batches of Kore's
default size) are planned first: their plan takes about a second, and planning first keeps
their batches numbered of a known total."""


def eligible(ctx: RunContext, source: Source, units: Sequence[SourceUnit]) -> bool:
    """Whether this run uploads while it reads (see the module's docstring): not dry, files of
    ``MIN_BYTES`` or more, no snapshot, nothing delivered or in flight."""
    sizes = [u.progress()[1] for u in units]
    if ctx.dry_run or source.complete or None in sizes or sum(s or 0 for s in sizes) < MIN_BYTES:
        return False
    return ctx.state.delivered_count() == 0 and ctx.state.pending_count() == 0


def scan(ctx: RunContext, units: Sequence[SourceUnit], bound: dict[str, BoundMapping]) -> Marks:
    """Read the export once for the rows its rules mark, mapping only those. A unit whose
    mapping has no such rule is not read."""
    flagged: set[str] = set()
    removed_ids: set[str] = set()
    removed_keys: set[str] = set()
    region = ctx.settings.default_region
    for unit in units:
        mapping = bound[unit.ident]
        spec = mapping.mapping.spec
        if not spec.skip_when and not spec.removed_when:
            continue
        width = len(mapping.header)
        with closing(unit.rows()) as rows:
            for n, row in enumerate(rows):
                if n % _SCAN_STOP_ROWS == 0:
                    ctx.check_stop()
                if row.error or len(row.values) != width or not mapping.marked(row.values):
                    continue
                item = map_row(mapping, unit.name, row, region)
                if isinstance(item, Contact):
                    continue
                if item.reason == REMOVED_IN_CRM:
                    removed_keys.update(item.keys)
                    if item.record_id:
                        removed_ids.add(item.record_id)
                else:
                    flagged.update(item.keys)
    return Marks(frozenset(flagged), frozenset(removed_ids), frozenset(removed_keys))


class EarlyUploads:
    """Batches of contacts uploaded as the run reads, from a thread of its own.

    ``offer`` each chunk's new contacts as they are taken; ``finish`` once every row is read
    (it waits for the uploads queued and raises what failed there); ``close`` always, last."""

    def __init__(self, ctx: RunContext, sink: Sink, staging: Staging, marks: Marks) -> None:
        self.ctx = ctx
        self._sink = sink
        self._staging = staging
        self._marks = marks
        self._size = ctx.settings.kore.batch_size
        self._waiting: list[tuple[int, Contact]] = []
        self._queue: queue.Queue[list[Contact] | None] = queue.Queue(maxsize=1)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.batches = 0
        """Batches queued for upload so far."""
        self._remembered = ctx.state.any_flagged()  # else no number needs looking up
        staging.index_keys()

    def offer(self, contacts: list[tuple[int, Contact]]) -> None:
        """A chunk's contacts ``(ordinal, contact)`` in the order read: those that may go early
        wait for a whole batch, which is queued for upload. Raises what failed in an upload."""
        self._raise()
        if not contacts:
            return
        keys = [c.key for _, c in contacts]
        earlier = self._staging.present(keys, before=contacts[0][0])
        remembered = self.ctx.state.flagged(keys) if self._remembered else set()
        firsts: set[str] = set()
        for ordinal, contact in contacts:
            key = contact.key
            if key in earlier or key in firsts:
                continue
            firsts.add(key)
            if key not in remembered and not self._marks.hold(contact):
                self._waiting.append((ordinal, contact))
        while len(self._waiting) >= self._size:
            batch, self._waiting = self._waiting[: self._size], self._waiting[self._size :]
            self._staging.mark_sent([(c.key, ordinal) for ordinal, c in batch])
            self._put([c for _, c in batch])
            self.batches += 1

    def finish(self) -> None:
        """Every row is read: wait for the queued uploads. What is still waiting for a batch
        is planned with the rest. Raises what failed in an upload."""
        if self._thread is not None:
            self._put(None)
            self._thread.join()
            self._thread = None
        self._raise()

    def close(self) -> None:
        """End the uploads (after a failure of the run: what is queued is not sent)."""
        if self._thread is None:
            return
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    def _put(self, batch: list[Contact] | None) -> None:
        if self._thread is None:
            context = contextvars.copy_context()  # what logs carry: the tenant, the run id
            self._thread = threading.Thread(
                target=context.run,
                args=(self._upload,),
                name=f"early uploads {self.ctx.tenant}",
                daemon=True,
            )
            self._thread.start()
        while True:
            self._raise()
            if batch is not None:
                self.ctx.check_stop()
            try:
                self._queue.put(batch, timeout=_WAIT)
                return
            except queue.Full:
                continue

    def _upload(self) -> None:
        counters = self.ctx.counters
        while (batch := self._queue.get()) is not None:
            try:
                self.ctx.check_stop()
                counters.unsent += len(batch)
                self._sink.send(batch)
                counters.unsent -= len(batch)
            except BaseException as exc:  # raised again in the run's thread
                self._failure = exc
                return

    def _raise(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
