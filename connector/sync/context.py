"""What a run carries: its tenant, id, state (fenced by the lease), stop event, typed counters,
and the stream of events that the report's progress line, the logs and the metrics observe."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from connector.contacts import Rejection
from connector.errors import RunInterrupted
from connector.settings import Settings, TenantSettings
from connector.sources import FileTally
from connector.state import TenantState

_CARRIES_ON = "the next run carries on from here: what was sent is recorded, nothing is sent twice"


@dataclass
class Counters:
    """Every counter a summary carries, zero or not, so scripts can read them without guessing.

    Every row a run reads ends in exactly one place, so the counters add up::

        rows_read = unchanged_rows + rejected + contacts
        contacts + pending_resent = already_delivered + sent + would_send + unsent
        sent = created + adopted + already_in_kore + kore_refused

    They hold for every run that got as far as its plan: a run stopped while it was still
    reading counts the rows it read and nothing else (it commits nothing; the next run reads
    them again).
    """

    files_seen: int = 0
    files_read: int = 0
    files_skipped: int = 0
    files_waiting: int = 0
    """Files left for the next run: still being written (``source.min_file_age``)."""
    unsafe_paths: int = 0
    """Files not read because their real path leaves the export folder (a link, ``..``) or
    they are not regular files (a FIFO, a device)."""
    rows_read: int = 0
    unchanged_rows: int = 0
    """Rows not mapped again: unchanged since a completed run delivered their number."""
    contacts: int = 0
    """Distinct numbers the run took from its rows, each to be sent or known delivered."""
    names_cleaned: int = 0
    """Contacts whose names lost control, bidirectional or invisible characters."""
    names_truncated: int = 0
    """Contacts whose first or last name was cut to ``kore.max_name_length``."""
    rejected: int = 0
    """Rows the run turned down before sending anything (invalid, duplicate, do-not-call,
    removed...). ``rejected.csv`` also lists the rows Kore did not take: ``already_in_kore``
    and ``kore_refused``, counted apart because they were sent."""
    rejected_known: int = 0
    """Of ``rejected``: rows rejected as their unchanged row was by an earlier run, not mapped
    again (the run replays the rejection it remembers; ``RowRejected.known``)."""
    already_delivered: int = 0
    """Contacts whose number an earlier run delivered: not sent again (updated when renamed
    and ``changes.renamed`` is ``update``)."""
    changed_skipped: int = 0
    updated: int = 0
    sent: int = 0
    """Rows in uploads Kore answered (new, and ``pending_resent``): an upload that never got an
    answer, or was refused as a whole (a 401), sent nothing."""
    would_send: int = 0
    unsent: int = 0
    """Contacts the plan would send that this run did not: a stop or a failure came first, and
    the next run sends them. It counts down as batches settle; a completed run leaves 0."""
    would_update: int = 0
    dnc_in_kore: int = 0
    removed: int = 0
    """Numbers delivered before that were removed from the CRM: a snapshot lacks them, or rows
    a ``removed_when`` rule marks have them and no other row of the run does."""
    removal_held_back: int = 0
    """Numbers that look removed and are kept all the same: a snapshot lacks them but their
    record is on a row whose number could not be read (or their record id is not known while
    such rows exist); or rows marked removed have them but they were delivered from another
    record, which the run may not have read."""
    deleted: int = 0
    would_delete: int = 0
    delete_failed: int = 0
    not_ours: int = 0
    created: int = 0
    adopted: int = 0
    already_in_kore: int = 0
    kore_refused: int = 0
    """Sent rows Kore neither created nor has."""
    update_refused: int = 0
    """Renamed contacts whose update Kore did not confirm (deleted in Kore since?)."""
    pending_resent: int = 0
    """Of ``sent``: rows an earlier run left in flight, sent again and settled by this one."""
    batches: int = 0
    """Batches settled: uploads Kore answered, or the batch files of a dry run."""
    uploads: int = 0
    rate_limited: int = 0
    """Kore's 429 answers (and answers carrying its rate-limit message)."""
    waited_seconds: float = 0.0
    """Time spent waiting for the bot's budget: even pacing, and pauses after 429s."""
    warnings_acknowledged: int = 0
    """Warnings the tenant's ``acknowledge`` list silenced: counted, not printed."""

    def as_dict(self) -> dict[str, int | float]:
        return {
            f.name: round(value, 1) if isinstance(value := getattr(self, f.name), float) else value
            for f in fields(self)
        }


