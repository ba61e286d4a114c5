"""Logging set-up: text for people, JSON lines for log shippers.

Every record carries the tenant and run id of the run that logged it (bound per run in a
context variable, so the daemon's threads never mix them up). Phone numbers are masked by the
callers (``phones.mask``) and only at DEBUG; names are never logged; secrets never reach a record.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import sys
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_BOUND: ContextVar[dict[str, str] | None] = ContextVar("connector_log_fields", default=None)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "where"}


def scoped(func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func`` in a copy of the caller's context: what it binds stays inside."""

    @functools.wraps(func)
    def inside(*args: P.args, **kwargs: P.kwargs) -> R:
        return contextvars.copy_context().run(func, *args, **kwargs)

    return inside


def bind(**fields: str) -> None:
    """Fields every record logged from this context carries (``tenant``, ``run_id``)."""
    _BOUND.set({**(_BOUND.get() or {}), **fields})


class _Bound(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_BOUND.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``12:00:01 INFO [acme 20261124T…] message``; the brackets only inside a run."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(where)s%(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        parts = [str(getattr(record, key)) for key in ("tenant", "run_id") if hasattr(record, key)]
        record.where = f"[{' '.join(parts)}] " if parts else ""
        return super().format(record)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time: a progress bar stands in for it, to
    print records above itself."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_format = ["text"]


def current_format() -> str:
    """``text`` or ``json``: what the command prints besides logs follows it too."""
    return _format[0]


def configure(*, log_format: str, verbose: bool) -> None:
    _format[0] = log_format
    handler = _Stderr()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_Bound())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("connector").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)
