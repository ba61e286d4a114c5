"""Mapping rows on every core: ``MappingPool.imap`` maps chunks of rows in worker processes and
gives each chunk's results back in the order the chunks were given, as one process would.

Mapping is pure Python (libphonenumber's matching is most of it), so threads would take turns on
one core; processes do not. The shape::

    the run's process ──pipe──► worker 1 ┐
        (MappingPool)  ──pipe──► worker 2 ├─ forked by multiprocessing's fork server, which
                       ──pipe──► worker N ┘  imported the mapping code and built the country
                                             index once, without the run's environment
                                             (``pool_preload``)

- **Small runs** map in the run's own process: the first ``inline_rows`` rows of a pool's life
  are mapped there, and the workers start only with a chunk past them.

- **Order.** Chunks go to the workers in turn, at most ``IN_FLIGHT`` to each at a time, and a
  worker answers its chunks in the order it got them; the pool takes answers in the order it
  sent the chunks, so nothing is reordered and memory holds at most ``IN_FLIGHT * processes``
  chunks, whatever the export's size.
- **Mappings.** A unit's ``BoundMapping`` goes to a worker with its first chunk, then only its
  key (``id()``; the pool holds the mapping, so the key is not reused). The values of
  ``updated_at`` that were no time (``UnreadTimes``) come back with each chunk's results and are
  added to the caller's mapping (``merge_unread``), as mapping in one process would count them.
- **Lifetime.** A worker's only link to its pool is its pipe, and the pool's process holds the
  only other end. When the pool closes, or its process exits or is killed (SIGKILL, the OOM
  killer), the worker reads the end of the pipe and exits (``_listen``): nothing is left behind
  and no timer is needed. (``PR_SET_PDEATHSIG`` could not do it: a worker's parent is the fork
  server, which lives as long as any worker holds its end of the server's "alive" pipe.)
- **Signals.** Ctrl-C reaches the terminal's whole process group and systemd's stop the unit's
  whole control group; both are the run's to handle (it stops at a chunk boundary, then closes
  the pool), so workers ignore them. A worker that dies all the same (``kill -9``) fails the run
  with a ``ConnectorError``: the run is retried, and reads the export again.
- **No core dumps**, as the command line's own process (``cli.main._no_core_dumps``): a worker
  holds the rows' names and numbers. Nor secrets: the fork server drops every environment
  variable a worker has no use for before it forks one (``pool_preload``).
"""

from __future__ import annotations

import atexit
import contextlib
import copyreg
import ctypes
import gc
import io
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.util  # before atexit.register below: see _close_all
import os
import pickle
import queue
import resource
import signal
import sys
import threading
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from operator import attrgetter
from types import TracebackType
from typing import Any, TypeVar

from connector.contacts import Contact, PhoneKey, Rejection
from connector.errors import ConnectorError
from connector.mapping import BoundMapping
from connector.mapping.timestamps import UnreadTimes
from connector.sources import SourceRow

T = TypeVar("T")

IN_FLIGHT = 2
"""Chunks sent to a worker and not yet answered: one it maps, one waiting, so that it never
idles while the pool takes an answer."""
PRELOAD = ("connector.sync.pool_preload",)
"""What the fork server imports once, so that a worker starts without importing or building
anything, and without the run's environment (``pool_preload``)."""
PR_SET_DUMPABLE = 4
"""prctl(2)'s option that marks a process dumpable (``linux/prctl.h``)."""
_IGNORED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Mapped = Contact | Rejection
Job = tuple[T, str, BoundMapping, list[SourceRow]]
"""What ``imap`` maps: a tag given back untouched, the source's name, the unit's mapping and
its rows."""
_Chunk = tuple[int, BoundMapping | None, str, list[SourceRow]]
"""A chunk as a worker gets it: the mapping's key, the mapping itself the first time, the
source's name, the rows."""


def map_row(
    mapping: BoundMapping, source: str, row: SourceRow, default_region: str
) -> Contact | Rejection:
    """One row of ``source`` mapped: a row its reader could not split into the header's cells
    (``row.error``, or another number of cells) is ``malformed_row``, with the record id its
    cells may still show (``record_id``); any other is ``BoundMapping.apply``'s answer. One
    process and every worker of a ``MappingPool`` run this."""
    width = len(mapping.header)
    if row.error or len(row.values) != width:
        detail = row.error or f"{len(row.values)} cells where the header has {width}"
        return Rejection(
            "malformed_row",
            detail,
            source,
            row.line,
            record_id(mapping, row.values),
            {"cells": " | ".join(row.values)[:500]} if row.values else {},
        )
    return mapping.apply(row.values, source=source, row=row.line, default_region=default_region)


