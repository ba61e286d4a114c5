"""Every mistake a user can make is one line and a hint, naming the culprit, with the documented
exit code: the texts an operator saw, each through the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from connector.kore.sandbox import Sandbox
from tests.conftest import SECRET, run_cli, tenant_config, write_config


def _error(stderr: str) -> tuple[str, str]:
    """The one error line and the hint after it; no traceback, no internal error."""
    lines = stderr.splitlines()
    assert not any(x.startswith(("Traceback", "internal error")) for x in lines), stderr
    errors = [x for x in lines if x.startswith("error: ")]
    assert len(errors) == 1, stderr
    hints = [x for x in lines if x.startswith("hint: ")]
    return errors[0], hints[0] if hints else ""


def _config(tmp_path: Path, sandbox: Sandbox, change: Any = None, **top: Any) -> Path:
    export = tmp_path / "contacts.csv"
    export.write_text("Id,FirstName,LastName,MobilePhone\n1,Ann,Lee,+1 415 201 0101\n")
    tenant = tenant_config(sandbox, export)
    if change:
        change(tenant)
    return write_config(tmp_path, {"acme": tenant}, **top)


@pytest.mark.parametrize("server", ["sqlite", "postgres"])
def test_a_misspelt_sql_table_names_the_tables_there(
    tmp_path: Path, sandbox: Sandbox, server: str, request: pytest.FixtureRequest
) -> None:
    if server == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as db:
        db.execute(text("CREATE TABLE contacts (Id TEXT, FirstName TEXT, Phone TEXT)"))
        db.execute(text("CREATE TABLE accounts (Id TEXT)"))
    engine.dispose()
    source = {"kind": "sql", "url": url, "table": "contcts"}
    config = _config(tmp_path, sandbox, lambda t: t.update(source=source, mapping="generic"))
    shown = make_url(url).render_as_string(hide_password=True)

    for command in ("sync", "check"):
        result = run_cli(command, config=config)
        assert result.returncode == 1, result.stderr
        line, hint = _error(result.stderr)
        assert f"source.table 'contcts' does not exist in {shown}" in line
        assert "(did you mean 'contacts'?)" in line
        assert hint == "hint: tables there: accounts, contacts"


def test_a_state_url_whose_driver_is_missing_names_the_extra(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config = _config(tmp_path, sandbox, state_url="mysql+mysqldb://root@127.0.0.1/test")

    result = run_cli("sync", config=config)

    assert result.returncode == 2
    line, hint = _error(result.stderr)
    assert "state_url mysql+mysqldb://root@127.0.0.1/test: its database driver is not" in line
    assert "pip install 'kore-connector[mysql]'" in hint and "mysql+pymysql://" in hint


def test_a_zero_schedule_is_refused(tmp_path: Path, sandbox: Sandbox) -> None:
    config = _config(tmp_path, sandbox, lambda t: t.update(schedule={"every": "0m"}))
    result = run_cli("check", config=config)
    assert result.returncode == 2
    assert "tenants.acme.schedule.every must be longer than zero" in _error(result.stderr)[0]


def test_every_config_problem_is_listed_unknown_keys_first_with_did_you_mean(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    def typos(tenant: dict[str, Any]) -> None:
        tenant["maping"] = tenant.pop("mapping")
        tenant["kore"]["batch_sise"] = 10

    result = run_cli("sync", config=_config(tmp_path, sandbox, typos))

    assert result.returncode == 2
    line, _ = _error(result.stderr)
    assert line.endswith(
        "3 problems: tenants.acme.kore.batch_sise is not a known setting (did you mean "
        "'batch_size'?); tenants.acme.maping is not a known setting (did you mean 'mapping'?); "
        "tenants.acme.mapping is required"
    )


def test_an_empty_variable_is_named(tmp_path: Path, sandbox: Sandbox) -> None:
    result = run_cli("sync", config=_config(tmp_path, sandbox), env={"TEST_KORE_SECRET": ""})
    assert result.returncode == 2
    assert (
        "tenants.acme.kore.client_secret is empty (it comes from ${TEST_KORE_SECRET}, which is "
        "set but empty)"
    ) in _error(result.stderr)[0]


def test_an_unknown_source_kind_is_said_plainly(tmp_path: Path, sandbox: Sandbox) -> None:
    config = _config(tmp_path, sandbox, lambda t: t["source"].update(kind="cvs"))
    result = run_cli("check", config=config)
    assert result.returncode == 2
    line, _ = _error(result.stderr)
    assert line.endswith(
        "tenants.acme.source.kind 'cvs' is not one of csv, xlsx, sql (did you mean 'csv'?)"
    )


def test_yaml_errors_give_reason_line_and_column_in_configs_and_mappings(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config = _config(tmp_path, sandbox)
    text = config.read_text().splitlines()
    text[3] = text[3] + " x: y"  # a second value on a line that already has one
    config.write_text("\n".join(text) + "\n")
    result = run_cli("check", config=config)
    assert result.returncode == 2
    line, hint = _error(result.stderr)
    assert f"{config} line 4 column " in line and "not valid YAML: mapping values are not" in line
    assert hint.startswith("hint: check the indentation")

    mapping = tmp_path / "acme.yaml"
    mapping.write_text("fields:\n  firstName: FirstName\n  lastName: [LastName\nphone: Phone\n")
    config = _config(tmp_path, sandbox, lambda t: t.update(mapping=str(mapping)))
    result = run_cli("check", config=config)
    assert result.returncode == 2
    line, _ = _error(result.stderr)
    assert f"mapping {mapping} line 4 column" in line and "not valid YAML" in line


def test_a_closed_pipe_is_quiet(tmp_path: Path, sandbox: Sandbox) -> None:
    export = tmp_path / "contacts.csv"
    export.write_text("Id,FirstName,LastName,MobilePhone\n")
    tenants = {f"t{n:03d}": tenant_config(sandbox, export) for n in range(300)}
    config = write_config(tmp_path, tenants)  # a status longer than a pipe holds
    assert run_cli("migrate", config=config).returncode == 0
    env = {**os.environ, "TEST_KORE_SECRET": SECRET}
    command = f"'{sys.executable}' -m connector status --config '{config}' | head -1"
    done = subprocess.run(command, shell=True, capture_output=True, text=True, env=env)
    assert done.stdout == "t000:\n" and done.stderr == ""


def test_check_finds_a_missing_state_folder_and_a_misspelt_glob_folder(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    state = f"sqlite:///{tmp_path / 'state' / 'x.db'}"
    config = _config(tmp_path, sandbox, state_url=state)
    for command in ("check", "sync"):
        result = run_cli(command, config=config)
        assert result.returncode == 2
        line, hint = _error(result.stderr)
        assert f"the folder {tmp_path / 'state'} does not exist" in line
        assert "create it" in hint

    glob = str(tmp_path / "exprots" / "*.csv")
    config = _config(tmp_path, sandbox, lambda t: t["source"].update(path=glob))
    for command in ("check", "sync"):
        result = run_cli(command, config=config)
        assert result.returncode == 1
        line, _ = _error(result.stderr)
        assert f"source.path {glob}: the folder {tmp_path / 'exprots'} does not exist" in line


def test_settings_keys_in_the_messages_come_from_the_models() -> None:
    """The config reference and "did you mean" both read the models: a renamed setting
    changes both."""
    from connector.settings import _known_at

    assert "batch_size" in _known_at(("tenants", "acme", "kore"))
    assert "max_row_chars" in _known_at(("tenants", "acme", "source", "csv"))
    assert "lease_seconds" in _known_at(("daemon",))
    assert yaml.safe_dump(_known_at(()))


def test_check_online_fails_fast_on_tls_and_says_where_to_look(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    port = sandbox.url.rsplit(":", 1)[1]
    cases = {
        f"https://127.0.0.1:{port}": ("the port does not speak TLS (https)", "written http://"),
        f"{sandbox.url}/wrong/prefix": ("(HTTP 404)", "check kore.host (the platform's address"),
        "http://127.0.0.1:9": ("after 6 tries: cannot connect", "and that Kore is reachable"),
    }
    for host, (said, hinted) in cases.items():
        config = _config(tmp_path, sandbox, lambda t, h=host: t["kore"].update(host=h))
        started = time.monotonic()
        result = run_cli("check", "--online", config=config)
        assert result.returncode == 1, result.stderr
        line, hint = _error(result.stderr)
        assert said in line and hinted in hint, (line, hint)
        assert "in flight" not in hint
        assert time.monotonic() - started < 10, "no waiting on what no retry can mend"


def test_after_a_mapping_fix_check_and_sync_say_that_full_reads_the_file_again(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config = _config(tmp_path, sandbox)
    assert run_cli("sync", config=config).returncode == 0
    config = _config(tmp_path, sandbox, lambda t: t.update(default_region="GB"))

    checked = run_cli("check", config=config)
    synced = run_cli("sync", config=config)

    assert checked.returncode == 0 and synced.returncode == 0
    said = "contacts.csv was read before with another mapping, region or name limit and is not"
    assert said in checked.stdout and "`sync --full` reads them" in checked.stdout
    assert said in synced.stderr
    assert "0 rows read" in synced.stdout
