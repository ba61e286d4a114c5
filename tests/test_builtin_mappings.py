"""Every built-in mapping, end to end, on an export in its vendor's documented layout."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from connector.kore.sandbox import Sandbox
from tests.conftest import run_cli, tenant_config, write_config
from tests.helpers import held, rejected, runs, summary
from tests.vendors import LAYOUTS, write


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_vendor_export_delivers_every_valid_contact_once(
    tmp_path: Path, sandbox: Sandbox, layout: str
) -> None:
    export = tmp_path / f"{layout}.csv"
    outcome = write(LAYOUTS[layout], export)
    config = write_config(
        tmp_path, {"t": tenant_config(sandbox, export, mapping=LAYOUTS[layout].mapping)}
    )

    first = run_cli("sync", config=config)

    assert first.returncode == 0, first.stderr
    assert {k: v[:2] for k, v in held(sandbox).items()} == outcome.contacts
    (run,) = runs(tmp_path, "t")
    assert Counter(r["reason"] for r in rejected(run)) == outcome.reasons
    warnings = summary(run)["warnings"]
    if LAYOUTS[layout].dnc:
        assert warnings == []
    else:
        assert all("no row is skipped by that rule" in w for w in warnings), warnings

    again = run_cli("sync", "--full", config=config)

    assert again.returncode == 0
    assert summary(runs(tmp_path, "t")[-1])["counters"]["sent"] == 0
    assert len(sandbox.state.upload_log) == 2


def test_salesforce_lead_sample_and_dynamics_sample_use_their_builtins(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    from tests.conftest import SAMPLES

    config = write_config(
        tmp_path,
        {
            "leads": tenant_config(sandbox, SAMPLES / "salesforce_Lead.csv"),
            "d365": tenant_config(sandbox, SAMPLES / "dynamics_Contact.csv", mapping="dynamics365"),
        },
    )

    result = run_cli("check", config=config)

    assert result.returncode == 0, result.stderr
    assert "DoNotCall' or 'Do Not Call', which salesforce_Lead.csv lacks" in result.stdout
    assert "dynamics_Contact.csv (utf-8, comma-separated)" in result.stdout


def test_every_builtin_has_a_vendor_fixture() -> None:
    from connector.mapping import builtin_names

    assert {layout.mapping for layout in LAYOUTS.values()} == set(builtin_names())
