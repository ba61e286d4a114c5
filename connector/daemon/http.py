"""``/healthz``, ``/readyz`` and ``/metrics`` on the address given by ``--listen``.

``/healthz``: 200 ``ok``, or 503 ``unhealthy: REASON[; REASON…]`` naming a class of fault
(``state database unreachable``) and never its detail, which a check logs once each time it
changes. ``/readyz``: the configuration is loaded and the scheduler is running. ``/metrics``:
Prometheus (prometheus-client's WSGI app, so OpenMetrics and gzip when the scraper asks). ``GET``
and ``HEAD``; other methods get 405.

The server is waitress, chosen over cheroot because waitress reads every request whole on one
event-loop thread before a worker sees it, so idle, slow and half-sent clients hold no thread. Its
limits: ``WORKERS`` threads answer requests; ``CONNECTION_LIMIT`` connections at once (beyond it,
new ones wait in a listen backlog of ``BACKLOG``); a connection silent for ``timeout`` seconds
(``daemon.listen_timeout_seconds``), idle, half-sent or not reading its answer, is closed; a
request's headers are at most ``MAX_HEADER_BYTES`` and it carries no body. The checks run at most
once per ``CHECK_INTERVAL`` seconds however often ``/healthz`` is asked.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app
from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

from connector.daemon.outages import Outage
from connector.errors import ConfigError, ConnectorError

log = logging.getLogger(__name__)

HealthCheck = Callable[[], str | None]
"""None when healthy, else a short public reason (``state database unreachable``). It may be
called from several threads, never at once; it logs its own detail when its answer changes."""

WORKERS = 4
CONNECTION_LIMIT = 500
BACKLOG = 1024
MAX_HEADER_BYTES = 65536
CHECK_INTERVAL = 1.0
NOT_FOUND = b"not found: /healthz, /readyz and /metrics are served\n"

_Answer = tuple[str, list[tuple[str, str]], bytes]
_TEXT = "text/plain; charset=utf-8"


def probe_check(probe: Callable[[], None], reason: str, outage: Outage) -> HealthCheck:
    """A check from a probe that raises ``ConnectorError`` when unhealthy (``Store.ping``):
    ``reason`` then. The error's message, which may name hosts and databases and so goes to the
    log only, is told to ``outage``, the one the daemon's turns tell too: an outage is two log
    lines however often ``/healthz`` is asked and whoever noticed it first."""

    def check() -> str | None:
        try:
            probe()
        except ConnectorError as exc:
            outage.failed(exc.message, turn=False)
            return reason
        outage.answered()
        return None

    return check


class HealthServer:
    """The listener. ``listen`` is ``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (loopback); port
    0 takes a free one (``address`` tells which). Raises ``ConfigError`` for an address it cannot
    parse or bind. ``timeout`` is in whole seconds."""

    def __init__(
        self,
        listen: str,
        *,
        checks: Sequence[HealthCheck],
        ready: Callable[[], bool],
        registry: CollectorRegistry,
        timeout: int,
    ) -> None:
        _quiet_waitress()
        app = _App(_Health(checks), ready, make_wsgi_app(registry))
        self._socket = _bind(listen)
        self._map: dict[int, Any] = {}  # waitress's: file descriptor -> its dispatcher
        self._server = cast(
            BaseWSGIServer,  # one socket, hence one server, not a MultiSocketServer
            create_server(
                app,
                map=self._map,
                sockets=[self._socket],
                threads=WORKERS,
                connection_limit=CONNECTION_LIMIT,
                backlog=BACKLOG,
                channel_timeout=timeout,
                cleanup_interval=1,
                max_request_header_size=MAX_HEADER_BYTES,
                max_request_body_size=0,
                asyncore_use_poll=True,
            ),
        )
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="health", daemon=True)

    @property
    def address(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Close the listener and every connection; requests in progress get up to 5 s."""
        self._stopping.set()
        self._server.pull_trigger()
        self._thread.join()
        self._server.task_dispatcher.shutdown()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            wasyncore.loop(timeout=1, use_poll=True, map=self._map, count=1)
        wasyncore.close_all(self._map)


