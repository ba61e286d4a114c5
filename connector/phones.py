"""Phone parsing and keys. ``phonenumbers`` is used here and nowhere else.

A contact's key is its number in E.164 without the extension: Kore refuses a number it already
has, whatever the name, so the number is the identity of a contact.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata
from phonenumbers import phonenumberutil as pnu

from connector.contacts import PhoneKey

# phonenumbers compiles a metadata pattern on every match unless told to keep them (re's own
# cache then answers, at a third of a parse's cost); the patterns are the library's fixed
# metadata, so the kept set is bounded.
phonenumbers.enable_pattern_cache()

_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+$")
_FLOAT_TAIL = re.compile(r"^(\+?\d+)\.0+$")
_TEXT_FORMULA = re.compile(r'^="(.*)"$')
# A spreadsheet drops the "+" of an international number; only numbers this long are read
# with it, so a short national number is never read as a foreign one.
_MIN_INTERNATIONAL_DIGITS = 11
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None) | {0xA0: " "}
_PLAIN = re.compile(r"\+?[0-9 ().-]*")
_NOT_DIGITS = re.compile(r"[^0-9]+")
_VIABLE_DIGITS = 3
"""Digits a plain value needs to be a viable number whatever its punctuation (parse's
``_VALID_PHONE_NUMBER``: two digits pass only when written together)."""
_TOO_SHORT_TO_STRIP = (
    pnu.ValidationResult.TOO_SHORT,
    pnu.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    pnu.ValidationResult.INVALID_LENGTH,
)
"""What makes parse keep a national prefix: the number without it would not be a full one."""
_NUMBER_KEYS = ("value", "number", "phone", "phone_number", "phoneNumber")
_LABEL_KEYS = ("label", "type", "category")


@dataclass(frozen=True, slots=True)
class PhoneProblem:
    """Why no number of a row could be used: a reason code and the value at fault."""

    reason: str
    value: str


def parse_phone(raw: str, region: str) -> PhoneKey | PhoneProblem | None:
    """Parse one cell. None for an empty cell; a ``PhoneProblem`` for a value that is not usable.

    The answer is phonenumbers' (``parse``, ``is_valid_number``, E.164), reached by a shorter
    road where one is known to lead to the same place (``_plain``, ``_is_valid``)."""
    value = _unwrap(raw.translate(_INVISIBLE).strip())
    if not value:
        return None
    if _SCIENTIFIC.match(value):
        return PhoneProblem("phone_mangled", value)
    float_tail = _FLOAT_TAIL.match(value)
    if float_tail:
        value = float_tail[1]
    number = _valid(value, region)
    # digits that start with the region's own country code are, with a "+", the number a
    # spreadsheet took the "+" from (4915123456000 in Germany is +49 151…, although German
    # numbers are long enough to read it as 4915… too)
    if (
        value.isdigit()
        and len(value) >= _MIN_INTERNATIONAL_DIGITS
        and (number is None or value.startswith(_country_code(region)))
    ):
        number = _valid("+" + value, region) or number
    if number is None:
        return PhoneProblem("phone_invalid", value)
    national = phonenumbers.national_significant_number(number)
    # E.164 is "+", the country code and the national significant number: what
    # phonenumbers.format_number(number, E164) writes for a parsed number.
    country_code = f"+{number.country_code}"
    return PhoneKey(
        key=country_code + national,
        national=national,
        country_code=country_code,
        extension=number.extension or "",
    )


@cache
def _country_code(region: str) -> str:
    """A region's country code as digits (``49`` for DE; ``0`` for an unknown region)."""
    return str(phonenumbers.country_code_for_region(region))


def listed_numbers(cell: str) -> list[tuple[str, str]] | None:
    """The numbers of a cell that holds a JSON list, as a CRM's API export writes a contact's
    phones (Copper's ``phone_numbers``: ``[{"number": "…", "category": "mobile"}]``; others
    ``value``/``phone`` with ``label``/``type``; or plain strings), each with its label, in
    order; None when the cell is no JSON list (``[415] 555-0132`` is a number)."""
    try:
        items = json.loads(cell)
    except (ValueError, RecursionError):
        return None
    if not isinstance(items, list):
        return None
    found: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, dict):
            numbers = [item[k] for k in _NUMBER_KEYS if _written(item.get(k))]
            labels = [item[k] for k in _LABEL_KEYS if isinstance(item.get(k), str)]
            if numbers:
                found.append((labels[0] if labels else "", str(numbers[0])))
        elif _written(item):
            found.append(("", str(item)))
    return found


def _written(value: object) -> bool:
    """A number as JSON may carry it: a string, or an integer (never ``true``)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _unwrap(value: str) -> str:
    """What spreadsheet tricks leave around a number kept as text: ``="0151…"`` or ``'+44…``."""
    wrapped = _TEXT_FORMULA.match(value)
    if wrapped:
        return wrapped[1].strip()
    return value[1:].strip() if value.startswith("'") else value


def _valid(value: str, region: str) -> phonenumbers.PhoneNumber | None:
    number = _plain(value, region)
    if number is None:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            return None
    return number if _is_valid(number) else None


