"""Pacing: each API of a bot has a budget of sliding windows (seconds, requests allowed).

Requests are spaced evenly over the shortest window (60 a minute: one a second, never the whole
minute's budget in a burst), and every window must have room. Kore does not say over which window
it counts, so a 429 slows the pace down (the allowed rate halves) and any Retry-After is
honoured; each answer that is not a 429 speeds it up again by a little (multiplicative decrease,
additive increase, as TCP does). ``delay_for`` is the rule; ``Pacer`` keeps the windows in this
process (``check --online``, unit tests), ``connector.state.budget.SharedPacer`` keeps them in the
state database so that every tenant and every replica calling one bot share its budget; there the
times are the database's clock, not each replica's, so replicas whose clocks disagree still see
one set of windows.
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

SPACING_MARGIN = 1.02
"""Requests are spaced a little wider than the limit allows, so that the time they take on the
way (which differs from one request to the next) does not tip the server's window over."""
SLOWEST = 1 / 64
"""The pace never drops below this share of the configured rate."""
RECOVERY = 0.02
"""How much of the configured rate each answer that is not a 429 gives back."""


class Pacing(Protocol):
    def wait(self) -> float:
        """Block until one more request fits the bot's limits, count it; return seconds waited."""

    def limited(self, retry_after: float | None) -> float:
        """Kore answered 429: slow down, and pause ``retry_after`` seconds (when Kore said how
        long; else one spacing at the slower pace). Returns the pause."""

    def answered(self) -> None:
        """Kore answered without a 429: recover a little of the pace."""


def delay_for(sent: Sequence[float], now: float, limits: Limits, *, share: float = 1.0) -> float:
    """Seconds until one more request fits every window, given the (ascending) times of earlier
    ones, and is one spacing (at ``share`` of the configured rate) after the last."""
    delay = 0.0
    for window, allowed in limits:
        recent = [t for t in sent if t > now - window]
        if len(recent) >= allowed:
            delay = max(delay, recent[-allowed] + window - now)
    if sent:
        delay = max(delay, sent[-1] + spacing(limits) / share - now)
    return delay


def spacing(limits: Limits) -> float:
    """The even spacing of the shortest window at the configured rate."""
    window, allowed = min(limits)
    return window / allowed * SPACING_MARGIN


class Throttle:
    """How much of the configured rate a bot takes now (``share``), and until when Kore asked
    it to pause. Kept per process: each process learns from the 429s it is given."""

    def __init__(self, limits: Limits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = 1.0
        self._spacing = spacing(limits)
        self._clock = clock
        self._resume = 0.0
        self._lock = threading.Lock()

    def limited(self, retry_after: float | None) -> float:
        with self._lock:
            self.share = max(SLOWEST, self.share / 2)
            pause = retry_after if retry_after is not None else self._spacing / self.share
            self._resume = max(self._resume, self._clock() + pause)
        log.info(
            "Kore is rate limiting: pausing %.1fs, then %.0f%% of the configured pace",
            pause,
            self.share * 100,
        )
        return pause

    def answered(self) -> None:
        with self._lock:
            self.share = min(1.0, self.share + RECOVERY)

    def paused(self) -> float:
        """Seconds left of the pause Kore asked for."""
        return max(0.0, self._resume - self._clock())


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
        self.throttle = Throttle(limits, clock=clock)

    def wait(self) -> float:
        longest = max(window for window, _ in self._limits)
        waited = 0.0
        with self._lock:
            while True:
                now = self._clock()
                while self._sent and self._sent[0] <= now - longest:
                    self._sent.popleft()
                delay = max(
                    delay_for(self._sent, now, self._limits, share=self.throttle.share),
                    self.throttle.paused(),
                )
                if delay <= 0:
                    self._sent.append(now)
                    return waited
                log.debug("pacing: waiting %.2fs for the bot's rate limit", delay)
                self._sleep(delay)
                waited += delay

    def limited(self, retry_after: float | None) -> float:
        return self.throttle.limited(retry_after)

    def answered(self) -> None:
        self.throttle.answered()
