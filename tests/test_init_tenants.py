"""``init`` adds tenants to a config that is there (issue [11]): comments and the lines it does
not touch are kept, a tenant already there is replaced only with ``--force`` and alone, and a
tenant reads every export of its folder, by a glob relative to where data paths resolve."""

from __future__ import annotations

import glob
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from connector.settings import load_settings
from tests.conftest import run_cli
from tests.test_recognition import EXPORTS, WRITTEN
from tests.vendors import LAYOUTS, write

VENDORS = {"acme": "salesforce_api", "beta": "hubspot", "gamma": "zoho"}
"""Three tenants, each with a vendor's export layout (tests/vendors.py)."""
SECRETS = {
    f"{name}_KORE_SECRET": f"{name}-secret".ljust(32, "0") for name in ("ACME", "BETA", "GAMMA")
}

HAND_WRITTEN = """\
# Acme's connector: owned by the integrations team
state_url: sqlite:///state.db     # beside this file

tenants:
    # Salesforce, since 2024
    acme:
        kore:
            host: https://platform.kore.ai
            bot_id: st-1
            account_id: a1
            client_id: cs-1
            client_secret: ${ACME_KORE_SECRET}
        source:
            kind: csv
            path: 'exports/acme/*.csv'
            min_file_age: 0s
        mapping: salesforce
        acknowledge:
            - no_region_column
        # changes: {renamed: update} once the CRM team agrees

    # Dynamics: next quarter

# Daemon settings
daemon:
    workers: 2   # two tenants at a time
reports_keep_days: 10
"""
"""A config written by a person: four spaces a level, a block list, comments everywhere, and a
section after ``tenants`` with its heading comment."""


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tenants' secrets, for the settings read in this process."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def _export(folder: Path, layout: str, name: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    write(LAYOUTS[layout], path)
    an_hour_ago = time.time() - 3600  # a finished export, not one still being copied
    os.utime(path, (an_hour_ago, an_hour_ago))
    return path


def _block(lines: list[str], tenant: str) -> tuple[int, int]:
    """Where a tenant's lines start and end in a config of four spaces a level."""
    start = lines.index(f"    {tenant}:")
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("        "))
    return start, end


def _init(config: Path, export: Path, tenant: str, *more: str, **env: str) -> str:
    made = run_cli("init", "--from", str(export), "--tenant", tenant, *more, config=config, env=env)
    assert made.returncode == 0, made.stderr
    return made.stdout


def test_three_vendors_exports_become_three_tenants_of_one_config_that_check_passes(
    tmp_path: Path,
) -> None:
    config = tmp_path / "connector.yaml"
    exports = {
        tenant: _export(tmp_path / "exports" / tenant, layout, f"{tenant}-2025-03.csv")
        for tenant, layout in VENDORS.items()
    }

    said = [_init(config, export, tenant) for tenant, export in exports.items()]

    assert said[0].startswith("wrote ") and all(s.startswith("added tenant ") for s in said[1:])
    text = config.read_text(encoding="utf-8")
    assert str(tmp_path) not in text, "no absolute path"
    tenants = yaml.safe_load(text)["tenants"]
    assert list(tenants) == list(VENDORS)
    for tenant, layout in VENDORS.items():
        assert tenants[tenant]["source"]["path"] == f"exports/{tenant}/*.csv"
        assert tenants[tenant]["mapping"] == LAYOUTS[layout].mapping
    checked = run_cli("check", config=config, env=SECRETS)
    assert checked.returncode == 0, checked.stderr
    assert [line for line in checked.stdout.splitlines() if line.strip() == "ok"] == ["  ok"] * 3
    later = shutil.copy(exports["acme"], exports["acme"].with_name("acme-2025-04.csv"))
    source = load_settings(config).tenants["acme"].source
    assert str(later) in glob.glob(source.path), "next month's export, under a new name, is read"


def test_adding_a_tenant_keeps_every_line_and_each_comment_above_what_it_heads(
    tmp_path: Path,
) -> None:
    config = tmp_path / "connector.yaml"
    config.write_text(HAND_WRITTEN, encoding="utf-8")
    config.chmod(0o640)
    export = _export(tmp_path / "exports" / "beta", "hubspot", "contacts.csv")

    _init(config, export, "beta")

    lines = config.read_text(encoding="utf-8").splitlines()
    start, end = _block(lines, "beta")
    assert lines[:start] + lines[end:] == HAND_WRITTEN.splitlines(), "nothing else changed"
    assert lines[start - 1] == "        # changes: {renamed: update} once the CRM team agrees"
    assert lines[end : end + 4] == ["", "    # Dynamics: next quarter", "", "# Daemon settings"]
    assert lines[end - 1].startswith("            removed: keep ")
    assert "    # Recognised contacts.csv: csv, utf-8; the hubspot mapping" in lines[start + 1]
    assert config.stat().st_mode & 0o777 == 0o640, "the file's permissions are kept"
    settings = load_settings(config)
    assert list(settings.tenants) == ["acme", "beta"]
    assert settings.daemon.workers == 2 and settings.reports_keep_days == 10
    assert settings.tenants["acme"].acknowledge == ["no_region_column"]


