"""Proxies from the environment: never for a loopback Kore (the sandbox, a tunnel), whose plain
http would hand the proxy every token; for Kore itself, as an integrator behind an egress proxy
expects (HTTPS_PROXY, ALL_PROXY, NO_PROXY)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from connector.errors import KoreUnavailable
from connector.kore.client import KoreClient
from connector.kore.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_CLIENT_ID, Sandbox
from connector.settings import KoreSettings
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.daemons import write_contacts

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class RecordingProxy:
    """A proxy on a loopback port that records what each connection sends it and answers 502."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.received: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                        data += chunk
                finally:
                    self.received.append(data)
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    recording = RecordingProxy()
    yield recording
    recording.close()


def test_a_loopback_kore_is_reached_directly_whatever_proxy_the_environment_names(
    tmp_path: Path, sandbox: Sandbox, proxy: RecordingProxy
) -> None:
    expected = write_contacts(tmp_path / "exports" / "contacts.csv", "555", 3)
    config = write_config(
        tmp_path, {"acme": tenant_config(sandbox, tmp_path / "exports" / "*.csv")}
    )
    proxies = {name: proxy.url for name in PROXY_VARIABLES}
    proxies |= {name.lower(): proxy.url for name in PROXY_VARIABLES}

    result = run_cli("sync", config=config, env=proxies)

    assert result.returncode == 0, result.stderr
    assert {c["cellPhone"]["phoneNumber"] for c in sandbox.state.active()} == set(expected)
    assert proxy.received == [], "the proxy saw a request, and the token in it"


def test_kore_itself_is_reached_through_the_https_proxy_the_environment_names(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    settings = KoreSettings(
        host="https://kore.example.invalid",
        bot_id="st-bot",
        account_id=DEFAULT_ACCOUNT_ID,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=SecretStr(SECRET),
        retries=0,
    )

    with KoreClient(settings) as client, pytest.raises(KoreUnavailable):
        client.list_contacts()

    assert [r.split(b"\r\n")[0] for r in proxy.received] == [
        b"CONNECT kore.example.invalid:443 HTTP/1.1"
    ]
    assert b"auth:" not in proxy.received[0].lower(), "the token travels inside the tunnel"