def record_id(mapping: BoundMapping, cells: list[str]) -> str:
    """The record id a malformed row carries: the first non-empty cell (a placeholder such as
    ``null`` is empty) where the mapping's id columns are, when the row reaches that far. Its
    cells may be shifted, so the plan trusts it only when a delivered contact has that id."""
    placeholders = {p.strip().casefold() for p in mapping.mapping.spec.placeholders}
    for at in mapping.positions.get("id", []):
        cell = cells[at].strip() if at < len(cells) else ""
        if cell and cell.casefold() not in placeholders:
            return cell
    return ""


def merge_unread(into: UnreadTimes, part: UnreadTimes) -> None:
    """Add ``part``, the tally of a chunk of rows mapped elsewhere, to ``into``, as if those rows
    had been noted there after ``into``'s: counts summed, the first example kept, the columns in
    the order first seen."""
    into.count += part.count
    if part.example and not into.example:
        into.source, into.example = part.source, part.example
    for column in part.columns:
        if column not in into.columns:
            into.columns.append(column)


@dataclass
class _Answer:
    """A worker's answer to one chunk: the results, row by row, and the chunk's unreadable
    times; or the exception mapping raised (a bug), raised again in the pool's process."""

    results: list[Mapped]
    unread: UnreadTimes
    failure: Exception | None = None


@dataclass
class _Worker:
    process: BaseProcess
    channel: Connection
    known: set[int] = field(default_factory=set)
    """The keys of the mappings this worker has been sent."""


