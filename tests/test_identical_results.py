"""Issue [14]: mapping in worker processes gives what mapping in one gives, byte for byte.

The shared samples the suite syncs, every handed case, and a generated export are synced with
``--dry-run`` by the real command line twice, in folders of their own: once with
``mapping_processes: 1`` (in the run's own process) and once with ``mapping_processes: 3``
(chunks of rows in three worker processes). Every file of each run's report folder must be the
same, byte for byte; of ``summary.json``, what the run found (not its id or times)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.kore.sandbox import Sandbox
from connector.mapping import builtin_names
from tests.conftest import SAMPLES, SECRET, run_cli, tenant_config, write_config
from tests.helpers import runs
from tests.messy import write_export
from tests.test_cases import CASES

SAMPLED = {
    "salesforce_Contact.csv": "salesforce",
    "salesforce_Lead.csv": "salesforce",
    "dynamics_Contact.csv": "dynamics365",
}
"""The shared samples the suite syncs, with the mapping each is synced with there
(``test_real_exports``, ``test_builtin_mappings``)."""
HANDED = sorted(p.name for p in CASES.iterdir() if p.name != "README.md")
GENERATED_VALID = 11_500
"""Valid rows of the generated export (about 12,000 rows in all): more than the 10,000 a run
maps in its own process when ``mapping_processes`` is not set, and six of the run's chunks
of 2,000 rows, so that every one of three workers maps some."""
PROCESSES = (1, 3)
SUMMARY = ("counters", "warnings", "files", "rejected_by_reason", "unknown_countries", "status")
"""What ``summary.json`` says the run found; the rest (its id, its times) differs run to run."""


def _tenant(path: Path) -> str:
    """A tenant's name for an export: its file name, as tenant names may be written."""
    return path.name.replace(".", "-")


TENANTS = [_tenant(Path(n)) for n in [*SAMPLED, *HANDED, "generated.csv"]]


def _handed(folder: Path, sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    """Each handed case as ``init --from`` sets it up (test_cases), reading the case's own
    file (and the mapping init wrote for it, if it wrote one), with the sandbox as its Kore."""
    tenants = {}
    for case in HANDED:
        exports = folder / _tenant(Path(case))
        exports.mkdir()
        export = exports / case
        shutil.copy(CASES / case, export)
        os.utime(export, (1_700_000_000, 1_700_000_000))  # a finished export
        config = exports / "connector.yaml"
        made = run_cli("init", "--from", str(export), "--tenant", "acme", config=config)
        assert made.returncode == 0, made.stderr
        tenant = yaml.safe_load(config.read_text(encoding="utf-8"))["tenants"]["acme"]
        tenant["kore"] = tenant_config(sandbox, export)["kore"]
        tenant["source"]["path"] = str(export)
        if tenant["mapping"] not in builtin_names():  # a file init wrote beside the config
            tenant["mapping"] = str(exports / tenant["mapping"])
        tenants[_tenant(export)] = tenant
    return tenants


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Path]]:
    """The folder of each ``mapping_processes``' dry run of every tenant."""
    exports = tmp_path_factory.mktemp("exports")
    generated = exports / "generated.csv"
    write_export(generated, valid=GENERATED_VALID, seed=14)
    with Sandbox(secret=SECRET) as sandbox:
        tenants = {
            _tenant(Path(name)): tenant_config(sandbox, SAMPLES / name, mapping=mapping)
            for name, mapping in SAMPLED.items()
        }
        tenants |= _handed(exports, sandbox)
        tenants[_tenant(generated)] = tenant_config(sandbox, generated)
        assert sorted(tenants) == sorted(TENANTS)
        folders = {}
        for processes in PROCESSES:
            folder = tmp_path_factory.mktemp(f"processes-{processes}")
            config = write_config(folder, tenants, mapping_processes=processes)
            done = run_cli("sync", "--dry-run", config=config)
            assert done.returncode == 0, done.stderr
            folders[processes] = folder
        yield folders


def _found(summary: Path) -> dict[str, Any]:
    document = json.loads(summary.read_text(encoding="utf-8"))
    return {section: document[section] for section in SUMMARY}


@pytest.mark.parametrize("tenant", TENANTS)
def test_workers_write_the_same_report_as_one_process(
    reports: dict[int, Path], tenant: str
) -> None:
    (alone,), (shared,) = (runs(reports[p], tenant) for p in PROCESSES)
    files = sorted(p.name for p in alone.iterdir())
    assert sorted(p.name for p in shared.iterdir()) == files
    assert "summary.json" in files and "rejected.csv" in files
    for name in files:
        if name == "summary.json":
            assert _found(shared / name) == _found(alone / name)
        else:
            assert (shared / name).read_bytes() == (alone / name).read_bytes(), name
    if tenant == "generated-csv":
        assert _found(alone / "summary.json")["counters"]["rows_read"] > 10_000
