"""The two XLSX readers (``connector/sources/xlsx_files.py``) give the same header, rows and
tally for every workbook. The fast one (calamine) reads a workbook only where it reads it as
the streaming one does and within every limit; elsewhere it hands it to the streaming one, so
that either way the result is the streaming reader's.

Each workbook is read twice, once with the fast reader's range opened to every size and once
closed to all, and the two readings compared; ``reader()`` says which reader read it."""

from __future__ import annotations

import csv
import re
import zipfile
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from benchmarks.bench_xlsx import excel_workbook
from connector.errors import SourceError
from connector.settings import XlsxSourceSettings
from connector.sources import xlsx_files
from connector.sources.xlsx_files import FAST_BYTES, FAST_MIN, XlsxFile, inspect_xlsx
from tests.messy import write_export

CASES = Path(__file__).resolve().parent / "cases"
Reading = tuple[list[str], list[tuple[int, list[str], str | None]], Any]


def _unit(path: Path, **source: Any) -> XlsxFile:
    return inspect_xlsx(path, XlsxSourceSettings(kind="xlsx", path=str(path), **source))


def _fast(unit: XlsxFile) -> XlsxFile:
    """The workbook for the fast reader whatever its size (it may still hand it on)."""
    return replace(unit, limits=replace(unit.limits, fast_from=0, fast_up_to=1 << 40))


def _streaming(unit: XlsxFile) -> XlsxFile:
    return replace(unit, limits=replace(unit.limits, fast_up_to=-1))


def _read(unit: XlsxFile) -> Reading:
    header = unit.header()
    rows = [(row.line, row.values, row.error) for row in unit.rows()]
    return header, rows, unit.tally()


def _outcome(unit: XlsxFile) -> Reading | str:
    """What reading ``unit`` gives: its reading, or the line it is refused in."""
    try:
        return _read(unit)
    except SourceError as refused:
        return str(refused)


def _alike(path: Path, *, reader: str = "fast", **source: Any) -> Reading:
    """The reading both readers give, the same; with the fast reader's range open to it, the
    workbook is read by ``reader``."""
    unit = _unit(path, **source)
    fast, streaming = _fast(unit), _streaming(unit)
    assert fast.reader() == reader
    assert streaming.reader() == "streaming"
    reading = _read(fast)
    assert reading == _read(streaming)
    return reading


def _refusals(path: Path, **source: Any) -> tuple[str, str]:
    """What each reader says of a workbook it refuses."""
    said = []
    for unit in (_fast(_unit(path, **source)), _streaming(_unit(path, **source))):
        with pytest.raises(SourceError) as refused:
            _read(unit)
        said.append(str(refused.value))
    return said[0], said[1]


def _shared(source: Path, target: Path) -> Path:
    """``source`` (as openpyxl writes it: every text inline) with its text moved into the
    shared strings, as Excel writes it."""
    strings: dict[str, int] = {}

    def shared(cell: re.Match[str]) -> str:
        index = strings.setdefault(cell[3], len(strings))
        return f'<c r="{cell[1]}"{cell[2]} t="s"><v>{index}</v></c>'

    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            text = old.read(item).decode()
            if item.filename.startswith("xl/worksheets/"):
                inline = r'<c r="([A-Z]+[0-9]+)"((?: s="[0-9]+")?) t="inlineStr"><is>(.*?)</is></c>'
                text = re.sub(inline, shared, text)
            elif item.filename == "[Content_Types].xml":
                text = text.replace(
                    "</Types>",
                    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
                    'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
                )
            elif item.filename == "xl/_rels/workbook.xml.rels":
                text = text.replace(
                    "</Relationships>",
                    '<Relationship Id="rIdStrings" Target="sharedStrings.xml" Type="http://'
                    "schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"
                    '"/></Relationships>',
                )
            new.writestr(item, text)
        items = "".join(f"<si>{text}</si>" for text in strings)
        new.writestr("xl/sharedStrings.xml", f'<sst xmlns="{main}">{items}</sst>')
    return target


def _patched(source: Path, target: Path, old: str, new: str, *, part: str = "sheet1") -> Path:
    """``source`` with ``old`` replaced by ``new`` in its part ``xl/worksheets/sheet1.xml``
    (or ``xl/sharedStrings.xml`` for ``part="strings"``)."""
    name = "xl/sharedStrings.xml" if part == "strings" else f"xl/worksheets/{part}.xml"
    with zipfile.ZipFile(source) as old_zip, zipfile.ZipFile(target, "w") as new_zip:
        for item in old_zip.infolist():
            data = old_zip.read(item)
            if item.filename == name:
                assert old.encode() in data, f"{old!r} is not in {name}"
                data = data.replace(old.encode(), new.encode())
            new_zip.writestr(item, data)
    return target