def _plain(value: str, region: str) -> phonenumbers.PhoneNumber | None:
    """``phonenumbers.parse(value, region)`` for the way most cells write a number: ASCII digits
    with spaces, dashes, dots or brackets, a "+" first or none, in a region the library knows;
    None for any other value, and wherever parse would take a road less travelled (a
    dialling prefix such as 011 or 00, a code after "+" that is no country's, a number too
    short or too long): then the library's own parse decides.

    For such a value, parse's extraction, viability and extension steps and its normalising
    come to "the digits, and whether a "+" leads": no extension label, second number,
    RFC 3966 part or letter can be in it. This function takes it from there with the library's
    own steps, as parse does (``parse`` in phonenumberutil.py), without walking the text
    character by character three more times: about a quarter of parse's cost.
    ``tests/test_mapping_speed.py`` compares the two over generated values and every region."""
    if len(value) > pnu._MAX_INPUT_STRING_LENGTH or not _PLAIN.fullmatch(value):
        return None
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return None
    digits = _NOT_DIGITS.sub("", value)
    if len(digits) < _VIABLE_DIGITS:
        return None
    metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None:
        return None
    country_code: int | None
    if value.startswith("+"):
        country_code, national = pnu._extract_country_code(digits)
        if country_code == 0:
            return None
    else:
        prefix = metadata.international_prefix
        if prefix is not None and _pattern(prefix).match(digits):
            return None
        country_code, national = _without_own_country_code(digits, metadata)
    if country_code:
        number_region = pnu.region_code_for_country_code(country_code)
        if number_region != region:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(
                country_code, number_region
            )
            if metadata is None:
                return None
    else:
        country_code, national = metadata.country_code, digits
    if len(national) < pnu._MIN_LENGTH_FOR_NSN:
        return None
    _, stripped, _ = pnu._maybe_strip_national_prefix_carrier_code(national, metadata)
    if pnu._test_number_length(stripped, metadata) not in _TOO_SHORT_TO_STRIP:
        national = stripped
    if len(national) > pnu._MAX_LENGTH_FOR_NSN:
        return None
    number = phonenumbers.PhoneNumber(country_code=country_code)
    pnu._set_italian_leading_zeros_for_phone_number(national, number)
    number.national_number = int(national)
    return number


def _without_own_country_code(digits: str, metadata: PhoneMetadata) -> tuple[int, str]:
    """The region's country code and the rest, when the digits start with that code and are a
    number only without it (``14155550132`` in the US); else 0 and "" (parse's
    ``_maybe_extract_country_code`` for a number without "+" or dialling prefix)."""
    own = metadata.country_code
    if own is None or not digits.startswith(str(own)):
        return 0, ""
    general = metadata.general_desc
    _, rest, _ = pnu._maybe_strip_national_prefix_carrier_code(digits[len(str(own)) :], metadata)
    if (
        not pnu._match_national_number(digits, general, False)
        and pnu._match_national_number(rest, general, False)
    ) or pnu._test_number_length(digits, metadata) == pnu.ValidationResult.TOO_LONG:
        return own, rest
    return 0, ""


def _is_valid(number: phonenumbers.PhoneNumber) -> bool:
    """``phonenumbers.is_valid_number``, with one pass over the metadata where it makes two.

    The library first finds the number's region (for a code several regions share, the first
    whose leading digits match or, without leading digits, whose patterns the number matches),
    then matches the number against that region's patterns again. A region found by its
    patterns is one the number is valid for, so the second match is left out; the answer is the
    library's (``tests/test_mapping_speed.py`` compares the two)."""
    regions = (
        None
        if number.country_code is None
        else COUNTRY_CODE_TO_REGION_CODE.get(number.country_code)
    )
    if regions is None:
        return False
    if len(regions) == 1:
        return bool(phonenumbers.is_valid_number_for_region(number, regions[0]))
    national = phonenumbers.national_significant_number(number)
    for region, leading_digits in _sharing(number.country_code):
        if leading_digits is not None:
            if leading_digits.match(national):
                return bool(phonenumbers.is_valid_number_for_region(number, region))
        elif phonenumbers.is_valid_number_for_region(number, region):
            return True
    return False


@cache
def _sharing(country_code: int) -> tuple[tuple[str, re.Pattern[str] | None], ...]:
    """The regions a country code is shared by, in the library's order, each with the leading
    digits that tell its numbers (the US and GB have none: their numbers are told by their
    patterns); regions without metadata left out, as the library skips them."""
    found: list[tuple[str, re.Pattern[str] | None]] = []
    for region in COUNTRY_CODE_TO_REGION_CODE[country_code]:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is not None:
            leading = metadata.leading_digits
            found.append((region, None if leading is None else re.compile(leading)))
    return tuple(found)


@cache
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def join_key(number: str, country_code: str = "") -> str | None:
    """The E.164 key of a number as Kore returns it (``+9198…`` or ``98…`` plus ``+91``)."""
    digits = re.sub(r"[^\d+]", "", number or "")
    if not digits:
        return None
    if not digits.startswith("+"):
        code = re.sub(r"\D", "", country_code or "")
        digits = f"+{code}{digits}"
    try:
        parsed = phonenumbers.parse(digits, None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def mask(key: str) -> str:
    """A phone number fit for a log line: country code and last two digits only."""
    if len(key) <= 6:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 5) + key[-2:]
