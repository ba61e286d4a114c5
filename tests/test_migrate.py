"""The state schema: ``migrate`` creates and upgrades it; the read-only commands never write it.

Regression: one ``status`` with a mistyped ``CONNECTOR_STATE_URL`` wrote the connector's tables
into a shared server's ``postgres`` database. Each test runs against a SQLite file, a
PostgreSQL schema and a MariaDB database of its own (empty, as the mistyped URL's database was).
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from importlib.resources import files
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from connector.errors import StateError
from connector.kore.sandbox import Sandbox
from connector.state import Store
from connector.state.store import HEAD
from connector.state.tables import metadata
from tests.conftest import run_cli, tenant_config, write_config
from tests.messy import write_export

OLDER = "0007"
SCHEMA = {*metadata.tables, "alembic_version"}


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    server = "postgres" if request.param == "postgresql" else request.param
    return str(request.getfixturevalue(f"{server}_url"))


@pytest.fixture
def config(tmp_path: Path, sandbox: Sandbox, state_url: str) -> Path:
    export = tmp_path / "contacts.csv"
    write_export(export, valid=20, seed=3)
    return write_config(tmp_path, {"acme": tenant_config(sandbox, export)}, state_url=state_url)


def _tables(url: str) -> set[str]:
    """The tables the database holds, looked at without creating anything (a SQLite file that
    is not there holds none)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not path.exists():
            return set()
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            found = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {name for (name,) in found}
    here = "current_schema()" if parsed.get_backend_name() == "postgresql" else "DATABASE()"
    engine = create_engine(url)
    with engine.connect() as conn:
        names = conn.execute(
            text(f"SELECT table_name FROM information_schema.tables WHERE table_schema = {here}")
        ).scalars()
        found_names = set(names)
    engine.dispose()
    return found_names


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    with engine.connect() as conn:
        found: str | None = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    return found


def _left_by_an_older_version(url: str, revision: str = OLDER) -> None:
    """The schema as an older kore-connector left it: Alembic's own upgrade to ``revision``."""
    config = Config()
    config.set_main_option("script_location", str(files("connector.migrations")))
    engine = create_engine(url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    engine.dispose()


def _one_error(stderr: str) -> tuple[str, str]:
    lines = stderr.splitlines()
    assert not any(x.startswith(("Traceback", "internal error")) for x in lines), stderr
    errors = [x for x in lines if x.startswith("error: ")]
    hints = [x for x in lines if x.startswith("hint: ")]
    assert len(errors) == 1 and len(hints) == 1, stderr
    return errors[0], hints[0]


def test_status_check_and_reconcile_write_nothing_until_migrate(
    config: Path, state_url: str
) -> None:
    status = run_cli("status", config=config)
    checked = run_cli("check", config=config)
    document = json.loads(run_cli("check", "--json", config=config).stdout)
    reconciled = run_cli("reconcile", config=config)

    assert _tables(state_url) == set(), "no table, no alembic_version"
    if state_url.startswith("sqlite"):
        assert not Path(make_url(state_url).database or "").exists(), "no SQLite file either"
    missing = "does not exist" if state_url.startswith("sqlite") else "has no kore-connector schema"
    for refused in (status, reconciled):
        assert refused.returncode == 2, refused.stderr
        line, hint = _one_error(refused.stderr)
        assert line.startswith("error: the state database ") and line.endswith(missing)
        assert "run `kore-connector migrate` (sync and daemon also migrate)" in hint
    assert checked.returncode == 0, checked.stderr
    assert "mapping:  salesforce" in checked.stdout
    (note,) = [line for line in checked.stderr.splitlines() if line.startswith("note: ")]
    assert missing in note and "kore-connector migrate" in note
    assert document["state"]["ok"] is True and missing in document["state"]["problem"]
    assert document["tenants"]["acme"]["ok"] is True

    migrated = run_cli("migrate", config=config)
    again = run_cli("migrate", "--json", config=config)
    after = run_cli("status", config=config)

    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.startswith("state database ")
    assert migrated.stdout.rstrip().endswith(f": created the schema at {HEAD}")
    assert _tables(state_url) == SCHEMA and _revision(state_url) == HEAD
    assert again.returncode == 0
    shown = json.loads(again.stdout)
    assert (shown["from"], shown["to"], shown["changed"]) == (HEAD, HEAD, False)
    assert after.returncode == 0, after.stderr
    assert "last run:       never" in after.stdout
    assert run_cli("check", config=config).stderr == ""


def test_a_schema_behind_this_version_is_said_and_left_as_it_is(
    config: Path, state_url: str
) -> None:
    _left_by_an_older_version(state_url)
    before = _tables(state_url)

    status = run_cli("status", config=config)
    reconciled = run_cli("reconcile", config=config)
    checked = run_cli("check", "--json", config=config)

    behind = f"is at revision {OLDER}, this version needs {HEAD}"
    for refused in (status, reconciled):
        assert refused.returncode == 2, refused.stderr
        line, hint = _one_error(refused.stderr)
        assert line.endswith(behind) and "kore-connector migrate" in hint
    assert checked.returncode == 0 and behind in json.loads(checked.stdout)["state"]["problem"]
    assert _revision(state_url) == OLDER and _tables(state_url) == before

    migrated = run_cli("migrate", config=config)

    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.rstrip().endswith(f": upgraded {OLDER} → {HEAD}")
    assert _revision(state_url) == HEAD and _tables(state_url) == SCHEMA
    assert run_cli("status", config=config).returncode == 0


@pytest.mark.parametrize("command", ["status", "check", "reconcile", "sync", "migrate", "daemon"])
def test_a_schema_from_a_newer_version_is_one_line_for_every_command(
    config: Path, state_url: str, command: str
) -> None:
    Store(state_url).close()
    engine = create_engine(state_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()

    result = run_cli(command, config=config, timeout=60)

    assert result.returncode == 2, result.stderr
    line, hint = _one_error(result.stderr)
    assert line.endswith(f"is at revision 0099, which this version does not know (it needs {HEAD})")
    assert "a newer kore-connector migrated it" in hint
    assert _revision(state_url) == "0099"


def test_sync_still_migrates_and_migrate_says_so(config: Path, state_url: str) -> None:
    _left_by_an_older_version(state_url)

    synced = run_cli("sync", config=config)

    assert synced.returncode == 0, synced.stderr
    assert _revision(state_url) == HEAD
    assert run_cli("migrate", config=config).stdout.rstrip().endswith(f": already at {HEAD}")


def test_a_read_only_store_cannot_write(state_url: str) -> None:
    """Even past the schema check, what the read-only commands open refuses writes: SQLite's
    ``mode=ro``, read-only transactions on the servers."""
    Store(state_url).close()
    reader = Store(state_url, migrate=False)
    try:
        assert reader.revision_found == HEAD
        assert reader.tenant("acme").last_run() is None
        with pytest.raises(StateError, match=r"(?i)read[- ]?only"):
            reader.leases.acquire("acme", seconds=60)
    finally:
        reader.close()
