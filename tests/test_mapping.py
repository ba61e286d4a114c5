from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from connector.contacts import Contact, Rejection
from connector.errors import ConfigError
from connector.mapping import builtin_names, load_mapping, split_name


def _mapping(tmp_path: Path, spec: dict[str, object]):  # type: ignore[no-untyped-def]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return load_mapping(str(path))


SPEC = {
    "id": "Id",
    "updated_at": "Modified",
    "skip_when": [{"field": "DNC", "in": ["1", "TRUE", "yes"]}],
    "fields": {
        "firstName": {"from": "Full", "split": "first"},
        "lastName": {"from": ["Surname", "Full"], "split": "last", "case": "upper"},
        "salutation": {"from": "Title", "map": {"Mr.": "Mr", "Dr.": "Dr"}, "default": "Mx"},
    },
    "phone": {"from": ["Mobile", "Phone"], "region_from": "Country"},
}
HEADER = ["Id", "Full", "Surname", "Title", "Mobile", "Phone", "Country", "DNC", "Modified"]


def _apply(
    tmp_path: Path, values: list[str], spec: dict[str, object] = SPEC
) -> Contact | Rejection:
    bound = _mapping(tmp_path, spec).bind(HEADER, "x.csv")
    return bound.apply(values, source="x.csv", row=7, default_region="US")


def test_the_whole_language_in_one_row(tmp_path: Path) -> None:
    row = [
        "42",
        "  Ada   King Lovelace ",
        "",
        "mr.",
        "n/a",
        "020 7946 0018",
        "United Kingdom",
        "0",
        "2024-01-23T02:21:49.000+0000",
    ]
    contact = _apply(tmp_path, row)
    assert isinstance(contact, Contact)
    assert (contact.first_name, contact.last_name, contact.salutation) == (
        "Ada",
        "KING LOVELACE",
        "Mr",
    )
    assert contact.key == "+442079460018"
    assert contact.record_id == "42"
    assert contact.updated_at == datetime(2024, 1, 23, 2, 21, 49, tzinfo=UTC)
    assert (contact.source, contact.row) == ("x.csv", 7)


def test_default_fallback_list_and_value(tmp_path: Path) -> None:
    spec = {
        **SPEC,
        "fields": {
            "firstName": {"from": "Full", "split": "first"},
            "lastName": {"from": ["Surname", "Full"], "case": "upper"},
            "salutation": {"value": "Team"},
        },
    }
    row = ["1", "Grace", "Hopper", "", "", "+1 212 555 0199", "", "", ""]
    contact = _apply(tmp_path, row, spec)
    assert isinstance(contact, Contact)
    assert (contact.first_name, contact.last_name, contact.salutation) == (
        "Grace",
        "HOPPER",
        "Team",
    )
    row[2] = " "
    contact = _apply(tmp_path, row, spec)
    assert isinstance(contact, Contact) and contact.last_name == "GRACE"
    contact = _apply(tmp_path, row)
    assert isinstance(contact, Contact) and contact.salutation == "Mx"


def test_apply_is_pure(tmp_path: Path) -> None:
    row = ["1", "Grace Hopper", "", "Dr.", "", "+1 212 555 0199", "US", "", ""]
    assert _apply(tmp_path, row) == _apply(tmp_path, list(row))


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (["1", "A B", "", "", "", "+1 212 555 0199", "", "TRUE", ""], "skip_when"),
        (["1", "", "", "", "", "+1 212 555 0199", "", "", ""], "name_missing"),
        (["1", "A B", "", "", "", "", "", "", ""], "phone_missing"),
        (["1", "A B", "", "", "junk", "12", "", "", ""], "phone_invalid"),
        (["1", "A B", "", "", "4.41E+11", "", "", "", ""], "phone_mangled"),
    ],
)
def test_rejections_carry_a_reason_and_the_values_read(
    tmp_path: Path, row: list[str], reason: str
) -> None:
    result = _apply(tmp_path, row)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.record_id == "1" and result.row == 7
    assert "Mobile" not in result.values or result.values["Mobile"] == row[4]


def test_a_missing_column_names_the_closest_and_lists_the_rest(tmp_path: Path) -> None:
    mapping = _mapping(tmp_path, SPEC)
    with pytest.raises(ConfigError) as caught:
        mapping.bind(
            ["Id", "Full", "Surname", "Title", "Mobil", "Phon", "Country", "DNC", "Modified"],
            "export.csv",
        )
    assert "phone.from names 'Mobile', which export.csv lacks (closest: 'Mobil')" in str(
        caught.value
    )
    assert "Modified" in (caught.value.hint or "")
    assert "{any: [A, B]}" in (caught.value.hint or "")


def test_alternatives_are_explicit_and_a_group_may_lack_some(tmp_path: Path) -> None:
    spec = {**SPEC, "phone": {"from": [{"any": ["Cell", "Mobile"]}, "Phone"]}}
    bound = _mapping(tmp_path, spec).bind(HEADER, "x.csv")
    assert bound.positions["phone.from"] == [HEADER.index("Mobile"), HEADER.index("Phone")]

    spec = {**SPEC, "phone": {"from": {"any": ["Cell", "Handy"]}}}
    with pytest.raises(
        ConfigError, match=r"phone\.from names 'Cell' or 'Handy', which x\.csv lacks"
    ):
        _mapping(tmp_path, spec).bind(HEADER, "x.csv")


def test_headers_match_despite_case_spaces_and_bom(tmp_path: Path) -> None:
    bound = _mapping(tmp_path, SPEC).bind(
        ["\ufeffid", " FULL ", "surname", "title", "MOBILE", "phone", "country", "dnc", "modified"],
        "x.csv",
    )
    assert bound.positions["id"] == [0]


