"""Files a hostile user (or a broken export job) hands the connector, run through the real
command line against the sandbox: nothing invented, nothing lost, every line accounted for."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import sys
import zipfile
from pathlib import Path
from typing import Any

import openpyxl.xml
import pytest

from connector.errors import SourceError
from connector.kore.sandbox import Sandbox
from connector.settings import XlsxSourceSettings
from connector.sources import xlsx_files
from tests.conftest import run_cli, tenant_config, write_config
from tests.helpers import held, rejected, runs, summary

HEADER = ["Id", "FirstName", "LastName", "MobilePhone", "Description"]


def _rows(first: int, count: int) -> list[list[str]]:
    return [
        [f"r{n}", f"Good{n}", "Row", f"+1 201 555 {1000 + n:04d}", "fine"]
        for n in range(first, first + count)
    ]


def _csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def _field_holding_rows(size: int) -> str:
    """A quoted notes field longer than Python's csv limit, whose text looks like records."""
    injected = "r90,Injected,Contact,+12015550199,z\r\nr91,Another,Ghost,+12015550198,z\r\n"
    return '"' + "x" * size + "\r\n" + injected + 'the end of the note"'


def _hostile_export(path: Path) -> None:
    body = _csv([HEADER, *_rows(1, 5)])
    body += "r50,Real,Person,+12013999999," + _field_holding_rows(140_000) + "\r\n"
    body += _csv(_rows(6, 5))
    path.write_text(body, encoding="utf-8", newline="")


def test_a_field_longer_than_the_csv_limit_is_one_field_not_new_contacts(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "contacts.csv"
    _hostile_export(export)
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    names = {first for first, _, _ in held(sandbox).values()}
    assert names == {f"Good{n}" for n in range(1, 11)} | {"Real"}
    assert "Injected" not in names and "Another" not in names
    (run,) = runs(tmp_path, "acme")
    (read,) = summary(run)["files"]
    assert read["rows"] == 11
    assert read["lines"] == read["header_lines"] + read["row_lines"] + read["blank_lines"]
    assert (read["lines"], read["row_lines"]) == (15, 14), "the note spans 4 physical lines"


def test_a_record_over_the_ceiling_is_rejected_and_its_neighbours_are_kept(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "contacts.csv"
    _hostile_export(export)
    tenant = tenant_config(sandbox, export)
    tenant["source"]["max_row_chars"] = 100_000
    config = write_config(tmp_path, {"acme": tenant})

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    names = {first for first, _, _ in held(sandbox).values()}
    assert names == {f"Good{n}" for n in range(1, 11)}
    (run,) = runs(tmp_path, "acme")
    (row,) = rejected(run)
    assert (row["row"], row["reason"]) == ("7", "malformed_row")
    assert "140,1" in row["detail"] and "lines 7-10" in row["detail"]
    assert "source.max_row_chars (100,000)" in row["detail"]


def test_an_unterminated_quote_fails_the_file_naming_its_line_and_sends_nothing(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "contacts.csv"
    rows = _csv([HEADER, *_rows(1, 200)]).split("\r\n")
    rows[10] = '"' + rows[10]  # data row 10 is physical line 11
    export.write_text("\r\n".join(rows), encoding="utf-8", newline="")
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})

    for _ in range(2):  # not remembered: the next run fails the same way
        result = run_cli("sync", config=config)

        assert result.returncode == 1
        (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
        assert "contacts.csv line 11: a quote opened in this record is never closed" in line
        assert held(sandbox) == {}


def test_a_compressed_file_named_csv_is_refused_in_one_clean_line(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "contacts.csv"
    export.write_bytes(gzip.compress(_csv([HEADER, *_rows(1, 50)]).encode()))
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})

    result = run_cli("sync", config=config)

    assert result.returncode == 1
    assert "contacts.csv: not a CSV text file: it holds gzip data" in result.stderr
    assert all(c.isprintable() for line in result.stderr.splitlines() for c in line)
    assert held(sandbox) == {}


def test_random_bytes_are_refused_without_printing_them(tmp_path: Path, sandbox: Sandbox) -> None:
    export = tmp_path / "contacts.csv"
    export.write_bytes(bytes(range(256)) * 64)
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})

    result = run_cli("sync", config=config)

    assert result.returncode == 1
    assert "not a CSV text file: it holds binary data" in result.stderr
    assert all(c.isprintable() for line in result.stderr.splitlines() for c in line)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_without_a_bom_are_read(
    tmp_path: Path, sandbox: Sandbox, encoding: str
) -> None:
    rows = [HEADER, ["1", "Zoë", "Dvořák", "+1 201 555 0100", "ok"], *_rows(2, 3)]
    export = tmp_path / "contacts.csv"
    export.write_bytes(_csv(rows).encode(encoding))
    assert not export.read_bytes().startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    assert held(sandbox)["+12015550100"][:2] == ("Zoë", "Dvořák")
    assert len(held(sandbox)) == 4


