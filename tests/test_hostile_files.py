"""Files a hostile user (or a broken export job) hands the connector, run through the real
command line against the sandbox: nothing invented, nothing lost, every line accounted for."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
from pathlib import Path

import pytest

from connector.kore.sandbox import Sandbox
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
    assert summaries["many-columns"]["status"] == "completed"
