"""Fixtures build real things: a sandbox on a loopback port, SQLite files, PostgreSQL schemas."""

from __future__ import annotations

import functools
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, create_engine, text

from connector.kore.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_CLIENT_ID, Sandbox
from tests.forkserver import ForkServer, needs_fresh_process

SAMPLES = Path(__file__).resolve().parent / "samples"  # copied unchanged from shared/samples
REQUIRE_SERVERS = os.environ.get("CONNECTOR_TEST_REQUIRE_SERVERS") == "1"

SECRET = "kc-canary-" + secrets.token_hex(27)  # 64 bytes: long enough for HS512
"""The Kore client secret of every test in the suite, and a canary: made afresh each session,
it must never appear in anything the connector prints or writes. Every command ``run_cli`` runs
is checked, and the session ends by searching every file the tests left behind (reports, state
files, daemon logs, configs, and the temporary files of every child process, whose ``TMPDIR``
is a folder of the session) and every PostgreSQL schema before it is dropped."""


def assert_no_canary(text: str | bytes, where: str) -> None:
    found = SECRET.encode() in text if isinstance(text, bytes) else SECRET in text
    assert not found, f"the client secret leaked into {where}"


@pytest.fixture(scope="session", autouse=True)
def canary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Children's temporary files go to a folder of the session; at the end, no file the
    session left holds the secret."""
    os.environ["TMPDIR"] = str(tmp_path_factory.mktemp("tmpdir"))
    yield
    leaked = leaks(tmp_path_factory.getbasetemp())
    assert not leaked, f"the client secret leaked into {leaked}"


def leaks(folder: Path) -> list[str]:
    """Every file under ``folder`` that holds the secret."""
    return [
        str(path)
        for path in folder.rglob("*")
        if path.is_file() and not path.is_symlink() and SECRET.encode() in path.read_bytes()
    ]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(secret=SECRET) as running:
        yield running


def tenant_config(
    sandbox: Sandbox, source: Path, *, mapping: str = "salesforce", **kore: Any
) -> dict[str, Any]:
    return {
        "kore": {
            "host": sandbox.url,
            "bot_id": "st-test",
            "account_id": DEFAULT_ACCOUNT_ID,
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": "${TEST_KORE_SECRET}",
            "batch_size": 250,
            "uploads_per_minute": 100_000,
            "uploads_per_hour": 1_000_000,
            "backoff_seconds": 0.01,
            "timeout_seconds": 10,
            **kore,
        },
        "source": {"kind": "csv", "path": str(source), "min_file_age": "0s"},  # written just now
        "mapping": mapping,
        "default_region": "US",
    }


def write_config(
    directory: Path,
    tenants: dict[str, Any],
    *,
    state_url: str | None = None,
    daemon: dict[str, Any] | None = None,
    **settings: Any,
) -> Path:
    """``directory``/connector.yaml with the state and reports in ``directory``; ``settings``
    are further top-level settings, as the YAML names them (``mapping_processes=3``)."""
    config: dict[str, Any] = {
        "state_url": state_url or f"sqlite:///{directory / 'state.db'}",
        "reports_dir": str(directory / "reports"),
        **settings,
        "tenants": tenants,
    }
    if daemon:
        config["daemon"] = daemon
    path = directory / "connector.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@functools.cache
def _fork_server() -> ForkServer:
    return ForkServer()


def run_cli(
    *args: str,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """The real command line, in a child process, as a user would run it (``prefix`` runs it
    inside another command, such as ``on_small_disk``). The child is forked from a process
    that has imported the connector already (``forkserver``), unless the command needs a new
    interpreter."""
    full_env = {**os.environ, "TEST_KORE_SECRET": SECRET, **(env or {})}
    full_env.pop("CONNECTOR_CONFIG", None)
    words = [*args, *(["--config", str(config)] if config is not None else [])]
    if prefix or needs_fresh_process(env or {}):
        command = [*prefix, sys.executable, "-m", "connector", *words]
        done = subprocess.run(
            command, capture_output=True, text=True, env=full_env, timeout=timeout, check=False
        )
    else:
        done = _fork_server().run(words, env=full_env, timeout=timeout)
    assert_no_canary(done.stdout + done.stderr, f"the output of {' '.join(args)}")
    return done


def on_small_disk(folder: Path, *, size_kb: int, free_kb: int | None = None) -> list[str]:
    """A command prefix: what follows runs with ``folder`` on a disk of its own (a tmpfs in a
    private mount namespace, gone when the command ends) of ``size_kb``, ``free_kb`` of it free;
    ``free_kb=None`` mounts it read-only. Real ENOSPC and EROFS, not simulated ones."""
    folder.mkdir(parents=True, exist_ok=True)
    if free_kb is None:
        setup = f"mount -t tmpfs -o size={size_kb}k,ro tmpfs '{folder}'"
    else:
        setup = (
            f"mount -t tmpfs -o size={size_kb}k tmpfs '{folder}' && "
            f"head -c {(size_kb - free_kb) * 1024} /dev/zero > '{folder}/filler'"
        )
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        setup + ' && exec "$@"',
        "sh",
    ]


SERVERS = {"postgres": ("postgres", "postgresql"), "mariadb": ("mariadb",)}
"""Each server marker, and the parameter ids that stand for that server in the suite."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``-m postgres`` and ``-m mariadb`` select every test that needs that server: those that
    ask for its fixture, and those parametrized over servers (whose fixture is requested by
    name at run time)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        ids = set(callspec.id.split("-")) if callspec is not None else set()
        for marker, names in SERVERS.items():
            if f"{marker}_url" in fixtures or ids & set(names):
                item.add_marker(getattr(pytest.mark, marker))


def _server_url(variable: str) -> str:
    url = os.environ.get(variable)
    if not url:
        if REQUIRE_SERVERS:
            pytest.fail(f"{variable} is not set but CONNECTOR_TEST_REQUIRE_SERVERS=1")
        pytest.skip(f"{variable} is not set")
    return url


@contextmanager
def _scratch(variable: str, create: str, drop: str) -> Iterator[Engine]:
    """A server from ``variable``; ``create`` runs before the test and ``drop`` after it."""
    base = _server_url(variable)
    engine = create_engine(base)
    try:
        with engine.begin() as conn:
            conn.execute(text(create))
    except Exception as exc:
        pytest.fail(f"{variable}: the server at {base} is unreachable: {exc}")
    try:
        yield engine
    finally:
        with engine.begin() as conn:
            conn.execute(text(drop))
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a schema of this test's own, dropped afterwards."""
    schema = f"t_{secrets.token_hex(6)}"
    with _scratch(
        "CONNECTOR_TEST_POSTGRES_URL",
        f'CREATE SCHEMA "{schema}"',
        f'DROP SCHEMA "{schema}" CASCADE',
    ) as engine:
        base = engine.url.render_as_string(hide_password=False)
        separator = "&" if "?" in base else "?"
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
        with engine.begin() as conn:
            tables = conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema},
            ).scalars()
            for table in list(tables):
                rows = conn.execute(text(f'SELECT * FROM "{schema}"."{table}"')).all()
                assert_no_canary(repr(rows), f"the PostgreSQL table {table}")


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A MariaDB/MySQL URL to a database of this test's own, dropped afterwards."""
    name = f"t_{secrets.token_hex(6)}"
    with _scratch(
        "CONNECTOR_TEST_MARIADB_URL",
        f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4",
        f"DROP DATABASE `{name}`",
    ) as engine:
        yield engine.url.set(database=name).render_as_string(hide_password=False)
