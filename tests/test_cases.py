"""The handed cases (``shared/cases``): each small export, run as a new user would run it
(``init --from`` then ``sync --dry-run`` with the config it wrote), gives exactly the contacts
its README names. Each stands for a kind of fault that real exports and public bug reports
showed (issue [9]); the files are used as they are."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import SECRET, run_cli
from tests.helpers import rejected, runs

CASES = Path(__file__).resolve().parent / "cases"  # copied unchanged from shared/cases

EXPECTED: dict[str, dict[str, tuple[str, str]]] = {
    "outlook_cp1251.csv": {"+79162043163": ("Дмитрий", "Волков")},
    "outlook_short_rows.csv": {
        "+447911123458": ("Harper", "Ellison"),
        "+14152093319": ("Ethan", "Radley"),
    },
    "underscore_headers.csv": {
        "+16128076737": ("Logan", "Prescott"),
        "+16197771183": ("Grace", "Danforth"),
    },
    "zoho_books_contacts.csv": {
        "+33612345678": ("Hélène", "Lefèvre"),
        "+33698765432": ("Bastien", "Garnier"),
        "+447911123459": ("Owen", "Ashby"),
    },
    "one_number_four_ways.csv": {"+14152093318": ("Ava", "Holloway-Kessler")},
    "hubspot_country_names.csv": {
        "+13406421234": ("Given0", "Family0"),
        "+218912345678": ("Given1", "Family1"),
        "+970599123456": ("Given2", "Family2"),
    },
    "salesforce_formatted_report.xlsx": {
        "+4915123456789": ("Noah", "Ashby"),
        "+14152093317": ("Grace", "Danforth"),
    },
    "dotted_dates.csv": {
        "+3903123456789": ("Luca", "Bianchi-Rossi"),
        "+3903312345678": ("Sofia", "Marino"),
    },
}
"""The right result of each case, from its README: the contacts by E.164 number."""

DUPLICATES = {"one_number_four_ways.csv": [2, 3, 5], "dotted_dates.csv": [2]}
"""Rows (physical lines) that must be rejected as ``duplicate_in_source``."""


def test_every_case_has_an_expected_result() -> None:
    assert sorted(p.name for p in CASES.iterdir() if p.name != "README.md") == sorted(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_a_case_gives_the_contacts_its_readme_names(tmp_path: Path, case: str) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    shutil.copy(CASES / case, exports / case)
    os.utime(
        exports / case, (1_700_000_000, 1_700_000_000)
    )  # a finished export, not one being written
    config = tmp_path / "connector.yaml"

    made = run_cli("init", "--from", str(exports / case), "--tenant", "acme", config=config)
    assert made.returncode == 0, made.stderr
    dry = run_cli("sync", "--dry-run", config=config, env={"ACME_KORE_SECRET": SECRET})
    assert dry.returncode == 0, dry.stderr

    (run,) = runs(tmp_path, "acme")
    sent: dict[str, tuple[str, str]] = {}
    for batch in sorted(run.glob("batch-*.csv")):
        with batch.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                number = row["cellPhoneCountryCode"] + row["cellPhoneNumber"]
                assert number not in sent, f"{number} sent twice"
                sent[number] = (row["firstName"], row["lastName"])
    assert sent == EXPECTED[case]
    duplicates = [int(r["row"]) for r in rejected(run) if r["reason"] == "duplicate_in_source"]
    assert sorted(duplicates) == DUPLICATES.get(case, [])
