"""The shortcuts that make a row cheap to map give the answers the long way gave: the phone
parser against a copy of the one it replaced (plain phonenumbers.parse, is_valid_number and
format_number), over generated values and every region the library knows; a bound mapping
sent to another process maps alike; ``marked`` says what ``apply`` would."""

from __future__ import annotations

import csv
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.contacts import Contact, PhoneKey, Rejection
from connector.mapping import load_mapping
from connector.mapping.apply import REMOVED_IN_CRM, BoundMapping, sample_updated_at
from connector.phones import PhoneProblem, _is_valid, _plain, parse_phone
from connector.sources import SourceRow
from tests.messy import HEADER, write_export

MANY = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
SHARED_CODES = [
    code for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items() if len(regions) > 1
]
KINDS = [
    getattr(phonenumbers.PhoneNumberType, kind)
    for kind in (
        "FIXED_LINE",
        "MOBILE",
        "TOLL_FREE",
        "PREMIUM_RATE",
        "SHARED_COST",
        "VOIP",
        "PERSONAL_NUMBER",
        "PAGER",
        "UAN",
        "VOICEMAIL",
    )
]


# --- the phone parser as it was, copied: the reference the new one must agree with ---------

_OLD_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+$")
_OLD_FLOAT_TAIL = re.compile(r"^(\+?\d+)\.0+$")
_OLD_TEXT_FORMULA = re.compile(r'^="(.*)"$')
_OLD_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None) | {0xA0: " "}


def old_parse_phone(raw: str, region: str) -> PhoneKey | PhoneProblem | None:
    value = _old_unwrap(raw.translate(_OLD_INVISIBLE).strip())
    if not value:
        return None
    if _OLD_SCIENTIFIC.match(value):
        return PhoneProblem("phone_mangled", value)
    float_tail = _OLD_FLOAT_TAIL.match(value)
    if float_tail:
        value = float_tail[1]
    number = _old_valid(value, region)
    if value.isdigit() and len(value) >= 11:
        own = str(phonenumbers.country_code_for_region(region))
        if number is None or value.startswith(own):
            number = _old_valid("+" + value, region) or number
    if number is None:
        return PhoneProblem("phone_invalid", value)
    return PhoneKey(
        key=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        national=phonenumbers.national_significant_number(number),
        country_code=f"+{number.country_code}",
        extension=number.extension or "",
    )


def _old_unwrap(value: str) -> str:
    wrapped = _OLD_TEXT_FORMULA.match(value)
    if wrapped:
        return wrapped[1].strip()
    return value[1:].strip() if value.startswith("'") else value


