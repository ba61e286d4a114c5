"""The command line as users meet it: exit codes, one-line errors, check, status, demo."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from connector.kore.sandbox import Sandbox
from tests.conftest import SAMPLES, SECRET, run_cli, tenant_config, write_config
from tests.helpers import held, rejected, runs, summary
from tests.messy import write_export


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_unknown_key_is_exit_2_naming_its_path(tmp_path: Path, sandbox: Sandbox) -> None:
    tenant = tenant_config(sandbox, tmp_path / "x.csv")
    tenant["kore"]["bot_idd"] = "st-typo"
    config = write_config(tmp_path, {"acme": tenant})

    result = run_cli("sync", config=config)

    assert result.returncode == 2
    assert "tenants.acme.kore.bot_idd is not a known setting" in _one_line_error(result.stderr)


def test_missing_key_and_plain_http_host_are_exit_2(tmp_path: Path, sandbox: Sandbox) -> None:
    tenant = tenant_config(sandbox, tmp_path / "x.csv")
    del tenant["kore"]["bot_id"]
    config = write_config(tmp_path, {"acme": tenant})
    assert "tenants.acme.kore.bot_id is required" in _one_line_error(
        run_cli("sync", config=config).stderr
    )

    tenant = tenant_config(sandbox, tmp_path / "x.csv")
    tenant["kore"]["host"] = "http://kore.example.com"
    config = write_config(tmp_path, {"acme": tenant})
    result = run_cli("check", config=config)
    assert result.returncode == 2
    assert "must be https" in _one_line_error(result.stderr)


def test_mapping_column_missing_from_the_export_names_the_closest(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "contacts.csv"
    export.write_text("Id,First Name,LastName,Mobile Phone\n1,Ann,Lee,+14152011001\n")
    # "First_Name" is "First Name" (case, spaces, _, - and . do not count); "FirstNme" is not.
    mapping = tmp_path / "mine.yaml"
    mapping.write_text(
        yaml.safe_dump(
            {
                "id": "Id",
                "fields": {"firstName": "FirstNme", "lastName": "Last_Name"},
                "phone": {"from": "MobilePhone"},
            }
        )
    )
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export, mapping=str(mapping))})

    result = run_cli("sync", config=config)

    assert result.returncode == 2
    line = _one_line_error(result.stderr)
    assert (
        "fields.firstName.from names 'FirstNme', which contacts.csv lacks (closest: 'First Name')"
        in line
    )
    assert sandbox.state.uploads == 0


def test_unreachable_kore_is_exit_1_and_the_batch_stays_pending(tmp_path: Path) -> None:
    export = tmp_path / "contacts.csv"
    expected = write_export(export, valid=50, seed=4)
    port = _free_port()
    with Sandbox(secret=SECRET, port=port) as sandbox:
        tenant = tenant_config(sandbox, export, retries=1)
    config = write_config(tmp_path, {"acme": tenant})

    down = run_cli("sync", config=config)

    assert down.returncode == 1
    assert "did not answer" in _one_line_error(down.stderr)
    assert summary(runs(tmp_path, "acme")[0])["status"] == "failed"
    with Sandbox(secret=SECRET, port=port) as sandbox:
        up = run_cli("sync", config=config)
        assert up.returncode == 0, up.stderr
        assert held(sandbox) == expected.contacts


def test_refused_credentials_are_exit_1_and_the_secret_is_never_printed(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "contacts.csv"
    write_export(export, valid=20, seed=4)
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})
    wrong = "wrong-secret-value-that-must-not-leak-0123456789"

    result = run_cli("sync", "-v", config=config, env={"TEST_KORE_SECRET": wrong})

    assert result.returncode == 1
    assert "refused the credentials (HTTP 401)" in result.stderr
    report = runs(tmp_path, "acme")[0]
    everything = (
        result.stdout
        + result.stderr
        + "".join(p.read_text(encoding="utf-8") for p in report.iterdir())
        + (tmp_path / "state.db").read_bytes().decode("latin-1")
    )
    assert wrong not in everything
    assert SECRET not in everything


def test_unset_variable_and_unknown_tenant_are_exit_2(tmp_path: Path, sandbox: Sandbox) -> None:
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, tmp_path / "x.csv")})
    empty = run_cli("sync", config=config, env={"TEST_KORE_SECRET": ""})
    assert empty.returncode == 2
    assert "tenants.acme.kore.client_secret" in _one_line_error(empty.stderr)

    text = config.read_text().replace("${TEST_KORE_SECRET}", "${NOT_SET_ANYWHERE_42}")
    config.write_text(text)
    unset = run_cli("sync", config=config)
    assert unset.returncode == 2
    assert "uses ${NOT_SET_ANYWHERE_42}, which is not set" in _one_line_error(unset.stderr)

    config = write_config(tmp_path, {"acme": tenant_config(sandbox, tmp_path / "x.csv")})
    unknown = run_cli("sync", "--tenant", "nobody", config=config)
    assert unknown.returncode == 2
    assert "no tenant named 'nobody'" in _one_line_error(unknown.stderr)


def test_unreadable_file_is_exit_1_naming_the_file(tmp_path: Path, sandbox: Sandbox) -> None:
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, tmp_path / "missing.csv")})

    result = run_cli("sync", config=config)

    assert result.returncode == 1
    assert "missing.csv: file not found" in _one_line_error(result.stderr)


def test_check_previews_rows_and_reasons_and_proves_credentials(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "contacts.csv"
    write_export(export, valid=100, seed=8)
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})

    result = run_cli("check", "--online", config=config)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "mapping:  salesforce" in out
    assert "(utf-8, comma-separated)" in out
    assert "firstName" in out and "cellPhoneCountryCode" in out
    assert "phone_invalid" in out and "skip_when" in out
    assert "credentials accepted" in out
    assert sandbox.state.uploads == 0


def test_status_shows_last_run_delivered_and_next_run(tmp_path: Path, sandbox: Sandbox) -> None:
    export = tmp_path / "contacts.csv"
    expected = write_export(export, valid=120, seed=8)
    tenant = {**tenant_config(sandbox, export), "schedule": {"cron": "*/15 * * * *"}}
    config = write_config(tmp_path, {"acme": tenant})
    assert run_cli("migrate", config=config).returncode == 0  # status creates no schema
    before = run_cli("status", config=config)
    assert "last run:       never" in before.stdout
    hourly = tmp_path / "hourly"
    hourly.mkdir()
    every = write_config(hourly, {"acme": {**tenant, "schedule": {"every": "2h"}}})
    assert run_cli("migrate", config=every).returncode == 0
    assert "(every 2h, when the daemon runs)" in run_cli("status", config=every).stdout

    assert run_cli("sync", config=config).returncode == 0
    after = run_cli("status", config=config)

    assert after.returncode == 0
    assert f"delivered:      {len(expected.contacts):,} contacts" in after.stdout
    assert "completed" in after.stdout
    assert "pending:        0 rows" in after.stdout
    assert "cron */15 * * * *" in after.stdout


def test_real_sample_exports_never_crash_a_run(tmp_path: Path, sandbox: Sandbox) -> None:
    """The shared samples as published: bare 10-digit numbers, blank booleans, shifted rows."""
    for name in ("salesforce_Contact.csv", "salesforce_Lead.csv", "dynamics_Contact.csv"):
        shutil.copy(SAMPLES / name, tmp_path / name)
    config = write_config(
        tmp_path,
        {
            "contacts": tenant_config(sandbox, tmp_path / "salesforce_Contact.csv"),
            "leads": tenant_config(sandbox, tmp_path / "salesforce_Lead.csv"),
            "dynamics": tenant_config(
                sandbox, tmp_path / "dynamics_Contact.csv", mapping="generic"
            ),
        },
    )

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    for tenant, rows in (("contacts", 102), ("leads", 60), ("dynamics", 199)):
        (run,) = runs(tmp_path, tenant)
        counters = summary(run)["counters"]
        assert counters["rows_read"] == rows
        assert counters["created"] + counters["rejected"] == rows
    shifted = [r for r in rejected(runs(tmp_path, "dynamics")[0]) if int(r["row"]) >= 195]
    assert len(shifted) == 6
    assert {r["reason"] for r in shifted} == {"name_missing"}


def test_demo_runs_on_embedded_defaults(tmp_path: Path) -> None:
    result = run_cli("demo", "--output", str(tmp_path / "demo"))

    assert result.returncode == 0, result.stderr
    assert "the second sync sent nothing twice" in result.stdout
    first, second = (line for line in result.stdout.splitlines() if "completed" in line)
    assert "16 sent (16 created), 9 rejected" in first
    assert ", 0 sent, " in second and "16 already delivered" in second


def test_json_logs_mask_phone_numbers(tmp_path: Path) -> None:
    import json

    from connector.kore.sandbox import Faults

    export = tmp_path / "contacts.csv"
    expected = write_export(export, valid=60, seed=6)
    refused = frozenset(sorted(expected.contacts)[:3])
    with Sandbox(secret=SECRET, faults=Faults(refuse=refused, fail_every=2)) as sandbox:
        config = write_config(tmp_path, {"acme": tenant_config(sandbox, export, batch_size=20)})
        result = run_cli("sync", "-v", "--log-format", "json", config=config)

    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    (done,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert done["counters"]["created"] == len(expected.contacts) - 3
    assert done["tenant"] == "acme" and done["status"] == "completed"
    assert all(e["tenant"] == "acme" for e in entries if "logger" in e)
    assert any(e["message"] == "run started" and e["run_id"] == done["run_id"] for e in entries)
    assert any("Kore refused" in e["message"] for e in entries)
    assert any("retry 1 of" in e["message"] for e in entries)
    for key in expected.contacts:
        assert key[-9:] not in result.stderr, "no number, whole or national, reaches a log"


_LOADED = (
    "import sys, runpy; sys.argv = ['kore-connector', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('connector', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "heavy = ('phonenumbers', 'babel', 'httpx', 'openpyxl', 'alembic')\n"
    "print('loaded:', sorted(m for m in heavy if m in sys.modules))\n"
)


def test_help_status_and_a_run_with_nothing_new_load_nothing_they_do_not_use(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """A no-op costs nothing: no phone library, no HTTP client, no migrations to check."""
    export = tmp_path / "contacts.csv"
    write_export(export, valid=30, seed=2)
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})
    assert run_cli("sync", config=config).returncode == 0
    env = {**os.environ, "TEST_KORE_SECRET": SECRET}

    def loaded(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _LOADED, *args], capture_output=True, text=True, env=env
        )
        return done.stdout.splitlines()[-1]

    assert loaded("--help") == "loaded: []"
    assert loaded("status", "--config", str(config)) == "loaded: []"
    assert loaded("sync", "--config", str(config)) == "loaded: []"
    export.write_text(export.read_text() + "\n")
    assert loaded("sync", "--config", str(config)) == "loaded: []", "its rows are known"
    assert "phonenumbers" in loaded("sync", "--full", "--config", str(config)), "--full maps"
