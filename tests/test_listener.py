"""The daemon's ``--listen`` server against hostile neighbours: real daemon processes, raw
sockets and many clients at once on loopback."""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import write_config
from tests.daemons import DaemonProcess, TcpProxy, wait_for

pytestmark = pytest.mark.slow


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def test_idle_and_busy_clients_are_served_by_a_bounded_pool_and_logs_stay_json(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(
        write_config(tmp_path, {}), tmp_path / "daemon.log", options=["--log-format", "json", "-v"]
    )
    idle: list[socket.socket] = []
    try:
        address = _split(daemon.address())
        assert daemon.get("/healthz").text == "ok\n"
        baseline = _threads(daemon.pid)
        idle += [socket.create_connection(address, timeout=10) for _ in range(200)]

        peak = [baseline]
        done = threading.Event()

        def count_threads() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], _threads(daemon.pid))

        def client(n: int) -> list[float]:
            took = []
            for i in range(10):
                path = "/metrics" if i % 2 else "/healthz"
                started = time.monotonic()
                conn = http.client.HTTPConnection(*address, timeout=10)
                try:
                    conn.request("GET", path)
                    if n % 5 == 0 and i == 9:
                        # leaves before its answer, with a reset rather than a goodbye
                        conn.sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        continue
                    answer = conn.getresponse()
                    body = answer.read()
                finally:
                    conn.close()
                took.append(time.monotonic() - started)
                assert answer.status == 200, (path, answer.status, body)
                if path == "/healthz":
                    assert body == b"ok\n"
                else:
                    assert b"kore_connector_" in body
            return took

        sampler = threading.Thread(target=count_threads)
        sampler.start()
        try:
            with ThreadPoolExecutor(50) as pool:
                took = sorted(t for times in pool.map(client, range(50)) for t in times)
        finally:
            done.set()
            sampler.join()
        p99 = took[int(len(took) * 0.99)]
        print(
            f"{len(took)} answers beside 200 idle connections: p99 {p99:.3f}s, threads {baseline} -> {peak[0]}"
        )
        assert peak[0] <= baseline + 4, f"{peak[0]} threads, {baseline} before the clients came"
        assert daemon.get("/readyz").text == "ready\n"
        assert daemon.stop() == 0
    finally:
        for conn in idle:
            conn.close()
        daemon.process.kill()
    lines = daemon.log().splitlines()
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not one JSON object a line: {line!r}\n{daemon.log()}")
    assert records[-1]["message"] == "daemon stopped"
    assert not [r for r in records if "traceback" in r or r["level"] not in ("debug", "info")]


def test_listen_on_port_0_answers_head_and_closes_a_half_sent_request_after_the_timeout(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, {}, daemon={"listen_timeout_seconds": 1})
    daemon = DaemonProcess(config, tmp_path / "daemon.log", listen=":0")
    try:
        host, port = _split(daemon.address())
        assert host == "127.0.0.1", "no host: loopback"
        assert port > 0
        head = httpx.head(f"http://{host}:{port}/healthz", timeout=10)
        assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "3")
        assert httpx.post(f"http://{host}:{port}/healthz", timeout=10).status_code == 405
        missing = httpx.get(f"http://{host}:{port}/status", timeout=10)
        assert (missing.status_code, missing.text) == (
            404,
            "not found: /healthz, /readyz and /metrics are served\n",
        )

        half = socket.create_connection((host, port), timeout=30)
        half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        silent = socket.create_connection((host, port), timeout=30)
        started = time.monotonic()
        for conn in (half, silent):
            with conn:
                try:
                    assert conn.recv(1024) == b"", "the server closes it without an answer"
                except TimeoutError:
                    pytest.fail("the server left a half-sent or silent connection open for 30s")
        assert time.monotonic() - started >= 0.9, "not before the timeout"
        assert daemon.get("/healthz").text == "ok\n"
        assert daemon.stop() == 0
    finally:
        daemon.process.kill()


def test_healthz_says_the_state_database_is_unreachable_and_only_the_log_says_where(
    tmp_path: Path, postgres_url: str
) -> None:
    with TcpProxy(("127.0.0.1", 5432)) as proxy:
        url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        assert url != postgres_url
        daemon = DaemonProcess(write_config(tmp_path, {}, state_url=url), tmp_path / "daemon.log")
        try:
            wait_for(lambda: daemon.get("/healthz").status_code == 200, 30, "health", daemon)
            proxy.pause()
            wait_for(lambda: daemon.get("/healthz").status_code == 503, 30, "503", daemon)
            answers = set()
            deadline = time.monotonic() + 3  # several runs of the check, one a second at most
            while time.monotonic() < deadline:
                answer = daemon.get("/healthz")
                answers.add((answer.status_code, answer.text))
                time.sleep(0.1)
            assert answers == {(503, "unhealthy: state database unreachable\n")}

            proxy.resume()
            wait_for(lambda: daemon.get("/healthz").status_code == 200, 30, "recovery", daemon)
            assert daemon.stop() == 0
        finally:
            daemon.process.kill()
    told = [line for line in daemon.log().splitlines() if "the state database is" in line]
    assert len(told) == 2, daemon.log()  # the daemon's one outage, whoever noticed it
    assert "ERROR the state database is unavailable: " in told[0]
    assert "postgresql+psycopg://" in told[0]
    assert f"127.0.0.1:{proxy.port}" in told[0]
    assert "INFO the state database is back after " in told[1]


def test_waitress_records_of_a_client_that_went_away_become_one_debug_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In process: the records waitress writes when a client leaves (not produced on demand by
    a real client, whose leaving waitress mostly does not notice)."""
    from prometheus_client import CollectorRegistry

    from connector.daemon.http import HealthServer

    server = HealthServer(
        "127.0.0.1:0", checks=[], ready=lambda: True, registry=CollectorRegistry(), timeout=1
    )
    caplog.set_level(logging.DEBUG, logger="connector.daemon.http")
    waitress = logging.getLogger("waitress")
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except OSError:
        waitress.exception("Socket error")
    waitress.info("Client disconnected while serving /metrics")
    logging.getLogger("waitress.queue").warning("Task queue depth is 3")
    waitress.warning("total open connections reached the connection limit")
    server.start()
    server.stop()
    assert [(r.name, r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        (
            "connector.daemon.http",
            "DEBUG",
            "a client went away: [Errno 104] Connection reset by peer",
            None,
        ),
        (
            "connector.daemon.http",
            "DEBUG",
            "a client went away before its answer to /metrics",
            None,
        ),
        ("connector.daemon.http", "DEBUG", "every worker is busy: Task queue depth is 3", None),
        ("waitress", "WARNING", "total open connections reached the connection limit", None),
    ]
