"""What real exports showed (issue [4]): each defect as an end-to-end ``sync --dry-run`` whose batch
files must hold the right numbers and names; every country's name; the shared samples unchanged."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import phonenumbers
import pycountry
import pytest
from babel import Locale, UnknownLocaleError
from babel.languages import get_official_languages

from connector.contacts import Contact
from connector.countries import fold
from connector.kore.sandbox import Sandbox
from connector.mapping import builtin_names, load_mapping, names_of
from connector.settings import CsvSourceSettings
from connector.sources.files import FileSource
from tests.conftest import SAMPLES, SECRET, run_cli, tenant_config, write_config
from tests.helpers import rejected, runs, summary

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _dry_run(
    tmp_path: Path, mapping: str, header: list[str], rows: list[list[str]]
) -> tuple[dict[str, dict[str, str]], Path]:
    """Sync the rows with ``--dry-run``; the batch rows by full number, and the run's folder."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    export = tmp_path / "export.csv"
    with export.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    with Sandbox(secret=SECRET) as sandbox:
        config = write_config(tmp_path, {"t": tenant_config(sandbox, export, mapping=mapping)})
        result = run_cli("sync", "--dry-run", config=config)
    assert result.returncode == 0, result.stderr
    (run,) = runs(tmp_path, "t")
    sent: dict[str, dict[str, str]] = {}
    for batch in sorted(run.glob("batch-*.csv")):
        with batch.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                sent[row["cellPhoneCountryCode"] + row["cellPhoneNumber"]] = row
    return sent, run


def test_a_country_the_connector_knows_in_any_language_keys_the_number_there(
    tmp_path: Path,
) -> None:
    header = ["Id", "FirstName", "LastName", "MobilePhone", "MailingCountry"]
    rows = [
        ["1", "Ana", "México", "55 1234 5678", "México"],
        ["2", "Jan", "Berlin", "030 901820", "Deutschland"],
        ["3", "Rui", "Rio", "(21) 98765-4321", "Brasil"],
        ["4", "Ito", "Praia", "991 12 34", "Cape Verde"],
        ["5", "Awa", "Abidjan", "01 23 45 67 89", "Cote d'Ivoire"],
        ["6", "Lea", "Reunion", "0692 12 34 56", "Reunion"],
        ["7", "Sipho", "Mbabane", "7612 3456", "Swaziland"],
        ["8", "Nemo", "Nowhere", "555 0100 200", "Atlantis"],
        ["9", "Ivy", "London", "+44 7400 123456", "Atlantis"],
    ]

    sent, run = _dry_run(tmp_path, "salesforce", header, rows)

    assert set(sent) == {
        "+525512345678",
        "+4930901820",
        "+5521987654321",
        "+2389911234",
        "+2250123456789",
        "+262692123456",
        "+26876123456",
        "+447400123456",
    }
    assert not any(key.startswith("+1") for key in sent), "no country fell back to default US"
    (unknown,) = rejected(run)
    assert unknown["reason"] == "country_unknown"
    assert "'Atlantis'" in unknown["detail"]
    assert summary(run)["unknown_countries"] == {"Atlantis": 1}


def test_google_reads_every_phone_n_prefers_mobile_and_never_dials_fax_or_pager(
    tmp_path: Path,
) -> None:
    header = ["First Name", "Last Name"]
    for n in range(1, 7):
        header += [f"Phone {n} - Label", f"Phone {n} - Value"]
    blank = ["", ""] * 6

    def row(first: str, **phones: tuple[str, str]) -> list[str]:
        cells = [first, "X", *blank]
        for slot, (label, value) in phones.items():
            n = int(slot.removeprefix("p"))
            cells[2 * n] = label
            cells[2 * n + 1] = value
        return cells

    rows = [
        row("Six", p1=("Work", "+1 415 201 0001"), p6=("Mobile", "+1 415 201 0006")),
        row("Fax", p1=("Work Fax", "+1 415 201 0002")),
        row("Pager", p2=("Pager", "+1 415 201 0003")),
        row("Many", p3=("Home", "+1 415 201 0004 ::: +1 415 201 0005")),
    ]

    sent, run = _dry_run(tmp_path, "google_contacts", header, rows)

    assert set(sent) == {"+14152010006", "+14152010004"}
    assert sent["+14152010006"]["firstName"] == "Six"
    reasons = {r["record_id"] or r["row"]: r["reason"] for r in rejected(run)}
    assert sorted(reasons.values()) == ["phone_missing", "phone_missing"]