def _bind(listen: str) -> socket.socket:
    host, colon, port = listen.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise ConfigError(
            f"--listen {listen}: expected HOST:PORT", hint="e.g. --listen 127.0.0.1:9108"
        )
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, int(port)), family=family, backlog=BACKLOG)
    except OSError as exc:
        raise ConfigError(
            f"--listen {listen}: cannot listen there: {exc.strerror}",
            hint="pick another address or port",
        ) from None


class _Health:
    """The checks' reasons, worked out at most once per ``CHECK_INTERVAL``: probes in between,
    and probes that come while a check runs (a database that does not answer takes its connect
    timeout), get the last answer, so asking often costs the database nothing and no worker waits
    for a check except on the first probe."""

    def __init__(self, checks: Sequence[HealthCheck]) -> None:
        self._checks = checks
        self._lock = threading.Lock()
        self._reasons: list[str] = []
        self._checked = False
        self._until = 0.0

    def reasons(self) -> list[str]:
        if time.monotonic() < self._until or not self._lock.acquire(blocking=not self._checked):
            return self._reasons
        try:
            if time.monotonic() >= self._until:
                self._reasons = [r for check in self._checks if (r := check()) is not None]
                self._checked = True
                self._until = time.monotonic() + CHECK_INTERVAL
            return self._reasons
        finally:
            self._lock.release()


class _App:
    """The WSGI application: each route's answer whole, sent without its body to ``HEAD``."""

    def __init__(
        self,
        health: _Health,
        ready: Callable[[], bool],
        metrics: Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]],
    ) -> None:
        self._health = health
        self._ready = ready
        self._metrics = metrics

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        if method in ("GET", "HEAD"):
            status, headers, body = self._answer(environ)
        else:
            status, headers, body = _text("405 Method Not Allowed", b"GET and HEAD only\n")
            headers.append(("Allow", "GET, HEAD"))
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [] if method == "HEAD" else [body]

    def _answer(self, environ: WSGIEnvironment) -> _Answer:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._scrape(environ)
        if path == "/healthz":
            reasons = self._health.reasons()
            if reasons:
                body = f"unhealthy: {'; '.join(reasons)}\n".encode()
                return _text("503 Service Unavailable", body)
            return _text("200 OK", b"ok\n")
        if path == "/readyz":
            return (
                _text("200 OK", b"ready\n")
                if self._ready()
                else _text("503 Service Unavailable", b"not ready\n")
            )
        return _text("404 Not Found", NOT_FOUND)

    def _scrape(self, environ: WSGIEnvironment) -> _Answer:
        started: list[tuple[str, list[tuple[str, str]]]] = []

        def start(
            status: str, headers: list[tuple[str, str]], *_: object
        ) -> Callable[[bytes], object]:
            started.append((status, list(headers)))
            return lambda _data: None

        body = b"".join(self._metrics({**environ, "REQUEST_METHOD": "GET"}, start))
        status, headers = started[0]
        return status, headers, body


def _text(status: str, body: bytes) -> _Answer:
    return status, [("Content-Type", _TEXT)], body


class _WaitressRecords(logging.Filter):
    """waitress's own records, kept to what an operator acts on: a client that went away (a
    socket error, or a disconnect noticed while its answer was written) and a queue of requests
    waiting for a worker become one DEBUG line of this module; the rest pass as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, OSError):
            log.debug("a client went away: %s", error)
        elif record.getMessage().startswith("Client disconnected while serving"):
            path = record.getMessage().rpartition(" ")[2]
            log.debug("a client went away before its answer to %s", path)
        elif record.name == "waitress.queue":
            log.debug("every worker is busy: %s", record.getMessage())
        else:
            return True
        return False


_WAITRESS_RECORDS = _WaitressRecords()


def _quiet_waitress() -> None:
    """INFO reaches the filter (the disconnect message is INFO); what passes is one line each."""
    for name in ("waitress", "waitress.queue"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addFilter(_WAITRESS_RECORDS)