KORE_ANSWERS = frozenset({"already_in_kore", "kore_refused"})
"""Reasons in ``rejected.csv`` that are Kore's answer to rows the run sent, not rows it turned
down: ``Counters.rejected`` leaves them out (they are ``already_in_kore``, ``kore_refused`` and
``update_refused``)."""


# Events. Observers are plain functions of one event; they must not raise.


@dataclass(frozen=True)
class LeaseChanged:
    """This process took (``held``) or let go of a tenant's lease."""

    tenant: str
    held: bool
    token: int


@dataclass(frozen=True)
class RunStarted:
    tenant: str
    run_id: str


@dataclass(frozen=True)
class UnitRead:
    """A file or table was read to its end."""

    tenant: str
    name: str
    rows: int
    tally: FileTally | None = None
    """For a text file: where each of its physical lines went."""


@dataclass(frozen=True)
class RowRejected:
    """A row that is not sent, and why: the report writes it, the counters count it."""

    tenant: str
    rejection: Rejection
    known: bool = False
    """The row is unchanged since a run rejected it: not mapped again, its rejection replayed
    (``Counters.rejected_known``)."""


@dataclass(frozen=True)
class Listed:
    """Rows of one of the report's tables (``updates.csv``, ``deletes.csv``...), a chunk at a
    time, in the order the table lists them: the first chunk of ``table`` makes the file with
    ``header``, the others add to it. ``rows`` is never empty."""

    tenant: str
    table: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]


@dataclass(frozen=True)
class Progress:
    """How far the run has come: ``reading`` (``done`` of ``total`` bytes of the files to read;
    ``total`` None for a table) or ``sending`` (``done`` of ``total`` batches and chunks)."""

    tenant: str
    counters: Counters
    phase: str = "reading"
    done: int = 0
    total: int | None = None


@dataclass(frozen=True)
class BatchSettled:
    """A batch's outcome is recorded. ``number`` of ``of`` is its place among the batches of the
    run's plan (deletes, updates and uploads, as the progress bar counts them), or among those an
    earlier run left in flight (``resent``); ``of`` is None for a run without a plan (reconcile).
    ``batch_id`` is the state's own id, for the records of a log shipper."""

    tenant: str
    batch_id: int
    number: int
    of: int | None
    rows: int
    delivered: int
    resent: bool


@dataclass(frozen=True)
class KoreAnswered:
    """One HTTP exchange with Kore; ``status`` 0 when no answer came, 429 for rate limits;
    ``waited`` the seconds spent waiting for the API's budget before it."""

    tenant: str
    method: str
    path: str
    status: int
    seconds: float
    waited: float = 0.0


@dataclass(frozen=True)
class RunFinished:
    tenant: str
    run_id: str
    status: str
    counters: Counters
    rejected_by_reason: dict[str, int]
    pending: int | None
    error: str | None


Event = (
    LeaseChanged
    | RunStarted
    | UnitRead
    | RowRejected
    | Listed
    | Progress
    | BatchSettled
    | KoreAnswered
    | RunFinished
)
Observer = Callable[[Event], None]


RUN_ID_TIME = "%Y%m%dT%H%M%S.%fZ"
"""How a run id starts: its start time, so ids sort by it and old report folders can be told."""


def new_run_id() -> str:
    """Sortable by start time (to the microsecond), unique across processes."""
    return datetime.now(UTC).strftime(RUN_ID_TIME) + "-" + secrets.token_hex(3)


