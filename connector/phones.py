"""Phone parsing and keys. ``phonenumbers`` is used here and nowhere else.

A contact's key is its number in E.164 without the extension: Kore refuses a number it already
has, whatever the name, so the number is the identity of a contact.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import phonenumbers

from connector.contacts import PhoneKey

_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+$")
_FLOAT_TAIL = re.compile(r"^(\+?\d+)\.0+$")
_TEXT_FORMULA = re.compile(r'^="(.*)"$')
# A spreadsheet drops the "+" of an international number; only numbers this long are read
# with it, so a short national number is never read as a foreign one.
_MIN_INTERNATIONAL_DIGITS = 11
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None) | {0xA0: " "}
_NUMBER_KEYS = ("value", "number", "phone", "phone_number", "phoneNumber")
_LABEL_KEYS = ("label", "type", "category")


@dataclass(frozen=True, slots=True)
class PhoneProblem:
    """Why no number of a row could be used: a reason code and the value at fault."""

    reason: str
    value: str


def parse_phone(raw: str, region: str) -> PhoneKey | PhoneProblem | None:
    """Parse one cell. None for an empty cell; a ``PhoneProblem`` for a value that is not usable."""
    value = _unwrap(raw.translate(_INVISIBLE).strip())
    if not value:
        return None
    if _SCIENTIFIC.match(value):
        return PhoneProblem("phone_mangled", value)
    float_tail = _FLOAT_TAIL.match(value)
    if float_tail:
        value = float_tail[1]
    number = _valid(value, region)
    if value.isdigit() and len(value) >= _MIN_INTERNATIONAL_DIGITS:
        # digits that start with the region's own country code are, with a "+", the number a
        # spreadsheet took the "+" from (4915123456000 in Germany is +49 151…, although
        # German numbers are long enough to read it as 4915… too)
        own = str(phonenumbers.country_code_for_region(region))
        if number is None or value.startswith(own):
            number = _valid("+" + value, region) or number
    if number is None:
        return PhoneProblem("phone_invalid", value)
    return PhoneKey(
        key=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        national=phonenumbers.national_significant_number(number),
        country_code=f"+{number.country_code}",
        extension=number.extension or "",
    )


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
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


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
