"""A daemon whose clock is off takes no lease, and says so once.

What processes share is timed by the state database's clock (``state.store.database_now``):
lease expiry, "ran recently", the bots' upload windows. Two things still run on this process's
own clock: its schedule, and the tokens it mints for Kore, which Kore refuses when they are
issued in the future. A replica 120 s ahead once took every lease and failed every run (issue
13). So the daemon measures its offset from the database at start and every
``CHECK_SECONDS``; past ``daemon.max_clock_skew_seconds`` it runs nothing, ``/healthz`` answers
503 ``clock off by N s``, and the log says so in one line, and in one more when the clock is back
within bounds. A SQLite file has no clock but this host's, so there the offset is 0.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.state import Store

log = logging.getLogger("connector.daemon")

CHECK_SECONDS = 120.0
"""How often the offset is measured again."""


class ClockWatch:
    def __init__(self, store: Store, *, max_skew: float) -> None:
        self._store = store
        self._max_skew = max_skew
        self._lock = threading.Lock()
        self._offset: float | None = None
        self._off = False

    def measure(self) -> None:
        """Measure the offset again and say so when it crosses the bound. Raises
        ``StateError`` when the database does not answer (the last measure stands)."""
        offset = self._store.clock_offset()
        off = abs(offset) > self._max_skew
        with self._lock:
            was, self._off, self._offset = self._off, off, offset
        if off and not was:
            log.error(
                "this machine's clock is %s the state database's (more than "
                "daemon.max_clock_skew_seconds, %s s): this daemon runs no tenant until it is "
                "set right (NTP), and leaves its tenants to the other replicas",
                _described(offset),
                f"{self._max_skew:g}",
            )
        elif was and not off:
            log.info(
                "this machine's clock is %s the state database's, within "
                "daemon.max_clock_skew_seconds again: tenants run again",
                _described(offset),
            )

    @property
    def off(self) -> str | None:
        """``clock off by N s`` while the offset is past the bound (``/healthz``'s reason and
        why a turn is skipped), else None."""
        with self._lock:
            if not self._off or self._offset is None:
                return None
            return f"clock off by {abs(self._offset):.0f} s"

    def check(self) -> str | None:
        """The health check (``daemon.http.HealthCheck``): the change was logged by ``measure``."""
        return self.off


def _described(offset: float) -> str:
    """``120 s ahead of``, ``3 s behind``: this clock against the database's (``offset`` is
    theirs minus ours)."""
    return f"{abs(offset):.0f} s {'behind' if offset > 0 else 'ahead of'}"