def test_blank_lines_and_multi_line_records_are_accounted_for(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "contacts.csv"
    export.write_text(
        "Id,FirstName,LastName,MobilePhone,Description\n"
        "\n"
        '1,Ann,Lee,+1 201 555 0101,"two\nlines"\n'
        "\r\n"
        '2,Bo,Ray,+1 201 555 0102,"three\r\nlines\r\nhere"\n'
        "3,Cy,Li,+1 201 555 0103,last",
        encoding="utf-8",
        newline="",
    )
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    assert len(held(sandbox)) == 3
    (read,) = summary(runs(tmp_path, "acme")[0])["files"]
    lines = {
        "name": "contacts.csv",
        "rows": 3,
        "lines": 9,
        "title_lines": 0,
        "header_lines": 1,
        "row_lines": 6,
        "totals_lines": 0,
        "blank_lines": 2,
        "short_rows": 0,
        "long_rows": 0,
    }
    assert {key: read[key] for key in lines} == lines


def _zip_named_csv() -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return out.getvalue()


GOOD = _csv([HEADER, *_rows(1, 3)]).encode()
CORPUS: dict[str, bytes] = {
    "empty": b"",
    "header_only": _csv([HEADER]).encode(),
    "only_quotes": b'"' * 501,
    "quote_storm": _csv(
        [HEADER, ["q1", 'Ann ""A"" "', '","', "+1 201 555 0101", '\r\n"\r\n",,"']]
    ).encode()
    + GOOD,
    "lone_cr_line_ends": GOOD.replace(b"\r\n", b"\r"),
    "mixed_line_ends": GOOD.replace(b"\r\n", b"\n", 2),
    "nul_in_header": b"Id,First\x00Name,LastName,MobilePhone\r\n1,A,B,+12015550100\r\n",
    "control_bytes": bytes(range(1, 32)) * 40,
    "bom_then_binary": codecs.BOM_UTF8 + bytes(range(256)) * 8,
    "utf16_odd_length": GOOD.decode().encode("utf-16-le") + b"\x00",
    "utf32_bom": codecs.BOM_UTF32_LE + GOOD.decode().encode("utf-32-le"),
    "sep_hint_only": b"sep=;\r\n",
    "one_line_2mb_no_break": b"Id,FirstName,LastName,MobilePhone\r\n" + b"x" * (2 << 20),
    "many_columns": _csv(
        [HEADER + [f"c{i}" for i in range(50_000)]] + [row + [""] * 50_000 for row in _rows(1, 3)]
    ).encode(),
    "zip_named_csv": _zip_named_csv(),
    "pdf_named_csv": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n" + bytes(200),
    "invalid_utf8_tail": GOOD + b"4,Bad,\xff\xfe\xfd,+12015550104,x\r\n",
    "unterminated_last_field": GOOD + b'5,Open,Quote,+12015550105,"never closed\r\n',
}


def test_a_corpus_of_hostile_files_gives_rows_rejections_or_one_clean_line_each(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Every file as a tenant of its own, all in one real ``sync``: no traceback, no raw bytes
    printed, one error line per failed tenant, and nothing sent that is not a row of the file."""
    tenants = {}
    for name, content in CORPUS.items():
        path = tmp_path / f"{name}.csv"
        path.write_bytes(content)
        tenant = tenant_config(sandbox, path, bot_id=f"st-{name}")
        tenant["source"]["max_row_chars"] = 1 << 20
        tenants[name.replace("_", "-")] = tenant
    config = write_config(tmp_path, tenants)

    result = run_cli("sync", config=config, timeout=600)

    assert result.returncode in (0, 1, 2), result.stderr
    lines = result.stderr.splitlines()
    assert not any(x.startswith(("internal error", "Traceback")) for x in lines), result.stderr
    assert all(c.isprintable() for line in lines + result.stdout.splitlines() for c in line)
    sent = set(held(sandbox))
    assert sent <= {f"+120155501{n:02d}" for n in range(0, 6)} | {
        f"+120155510{n:02d}" for n in range(1, 4)
    }
    summaries = {run.parent.name: summary(run) for run in (tmp_path / "reports").glob("*/*")}
    assert summaries["quote-storm"]["status"] == "completed"
    assert summaries["unterminated-last-field"]["status"] == "failed"
    assert (
        "line 5: a quote opened in this record is never closed"
        in summaries["unterminated-last-field"]["error"]
    )
    assert "zip archive" in summaries["zip-named-csv"]["error"]
    assert "line 5: not valid utf-16-le" in summaries["utf16-odd-length"]["error"]
    assert summaries["utf32-bom"]["status"] == "completed"
    assert (
        "50,005 cells, more than source.max_columns (4,096)" in summaries["many-columns"]["error"]
    )


# Bombs: small files that unpack or parse into gigabytes. Each is made just past its limit.

MEMORY_BOUND_KIB = 300 * 1024
"""What reading one file may take at the default limits, the process included
(docs/configuration.md, "Limits")."""
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_HEAD_ROW = "".join(
    f'<c r="{col}1" t="inlineStr"><is><t>{name}</t></is></c>'
    for col, name in zip("ABCD", ["Id", "FirstName", "LastName", "MobilePhone"], strict=True)
)
_BILLION_LAUGHS = '<!DOCTYPE worksheet [<!ENTITY a0 "ha">' + "".join(
    f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10)
)


def _workbook(
    path: Path,
    rows: str,
    *,
    strings: str = "",
    styles: str = "",
    sheet_prolog: str = "",
) -> Path:
    """An .xlsx written part by part with zipfile: a header row, then ``rows`` (sheet XML),
    shared strings and extra cell formats as given."""
    overrides = {
        "/xl/workbook.xml": f"{_TYPE}.sheet.main+xml",
        "/xl/worksheets/sheet1.xml": f"{_TYPE}.worksheet+xml",
        "/xl/sharedStrings.xml": f"{_TYPE}.sharedStrings+xml",
        "/xl/styles.xml": f"{_TYPE}.styles+xml",
    }
    parts = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="rels" ContentType="application/'
        'vnd.openxmlformats-package.relationships+xml"/>'
        + "".join(f'<Override PartName="{n}" ContentType="{t}"/>' for n, t in overrides.items())
        + "</Types>",
        "_rels/.rels": f'<Relationships xmlns="{_RELS}"><Relationship Id="rId1" '
        f'Type="{_DOC_RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{_MAIN}" xmlns:r="{_DOC_RELS}"><sheets>'
        '<sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{_RELS}">'
        + "".join(
            f'<Relationship Id="rId{i}" Type="{_DOC_RELS}/{kind}" Target="{target}"/>'
            for i, (kind, target) in enumerate(
                [
                    ("worksheet", "worksheets/sheet1.xml"),
                    ("sharedStrings", "sharedStrings.xml"),
                    ("styles", "styles.xml"),
                ],
                start=1,
            )
        )
        + "</Relationships>",
        "xl/styles.xml": f'<styleSheet xmlns="{_MAIN}"><fonts count="1"><font/></fonts>'
        '<fills count="1"><fill><patternFill/></fill></fills><borders count="1"><border/>'
        '</borders><cellStyleXfs count="1"><xf/></cellStyleXfs><cellXfs><xf numFmtId="0"/>'
        f'{styles}</cellXfs><cellStyles><cellStyle name="Normal" xfId="0" builtinId="0"/>'
        "</cellStyles></styleSheet>",
        "xl/sharedStrings.xml": f'<sst xmlns="{_MAIN}">{strings}</sst>',
        "xl/worksheets/sheet1.xml": f'{sheet_prolog}<worksheet xmlns="{_MAIN}"><sheetData>'
        f'<row r="1">{_HEAD_ROW}</row>{rows}</sheetData></worksheet>',
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return path


def _good_rows() -> str:
    return "".join(
        f'<row r="{n}"><c r="A{n}"><v>{n}</v></c><c r="B{n}" t="inlineStr"><is><t>Good{n}</t>'
        f'</is></c><c r="C{n}" t="inlineStr"><is><t>Sheet</t></is></c><c r="D{n}">'
        f"<v>1201555{1000 + n}</v></c></row>"
        for n in range(2, 5)
    )


def _text_cell(text: str) -> str:
    return f'<row r="2"><c r="A2" t="inlineStr"><is><t>{text}</t></is></c></row>'


def _xlsx_tenant(sandbox: Sandbox, path: Path, **limits: Any) -> dict[str, Any]:
    tenant = tenant_config(sandbox, path, bot_id=f"st-{path.stem}")
    tenant["source"].update(kind="xlsx", **limits)
    return tenant


def _with_peak_memory() -> list[str]:
    """A command prefix: what follows runs as a child of a small Python process that prints the
    child's peak resident memory (KiB) as its last line on standard error."""
    probe = (
        "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
        "print('peak_kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
        "file=sys.stderr); sys.exit(code)"
    )
    return [sys.executable, "-c", probe]


def test_bombs_fail_in_one_line_each_and_the_rest_is_read_within_the_memory_bound(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """One real ``sync`` of a good workbook and a bomb of each kind, each a tenant of its own:
    every bomb fails its tenant in one line naming the file and the setting that bounds it,
    the good tenant's contacts are sent, and the process stays under the documented bound."""
    bombs = {
        # 4 million shared strings in a 170 kB file: 68 MB unpacked, past max_strings_bytes.
        "strings-bytes": (
            _workbook(tmp_path / "strings-bytes.xlsx", "", strings="<si><t>x</t></si>" * 4_000_000),
            {},
        ),
        "strings-count": (
            _workbook(tmp_path / "strings-count.xlsx", "", strings="<si><t>x</t></si>" * 1001),
            {"max_shared_strings": 1000},
        ),
        # One cell in column XFD a row: openpyxl made each row 16,384 values.
        "xfd": (
            _workbook(
                tmp_path / "xfd.xlsx",
                "".join(f'<row r="{n}"><c r="XFD{n}"><v>1</v></c></row>' for n in range(2, 2000)),
            ),
            {},
        ),
        "styles": (
            _workbook(tmp_path / "styles.xlsx", "", styles='<xf numFmtId="0"/>' * 120_000),
            {},
        ),
        "sheet-bytes": (
            _workbook(tmp_path / "sheet-bytes.xlsx", "<row/>" * 200_000),
            {"max_sheet_bytes": "1MiB"},
        ),
        "laughs": (
            _workbook(tmp_path / "laughs.xlsx", "", sheet_prolog=_BILLION_LAUGHS + "]>"),
            {},
        ),
        # Each element held open: 6 million of them took 1.77 GB from a 42 kB file.
        "nested-sheet": (
            _workbook(tmp_path / "nested-sheet.xlsx", "<x>" * 200_000 + "</x>" * 200_000),
            {},
        ),
        "nested-strings": (
            _workbook(
                tmp_path / "nested-strings.xlsx", "", strings="<x>" * 200_000 + "</x>" * 200_000
            ),
            {},
        ),
        # One start tag of 150,000 attributes, all built by expat before it is seen.
        "attributes": (
            _workbook(
                tmp_path / "attributes.xlsx",
                "<x" + "".join(f' a{i}=""' for i in range(150_000)) + "/>",
            ),
            {},
        ),
        "long-cell": (
            _workbook(tmp_path / "long-cell.xlsx", _text_cell("x" * (2 << 20))),
            {},
        ),
        # The same text cut by comments, so that no stretch of it is long.
        "cell-runs": (
            _workbook(tmp_path / "cell-runs.xlsx", _text_cell(("x" * (1 << 19) + "<!---->") * 9)),
            {},
        ),
        "names": (
            _workbook(tmp_path / "names.xlsx", "".join(f"<n{i}/>" for i in range(2000))),
            {},
        ),
        "row-nodes": (
            _workbook(tmp_path / "row-nodes.xlsx", '<row r="2">' + "<x/>" * 80_000 + "</row>"),
            {},
        ),
    }
    tenants = {
        name: _xlsx_tenant(sandbox, path, **limits) for name, (path, limits) in bombs.items()
    }
    # Lines of 4 million commas and no header: the header search held each as 32 MB of cells.
    commas = tmp_path / "commas.csv"
    commas.write_text(("," * 4_000_000 + "\n") * 3)
    tenants["commas"] = tenant_config(sandbox, commas, bot_id="st-commas")
    tenants["good"] = _xlsx_tenant(sandbox, _workbook(tmp_path / "good.xlsx", _good_rows()))
    config = write_config(tmp_path, tenants)

    result = run_cli("sync", config=config, prefix=_with_peak_memory())

    assert result.returncode == 1
    assert {c["firstName"] for c in sandbox.bot("st-good").active()} == {"Good2", "Good3", "Good4"}
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == len(bombs) + 1, result.stderr
    said = {
        "strings-bytes": "its part xl/sharedStrings.xml unpacks to 68,000,077 bytes, more than"
        " source.max_strings_bytes (67,108,864)",
        "strings-count": "more than source.max_shared_strings (1,000) shared strings",
        "xfd": "row 2 has a cell in column XFD (16,384), past source.max_columns (4,096)",
        "styles": "its part xl/styles.xml unpacks to",
        "sheet-bytes": "more than source.max_sheet_bytes (1,048,576)",
        "laughs": "an XML part declares entities or a DTD",
        "commas": "commas.csv line 1: a record of 4,000,001 cells, more than source.max_columns",
        "nested-sheet": "its part xl/worksheets/sheet1.xml nests XML elements more than 32 deep",
        "nested-strings": "its part xl/sharedStrings.xml nests XML elements more than 32 deep",
        "attributes": "sheet1.xml has more than 1,048,576 bytes without a '<'",
        "long-cell": "sheet1.xml has more than 1,048,576 bytes without a '<'",
        "cell-runs": "holds a row (of at most source.max_columns, 4,096 cells) of more than"
        " 4,194,304 characters of text",
        "names": "sheet1.xml uses more than 1,024 distinct XML names",
        "row-nodes": "holds a row (of at most source.max_columns, 4,096 cells) of more than"
        " 73,728 XML elements and attributes",
    }
    for name, words in said.items():
        (line,) = [x for x in errors if f"/{name}." in x]
        assert words in line, line
        assert "nothing of" in line and "was sent" in line
        assert not sandbox.bot(f"st-{name}").active()
    assert "source.max_part_bytes (2,097,152)" in next(x for x in errors if "/styles." in x)
    assert not any(
        x.startswith(("Traceback", "internal error")) for x in result.stderr.splitlines()
    )
    peak = int(result.stderr.splitlines()[-1].removeprefix("peak_kib "))
    assert peak < MEMORY_BOUND_KIB, f"peak {peak // 1024} MiB"


def test_openpyxl_parses_every_part_with_defusedxml(tmp_path: Path) -> None:
    """The parts openpyxl reads itself (here the workbook part) are parsed by defusedxml too:
    an entity declaration is refused in one line."""
    assert openpyxl.xml.DEFUSEDXML is True
    path = _workbook(tmp_path / "laughs.xlsx", _good_rows())
    with zipfile.ZipFile(path) as archive:
        workbook = archive.read("xl/workbook.xml").decode()
    rewritten = tmp_path / "laughs-in-workbook.xlsx"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(rewritten, "w") as target:
        for item in source.infolist():
            text = source.read(item)
            if item.filename == "xl/workbook.xml":
                text = (_BILLION_LAUGHS.replace("worksheet", "workbook") + "]>" + workbook).encode()
            target.writestr(item, text)
    settings = XlsxSourceSettings(kind="xlsx", path=str(rewritten))

    with pytest.raises(SourceError) as refused:
        xlsx_files.inspect_xlsx(rewritten, settings).header()

    assert "laughs-in-workbook.xlsx: not a readable XLSX workbook: an XML part declares" in str(
        refused.value
    )
    assert "\n" not in str(refused.value)


def test_a_workbook_is_read_once_for_its_header_and_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared strings (all a workbook's text) are read once for the header, the sampled
    rows and all rows, as a run reads them; once every row is read they are let go."""
    strings = "".join(f"<si><t>{w}</t></si>" for w in ["Good", "Sheet", "Extra"])
    rows = "".join(
        f'<row r="{n}"><c r="A{n}"><v>{n}</v></c><c r="B{n}" t="s"><v>0</v></c>'
        f'<c r="C{n}" t="s"><v>1</v></c><c r="D{n}"><v>1201555{1000 + n}</v></c></row>'
        for n in range(2, 6)
    )
    path = _workbook(tmp_path / "shared.xlsx", rows, strings=strings)
    read = []
    real = xlsx_files._shared_strings
    monkeypatch.setattr(xlsx_files, "_shared_strings", lambda *args: read.append(1) or real(*args))
    workbook = xlsx_files.inspect_xlsx(path, XlsxSourceSettings(kind="xlsx", path=str(path)))

    assert workbook.header() == ["Id", "FirstName", "LastName", "MobilePhone"]
    assert next(workbook.rows()).values == ["2", "Good", "Sheet", "12015551002"]
    assert [row.line for row in workbook.rows()] == [2, 3, 4, 5]
    assert len(read) == 1
    assert workbook.describe() == f"{path} (sheet 'Contacts')"
    assert len(read) == 2, "read again once all rows were read and it was let go"
