"""``--log-format json``: every line a command prints is a JSON record; ``check --json`` and
``status --json`` are documents a script can read."""

from __future__ import annotations

import json
from pathlib import Path

from connector.kore.sandbox import Sandbox
from tests.conftest import run_cli, tenant_config, write_config
from tests.messy import write_export


def _records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_every_line_of_every_command_is_a_json_record(tmp_path: Path, sandbox: Sandbox) -> None:
    export = tmp_path / "contacts.csv"
    write_export(export, valid=50, seed=2)
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})
    (tmp_path / "b").mkdir()
    broken = write_config(tmp_path / "b", {"acme": tenant_config(sandbox, tmp_path / "nope.csv")})

    outputs = {
        "sync": run_cli("--log-format", "json", "sync", config=config),
        "check": run_cli("--log-format", "json", "check", config=config),
        "status": run_cli("--log-format", "json", "status", config=config),
        "reconcile": run_cli("--log-format", "json", "reconcile", config=config),
        "failing check": run_cli("--log-format", "json", "check", config=broken),
        "init": run_cli("--log-format", "json", "init", config=tmp_path / "new.yaml"),
    }

    for what, done in outputs.items():
        lines = _records(done.stdout) + _records(done.stderr)  # each line parses, or this fails
        assert lines, what
        assert all({"ts", "level", "message"} <= set(line) for line in lines), what
    synced = _records(outputs["sync"].stdout)[-1]
    assert synced["status"] == "completed" and synced["counters"]["sent"] == 50  # type: ignore[index]
    (checked,) = _records(outputs["check"].stdout)
    assert checked["check"]["sources"][0]["sample_rows"] > 50  # type: ignore[index]
    errors = _records(outputs["failing check"].stdout) + _records(outputs["failing check"].stderr)
    assert any("nope.csv: file not found" in str(e.get("check", "")) for e in errors)


def test_check_json_is_one_document_with_every_tenant(tmp_path: Path, sandbox: Sandbox) -> None:
    export = tmp_path / "contacts.csv"
    write_export(export, valid=20, seed=2)
    tenants = {
        "good": tenant_config(sandbox, export),
        "bad": tenant_config(sandbox, tmp_path / "missing.csv"),
    }
    config = write_config(tmp_path, tenants)

    result = run_cli("check", "--json", config=config)

    assert result.returncode == 1
    document = json.loads(result.stdout)["tenants"]
    assert document["good"]["ok"] is True and document["good"]["mapping"] == "salesforce"
    assert document["good"]["sources"][0]["would_send"] >= 20  # duplicates not yet counted
    assert (
        document["bad"]["ok"] is False and "missing.csv: file not found" in document["bad"]["error"]
    )
    assert result.stderr == ""
