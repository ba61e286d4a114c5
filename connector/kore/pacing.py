"""Upload pacing: sliding windows of (seconds, uploads allowed) per bot.

``delay_for`` is the rule; ``Pacer`` keeps the windows in this process (``check --online``, unit
tests), ``connector.state.budget.SharedPacer`` keeps them in the state database so that every
tenant and every replica uploading to one bot share its budget.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

log = logging.getLogger(__name__)

Limits = list[tuple[float, int]]


class Pacing(Protocol):
    def wait(self) -> None:
        """Block until one more request fits the bot's limits, and count it."""


def delay_for(sent: Sequence[float], now: float, limits: Limits) -> float:
    """Seconds until one more upload fits every window, given the (ascending) times of earlier ones."""
    delay = 0.0
    for window, allowed in limits:
        recent = [t for t in sent if t > now - window]
        if len(recent) >= allowed:
            delay = max(delay, recent[-allowed] + window - now)
    return delay


class Pacer:
    """Sliding-window limits kept in this process."""

    def __init__(
        self,
        limits: Limits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._limits = limits
        self._sent: deque[float] = deque()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    def wait(self) -> None:
        longest = max(window for window, _ in self._limits)
        with self._lock:
            while True:
                now = self._clock()
                while self._sent and self._sent[0] <= now - longest:
                    self._sent.popleft()
                delay = delay_for(self._sent, now, self._limits)
                if delay <= 0:
                    self._sent.append(now)
                    return
                log.info("pacing uploads: waiting %.1fs for the bot's rate limit", delay)
                self._sleep(delay)