class MappingPool:
    """Maps chunks of rows in worker processes; results in submission order.

    ``processes`` 1 maps in this process (no worker is started). More start that many workers
    once the pool has been given more than ``inline_rows`` rows (over every ``imap`` of its
    life): the first ``inline_rows`` are mapped in this process, as with one, since starting
    the workers costs more than they save on a few thousand rows (their fork server imports
    the mapping code and builds the country index: about 2 CPU-seconds, once for the
    process's life). That server is started in the background when half of ``inline_rows``
    are mapped, so that the workers can start at once when the rest are. The workers live
    until ``close`` (or the end of a ``with`` block). The results are the same either way. One
    ``imap`` at a time."""

    def __init__(self, processes: int, default_region: str, *, inline_rows: int = 0) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        if inline_rows < 0:
            raise ValueError(f"inline_rows must be at least 0, not {inline_rows}")
        self.processes = processes
        self._default_region = default_region
        self._inline_left = inline_rows if processes > 1 else sys.maxsize
        """Rows still to be mapped in this process; -1 once a job went past them, for good."""
        self._serve_below = inline_rows // 2 if processes > 1 and inline_rows else -1
        """Start the fork server when fewer rows than this are left to map here; -1 once
        started, or with nothing mapped here."""
        self._workers: list[_Worker] = []
        self._mappings: dict[int, BoundMapping] = {}
        _open.add(self)

    @property
    def pids(self) -> list[int]:
        """The workers' process ids; empty before the first chunk past ``inline_rows``, after
        ``close``, and with one process."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def imap(self, jobs: Iterable[Job[T]]) -> Iterator[tuple[T, list[Contact | Rejection]]]:
        """``(tag, results)`` for each job, in the order of ``jobs``; ``results[i]`` is
        ``map_row`` of ``rows[i]``. ``jobs`` is read as results are taken: at most
        ``IN_FLIGHT * processes`` ahead once workers map them, none ahead before. Unreadable
        times of ``updated_at`` are added to each job's mapping (``unread_times``) as its
        results are taken.

        Raises ``ConnectorError`` when a worker dies; what mapping raises is raised as it is.
        Leaving the loop early (a stop, an error) ends the workers: they restart with the next
        chunk."""
        pending: deque[tuple[T, BoundMapping, _Worker | None]] = deque()
        turn = 0
        try:
            for tag, source, mapping, rows in jobs:
                if len(rows) <= self._inline_left:  # no job went to a worker: none pending
                    self._inline_left -= len(rows)
                    if self._inline_left < self._serve_below:
                        self._serve_below = -1
                        with contextlib.suppress(ConnectorError):  # a head start, no more:
                            self._serve()  # _started says why, if workers are needed
                    yield tag, [map_row(mapping, source, row, self._default_region) for row in rows]
                    continue
                self._inline_left = -1
                if len(pending) >= IN_FLIGHT * self.processes:
                    yield self._take(*pending.popleft())
                worker = None
                if rows:
                    worker = self._started()[turn % self.processes]
                    turn += 1
                    self._send(worker, mapping, source, rows)
                pending.append((tag, mapping, worker))
            while pending:
                yield self._take(*pending.popleft())
        finally:
            if pending:  # answers nobody will take are on their way: start afresh
                self._stop()

    def close(self) -> None:
        """End the workers: each reads the end of its pipe and exits."""
        self._stop()
        self._mappings.clear()
        _open.discard(self)

    def __enter__(self) -> MappingPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _serve(self) -> multiprocessing.context.ForkServerContext:
        """The fork server, started (in the background) unless it runs already; a
        ``ConnectorError`` when the system refuses it."""
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(PRELOAD))
        # The server is started with Ctrl-C's and systemd's stop signals blocked (a signal mask
        # is inherited across exec, and the server never unblocks them): both reach the whole
        # process group, and the run, not the server, is to handle them. Unblocked, one that
        # came while the server imported its preload would kill it with a traceback.
        # The tracker first (``start_resource_tracker`` has started it, where the command
        # could): starting it unblocks those signals in this thread.
        resource_tracker.ensure_running()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _IGNORED)
        try:
            multiprocessing.forkserver.ensure_running()
        except OSError as exc:
            raise _refused(exc.strerror or str(exc)) from None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return context

    def _started(self) -> list[_Worker]:
        """The workers, started with the first chunk past ``inline_rows``; a
        ``ConnectorError`` when the system refuses them (no more processes or files
        allowed)."""
        if not self._workers:
            context = self._serve()
            try:
                for _ in range(self.processes):
                    self._workers.append(self._start(context))
            except (OSError, EOFError) as exc:  # EOFError: the fork server could not fork
                self._stop()
                why = (
                    exc.strerror or str(exc)
                    if isinstance(exc, OSError)
                    else "the server that forks it failed"
                )
                raise _refused(why) from None
        return self._workers

    def _start(self, context: multiprocessing.context.ForkServerContext) -> _Worker:
        ours, theirs = context.Pipe()
        try:
            process = context.Process(
                target=_work,
                args=(theirs, self._default_region),
                name="kore-connector mapping",
                daemon=True,
            )
            process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the worker's end is the worker's only
        return _Worker(process, ours)

    def _send(
        self, worker: _Worker, mapping: BoundMapping, source: str, rows: list[SourceRow]
    ) -> None:
        key = id(mapping)
        self._mappings.setdefault(key, mapping)
        # a fresh copy: no tally of the caller's, no cached state of its own
        given = None if key in worker.known else replace(mapping, unread_times=UnreadTimes())
        try:
            worker.channel.send_bytes(_dumps((key, given, source, rows)))
        except OSError:
            raise self._died(worker) from None
        worker.known.add(key)

    def _take(
        self, tag: T, mapping: BoundMapping, worker: _Worker | None
    ) -> tuple[T, list[Mapped]]:
        if worker is None:
            return tag, []
        try:
            answer: _Answer = pickle.loads(worker.channel.recv_bytes())  # noqa: S301 - from our worker
        except (EOFError, OSError):
            raise self._died(worker) from None
        if answer.failure is not None:
            raise answer.failure
        merge_unread(mapping.unread_times, answer.unread)
        return tag, answer.results

    def _died(self, worker: _Worker) -> ConnectorError:
        worker.process.join(5)
        code = worker.process.exitcode
        pid = worker.process.pid
        self._stop()
        if code is not None and code < 0:
            how = f"killed by {signal.Signals(-code).name}"
        else:
            how = f"exit code {code}" if code is not None else "it stopped answering"
        return ConnectorError(
            f"the mapping process {pid} died ({how}); the run is to be retried: it reads the "
            "export again",
            hint="a process killed without a word is most often the kernel's out-of-memory "
            "killer (`journalctl -k`); mapping_processes: 1 maps in the run's own process",
        )

    def _stop(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.channel.close()
        for worker in workers:
            worker.process.join(5)
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join()


def _refused(why: str) -> ConnectorError:
    return ConnectorError(
        f"cannot start a mapping process: {why}",
        hint="the system refused another process or file (ulimit -u, ulimit -n, systemd's "
        "TasksMax=); lower mapping_processes, or set it to 1 to map in the run's own process",
    )


_open: weakref.WeakSet[MappingPool] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Close the pools left open at exit. multiprocessing's own exit handler (registered by
    ``multiprocessing.util``, imported above, so it runs after this one) terminates daemonic
    children and waits for them; workers ignore SIGTERM, and would be waited for forever."""
    for pool in list(_open):
        pool.close()


def _work(channel: Connection, default_region: str) -> None:
    """A worker: chunks in, answers out, in order, until the pipe ends."""
    _detach()
    inbox: queue.SimpleQueue[_Chunk | Exception]
    inbox = queue.SimpleQueue()
    threading.Thread(target=_listen, args=(channel, inbox), daemon=True).start()
    mappings: dict[int, BoundMapping] = {}
    while True:
        job = inbox.get()
        if isinstance(job, Exception):
            _reply(channel, _Answer([], UnreadTimes(), _portable(job)))
            continue
        key, mapping, source, rows = job
        if mapping is not None:
            mappings[key] = mapping
        _reply(channel, _answer(mappings[key], source, rows, default_region))


