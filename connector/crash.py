"""Crash points for the fault-injection suite, and for nothing else.

``CONNECTOR_TEST_CRASH=POINT[:N]`` (a test-only environment variable: nothing in production sets
it) makes the process kill itself with SIGKILL the Nth time (the first by default) it reaches
POINT: no cleanup, no ``finally``, no flush, as a power cut or the OOM killer would. Unset, a
crash point costs one comparison. The points: ``before_upload``, ``after_upload`` (Kore stored
the rows and answered; the answer is unread), ``before_settle`` (the answer is read, the state
not yet told), ``mid_update`` and ``mid_delete`` (Kore did it; the state not yet told).
"""

from __future__ import annotations

import itertools
import os
import signal

_POINT, _, _NTH = os.environ.get("CONNECTOR_TEST_CRASH", "").partition(":")
_passes = itertools.count(1)


def crash_point(name: str) -> None:
    if name == _POINT and next(_passes) == int(_NTH or 1):
        os.kill(os.getpid(), signal.SIGKILL)
