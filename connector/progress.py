"""A run's progress on a terminal, drawn by rich: reading (bytes of the files, rows a second,
time left; rows for a table) and sending (batches done of batches planned, rows a second, time
spent waiting for Kore's pace). Log records and summary lines printed meanwhile go above the
bars, never into them (escaped by the text log format, and never read as rich markup). ``sync``
draws them only when standard error is a terminal and the log format is text."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:
    from connector.sync.context import Event
    from connector.sync.context import Progress as Advanced


class ProgressBars:
    def __init__(self) -> None:
        self._bars = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[amount]}", markup=False),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._tasks: dict[tuple[str, str], tuple[TaskID, float, int]] = {}

    def __call__(self, event: Event) -> None:
        from connector.sync.context import Progress as Advanced

        if not isinstance(event, Advanced):
            return
        key = (event.tenant, event.phase)
        if key not in self._tasks:
            if not self._tasks:
                self._bars.start()
            task = self._bars.add_task(
                f"{event.tenant} {event.phase}", total=event.total, amount=""
            )
            self._tasks[key] = (task, time.monotonic(), _rows(event))
        task, started, rows_then = self._tasks[key]
        rate = (_rows(event) - rows_then) / max(time.monotonic() - started, 1e-3)
        self._bars.update(
            task, completed=event.done, total=event.total, amount=_amount(event, rate)
        )

    def done(self) -> None:
        """The tenant's run ended: its bars stay as they last were; drawing stops."""
        if self._tasks:
            self._bars.stop()
            for task, _, _ in self._tasks.values():
                self._bars.remove_task(task)
            self._tasks.clear()


def _rows(event: Advanced) -> int:
    return event.counters.sent if event.phase == "sending" else event.counters.rows_read


def _amount(event: Advanced, rate: float) -> str:
    c = event.counters
    if event.phase == "sending":
        paced = f", {c.waited_seconds:,.0f}s waiting for Kore's pace" if c.waited_seconds else ""
        return (
            f"{event.done:,}/{event.total or 0:,} batches, {c.sent:,} rows sent "
            f"({rate:,.0f}/s){paced}"
        )
    read = f"{c.rows_read:,} rows ({rate:,.0f}/s)"
    if event.total is None:
        return read
    return f"{event.done / 1e6:,.1f}/{event.total / 1e6:,.1f} MB, {read}"
