"""Headers recognised by meaning (issue [9]): the synonym table, how ``init`` chooses a built-in
or writes a mapping of the export's own, mobiles first, organisation names kept whole. What a
user sees is tested as a user meets it: ``init --from`` then ``sync --dry-run`` with the config
it wrote, reading the run's batch files and rejected.csv."""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import pytest
import yaml

from connector.contacts import Contact
from connector.mapping import load_mapping, normalise_header
from connector.mapping.headers import SYNONYMS, looks_like_header
from connector.settings import CsvSourceSettings
from connector.sources.files import FileSource
from connector.starter import recognise
from tests.conftest import SAMPLES, SECRET, run_cli
from tests.helpers import rejected, runs

FIXTURES = Path(__file__).resolve().parent / "fixtures"
WRITTEN = "mapping-acme.yaml"


@dataclass(frozen=True)
class Export:
    text: str
    mapping: str
    contacts: dict[str, tuple[str, str, str]]
    duplicates: tuple[int, ...] = ()


EXPORTS = {
    # shared/cases/underscore_headers.csv: `Name` beside `Last_Name` is the first name
    "underscore_headers.csv": Export(
        "id,Name,Last_Name,Mobile_Phone,Country\n"
        "1,Logan,Prescott,+16128076737,United States\n"
        "2,Grace,Danforth,+16197771183,United States\n",
        WRITTEN,
        {"+16128076737": ("Logan", "Prescott", ""), "+16197771183": ("Grace", "Danforth", "")},
    ),
    # shared/cases/zoho_books_contacts.csv: MobilePhone beats Phone, Billing Country is the country
    "zoho_books_contacts.csv": Export(
        "Created Time,Last Modified Time,Display Name,Company Name,Salutation,First Name,"
        "Last Name,Phone,Billing Country,EmailID,MobilePhone,Customer ID\n"
        "2024-03-01 10:00:00,2024-03-01 10:00:00,Lefèvre Conseil,Lefèvre Conseil,Mme,Hélène,"
        "Lefèvre,01 42 68 53 00,France,helene@example.fr,06 12 34 56 78,1001\n"
        "2024-03-01 10:05:00,2024-03-01 10:05:00,Garnier SARL,Garnier SARL,M.,Bastien,Garnier,,"
        "France,bastien@example.fr,06 98 76 54 32,1002\n"
        "2024-03-01 10:07:00,2024-03-01 10:07:00,Ashby Ltd,Ashby Ltd,Mr.,Owen,Ashby,"
        "020 7946 0958,United Kingdom,owen@example.co.uk,07911 123459,1003\n",
        "generic",
        {
            "+33612345678": ("Hélène", "Lefèvre", "Mme"),
            "+33698765432": ("Bastien", "Garnier", "M."),
            "+447911123459": ("Owen", "Ashby", "Mr."),
        },
    ),
    # shared/cases/one_number_four_ways.csv: the newest row wins
    "one_number_four_ways.csv": Export(
        "First Name,Last Name,Mobile Phone,Last Modified Date\n"
        "Ava,Holloway,(415) 209-3318,2024-01-05\n"
        "Ava,Holloway,415.209.3318,2024-03-01\n"
        "Ava,Holloway-Kessler,+1 415 209 3318,2024-06-30\n"
        "Ava,Holloway,1-415-209-3318,2024-02-10\n",
        "generic",
        {"+14152093318": ("Ava", "Holloway-Kessler", "")},
        duplicates=(2, 3, 5),
    ),
    "snake_case.csv": Export(
        "first_name,last_name,phone,country\n"
        "Noah,Ashby,030 901820,Germany\n"
        "Mia,Okafor,(612) 807-6738,United States\n",
        "generic",
        {"+4930901820": ("Noah", "Ashby", ""), "+16128076738": ("Mia", "Okafor", "")},
    ),
    # Odoo's contacts in English: Title is the salutation beside Job Position; companies whole
    "odoo_contacts.csv": Export(
        "Name,Phone,Mobile,Email,Country,Is a Company,Company Name,Title,Job Position\n"
        '"My Company, Chicago",+1 312 555 0100,,chicago@example.com,United States,False,'
        "My Company,,\n"
        '"Lovelace, Ada",020 7946 0018,07911 123460,ada@example.com,United Kingdom,False,'
        ",Madam,Analyst\n"
        '"Freeman, Brandon",(312) 555-0142,(312) 555-0199,,United States,False,,Mister,'
        "Designer\n"
        '"Deco Addict, Warehouse",+1 415 555 0123,,,United States,True,,,\n',
        WRITTEN,
        {
            "+13125550100": ("", "My Company, Chicago", ""),
            "+447911123460": ("Ada", "Lovelace", "Madam"),
            "+13125550199": ("Brandon", "Freeman", "Mister"),
            "+14155550123": ("", "Deco Addict, Warehouse", ""),
        },
    ),
}