def test_optional_rules_warn_instead_of_failing(tmp_path: Path) -> None:
    spec = {**SPEC, "skip_when": [{"field": "DoNotCall", "in": ["true"], "if_present": True}]}
    bound = _mapping(tmp_path, spec).bind(HEADER, "x.csv")
    assert any("no row is skipped" in w for w in bound.warnings)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"fields": {"firstName": "A"}}, "phone is required"),
        ({"fields": {"nickname": "A"}, "phone": {"from": "P"}}, "fields.nickname"),
        (
            {"fields": {"firstName": {"from": "A", "upper": True}}, "phone": {"from": "P"}},
            "is not a mapping key",
        ),
        (
            {"fields": {"firstName": {"default": "x"}}, "phone": {"from": "P"}},
            "give 'from' or 'value'",
        ),
    ],
)
def test_invalid_mappings_are_one_line_config_errors(
    tmp_path: Path, spec: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _mapping(tmp_path, spec)


def test_builtins_load_and_an_unknown_name_is_a_config_error() -> None:
    assert {"salesforce", "generic"} <= set(builtin_names())
    for name in builtin_names():
        load_mapping(name)
    with pytest.raises(ConfigError, match="neither a built-in"):
        load_mapping("salesforse")


def test_split_name_handles_comma_form() -> None:
    assert split_name("Lovelace, Ada", "first") == "Ada"
    assert split_name("Lovelace, Ada", "last") == "Lovelace"
    assert split_name("Cher", "last") == ""


def test_a_role_reference_reads_every_name_the_synonym_table_gives_the_role(
    tmp_path: Path,
) -> None:
    spec = {
        "id": {"role": "id"},
        "fields": {"lastName": {"role": "last_name"}},
        "phone": {"from": [{"role": "mobile"}, {"role": "phone"}], "region_from": "Country"},
    }
    header = ["Record_ID", "surname", "Home Phone", "Cell", "MobilePhone", "Country"]
    bound = _mapping(tmp_path, spec).bind(header, "x.csv")
    assert bound.positions["id"] == [0]
    assert bound.positions["phone.from"] == [4, 3, 2], "mobiles first, in the table's order"

    spec["phone"] = {"from": {"role": "mobile"}}
    with pytest.raises(
        ConfigError, match=r"phone\.from names 'Mobile Phone' or another mobile synonym, which"
    ):
        _mapping(tmp_path, spec).bind(["Id", "surname", "Phone"], "x.csv")


def test_an_unknown_role_is_a_one_line_config_error(tmp_path: Path) -> None:
    spec = {"fields": {"lastName": "Last"}, "phone": {"from": {"role": "mobil"}}}
    with pytest.raises(ConfigError, match=r"phone\.from \{role: mobil\} is not a role; roles: "):
        _mapping(tmp_path, spec)


@pytest.mark.parametrize(
    ("name", "company", "flag", "split"),
    [
        ("Lovelace, Ada", "Analytical Engines", "", ("", "Ada", "Lovelace")),
        ("My Company, Chicago", "My Company", "", ("", "", "My Company, Chicago")),
        ("my company", "My  Company", "", ("", "", "my company")),
        ("Ellison, Harper", "", "True", ("", "", "Ellison, Harper")),
        ("Ellison, Harper", "", "False", ("", "Harper", "Ellison")),
        ("Acme, Inc.", "", "", ("", "", "Acme, Inc.")),
        ("Dr. Oetker GmbH", "", "", ("", "", "Dr. Oetker GmbH")),
        ("Müller & Co. KG", "", "", ("", "", "Müller & Co. KG")),
        ("Nestlé S.A.", "", "", ("", "", "Nestlé S.A.")),
        ("Co, Wilson", "", "", ("", "Wilson", "Co")),
        ("Sa, Minh", "", "", ("", "Minh", "Sa")),
        ("Mr. Ada King", "", "", ("Mr.", "Ada", "King")),
    ],
)
def test_an_organisations_name_is_kept_whole_and_a_persons_is_turned_round(
    name: str, company: str, flag: str, split: tuple[str, str, str]
) -> None:
    from connector.mapping.names import split_full_name

    assert split_full_name(name, companies=[company], company_flag=flag) == split


def test_split_fields_and_full_name_read_the_rows_company_columns(tmp_path: Path) -> None:
    spec = {
        "company": "Company",
        "is_company": "Is a Company",
        "fields": {
            "firstName": {"from": "Name", "split": "first"},
            "lastName": {"from": "Name", "split": "last"},
        },
        "phone": {"from": "Phone"},
    }
    header = ["Name", "Company", "Is a Company", "Phone"]
    bound = _mapping(tmp_path, spec).bind(header, "x.csv")
    rows = {
        "My Company, Chicago": ["My Company, Chicago", "My Company", "", "+1 312 555 0100"],
        "Ellison, Harper": ["Ellison, Harper", "", "1", "+1 312 555 0101"],
        "Lovelace, Ada": ["Lovelace, Ada", "My Company", "0", "+1 312 555 0102"],
    }
    mapped = {}
    for name, row in rows.items():
        contact = bound.apply(row, source="x.csv", row=2, default_region="US")
        assert isinstance(contact, Contact)
        mapped[name] = (contact.first_name, contact.last_name)
    assert mapped == {
        "My Company, Chicago": ("", "My Company, Chicago"),
        "Ellison, Harper": ("", "Ellison, Harper"),
        "Lovelace, Ada": ("Ada", "Lovelace"),
    }
