from __future__ import annotations

import pytest

from connector.contacts import PhoneKey
from connector.countries import region_for
from connector.phones import PhoneProblem, join_key, mask, parse_phone


@pytest.mark.parametrize(
    ("raw", "region", "key", "national", "code", "extension"),
    [
        ("(415) 555-0132", "US", "+14155550132", "4155550132", "+1", ""),
        ("415.555.0132", "US", "+14155550132", "4155550132", "+1", ""),
        ("+1 415 555 0132", "DE", "+14155550132", "4155550132", "+1", ""),
        ("4155550132.0", "US", "+14155550132", "4155550132", "+1", ""),
        ("415-555-0132 x123", "US", "+14155550132", "4155550132", "+1", "123"),
        ("415-555-0132 ext. 45", "US", "+14155550132", "4155550132", "+1", "45"),
        ("+1 415 555 0132;ext=9", "US", "+14155550132", "4155550132", "+1", "9"),
        ("07912 345678", "GB", "+447912345678", "7912345678", "+44", ""),
        ("7912345678", "GB", "+447912345678", "7912345678", "+44", ""),
        ("447912345678", "US", "+447912345678", "7912345678", "+44", ""),
        ("4915123456000", "DE", "+4915123456000", "15123456000", "+49", ""),
        ("015123456000", "DE", "+4915123456000", "15123456000", "+49", ""),
        ("0151 23456789", "DE", "+4915123456789", "15123456789", "+49", ""),
        ("\u200b+91 98765 43210\u00a0", "US", "+919876543210", "9876543210", "+91", ""),
        ('="07912 345678"', "GB", "+447912345678", "7912345678", "+44", ""),
        ("'+44 7912 345678", "US", "+447912345678", "7912345678", "+44", ""),
    ],
)
def test_valid_numbers_give_the_e164_key_and_the_kore_columns(
    raw: str, region: str, key: str, national: str, code: str, extension: str
) -> None:
    assert parse_phone(raw, region) == PhoneKey(key, national, code, extension)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("4.41E+11", "phone_mangled"),
        ("3.108207129E9", "phone_mangled"),
        ("n/a", "phone_invalid"),
        ("555-0100", "phone_invalid"),
        ("5987002803", "phone_invalid"),
        ("12345", "phone_invalid"),
    ],
)
def test_unusable_numbers_are_problems_with_a_reason(raw: str, reason: str) -> None:
    problem = parse_phone(raw, "US")
    assert isinstance(problem, PhoneProblem)
    assert problem.reason == reason


def test_an_empty_cell_is_not_a_problem() -> None:
    assert parse_phone("  ", "US") is None


def test_a_short_national_number_is_never_read_as_a_foreign_one() -> None:
    # 10 digits invalid in the US must not become +5 98… by adding a plus.
    assert isinstance(parse_phone("5987002803", "US"), PhoneProblem)


@pytest.mark.parametrize(
    ("country", "region"),
    [
        ("United States", "US"),
        ("USA", "US"),
        ("us", "US"),
        ("Germany", "DE"),
        ("DEU", "DE"),
        ("United Kingdom", "GB"),
        ("UK", "GB"),
        ("GBR", "GB"),
        ("france", "FR"),
        (" India ", "IN"),
        ("Atlantis", None),
        ("", None),
    ],
)
def test_regions_from_names_iso2_and_iso3(country: str, region: str | None) -> None:
    assert region_for(country) == region


def test_kore_numbers_join_back_to_keys() -> None:
    assert join_key("+919876543210") == "+919876543210"
    assert join_key("9876543210", "+91") == "+919876543210"
    assert join_key("") is None


def test_masked_numbers_keep_only_country_code_and_last_digits() -> None:
    assert mask("+14155550132") == "+14*******32"
    assert "5550" not in mask("+14155550132")