@dataclass(frozen=True)
class Run:
    made: CompletedProcess[str]
    config: Path
    mapping: str
    sent: dict[str, tuple[str, str, str]]
    rejected: list[dict[str, str]]


def _finished(path: Path) -> Path:
    """An export written an hour ago: a run reads only files no longer being written."""
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    return path


def _init_and_dry_run(tmp_path: Path, export: Path) -> Run:
    """``init --from`` the export, then ``sync --dry-run`` with the config it wrote."""
    config = tmp_path / "connector.yaml"
    made = run_cli("init", "--from", str(export), "--tenant", "acme", config=config)
    assert made.returncode == 0, made.stderr
    dry = run_cli("sync", "--dry-run", config=config, env={"ACME_KORE_SECRET": SECRET})
    assert dry.returncode == 0, dry.stderr
    (run,) = runs(tmp_path, "acme")
    sent: dict[str, tuple[str, str, str]] = {}
    for batch in sorted(run.glob("batch-*.csv")):
        with batch.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                number = row["cellPhoneCountryCode"] + row["cellPhoneNumber"]
                assert number not in sent, f"{number} sent twice"
                sent[number] = (row["firstName"], row["lastName"], row["salutation"])
    mapping = yaml.safe_load(config.read_text(encoding="utf-8"))["tenants"]["acme"]["mapping"]
    return Run(made, config, mapping, sent, rejected(run))


