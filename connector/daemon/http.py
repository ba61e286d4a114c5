"""``/healthz``, ``/readyz`` and ``/metrics`` on the address given by ``--listen``.

``/healthz``: the process answers and so does its state database (503 when it does not).
``/readyz``: the configuration is loaded and the scheduler is running. ``/metrics``: Prometheus.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from connector.errors import ConfigError, ConnectorError

log = logging.getLogger(__name__)


class HealthServer:
    def __init__(
        self,
        listen: str,
        *,
        ping: Callable[[], None],
        ready: Callable[[], bool],
        registry: CollectorRegistry,
    ) -> None:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(
                f"--listen {listen}: expected HOST:PORT", hint="e.g. --listen 127.0.0.1:9108"
            )
        handler = _handler(ping=ping, ready=ready, registry=registry)
        try:
            self._server = ThreadingHTTPServer((host.strip("[]"), int(port)), handler)
        except OSError as exc:
            raise ConfigError(
                f"--listen {listen}: cannot listen there: {exc.strerror}",
                hint="pick another address or port",
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(
    *, ping: Callable[[], None], ready: Callable[[], bool], registry: CollectorRegistry
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/metrics":
                self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                try:
                    ping()
                except ConnectorError as exc:
                    self._answer(503, f"unhealthy: {exc.message}\n".encode())
                else:
                    self._answer(200, b"ok\n")
            elif path == "/readyz":
                if ready():
                    self._answer(200, b"ready\n")
                else:
                    self._answer(503, b"not ready\n")
            else:
                self._answer(404, b"not found: /healthz, /readyz and /metrics are served\n")

        def _answer(
            self, status: int, body: bytes, kind: str = "text/plain; charset=utf-8"
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("health: " + format, *args)

    return Handler
