"""``init``: from an export to a config that ``check`` passes, and shell completion."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.vendors import LAYOUTS, write


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_init_from_each_vendors_export_picks_its_mapping_and_check_passes(
    tmp_path: Path, layout: str
) -> None:
    export = tmp_path / "exports" / f"{layout}.csv"
    export.parent.mkdir()
    write(LAYOUTS[layout], export)
    config = tmp_path / "connector.yaml"

    made = run_cli("init", "--from", str(export), "--tenant", "acme", config=config)

    assert made.returncode == 0, made.stderr
    assert f"mapping {LAYOUTS[layout].mapping}\n" in made.stdout
    assert "columns it reads: " in made.stdout and LAYOUTS[layout].mobile in made.stdout
    assert f"mapping: {LAYOUTS[layout].mapping}\n" in config.read_text()
    assert f"encoding: {LAYOUTS[layout].encoding}" in config.read_text()
    assert 'path: "exports/*.csv"' in config.read_text(), "every export of the folder, relative"
    assert str(tmp_path) not in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    checked = run_cli(
        "check", config=config, env={"ACME_KORE_SECRET": "s3cret-from-env-0123456789abcdef"}
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.rstrip().endswith("ok")


def test_init_never_overwrites_a_file_that_is_not_a_config(tmp_path: Path) -> None:
    config = tmp_path / "connector.yaml"
    config.write_text("mine\n")

    for force in ((), ("--force",)):
        refused = run_cli("init", *force, config=config)
        assert refused.returncode == 2
        assert "exists and is not a config init can add to" in refused.stderr
        assert "hint: move it away, or pass --config" in refused.stderr
    assert config.read_text() == "mine\n"


def test_init_works_without_an_export_and_replaces_its_tenant_only_with_force(
    tmp_path: Path,
) -> None:
    config = tmp_path / "connector.yaml"

    made = run_cli("init", config=config)

    assert made.returncode == 0, made.stderr
    written = config.read_text()
    assert "mapping: generic" in written and 'path: "exports/main/*.csv"' in written
    again = run_cli("init", config=config)
    assert again.returncode == 2
    assert "tenant 'main' is already there; init does not replace it" in again.stderr
    assert config.read_text() == written
    replaced = run_cli("init", "--force", config=config)
    assert replaced.returncode == 0, replaced.stderr
    assert "replaced tenant main" in replaced.stdout
    assert config.read_text() == written, "replacing a tenant by the same one changes nothing"


@pytest.mark.parametrize(
    ("header", "said"),
    [
        ("Alpha,Beta", "no phone and no name column in its header; columns there: Alpha, Beta"),
        ("First Name,Email,Country", "no phone column in its header; columns there: First Name"),
        ("Mobile,Email", "no name column in its header; columns there: Mobile, Email"),
    ],
)
def test_init_refuses_only_a_header_without_a_phone_or_a_name(
    tmp_path: Path, header: str, said: str
) -> None:
    export = tmp_path / "odd.csv"
    export.write_text(header + "\n" + ",".join(["1"] * len(header.split(","))) + "\n")
    made = run_cli("init", "--from", str(export), config=tmp_path / "c.yaml")
    assert made.returncode == 2
    (error,) = [line for line in made.stderr.splitlines() if line.startswith("error:")]
    assert said in error
    assert not (tmp_path / "c.yaml").exists()
    assert list(tmp_path.iterdir()) == [export], "no mapping file either"


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_load_and_know_the_commands(tmp_path: Path, shell: str) -> None:
    script = run_cli("completion", shell)
    assert script.returncode == 0
    assert all(c in script.stdout for c in ("sync", "reconcile", "init", "--dry-run"))
    (tmp_path / "completion").write_text(script.stdout)
    if shell == "bash":
        loaded = subprocess.run(
            ["bash", "-c", f"source {tmp_path / 'completion'} && complete -p kore-connector"],
            capture_output=True,
            text=True,
        )
        assert loaded.returncode == 0 and "kore-connector" in loaded.stdout, loaded.stderr
    else:
        assert script.stdout.startswith("#compdef kore-connector")
