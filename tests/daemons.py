"""Real daemon processes for end-to-end tests: started from the command line, watched through
their log and their health and metrics endpoints."""

from __future__ import annotations

import contextlib
import csv
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from tests.conftest import SECRET


class DaemonProcess:
    def __init__(
        self, config: Path, log: Path, *, listen: bool | str = True, options: Sequence[str] = ()
    ) -> None:
        self.log_path = log
        command = [sys.executable, "-m", "connector", "daemon", "--config", str(config), *options]
        if listen:
            command += ["--listen", "127.0.0.1:0" if listen is True else str(listen)]
        env = {**os.environ, "TEST_KORE_SECRET": SECRET}
        env.pop("CONNECTOR_CONFIG", None)
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        self._address: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def address(self) -> str:
        if self._address is None:
            wait_for(lambda: "serving /healthz" in self.log(), 30, "the health server", self)
            found = re.search(r"on http://([\d.]+:\d+)", self.log())
            assert found, self.log()
            self._address = found[1]
        return self._address

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://{self.address()}{path}", timeout=10)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics, 0 when the series is not there yet."""
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(f"{name}{{{wanted}}} ") or line.startswith(f"{name} "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout)


def wait_for(
    condition: Callable[[], bool], seconds: float, what: str, daemon: DaemonProcess | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"waited {seconds}s for {what}" + (f"\n{daemon.log()}" if daemon else ""))


def write_contacts(path: Path, exchange: str, count: int) -> dict[str, tuple[str, str, str]]:
    """A plain Salesforce export of ``count`` valid contacts on 415-``exchange``; returns what Kore
    must hold afterwards (phone key -> first, last, salutation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    expected = {}
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "FirstName", "LastName", "MobilePhone"])
        for n in range(count):
            number = f"+1415{exchange}{n:04d}"
            writer.writerow([f"{exchange}-{n}", f"F{n}", f"L{exchange}", number])
            expected[number] = (f"F{n}", f"L{exchange}", "")
    return expected


class TcpProxy:
    """A loopback TCP forwarder that can be paused (every connection cut, new ones refused) to
    play a database that went away, and resumed on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._paused = False
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.pause()
        self._listener.close()

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._open.clear()

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._paused:
                    client.close()
                    continue
                upstream = socket.create_connection(self.target)
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
