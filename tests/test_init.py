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
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    checked = run_cli("check", config=config, env={"ACME_KORE_SECRET": "s3cret-from-env"})
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.rstrip().endswith("ok")


def test_init_never_overwrites_without_force_and_works_without_an_export(tmp_path: Path) -> None:
    config = tmp_path / "connector.yaml"
    config.write_text("mine\n")

    refused = run_cli("init", config=config)
    assert refused.returncode == 2 and "exists; init does not overwrite it" in refused.stderr
    assert config.read_text() == "mine\n"

    made = run_cli("init", "--force", config=config)
    assert made.returncode == 0 and "mapping: generic" in config.read_text()


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