def _reply(channel: Connection, answer: _Answer) -> None:
    try:
        channel.send_bytes(_dumps(answer))
    except OSError:  # the pool closed its end while this one mapped: no traceback, just go
        os._exit(0)


def _answer(
    mapping: BoundMapping, source: str, rows: list[SourceRow], default_region: str
) -> _Answer:
    bound = replace(mapping, unread_times=UnreadTimes())  # the chunk's own tally
    try:
        results = [map_row(bound, source, row, default_region) for row in rows]
    except Exception as exc:  # a bug: the pool's process raises it, as one process would
        return _Answer([], bound.unread_times, _portable(exc))
    return _Answer(results, bound.unread_times)


def _listen(
    channel: Connection,
    inbox: queue.SimpleQueue[_Chunk | Exception],
) -> None:
    """Read chunks as they come, so that the pool never blocks sending to a worker that is
    itself blocked sending an answer; the end of the pipe ends the worker at once."""
    while True:
        try:
            inbox.put(pickle.loads(channel.recv_bytes()))  # noqa: S301 - from our pool
        except (EOFError, OSError):
            os._exit(0)
        except Exception as exc:  # a chunk that would not unpickle: answered as a failure
            inbox.put(exc)


def _fields_reducer(cls: type[Any]) -> Callable[[Any], tuple[type[Any], Any]]:
    names = [f.name for f in fields(cls)]
    assert len(names) > 1 and all(f.init and not f.kw_only for f in fields(cls)), cls
    values = attrgetter(*names)
    return lambda obj: (cls, values(obj))


_DISPATCH = copyreg.dispatch_table | {
    cls: _fields_reducer(cls) for cls in (SourceRow, Contact, PhoneKey, Rejection)
}
"""Rows and results travel as ``cls(*fields)``: pickle's own way for a dataclass
(``copyreg.__reduce_ex__``, and for one with slots dataclasses' ``__getstate__``, which calls
``fields()`` for every object) costs twice as much (measured on 2,000 rows: rows 26 -> 7 ms,
results 27 -> 12 ms to pickle and 24 -> 15 ms to load)."""


def _dumps(message: object) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(message)
    return buffer.getvalue()


def _portable(exc: Exception) -> Exception:
    """``exc`` with the worker's traceback as a note, fit to send; one that does not pickle is
    sent as a ``RuntimeError`` naming it."""
    exc.add_note("in a mapping process:\n" + "".join(traceback.format_exception(exc)).rstrip())
    try:
        pickle.dumps(exc)
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}\n" + "\n".join(exc.__notes__))
    return exc


def _detach() -> None:
    """What a worker does first: leave the run's signals to the run; keep its memory out of
    core dumps and away from other processes (``keep_out_of_dumps``, done in its fork server
    already); and keep the garbage collector off what it made before its first chunk
    (``gc.freeze``, as the server did with what it made: ``pool_preload``)."""
    gc.freeze()
    for signum in _IGNORED:
        signal.signal(signum, signal.SIG_IGN)
    keep_out_of_dumps()


KEPT = ("PATH", "HOME", "LANG", "TZ", "TMPDIR", "SQLITE_TMPDIR")
"""The environment variables the pool's processes keep, with those that start with
``KEPT_PREFIXES``: the ones the interpreter, the C library and SQLite may read while they run."""
KEPT_PREFIXES = ("LC_",)


def kept(name: str) -> bool:
    """Whether the pool's processes keep the environment variable ``name``."""
    return name in KEPT or name.startswith(KEPT_PREFIXES)


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker now, with none of the environment but what
    ``kept`` keeps. The fork server's context starts it on first use, with the process's whole
    environment (client secrets named by the configuration's ``${VAR}``), and the tracker is a
    plain dumpable process, whose ``/proc/PID/environ`` any process of the same user can read;
    started here, it holds none of that, and the pool later finds it running. The environment
    is taken away only while the tracker starts: call this while the process has one thread
    (``sync`` and ``daemon`` do at their start), since another thread would see it missing."""
    if not sys.platform.startswith("linux"):
        return
    saved = dict(os.environ)
    try:
        for name in [name for name in os.environ if not kept(name)]:
            del os.environ[name]
        resource_tracker.ensure_running()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def keep_out_of_dumps() -> None:
    """Keep this process's memory (rows' names and numbers, the environment) out of core dumps
    and away from other processes of its user: ``RLIMIT_CORE`` 0 (inherited from the command
    line's process, set here when it was not) and, on Linux, not dumpable (which also closes
    ``/proc/PID/environ`` and ``/proc/PID/mem`` to them); as ``cli.main._no_core_dumps``."""
    if resource.getrlimit(resource.RLIMIT_CORE) != (0, 0):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