def test_an_export_with_only_a_last_name_or_only_a_full_name_is_read(tmp_path: Path) -> None:
    zoho, _ = _dry_run(
        tmp_path / "zoho",
        "zoho",
        ["Record Id", "Last Name", "Mobile", "Mailing Country"],
        [["zcrm_1", "Okafor", "+1 415 201 0101", "United States"]],
    )
    generic, _ = _dry_run(
        tmp_path / "generic",
        "generic",
        ["FullName", "Phone"],
        [["Dr. Grace Brewster Hopper", "+1 415 201 0102"], ["Cher", "+1 415 201 0103"]],
    )

    assert zoho["+14152010101"]["lastName"] == "Okafor"
    hopper = generic["+14152010102"]
    assert (hopper["salutation"], hopper["firstName"], hopper["lastName"]) == (
        "Dr.",
        "Grace",
        "Brewster Hopper",
    )
    assert generic["+14152010103"]["firstName"] == "Cher"


def test_an_export_without_any_name_column_names_every_candidate(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "export.csv"
    export.write_text("Phone,Email\n+1 415 201 0104,a@example.com\n", encoding="utf-8")
    config = write_config(tmp_path, {"t": tenant_config(sandbox, export, mapping="generic")})
    result = run_cli("sync", "--dry-run", config=config)
    assert result.returncode == 2
    assert "has no name column ('First Name'" in result.stderr


def test_hubspot_record_id_contact_and_a_repeated_phone_header(tmp_path: Path) -> None:
    header = [
        "Record ID - Contact",
        "First Name",
        "Last Name",
        "Phone Number",
        "Phone Number",
        "Country/Region",
    ]
    rows = [
        ["501", "Ada", "King", "+1 415 201 0201", "+1 415 999 0000", "United States"],
        ["502", "Bo", "Lee", "not a phone", "+1 415 999 0001", "United States"],
    ]

    sent, run = _dry_run(tmp_path, "hubspot", header, rows)

    assert set(sent) == {"+14152010201"}, "the contact's own number, the first column"
    (bad,) = rejected(run)
    assert bad["record_id"] == "502"
    assert any("'Phone Number' appears 2 times" in w for w in summary(run)["warnings"])


def test_placeholders_are_empty_values(tmp_path: Path) -> None:
    header = ["Id", "FirstName", "LastName", "MobilePhone", "Phone", "MailingCountry"]
    rows = [
        ["1", "Ann", "Lee", "null", "N/A", "US"],
        ["2", "None", "None", "+1 415 201 0301", "", "US"],
        ["3", "AppraisalTek", "null", "+1 415 201 0302", "", "#N/A"],
        ["4", "Bo", "-", "(blank)", "+1 415 201 0303", "null"],
    ]

    sent, run = _dry_run(tmp_path, "salesforce", header, rows)

    assert set(sent) == {"+14152010302", "+14152010303"}
    assert (sent["+14152010302"]["firstName"], sent["+14152010302"]["lastName"]) == (
        "AppraisalTek",
        "",
    )
    assert sent["+14152010303"]["lastName"] == ""
    reasons = {r["record_id"]: r["reason"] for r in rejected(run)}
    assert reasons == {"1": "phone_missing", "2": "name_missing"}


def test_split_leaves_a_leading_title_out_of_the_names(tmp_path: Path) -> None:
    mapping = tmp_path / "names.yaml"
    mapping.write_text(
        "fields:\n"
        "  firstName: {from: Name, split: first}\n"
        "  lastName: {from: Name, split: last}\n"
        "  salutation: {from: Name, split: salutation}\n"
        "phone: {from: Phone}\n",
        encoding="utf-8",
    )
    sent, _ = _dry_run(
        tmp_path, str(mapping), ["Name", "Phone"], [["Mr. Juan Joseph", "+1 415 201 0401"]]
    )
    juan = sent["+14152010401"]
    assert (juan["salutation"], juan["firstName"], juan["lastName"]) == ("Mr.", "Juan", "Joseph")


def _names_of(region: str) -> list[tuple[str, str]]:
    """The country's name in English and in each of its official languages."""
    names = [("en", Locale("en").territories[region])]
    for language in get_official_languages(region, de_facto=True):
        try:
            local = Locale.parse(language).territories.get(region)
        except (UnknownLocaleError, ValueError):
            continue
        if local:
            names.append((language, local))
    return names


def _shared_in_language(language: str, name: str) -> bool:
    """A name one language gives to two territories (``Kongo``) cannot name either."""
    territories = Locale.parse(language).territories
    return sum(1 for v in territories.values() if fold(v) == fold(name)) > 1


def test_every_iso_country_in_english_and_its_own_languages_keys_its_national_number() -> None:
    mapping = load_mapping("generic")
    bound = mapping.bind(["First Name", "Mobile Phone", "Country"], "countries.csv")
    regions = sorted(
        c.alpha_2
        for c in pycountry.countries
        if c.alpha_2 in phonenumbers.SUPPORTED_REGIONS and c.alpha_2 in Locale("en").territories
    )
    assert len(regions) > 230
    wrong = []
    tried = 0
    for region in regions:
        example = phonenumbers.example_number_for_type(
            region, phonenumbers.PhoneNumberType.MOBILE
        ) or phonenumbers.example_number(region)
        if example is None:
            continue
        national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
        key = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        for language, name in _names_of(region):
            if _shared_in_language(language, name):
                continue
            tried += 1
            item = bound.apply(["A", national, name], source="c", row=2, default_region="US")
            if not isinstance(item, Contact) or item.key != key:
                wrong.append(f"{region} {language} {name!r}: {getattr(item, 'reason', item)}")
    assert wrong == []
    assert tried > 500, "every country, in English and in its own languages"


def test_the_shared_samples_give_the_same_contacts_as_before() -> None:
    expected = json.loads((FIXTURES / "samples_expected.json").read_text(encoding="utf-8"))
    for name, mapping_name in (
        ("salesforce_Contact.csv", "salesforce"),
        ("salesforce_Lead.csv", "salesforce"),
        ("dynamics_Contact.csv", "dynamics365"),
    ):
        mapping = load_mapping(mapping_name)
        source = FileSource(
            CsvSourceSettings(kind="csv", path=str(SAMPLES / name)), state=None, full=True
        )
        (unit,) = source.units()
        bound = mapping.bind(unit.header(), unit.name)
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


@pytest.mark.parametrize(
    ("value", "region"),
    [("México", "MX"), ("DEUTSCHLAND", "DE"), ("the Bahamas", "BS"), ("Россия", "RU")],
)
def test_country_names_fold_case_accents_and_articles(value: str, region: str) -> None:
    from connector.countries import region_for

    assert region_for(value) == region


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_reads_an_export_with_one_name_column_of_any_kind(name: str) -> None:
    spec = load_mapping(name).spec
    phone = names_of(spec.phone.from_)[0].replace("*", "1")
    columns = [names_of(spec.fields[f].from_)[0] for f in ("lastName", "firstName")]
    assert spec.full_name is not None, "a full-name column for exports without first and last"
    columns += names_of(spec.full_name.from_)[:1]
    for column in columns:
        bound = load_mapping(name).bind([column, phone], "one-name.csv")
        item = bound.apply(
            ["Dr. Ada Lovelace", "+1 415 201 0501"], source="x", row=2, default_region="US"
        )
        assert isinstance(item, Contact), f"{name}: {column}: {item}"
    dialled = names_of(spec.phone.from_)
    assert not [c for c in dialled if any(w in c.casefold() for w in ("fax", "pager"))]


def test_check_lists_the_countries_it_does_not_know(tmp_path: Path, sandbox: Sandbox) -> None:
    export = tmp_path / "export.csv"
    export.write_text(
        "FirstName,LastName,MobilePhone,MailingCountry\n"
        "A,B,555 0100 201,Atlantis\nC,D,555 0100 202,Atlantis\nE,F,555 0100 203,Lemuria\n",
        encoding="utf-8",
    )
    config = write_config(tmp_path, {"t": tenant_config(sandbox, export)})
    result = run_cli("check", config=config)
    assert result.returncode == 0, result.stderr
    assert "rejected: 3 country_unknown" in result.stdout
    assert "unknown countries: 'Atlantis' 2, 'Lemuria' 1" in result.stdout


def test_a_typo_inside_a_from_list_is_exit_2_naming_the_real_column(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Issue [5]: ``phone.from: [MobilPhone, Phone]`` once sent the business number silently."""
    mapping = tmp_path / "typo.yaml"
    mapping.write_text(
        "fields: {firstName: FirstName, lastName: LastName}\n"
        "phone: {from: [MobilPhone, Phone], region_from: MailingCountry}\n",
        encoding="utf-8",
    )
    config = write_config(
        tmp_path,
        {"t": tenant_config(sandbox, SAMPLES / "salesforce_Contact.csv", mapping=str(mapping))},
    )

    result = run_cli("sync", config=config)

    assert result.returncode == 2
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "phone.from names 'MobilPhone'" in error and "(closest: 'MobilePhone')" in error
    assert sandbox.state.uploads == 0
