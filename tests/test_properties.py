"""Properties that must hold for every input, checked with hypothesis: a number keeps its key
however it is written; the upload file parses back to exactly the rows meant; the CSV reader
agrees with Python's csv module and accounts for every line; any bytes at all give rows,
rejections or one clean error."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from connector.contacts import KORE_COLUMNS
from connector.errors import ConnectorError
from connector.kore.wire import batch_csv
from connector.mapping import load_mapping
from connector.phones import parse_phone
from connector.settings import CsvSourceSettings
from connector.sources import FileTally
from connector.sources.csv_files import _Splitter, _Unclosed
from connector.sources.files import FileSource

REGIONS = ["US", "CA", "GB", "DE", "FR", "IN", "BR", "AU", "JP", "MX", "ES", "IT", "NL", "ZA"]
SOME = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def valid_numbers(draw: st.DrawFn) -> tuple[str, phonenumbers.PhoneNumber]:
    """A valid mobile or fixed-line number of one of ``REGIONS``: an example number with its
    last digits changed, kept only when libphonenumber still calls it valid."""
    region = draw(st.sampled_from(REGIONS))
    kind = draw(
        st.sampled_from(
            [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
        )
    )
    example = phonenumbers.example_number_for_type(region, kind)
    assume(example is not None)
    national = str(example.national_number)
    tail = draw(st.text(alphabet="0123456789", min_size=3, max_size=3))
    number = phonenumbers.parse(f"+{example.country_code}{national[:-3]}{tail}", None)
    assume(phonenumbers.is_valid_number(number))
    return region, number


SEPARATORS = st.sampled_from(["", " ", "-", ".", "  ", "/"])


@st.composite
def rewritten(draw: st.DrawFn, number: phonenumbers.PhoneNumber, region: str) -> tuple[str, str]:
    """``number`` as a person or a spreadsheet might have written it, and the region the row
    is read in (the number's own for national forms, any region for international ones)."""
    style = draw(st.sampled_from(["e164", "international", "national", "digits", "spread", "tel"]))
    fmt = phonenumbers.PhoneNumberFormat
    if style == "national":
        text, read_in = phonenumbers.format_number(number, fmt.NATIONAL), region
    elif style == "digits":
        # a spreadsheet dropped the +: only the number's own region reads that unambiguously
        # (15062345000 is a Canadian number and, read in Germany, a valid German one too)
        text, read_in = phonenumbers.format_number(number, fmt.E164)[1:], region
        assume(len(text) >= 11)
    else:
        read_in = draw(st.sampled_from(REGIONS))
        e164 = phonenumbers.format_number(number, fmt.E164)
        if style == "e164":
            text = e164
        elif style == "international":
            text = phonenumbers.format_number(number, fmt.INTERNATIONAL)
        elif style == "tel":
            text = phonenumbers.format_number(number, fmt.RFC3966)
        else:
            text = "+" + "".join(d + draw(SEPARATORS) for d in e164[1:]).strip(" -./")
    wrap = draw(st.sampled_from(["{}", " {} ", "'{}", '="{}"', "\u00a0{}\u200b"]))
    if style == "digits":
        wrap = "{}"  # an apostrophe or formula would hide nothing here; keep it plain
    return wrap.format(text), read_in


@SOME
@given(data=st.data())
def test_any_valid_number_written_any_way_keeps_its_key(data: st.DataObject) -> None:
    region, number = data.draw(valid_numbers())
    text, read_in = data.draw(rewritten(number, region))
    parsed = parse_phone(text, read_in)
    assert parsed is not None and not hasattr(parsed, "reason"), (text, read_in, parsed)
    assert parsed.key == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


CELLS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


@SOME
@given(rows=st.lists(st.tuples(*[CELLS] * len(KORE_COLUMNS)), max_size=30))
def test_the_upload_file_parses_back_to_exactly_the_rows_meant(
    rows: list[tuple[str, ...]],
) -> None:
    body = batch_csv(rows)
    parsed = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert parsed[0] == list(KORE_COLUMNS)
    assert [tuple(r) for r in parsed[1:]] == rows
    as_kore_reads = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert [tuple(r[c] for c in KORE_COLUMNS) for r in as_kore_reads] == rows


CSV_TEXT = st.text(alphabet=st.sampled_from(list('ab,;"\r\n\t x\x00é')), max_size=80)


@SOME
@given(text=CSV_TEXT)
def test_the_reader_finds_the_records_pythons_csv_finds_and_every_line(text: str) -> None:
    tally = FileTally()
    try:
        rows = list(_Splitter(",", 1 << 20, 1 << 20, tally).rows(io.StringIO(text, newline="")))
    except _Unclosed:
        return  # a quote open at the end of the file: the file fails, nothing is read
    expected = [r for r in csv.reader(io.StringIO(text, newline=""), strict=False) if r]
    assert [r.values for r in rows] == expected
    assert tally.lines == len(io.StringIO(text, newline="").readlines())
    assert tally.lines == tally.row_lines + tally.blank_lines
    assert sum(r.span for r in rows) == tally.row_lines


HEADER = b"Id,First Name,Last Name,Mobile Phone,Country\r\n"


@SOME
@given(
    content=st.one_of(
        st.binary(max_size=3000),
        st.binary(max_size=3000).map(lambda tail: HEADER + tail),
        CSV_TEXT.map(lambda t: HEADER + t.encode("utf-8")),
        CSV_TEXT.map(lambda t: (HEADER.decode() + t).encode("utf-16-le")),
    )
)
def test_any_bytes_give_rows_rejections_or_one_clean_error(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    path = tmp_path_factory.mktemp("bytes") / "export.csv"
    path.write_bytes(content)
    try:
        _read_all(path)
    except ConnectorError as exc:
        for line in (exc.message, exc.hint or ""):
            assert "\n" not in line and all(c.isprintable() for c in line), repr(line)


def _read_all(path: Path) -> None:
    """What a run does with a file, in-process: settle the encoding, bind the generic mapping
    to its header, map every well-formed row."""
    source = FileSource(CsvSourceSettings(kind="csv", path=str(path)), state=None, full=True)
    mapping = load_mapping("generic", base=path.parent)
    for unit in source.units():
        bound = mapping.bind(unit.header(), unit.name)
        for row in unit.rows():
            if row.error is None and len(row.values) == len(bound.header):
                bound.apply(row.values, source=unit.name, row=row.line, default_region="US")
