"""An outage in two log lines: one when a dependency stops answering, one when it is back.

While the state database (or Kore at one host) does not answer, every turn of every tenant fails
the same way: logged one by one, a 40 s database outage once made 132 error lines per tenant
(issue 13). An ``Outage`` logs the first failure at ERROR with its detail, counts the ones that
follow at DEBUG, and logs at INFO, when a request is answered again, how long it lasted and how
many turns failed meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

log = logging.getLogger("connector.daemon")


class Outage:
    """One dependency, named as the log shows it (``the state database``, ``Kore at HOST``)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._lock = threading.Lock()
        self._since: float | None = None
        self._failed = 0

    @property
    def ongoing(self) -> bool:
        with self._lock:
            return self._since is not None

    def failed(self, detail: str, *, turn: bool = True) -> None:
        """A request was not answered (``detail``: the error's one line); ``turn``: it failed
        a tenant's turn, which the line at the end counts."""
        with self._lock:
            first = self._since is None
            if first:
                self._since = time.monotonic()
                self._failed = 0
            self._failed += int(turn)
        if first:
            log.error(
                "%s is unavailable: %s; tenants wait for it (its return is logged, the turns "
                "that fail meanwhile are only counted)",
                self.what,
                detail,
            )
        else:
            log.debug("%s is still unavailable: %s", self.what, detail)

    def answered(self) -> None:
        """A request was answered: the outage, if there was one, is over."""
        with self._lock:
            if self._since is None:
                return
            lasted = timedelta(seconds=time.monotonic() - self._since)
            failed, self._since = self._failed, None
        log.info(
            "%s is back after %s; %s failed meanwhile",
            self.what,
            span(lasted),
            f"{failed:,} {'turn' if failed == 1 else 'turns'}",
        )


def span(length: timedelta) -> str:
    """``40s``, ``14m 20s``, ``2h 5m``: an age or a wait as an operator reads it."""
    seconds = max(0, round(length.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"
