"""Logging set-up: text for people, JSON lines for log shippers.

Every record carries the tenant and run id of the run that logged it (bound per run in a
context variable, so the daemon's threads never mix them up). Phone numbers are masked by the
callers (``phones.mask``) and only at DEBUG; names are never logged; secrets never reach a record.

Every text that reaches a terminal or a text log goes through ``printable``: a file name, a header
or a cell cannot start a line of its own, move the cursor or set the terminal's title. JSON
records go through ``json_line``: JSON escapes for what ``json.dumps`` leaves as it is.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import re
import sys
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def json_line(entry: dict[str, Any]) -> str:
    r"""``entry`` as one line of JSON that is valid UTF-8 and holds no character ``printable``
    escapes: ``json.dumps`` writes the C0 controls as escapes (``\u001b``), and here DEL, the C1
    controls, the line and paragraph separators, the bidirectional controls and lone surrogates
    become JSON escapes too (``\u009b``, ``\u202e``, ``\udcff``). Every value still reads back
    exactly; other text (Cyrillic, CJK, accents) stays as it is. Values JSON has no type for are
    written as their ``str``."""
    return _JSON_UNSAFE.sub(
        lambda found: f"\\u{ord(found.group()):04x}",
        json.dumps(entry, ensure_ascii=False, default=str),
    )


def printable(text: str) -> str:
    r"""``text`` fit for a terminal or a text log line: every character that could break the
    line, drive the terminal or reorder what is shown becomes a visible escape, as Python writes it.

    Escaped: the C0 controls U+0000 to U+001F (``\n``, ``\r`` and ``\t`` by name, ESC as
    ``\x1b``, BEL as ``\x07``); DEL and the C1 controls U+007F to U+009F (``\x7f``, ``\x9b``);
    the line and paragraph separators U+2028 and U+2029; the bidirectional embeddings, overrides
    and isolates U+202A to U+202E and U+2066 to U+2069 (``\u202e``: "Trojan Source",
    CVE-2021-42574); and the lone surrogates U+D800 to U+DFFF that stand for the undecodable bytes
    of a file name (``\udcff``: no terminal encoding could write them). Everything else is kept as
    it is: printable Unicode (Cyrillic, CJK, accents) and the backslash too.
    """
    return _UNPRINTABLE.sub(_escape, text)


_BOUND: ContextVar[dict[str, str] | None] = ContextVar("connector_log_fields", default=None)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


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
        return json_line(entry)


class TextFormatter(logging.Formatter):
    """``12:00:01 INFO [acme 20261124T…] message``; the brackets only inside a run.

    A record is one line: its message and fields pass through ``printable``, so no file name,
    header, cell or request line can start a line that looks like a record of its own. A
    traceback follows on lines of its own: its first line (``Traceback …``, or the exception's
    type) as Python writes it, every further line indented by two spaces and escaped, so what
    an exception's message quotes can only continue an indented line."""

    def __init__(self) -> None:
        super().__init__(datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        parts = [str(getattr(record, key)) for key in ("tenant", "run_id") if hasattr(record, key)]
        where = printable(f"[{' '.join(parts)}] ") if parts else ""
        line = (
            f"{self.formatTime(record, self.datefmt)} {record.levelname} {where}"
            f"{printable(record.getMessage())}"
        )
        if record.exc_info:
            line += "\n" + _indented(self.formatException(record.exc_info))
        if record.stack_info:
            line += "\n" + _indented(self.formatStack(record.stack_info))
        return line


def _indented(text: str) -> str:
    first, *rest = text.split("\n")
    return "\n".join([printable(first), *(f"  {printable(line)}" for line in rest)])


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