@dataclass
class RunContext:
    """One run of one tenant. ``state`` carries the lease (none for a dry run); ``stop`` is set
    by a signal or a lost lease, and every sleep and batch boundary of the run heeds it."""

    tenant: str
    settings: TenantSettings
    app: Settings
    state: TenantState
    base_dir: Path
    dry_run: bool = False
    full: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    observers: list[Observer] = field(default_factory=list)
    guards: list[Callable[[], None]] = field(default_factory=list)
    """Checks made at every batch boundary: each raises when the run cannot go on (its
    report could not be written)."""
    run_id: str = field(default_factory=new_run_id)
    counters: Counters = field(default_factory=Counters)
    sending: tuple[int, int] | None = None
    """The plan's batches done and in all, once the run began carrying it out (from its own
    ``Progress`` events): how batches are numbered, and where an interruption stopped."""

    _emitting: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """Observers see one event at a time: uploads made while the run still reads (``early``)
    tell of themselves from a thread of their own."""

    def emit(self, event: Event) -> None:
        """Tell every observer; what the run context keeps of an event (where sending stands,
        the known rejections) it takes first, so that observers see it counted."""
        with self._emitting:
            if isinstance(event, Progress) and event.phase == "sending" and event.total is not None:
                self.sending = (event.done, event.total)
            elif isinstance(event, RowRejected) and event.known:
                self.counters.rejected_known += 1
            for observe in self.observers:
                observe(event)

    def sleep(self, seconds: float) -> None:
        """Wait, unless the run is told to stop: then raise ``RunInterrupted`` at once."""
        if self.stop.wait(max(0.0, seconds)):
            raise self.interrupted()

    def check_stop(self) -> None:
        """A batch boundary: stop here if told to, or fail if a guard says the run is broken."""
        for guard in self.guards:
            guard()
        if self.stop.is_set():
            raise self.interrupted()

    def interrupted(self) -> RunInterrupted:
        """How far the run came when a stop ended it, and what the next run makes of that: the
        line ``sync`` prints and ``status`` shows, so that an interruption reads as one."""
        counters = self.counters
        if self.sending is not None:
            done, total = self.sending
            where = f"after {done:,} of {counted(total, 'batch')}"
            then = "the next run sends the rest"
        elif counters.batches:
            where = f"after {counted(counters.batches, 'batch')}"
            then = "the next run sends the rest"
        elif counters.rows_read:
            where = f"while reading, after {counted(counters.rows_read, 'row')}"
            then = "the next run reads them again"
        elif counters.pending_resent:
            where = f"after re-sending {counted(counters.pending_resent, 'row')} left in flight"
            then = "the next run sends the rest"
        else:
            where = "before it read or sent anything"
            then = "the next run starts over"
        return RunInterrupted(f"{self.tenant}: interrupted {where}; {then}", hint=_CARRIES_ON)


class Listing:
    """A table of the report as a run lists it: its rows go to the observers (``Listed``)
    ``chunk`` at a time, so that no table is held whole. Used as a context manager: the rest
    goes out when the block ends, unless it ends by an exception (a refused plan lists no
    more of what it would have done)."""

    def __init__(
        self, ctx: RunContext, table: str, header: tuple[str, ...], *, chunk: int = 1000
    ) -> None:
        self._ctx = ctx
        self._table = table
        self._header = header
        self._chunk = chunk
        self._rows: list[tuple[str, ...]] = []

    def add(self, row: tuple[str, ...]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self._chunk:
            self._hand_over()

    def _hand_over(self) -> None:
        if self._rows:
            self._ctx.emit(Listed(self._ctx.tenant, self._table, self._header, self._rows))
            self._rows = []

    def __enter__(self) -> Listing:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            self._hand_over()


def counted(n: int, noun: str) -> str:
    """``1 row``, ``3,900 rows``, ``2 batches``: a count the way the connector writes one in
    text, with thousands separators and the plural only when it is one."""
    if n == 1:
        return f"1 {noun}"
    return f"{n:,} {noun}{'es' if noun.endswith(('s', 'sh', 'ch', 'x')) else 's'}"
