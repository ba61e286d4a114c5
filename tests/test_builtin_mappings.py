"""Every built-in mapping, end to end, on an export in its vendor's documented layout."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from connector.kore.sandbox import Sandbox
from connector.mapping import builtin_names, load_mapping, names_of
from connector.mapping.headers import role_of
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
    assert {layout.mapping for layout in LAYOUTS.values()} == set(builtin_names())


READ_AS = {
    "fields.firstName.from": {"first_name"},
    "fields.lastName.from": {"last_name"},
    "fields.salutation.from": {"salutation", "title"},
    "full_name": {"full_name"},
    "id": {"id"},
    "updated_at": {"updated_at"},
    "company": {"company"},
    "is_company": {"is_company"},
    "phone.from": {"mobile", "phone"},
    "phone.region_from": {"country"},
}
"""The roles a column may have at each place a mapping reads it (a salutation may be a ``title``
column: Outlook's ``Title`` is the salutation)."""


@pytest.mark.parametrize("name", builtin_names())
def test_every_column_a_builtin_reads_is_in_the_synonym_table_under_its_role(name: str) -> None:
    mapping = load_mapping(name)
    misplaced = []
    for use in mapping.columns():
        if use.where.startswith("skip_when."):
            wanted: set[str] = {"do_not_call"}
        elif use.where.startswith("removed_when."):
            wanted = {"deleted"}
        else:
            wanted = set(READ_AS[use.where])
        misplaced += [
            f"{use.where}: {column} is {role_of(column)}"
            for column in names_of(use.candidates)
            if role_of(column) not in wanted
        ]
    labels = [column for group in mapping.spec.phone.labels for column in group]
    misplaced += [f"label {c}" for c in labels if role_of(c) != "phone_label"]
    assert misplaced == []


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_tries_its_mobile_columns_first(name: str) -> None:
    roles = [role_of(column) for column in names_of(load_mapping(name).spec.phone.from_)]
    assert roles == sorted(roles, key=lambda role: role != "mobile"), roles