def _export(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return _finished(folder / name)


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_a_layout_recognised_by_meaning_gives_exactly_its_contacts(
    tmp_path: Path, name: str
) -> None:
    export = EXPORTS[name]

    run = _init_and_dry_run(tmp_path, _export(tmp_path, name, export.text))

    assert run.mapping == export.mapping
    assert run.sent == export.contacts
    duplicates = [int(r["row"]) for r in run.rejected if r["reason"] == "duplicate_in_source"]
    assert tuple(sorted(duplicates)) == export.duplicates
    assert len(run.rejected) == len(export.duplicates)


def test_a_written_mapping_names_its_columns_passes_check_and_is_never_overwritten(
    tmp_path: Path,
) -> None:
    export = _export(tmp_path, "odoo.csv", EXPORTS["odoo_contacts.csv"].text)

    run = _init_and_dry_run(tmp_path, export)

    written = (tmp_path / WRITTEN).read_text(encoding="utf-8")
    assert written.startswith("# Mapping for odoo.csv, written by `kore-connector init`")
    assert "  # 'Title' beside 'Job Position' is read as the salutation\n" in written
    assert '  from: ["Mobile", "Phone"]\n' in written, "mobiles first"
    assert '"Email"' not in written and '"Job Position"' not in written
    assert f"mapping {WRITTEN}\n" in run.made.stdout
    assert "no built-in mapping reads 'Title' as this header means it" in run.made.stdout
    assert f"mapping: {WRITTEN}\n" in run.config.read_text(encoding="utf-8")
    checked = run_cli("check", config=run.config, env={"ACME_KORE_SECRET": SECRET})
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.rstrip().endswith("ok")

    again = run_cli("init", "--from", str(export), "--tenant", "acme", config=tmp_path / "b.yaml")
    assert again.returncode == 2
    assert f"{WRITTEN} exists; init does not overwrite it" in again.stderr
    assert (tmp_path / WRITTEN).read_text(encoding="utf-8") == written


def test_the_salesforce_lead_sample_gets_salesforce_and_no_job_title_as_salutation(
    tmp_path: Path,
) -> None:
    export = tmp_path / "exports" / "salesforce_Lead.csv"
    export.parent.mkdir()
    shutil.copy2(SAMPLES / "salesforce_Lead.csv", export)
    assert recognise(export).mapping == "salesforce"

    lead = _export(
        tmp_path / "lead",
        "Lead.csv",
        "Id,LastName,FirstName,Salutation,Name,Title,Company,Country,Phone,LastModifiedDate\n"
        "00Q1,Okafor,Chidi,,Chidi Okafor,Operations Manager,Acme,US,(415) 201-0601,"
        "2024-01-22T20:36:47.000+0000\n",
    )
    run = _init_and_dry_run(tmp_path / "lead", lead)

    assert run.mapping == "salesforce"
    assert run.sent == {"+14152010601": ("Chidi", "Okafor", "")}
    generic = load_mapping("generic").bind(["Title", "Last Name", "Phone"], "x.csv")
    assert generic.positions["fields.salutation.from"] == [], "generic never reads Title"


def test_organisation_names_are_kept_whole_by_generic(tmp_path: Path) -> None:
    export = _export(
        tmp_path,
        "accounts.csv",
        "Full Name,Company,Is Company,Mobile,Country\n"
        '"My Company, Chicago",My Company,,+1 312 555 0100,US\n'
        '"Lovelace, Ada",Analytical Engines,no,07911 123461,United Kingdom\n'
        '"Ellison, Harper",,yes,+1 312 555 0102,US\n'
        '"Acme, Inc.",,,+1 312 555 0103,US\n',
    )

    run = _init_and_dry_run(tmp_path, export)

    assert run.mapping == "generic"
    assert run.sent == {
        "+13125550100": ("", "My Company, Chicago", ""),
        "+447911123461": ("Ada", "Lovelace", ""),
        "+13125550102": ("", "Ellison, Harper", ""),
        "+13125550103": ("", "Acme, Inc.", ""),
    }


def test_the_shared_samples_give_the_same_contacts_through_the_mapping_init_picks() -> None:
    """Before this change init picked salesforce, salesforce and generic; dynamics365 now reads
    the Dynamics sample's Company Name too, and gives the same contacts."""
    expected = json.loads((FIXTURES / "samples_expected.json").read_text(encoding="utf-8"))
    picks = {}
    for name in sorted(expected):
        picks[name] = recognise(SAMPLES / name).mapping
        source = FileSource(
            CsvSourceSettings(kind="csv", path=str(SAMPLES / name)), state=None, full=True
        )
        (unit,) = source.units()
        bound = load_mapping(picks[name]).bind(unit.header(), unit.name)
        found: dict[str, object] = {}
        for row in unit.rows():
            if row.error or len(row.values) != len(bound.header):
                found[str(row.line)] = "malformed_row"
                continue
            item = bound.apply(row.values, source=name, row=row.line, default_region="US")
            found[str(row.line)] = (
                list(item.csv_row()) if isinstance(item, Contact) else item.reason
            )
        assert found == expected[name], name
    assert picks == {
        "dynamics_Contact.csv": "dynamics365",
        "salesforce_Contact.csv": "salesforce",
        "salesforce_Lead.csv": "salesforce",
    }


def test_the_synonym_table_gives_each_name_one_meaning() -> None:
    folded = Counter(normalise_header(name) for names in SYNONYMS.values() for name in names)
    assert [name for name, count in folded.items() if count > 1] == []
    assert "Title" not in SYNONYMS["salutation"], "a job in Salesforce, HubSpot and Zoho"


@pytest.mark.parametrize(
    ("cells", "header"),
    [
        (["first_name", "last_name", "phone", "country"], True),
        (["Name", "Phone", "Mobile", "Email", "Country", "Is a Company"], True),
        (["Phone 1 - Label", "Phone 1 - Value", "Given Name"], True),
        (["Contacts by Owner"], False),
        (["As of 03/02/2025 11:00", ""], False),
        (["Filtered By:", "Lead Source equals Web"], False),
    ],
)
def test_a_header_row_is_told_from_a_reports_title_lines_by_meaning(
    cells: list[str], header: bool
) -> None:
    assert looks_like_header(cells) is header