def _old_valid(value: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def library_parse(value: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None


# --- values ----------------------------------------------------------------------------------


def _examples() -> list[str]:
    """Every region's example number of every kind, in E.164: valid numbers of every plan."""
    found = []
    for region in REGIONS:
        for kind in KINDS:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                found.append(
                    phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                )
    return sorted(set(found))


EXAMPLES = _examples()
SEPARATORS = st.sampled_from(["", "", "", " ", "-", ".", "(", ")", " (", ") ", "  ", "--"])


@st.composite
def written_numbers(draw: st.DrawFn) -> str:
    """A number as exports write it: an example number of some region or plain digits, with
    digits changed, added or left out, with or without "+", its country code, a trunk or
    dialling prefix, split by spaces, dashes, dots or brackets."""
    digits = draw(
        st.sampled_from(EXAMPLES).map(lambda e: e[1:])
        | st.text(alphabet="0123456789", min_size=1, max_size=20)
    )
    if draw(st.booleans()):
        at = draw(st.integers(0, len(digits) - 1))
        digits = digits[:at] + draw(st.sampled_from("0123456789")) + digits[at + 1 :]
    if draw(st.booleans()):
        digits = digits[: draw(st.integers(0, len(digits)))]
    if draw(st.booleans()):
        digits += draw(st.text(alphabet="0123456789", max_size=3))
    if draw(st.booleans()):
        digits = draw(st.sampled_from(["0", "1", "00", "011", "0011", "8", "810", "9"])) + digits
    groups: list[str] = []
    while digits:
        size = draw(st.integers(1, 5))
        groups.append(digits[:size])
        digits = digits[size:]
    text = "".join(draw(SEPARATORS) + group for group in groups)
    lead = draw(st.sampled_from(["", "", "+", "+", " ", "+ ", "(", "+(", "++", "'"]))
    tail = draw(st.sampled_from(["", "", "", " ", ")", ".0", " x12", ";ext=3", "#", ",", "/"]))
    return lead + text + tail


REGIONS_TOO = st.sampled_from(REGIONS) | st.sampled_from(["ZZ", "us", "001", "XK", ""])
ANY_TEXT = st.text(
    alphabet=st.sampled_from("0123456789 +-().x#;,/ext=\u200b\u00a0\uff10\u0661'\"Ee")
    | st.characters(),
    max_size=30,
)


# --- the shortcuts -----------------------------------------------------------------------------


@MANY
@given(value=written_numbers() | ANY_TEXT, region=REGIONS_TOO)
def test_a_plain_value_parses_as_the_library_parses_it(value: str, region: str) -> None:
    number = _plain(value, region)
    if number is not None:
        assert number == library_parse(value, region)


@pytest.mark.parametrize(
    ("value", "region"),
    [
        ("(415) 555-0132", "US"),
        ("+1 415 555 0132", "DE"),
        ("14155550132", "US"),
        ("07912 345678", "GB"),
        ("0151-19700766", "DE"),
        ("+49 151 86494733", "US"),
        ("4155550132", "CA"),
        ("+1 (415) 555-0132", "CA"),
        ("06 12 34 56 78", "FR"),
        ("02 1234 5678", "IT"),
    ],
)
def test_the_plain_way_takes_the_common_shapes(value: str, region: str) -> None:
    """Not vacuous: the values most exports hold take the short way."""
    number = _plain(value, region)
    assert number is not None
    assert number == phonenumbers.parse(value, region)


def test_every_regions_numbers_as_written_there_and_abroad_parse_as_the_library_parses_them() -> (
    None
):
    """Each example number in E.164, international, national and bare digits, dialled from
    abroad too, read in its own region and in others: trunk prefixes, shared country codes,
    leading zeros of every plan."""
    plain = 0
    for example in EXAMPLES:
        number = phonenumbers.parse(example, None)
        region = phonenumbers.region_code_for_number(number) or "ZZ"
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        forms = {
            example,
            example[1:],
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
            national,
            re.sub(r"\D", "", national),
            phonenumbers.format_out_of_country_calling_number(number, "DE"),
        }
        for form in forms:
            for reading_in in (region, "US", "DE", "IT"):
                got = _plain(form, reading_in)
                if got is not None:
                    plain += 1
                    assert got == library_parse(form, reading_in), (form, reading_in)
                assert parse_phone(form, reading_in) == old_parse_phone(form, reading_in)
    assert plain > len(EXAMPLES) * 10


def test_trimming_a_name_is_as_it_was() -> None:
    """A field's ``trim`` now splits on whitespace, as ``\\s+`` collapsed it: the same
    characters are whitespace to both, every one of them."""
    spaces = re.compile(r"\s+")
    for code in range(sys.maxunicode + 1):
        text = f" a{chr(code)}{chr(code)}b{chr(code)}"
        assert " ".join(text.split()) == spaces.sub(" ", text).strip(), hex(code)


@MANY
@given(value=written_numbers(), region=REGIONS_TOO)
def test_validity_is_the_librarys(value: str, region: str) -> None:
    number = library_parse(value, region)
    if number is not None:
        assert _is_valid(number) == phonenumbers.is_valid_number(number)


def test_validity_is_the_librarys_for_every_example_number_and_its_neighbours() -> None:
    """Every region's example numbers, each with its last digit changed, one digit fewer and
    one more; and every shared country code's numbers, where a region is chosen among several."""
    numbers = []
    for example in EXAMPLES:
        for written in (
            example,
            example[:-1],
            example + "5",
            example[:-1] + "0",
            example[:-1] + "9",
        ):
            number = library_parse(written, "ZZ")
            if number is not None:
                numbers.append(number)
    assert sum(n.country_code in SHARED_CODES for n in numbers) > 100
    for number in numbers:
        assert _is_valid(number) == phonenumbers.is_valid_number(number), number


def test_every_region_of_a_shared_code_has_that_code() -> None:
    """What the one-pass validity rests on: a region listed under a country code is that
    code's (the library checks it a second time)."""
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            if region != "001":
                assert phonenumbers.country_code_for_valid_region(region) == code


@MANY
@given(raw=written_numbers() | ANY_TEXT, region=REGIONS_TOO)
def test_parse_phone_answers_as_before(raw: str, region: str) -> None:
    assert parse_phone(raw, region) == old_parse_phone(raw, region)


def test_parse_phone_answers_as_before_on_a_whole_export(tmp_path: Path) -> None:
    export = tmp_path / "contacts.csv"
    write_export(export, valid=3000, seed=11)
    with export.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    cells = [
        row[column] or ""
        for row in rows
        for column in ("Phone", "MobilePhone", "HomePhone", "OtherPhone")
        if row.get(column)
    ]
    assert len(cells) > 3000
    for cell in cells:
        for region in ("US", "GB", "DE", "CA"):
            assert parse_phone(cell, region) == old_parse_phone(cell, region), cell


# --- the bound mapping -------------------------------------------------------------------------


def _bound(export: Path) -> tuple[BoundMapping, list[list[str]]]:
    with export.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], [row for row in rows[1:] if len(row) == len(rows[0])]
    bound = load_mapping("salesforce").bind(header, export.name)
    sample = sample_updated_at(bound, (SourceRow(v, i) for i, v in enumerate(body, 2)))
    return bound.learn_timestamps(sample), body


def _mapped(bound: BoundMapping, body: list[list[str]]) -> list[Contact | Rejection]:
    return [
        bound.apply(values, source="contacts.csv", row=i, default_region="US")
        for i, values in enumerate(body, 2)
    ]


def test_a_bound_mapping_sent_to_another_process_maps_alike(tmp_path: Path) -> None:
    export = tmp_path / "contacts.csv"
    write_export(export, valid=500, seed=3)
    bound, body = _bound(export)
    fresh = pickle.loads(pickle.dumps(bound))
    here = _mapped(bound, body)
    used = pickle.loads(pickle.dumps(bound))  # after mapping: with what it worked out
    assert _mapped(fresh, body) == here
    assert _mapped(used, body) == here
    assert {type(item) for item in here} == {Contact, Rejection}

    # and in a process of its own, which has loaded nothing yet
    script = (
        "import pickle, sys, json\n"
        "bound, body = pickle.load(sys.stdin.buffer)\n"
        "before = 'phonenumbers' in sys.modules\n"
        "out = [repr(bound.apply(v, source='contacts.csv', row=i, default_region='US'))"
        " for i, v in enumerate(body, 2)]\n"
        "print(json.dumps([before, out]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=pickle.dumps((used, body)),
        capture_output=True,
        check=True,
        cwd=Path(__file__).parents[1],
    )
    loaded_before, there = json.loads(done.stdout)
    assert not loaded_before, "unpickling a mapping loads no phone library"
    assert there == [repr(item) for item in here]


def _row(**cells: str) -> list[str]:
    values = dict.fromkeys(HEADER, "")
    values |= {"FirstName": "Ada", "LastName": "King", "MobilePhone": "+1 415 201 3344"}
    values |= cells
    return [values[column] for column in HEADER]


MARKS = st.sampled_from(
    ["", "true", "TRUE", " True ", "1", "yes", "false", "0", "no", "null", "n/a"]
)


@pytest.fixture(scope="module")
def salesforce() -> BoundMapping:
    return load_mapping("salesforce").bind(HEADER, "contacts.csv")


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    dnc=MARKS,
    deleted=MARKS,
    phone=st.sampled_from(["", "+1 415 201 3344", "12345", "call me", "4.1E+9"]),
    first=st.sampled_from(["", "Ada"]),
    country=st.sampled_from(["", "US", "Atlantis"]),
)
def test_marked_is_true_exactly_when_apply_rejects_by_a_rule(
    salesforce: BoundMapping, dnc: str, deleted: str, phone: str, first: str, country: str
) -> None:
    values = _row(
        DoNotCall=dnc,
        IsDeleted=deleted,
        MobilePhone=phone,
        FirstName=first,
        LastName="",
        MailingCountry=country,
    )
    result = salesforce.apply(values, source="contacts.csv", row=2, default_region="US")
    by_rule = isinstance(result, Rejection) and result.reason in ("skip_when", REMOVED_IN_CRM)
    assert salesforce.marked(values) == by_rule


def test_marked_reads_no_phone(tmp_path: Path) -> None:
    """Cheap: telling a marked row loads no phone library and no country names."""
    script = (
        "import sys\n"
        "from connector.mapping import load_mapping\n"
        "from tests.messy import HEADER\n"
        "bound = load_mapping('salesforce').bind(HEADER, 'contacts.csv')\n"
        "row = dict.fromkeys(HEADER, '') | {'DoNotCall': 'true', 'MobilePhone': '+1 415 201 3344',"
        " 'MailingCountry': 'Germany'}\n"
        "values = [row[c] for c in HEADER]\n"
        "clean = [row[c] if c != 'DoNotCall' else 'false' for c in HEADER]\n"
        "print(bound.marked(values), bound.marked(clean),"
        " 'phonenumbers' in sys.modules, 'babel' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
    )
    assert done.stdout.split() == ["True", "False", "False", "False"]