def test_a_tenant_already_there_is_replaced_only_with_force_and_alone(tmp_path: Path) -> None:
    config = tmp_path / "connector.yaml"
    config.write_text(HAND_WRITTEN, encoding="utf-8")
    first = _export(tmp_path / "exports" / "beta", "hubspot", "contacts.csv")
    _init(config, first, "beta")
    before = config.read_text(encoding="utf-8")
    moved = _export(tmp_path / "exports" / "beta-zoho", "zoho", "contacts.csv")

    refused = run_cli("init", "--from", str(moved), "--tenant", "beta", config=config)

    assert refused.returncode == 2
    assert "tenant 'beta' is already there; init does not replace it" in refused.stderr
    assert "hint: pass --force to replace that tenant" in refused.stderr
    assert config.read_text(encoding="utf-8") == before
    said = _init(config, moved, "beta", "--force")
    assert said.startswith("replaced tenant beta")
    after = config.read_text(encoding="utf-8")
    assert after.count("    beta:") == 1 and "mapping: zoho" in after
    assert 'path: "exports/beta-zoho/*.csv"' in after and "hubspot" not in after
    old, new = before.splitlines(), after.splitlines()
    (old_start, old_end), (new_start, new_end) = _block(old, "beta"), _block(new, "beta")
    assert new[:new_start] == old[:old_start] and new[new_end:] == old[old_end:]


@pytest.mark.parametrize(
    ("acme_reads", "said"),
    [
        ("exports/*.csv", "tenant 'acme' reads it already (source.path exports/*.csv)"),
        (
            "exports/acme.csv",
            "exports/*.csv, the glob init would write, also reads tenant 'acme''s exports "
            "(source.path exports/acme.csv)",
        ),
    ],
)
def test_two_tenants_never_read_one_folder(tmp_path: Path, acme_reads: str, said: str) -> None:
    config = tmp_path / "connector.yaml"
    folder = tmp_path / "exports"
    _init(config, _export(folder, "salesforce_api", "acme.csv"), "acme")
    config.write_text(config.read_text().replace("exports/*.csv", acme_reads))
    before = config.read_text(encoding="utf-8")

    shared = run_cli(
        "init", "--from", str(_odoo(folder / "beta.csv")), "--tenant", "beta", config=config
    )

    assert shared.returncode == 2
    lines = shared.stderr.splitlines()
    assert lines[0] == f"error: {folder / 'beta.csv'}: {said}"
    assert lines[1] == (
        "hint: give each tenant's exports a folder of their own (e.g. exports/beta/), then run "
        "init again"
    )
    assert config.read_text(encoding="utf-8") == before
    assert not (tmp_path / "mapping-beta.yaml").exists(), "nothing written"


def _odoo(path: Path) -> Path:
    """An export no built-in reads as meant: init writes a mapping of its own for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXPORTS["odoo_contacts.csv"].text, encoding="utf-8")
    return path


def test_a_written_mapping_goes_beside_the_config_and_the_glob_under_state_directory(
    tmp_path: Path,
) -> None:
    etc, state = tmp_path / "etc", tmp_path / "var" / "lib" / "kore-connector"
    etc.mkdir()
    config = etc / "connector.yaml"
    inside = _odoo(state / "exports" / "acme" / "odoo-2025-03.csv")
    elsewhere = _export(tmp_path / "srv" / "beta", "hubspot", "beta.csv")
    env = {"STATE_DIRECTORY": str(state)}

    _init(config, inside, "acme", **env)
    _init(config, elsewhere, "beta", **env)

    tenants = yaml.safe_load(config.read_text(encoding="utf-8"))["tenants"]
    assert tenants["acme"]["source"]["path"] == "exports/acme/*.csv", "under $STATE_DIRECTORY"
    assert tenants["beta"]["source"]["path"] == f"{elsewhere.parent}/*.csv", "its folder, whole"
    assert tenants["acme"]["mapping"] == WRITTEN
    assert (etc / WRITTEN).is_file() and not (state / "exports" / "acme" / WRITTEN).exists()
    checked = run_cli("check", config=config, env={**SECRETS, **env})
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(
    ("folder", "written"),
    [
        ("exports/[2025] acme", "exports/[[]2025] acme/*.csv"),
        (".", "*.csv"),
    ],
)
def test_the_glob_names_the_folder_as_it_is(tmp_path: Path, folder: str, written: str) -> None:
    config = tmp_path / "connector.yaml"
    export = _export(tmp_path / folder, "salesforce_api", "acme.csv")

    _init(config, export, "acme")

    source = load_settings(config).tenants["acme"].source
    assert yaml.safe_load(config.read_text())["tenants"]["acme"]["source"]["path"] == written
    assert glob.glob(source.path) == [str(export)]


def test_init_says_when_the_folder_glob_also_reads_files_of_another_layout(
    tmp_path: Path,
) -> None:
    """A shared drop folder: the glob of the export's folder would read a file of another
    layout too; init says so, naming it, instead of leaving `check` to fail on it later."""
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "acme-2025-03.csv").write_text(
        "First Name,Last Name,Mobile Phone\nAda,Lovelace,+14155550101\n", encoding="utf-8"
    )
    (folder / "acme-2025-04.csv").write_text(
        "First Name,Last Name,Mobile Phone\nAlan,Turing,+14155550102\n", encoding="utf-8"
    )
    (folder / "invoices.csv").write_text("Invoice,Amount\n1,10\n", encoding="utf-8")
    config = tmp_path / "connector.yaml"

    made = run_cli("init", "--from", str(folder / "acme-2025-03.csv"), config=config)

    assert made.returncode == 0, made.stderr
    (note,) = [line for line in made.stdout.splitlines() if "also reads" in line]
    assert "1 other file there whose layout differs (invoices.csv)" in note