def _every_kind(path: Path) -> Path:
    """A report's title lines, then a header and rows of every kind of cell a CRM export
    holds, with an empty row, a hidden one, merged cells and a totals line."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Contacts"
    sheet.append(["Contacts by owner"])
    sheet.append(["As of 2024-03-01", None, "Filtered: all"])
    sheet.append([])
    sheet.append(["Id", "FirstName", "LastName", "MobilePhone", "Amount", "Active", "Since"])
    sheet.append(["1", "Ann", "Lee", 4155550100, 2.5, True, datetime(2024, 1, 2, 3, 4, 5)])
    sheet.append([2, " Bo ", "Ray", "+1 415 555 0101", 0.1 + 0.2, False, date(2023, 12, 31)])
    sheet.append([3, "Cy", None, 447911123456789, 1e20, None, time(10, 30, 15)])
    sheet.append([4, "Dee", "Ng", 33612345678, 12345678.125, True, timedelta(hours=30)])
    sheet.append([5, "Émile", "Zoë", None, 0, None, datetime(1900, 2, 28, 23, 59, 59)])
    sheet.append([])
    sheet.append([6, "Fay", "Wu", 4155550106, 7, False, datetime(1900, 3, 1)])
    sheet.append(
        [7, CellRichText("Gi", TextBlock(InlineFont(b=True), "na")), "Ho", "+1 415 555 0107"]
    )
    sheet.append([8, "Hal", "Ito", "4155550108", None, None, None, None, "extra"])
    sheet.append(["9", "Ida\nTwo lines", "Jo & <Co>", 4155550109, 3.14159265358979, True])
    sheet.append(["Grand Totals (9 records)"])
    sheet["E6"].number_format = "0.00%"
    sheet["G5"].number_format = "yyyy-mm-dd hh:mm:ss"
    sheet["G6"].number_format = "yyyy-mm-dd"
    sheet["G7"].number_format = "h:mm:ss"
    sheet["G8"].number_format = "[h]:mm:ss"
    sheet["G9"].number_format = "m/d/yy h:mm"
    sheet["G11"].number_format = "d-mmm-yy"
    sheet["H12"].number_format = "@"
    sheet.merge_cells("A1:D1")
    sheet.row_dimensions[7].hidden = True
    book.save(path)
    return path


def test_cells_of_every_kind_read_alike_written_inline_and_shared(tmp_path: Path) -> None:
    inline = _every_kind(tmp_path / "inline.xlsx")
    shared = _shared(inline, tmp_path / "shared.xlsx")
    assert b"<si>" in zipfile.ZipFile(shared).read("xl/sharedStrings.xml")

    header, rows, tally = _alike(inline)

    assert _alike(shared) == (header, rows, tally)
    assert header == ["Id", "FirstName", "LastName", "MobilePhone", "Amount", "Active", "Since"]
    read = {values[0]: values for _, values, _ in rows}
    assert read["1"] == ["1", "Ann", "Lee", "4155550100", "2.5", "true", "2024-01-02T03:04:05"]
    assert read["2"][1] == " Bo " and read["2"][4] == "0.3"
    assert read["2"][6] == "2023-12-31T00:00:00"
    assert read["3"][3:] == ["447911123456789", "1e+20", "", "10:30:15"]
    assert read["4"][6] == "1 day, 6:00:00"
    assert read["7"][1] == "Gina"
    assert read["9"][1:3] == ["Ida\nTwo lines", "Jo & <Co>"]
    assert [line for line, _, _ in rows] == [5, 6, 7, 8, 9, 11, 12, 13, 14]
    counts = (tally.title_lines, tally.header_lines, tally.blank_lines, tally.totals_lines)
    assert counts == (2, 1, 2, 1)
    assert rows[-2][2] is not None, "row 13's extra cell is past the header: malformed"


def test_dates_of_a_workbook_counting_from_1904_read_alike(tmp_path: Path) -> None:
    book = Workbook()
    book.epoch = CALENDAR_MAC_1904
    sheet = book.active
    assert sheet is not None
    sheet.append(["Id", "FirstName", "MobilePhone", "Since"])
    sheet.append([1, "Ann", 4155550100, datetime(2024, 1, 2, 3, 4, 5)])
    sheet.append([2, "Bo", 4155550101, date(1904, 1, 2)])
    book.save(tmp_path / "mac.xlsx")

    _, rows, _ = _alike(tmp_path / "mac.xlsx")

    assert [values[3] for _, values, _ in rows] == ["2024-01-02T03:04:05", "1904-01-02T00:00:00"]


def test_the_sheet_named_is_read_by_either_reader(tmp_path: Path) -> None:
    book = Workbook()
    first = book.active
    assert first is not None
    first.append(["Not", "these"])
    people = book.create_sheet("People")
    people.append(["Id", "FirstName", "MobilePhone"])
    people.append([1, "Ann", 4155550100])
    book.save(tmp_path / "two.xlsx")

    header, rows, _ = _alike(tmp_path / "two.xlsx", sheet="People")

    assert (header, rows) == (
        ["Id", "FirstName", "MobilePhone"],
        [(2, ["1", "Ann", "4155550100"], None)],
    )


def test_a_sheet_starting_right_of_column_a_and_below_row_1_reads_alike(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet["C4"], sheet["D4"], sheet["E4"] = "FirstName", "LastName", "MobilePhone"
    sheet["C5"], sheet["E5"] = "Ann", 4155550100
    sheet["D7"], sheet["E7"] = "Lone", "+1 415 555 0100"
    sheet["G7"].number_format = "0.00"  # a formatted cell holding nothing: the row is as wide
    book.save(tmp_path / "offset.xlsx")

    header, rows, tally = _alike(tmp_path / "offset.xlsx")

    assert header == ["", "", "FirstName", "LastName", "MobilePhone"]
    assert rows == [
        (5, ["", "", "Ann", "", "4155550100"], None),
        (7, ["", "", "", "Lone", "+1 415 555 0100"], None),
    ]
    assert (tally.lines, tally.blank_lines, tally.long_rows) == (7, 4, 1)


def test_the_shared_case_reads_alike() -> None:
    _alike(CASES / "salesforce_formatted_report.xlsx")


def _contacts(path: Path, rows: list[list[Any]], **formats: str) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Id", "FirstName", "MobilePhone", "Note"])
    for row in rows:
        sheet.append(row)
    for cell, number_format in formats.items():
        sheet[cell].number_format = number_format
    book.save(path)
    return path


GOOD = [[1, "Ann", 4155550100, "ok"], [2, "Bo", "+1 415 555 0101", "ok"]]


def test_negative_numbers_read_alike_and_go_to_the_streaming_reader_where_dates_are(
    tmp_path: Path,
) -> None:
    plain = _contacts(tmp_path / "plain.xlsx", [*GOOD, [3, "Cy", 4155550102, -1.5]])
    dated = _contacts(tmp_path / "dated.xlsx", [*GOOD, [3, "Cy", 4155550102, -1.5]], D4="d-mmm-yy")

    assert _alike(plain)[1][-1][1][3] == "-1.5"
    assert _alike(dated, reader="streaming")[1][-1][1][3] == "1899-12-28T12:00:00"


SHEET_CELLS = [
    # What the readers read apart: the streaming reader reads it, alone.
    (
        "an error",
        '<c r="D2" t="inlineStr"><is><t>ok</t></is></c>',
        '<c r="D2" t="e"><v>#N/A</v></c>',
    ),
    (
        "an ISO date",
        '<c r="D2" t="inlineStr"><is><t>ok</t></is></c>',
        '<c r="D2" t="d"><v>2024-01-02T03:04:05</v></c>',
    ),
    ("an escape", "<t>ok</t>", "<t>o_x000D_k</t>"),
    ("spaces trimmed", "<t>ok</t>", "<t> ok</t>"),
    ("spaces at the end", "<t>ok</t>", "<t>ok </t>"),
    ("16 digits", "<v>4155550100</v>", "<v>1234567890123456</v>"),
    ("an empty value", "<v>4155550100</v>", "<v></v>"),
    ("a comment", "<sheetData>", "<sheetData><!-- made by hand -->"),
    ("an element unknown", "<sheetData>", "<sheetData><note/>"),
    (
        "a prefixed cell",
        '<c r="A2" t="n"><v>1</v></c>',
        '<x:c xmlns:x="urn:x" r="A2"><x:v>1</x:v></x:c>',
    ),
    ("a cell without its reference", '<c r="A2" t="n">', '<c t="n">'),
    ("a second reference", '<c r="A2" t="n">', '<c r="A2" t="n" r="B2">'),
    ("a reference in lower case", '<c r="A2" t="n">', '<c r="a2" t="n">'),
    ("a reference past the rows", '<c r="A2" t="n">', '<c r="A3000" t="n">'),
    ("a last cell of another row", '<c r="D2" t="inlineStr">', '<c r="D9" t="inlineStr">'),
    ("a row without its number", '<row r="3">', "<row>"),
    ("an inline string untyped", '<c r="B2" t="inlineStr"><is>', '<c r="B2"><is>'),
    ("rows out of order", '<row r="3">', '<row r="1">'),
    # XML calamine reads and expat (the streaming reader's parser) refuses.
    ("a tag closing another", "<v>1</v></c>", "<v>1</c></v>"),
    ("an attribute twice", '<row r="3">', '<row r="3" ht="15" ht="16">'),
]


@pytest.mark.parametrize(("what", "old", "new"), SHEET_CELLS, ids=[c[0] for c in SHEET_CELLS])
def test_what_the_readers_would_read_apart_is_read_by_the_streaming_reader(
    tmp_path: Path, what: str, old: str, new: str
) -> None:
    good = _contacts(tmp_path / "good.xlsx", GOOD)
    _alike(good)
    odd = _patched(good, tmp_path / "odd.xlsx", old, new)
    fast = _fast(_unit(odd))

    assert fast.reader() == "streaming", what
    assert _outcome(fast) == _outcome(_streaming(_unit(odd)))


def test_shared_strings_the_readers_would_read_apart_go_to_the_streaming_reader(
    tmp_path: Path,
) -> None:
    shared = _shared(_contacts(tmp_path / "good.xlsx", GOOD), tmp_path / "shared.xlsx")
    _alike(shared)
    for n, (old, new) in enumerate(
        [
            ("<si><t>Ann</t></si>", "<si><t>Ann </t></si>"),
            ("<si><t>Ann</t></si>", "<si><t>A_x0009_nn</t></si>"),
            ("<si><t>Ann</t></si>", "<si><t>Ann</t><odd/></si>"),
            ("<si><t>Ann</t></si>", "<si><t>Ann</si></t>"),
            ("<sst ", '<sst uniqueCount="99999999999999" '),
        ]
    ):
        odd = _patched(shared, tmp_path / f"odd{n}.xlsx", old, new, part="strings")
        assert _fast(_unit(odd)).reader() == "streaming", new
        assert _outcome(_fast(_unit(odd))) == _outcome(_streaming(_unit(odd)))


def test_rich_text_and_phonetic_runs_read_alike(tmp_path: Path) -> None:
    shared = _shared(_contacts(tmp_path / "good.xlsx", GOOD), tmp_path / "shared.xlsx")
    runs = (
        '<si><r><t xml:space="preserve">A </t></r><r><rPr><b/><sz val="11"/></rPr><t>nn</t></r>'
        '<rPh sb="0" eb="1"><t>ア</t></rPh><phoneticPr fontId="1"/></si>'
    )
    rich = _patched(shared, tmp_path / "rich.xlsx", "<si><t>Ann</t></si>", runs, part="strings")

    assert _alike(rich)[1][0][1][1] == "A nn"
    empty = _patched(
        shared, tmp_path / "empty.xlsx", "<si><t>Ann</t></si>", "<si><t/></si>", part="strings"
    )
    assert _alike(empty)[1][0][1][1] == ""


def test_every_limit_holds_for_either_reader_with_the_same_words(tmp_path: Path) -> None:
    good = _contacts(tmp_path / "good.xlsx", GOOD)
    shared = _shared(good, tmp_path / "shared.xlsx")
    wide = _patched(
        good, tmp_path / "wide.xlsx", '<c r="D2" t="inlineStr">', '<c r="XFD2" t="inlineStr">'
    )

    fast, streaming = _refusals(shared, max_shared_strings=3)
    assert fast == streaming and "more than source.max_shared_strings (3) shared strings" in fast
    fast, streaming = _refusals(wide)
    assert fast == streaming and "past source.max_columns (4,096)" in fast
    big = _patched(good, tmp_path / "big.xlsx", "<sheetData>", "<sheetData>" + "<row/>" * 20_000)
    fast, streaming = _refusals(big, max_sheet_bytes=1 << 16)
    assert fast == streaming and "more than source.max_sheet_bytes (65,536)" in fast


def test_a_grid_calamine_would_lay_out_far_past_the_cells_goes_to_the_streaming_reader(
    tmp_path: Path,
) -> None:
    """Two cells a million rows and a hundred columns apart: calamine would hold 100 million
    empty cells between them. The streaming reader holds two rows."""
    good = _contacts(tmp_path / "good.xlsx", GOOD)
    far = '<row r="1048576"><c r="CV1048576" t="n"><v>7</v></c></row></sheetData>'
    sparse = _patched(good, tmp_path / "sparse.xlsx", "</sheetData>", far)

    _, rows, _ = _alike(sparse, reader="streaming")

    line, _, error = rows[-1]
    assert (line, error) == (
        1048576,
        "100 cells where the header has 4, and the extra cells are not empty: cell 100 '7'",
    )


def test_the_fast_reader_reads_a_workbook_once_until_it_is_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """calamine reads the sheet once for the header, the sampled rows and all rows twice, as a
    run that uploads while it reads reads them; once released, it is read anew."""
    read = []
    real = xlsx_files._calamine
    monkeypatch.setattr(xlsx_files, "_calamine", lambda *args: read.append(1) or real(*args))
    unit = _fast(_unit(_contacts(tmp_path / "good.xlsx", GOOD)))

    assert unit.header() == ["Id", "FirstName", "MobilePhone", "Note"]
    assert next(unit.rows()).values == ["1", "Ann", "4155550100", "ok"]
    assert [row.line for row in unit.rows()] == [2, 3]
    assert [row.line for row in unit.rows()] == [2, 3]
    assert len(read) == 1
    unit.release()
    assert unit.reader() == "fast"
    assert len(read) == 2, "read anew once released"


def _generated(work: Path, valid: int) -> Path:
    export = work / "contacts.csv"
    write_export(export, valid=valid, seed=3)
    excel_workbook(export, work / "contacts.xlsx")
    return work / "contacts.xlsx"


def test_a_generated_export_of_many_pieces_reads_alike_and_as_its_csv(tmp_path: Path) -> None:
    """A Salesforce export of 5,000 contacts as Excel saves it (shared strings, phones of
    digits stored as numbers in every third row): several megabytes, read in pieces."""
    workbook = _generated(tmp_path, 5000)
    with zipfile.ZipFile(workbook) as archive:
        assert archive.getinfo("xl/worksheets/sheet1.xml").file_size > 2 * xlsx_files._CHUNK

    header, rows, _ = _alike(workbook)

    with (tmp_path / "contacts.csv").open(encoding="utf-8", newline="") as handle:
        records = [_filled(record) for record in csv.reader(handle)]
    assert header == records[0]
    assert [_filled(values) for _, values, _ in rows] == [r for r in records[1:] if r]


def _filled(values: list[str]) -> list[str]:
    """``values`` without the empty cells at their end."""
    while values and not values[-1]:
        values = values[:-1]
    return values


def test_the_range_of_the_fast_reader_is_its_sheet_and_strings_unpacked(tmp_path: Path) -> None:
    workbook = _generated(tmp_path, 300)
    with zipfile.ZipFile(workbook) as archive:
        size = sum(
            archive.getinfo(f"xl/{p}.xml").file_size for p in ("worksheets/sheet1", "sharedStrings")
        )
    unit = _unit(workbook)
    assert (unit.limits.fast_from, unit.limits.fast_up_to) == (FAST_MIN, FAST_BYTES)

    for fast_from, fast_up_to, reader in [
        (size, size, "fast"),
        (size + 1, FAST_BYTES, "streaming"),
        (0, size - 1, "streaming"),
    ]:
        limits = replace(unit.limits, fast_from=fast_from, fast_up_to=fast_up_to)
        assert replace(unit, limits=limits).reader() == reader


@pytest.mark.slow
def test_a_generated_export_near_the_threshold_reads_alike(tmp_path: Path) -> None:
    """100,000 contacts, as Excel saves them: about 55 MiB unpacked, the fast reader's at the
    default range, and the streaming reader's rows the same."""
    workbook = _generated(tmp_path, 100_000)
    unit = _unit(workbook)

    assert unit.reader() == "fast"
    fast = _read(unit)
    assert fast == _read(_streaming(unit))
    assert len(fast[1]) > 100_000
