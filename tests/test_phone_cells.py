"""What a phone cell holds besides a number (issue [9]): a word (``pager``) is no number at all,
not one of an unknown country; a JSON list (a CRM's API export) is read for its numbers, not
called "not a valid number"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from connector.contacts import Contact, Rejection
from connector.mapping import load_mapping
from connector.mapping.apply import BoundMapping

HEADER = ["First Name", "Mobile", "Phone", "Country", "DNC"]


def _bound(tmp_path: Path, **phone: object) -> BoundMapping:
    spec = {
        "fields": {"firstName": "First Name"},
        "skip_when": [{"field": "DNC", "in": ["true"]}],
        "phone": {"from": ["Mobile", "Phone"], "region_from": "Country", **phone},
    }
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return load_mapping(str(path)).bind(HEADER, "x.csv")


def _row(
    bound: BoundMapping, mobile: str, phone: str = "", country: str = "US", dnc: str = ""
) -> Contact | Rejection:
    return bound.apply(
        ["Ada", mobile, phone, country, dnc], source="x.csv", row=2, default_region="US"
    )


@pytest.mark.parametrize("country", ["US", "Atlantis", ""])
def test_a_word_in_a_phone_column_is_a_missing_phone_saying_what_was_there(
    tmp_path: Path, country: str
) -> None:
    bound = _bound(tmp_path)
    item = _row(bound, "pager", country=country)
    assert isinstance(item, Rejection)
    assert (item.reason, item.detail) == ("phone_missing", "Mobile held 'pager', not a number")
    beside = _row(bound, "mobile", "+1 (415) 555-0132", country=country)
    assert isinstance(beside, Contact)
    assert beside.key == "+14155550132"
    invalid = _row(bound, "mobile", "12345", country="Atlantis")
    assert isinstance(invalid, Rejection)
    assert invalid.reason == "country_unknown"  # the number is what lacks a country


def test_every_wordy_cell_is_named_and_control_characters_are_escaped(tmp_path: Path) -> None:
    item = _row(_bound(tmp_path), "mob\x1bile", "ask ::: later")
    assert isinstance(item, Rejection)
    assert item.reason == "phone_missing"
    assert item.detail == (
        "Mobile held 'mob\\x1bile', not a number; Phone held 'ask ::: later', not a number"
    )


COPPER = json.dumps(
    [
        {"number": "4155550199", "category": "fax"},
        {"number": "x"},
        {"number": "4155550132", "category": "work"},
        {"number": "+44 7911 123456", "category": "mobile"},
    ]
)


def test_a_json_list_of_numbers_is_read_with_its_labels(tmp_path: Path) -> None:
    """Copper's ``phone_numbers[{number, category}]``: the fax never, the mobile first; other
    CRMs' ``value``/``phone`` and ``label``/``type``; plain strings. A bracket that is no JSON
    is part of a number."""
    bound = _bound(tmp_path, prefer_labels=["mobile"])
    cells = {
        COPPER: "+447911123456",
        '[{"label": "work", "value": "4155550132"}]': "+14155550132",
        '[{"phone": "+1 415 555 0132", "type": "Home"}]': "+14155550132",
        '["4155550132"]': "+14155550132",
        "[4155550132]": "+14155550132",
        "[415] 555-0132": "+14155550132",
        '[{"value": "12345", "label": "mobile"}]': "phone_invalid",
    }
    items = {cell: _row(bound, cell) for cell in cells}
    found = {c: i.key if isinstance(i, Contact) else i.reason for c, i in items.items()}
    assert found == cells


@pytest.mark.parametrize(
    "cell",
    [
        "[]",
        '[{"label": "work"}]',
        '[{"label": "fax", "value": "4155550199"}]',
        '["pager"]',
        '[{"value": true}]',
    ],
)
def test_a_json_list_without_a_number_to_dial_says_it_is_a_list(tmp_path: Path, cell: str) -> None:
    item = _row(_bound(tmp_path), "", cell)
    assert isinstance(item, Rejection)
    assert item.reason == "phone_missing"
    assert item.detail == f"Phone held a list with no number to dial: '{cell}'"


def test_do_not_call_covers_every_number_of_a_json_list(tmp_path: Path) -> None:
    cell = json.dumps(["4155550132", {"number": "4155550133", "category": "home"}])
    item = _row(_bound(tmp_path), cell, dnc="true")
    assert isinstance(item, Rejection)
    assert item.reason == "skip_when"
    assert item.keys == ("+14155550132", "+14155550133")
