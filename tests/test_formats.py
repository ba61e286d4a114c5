"""One export, many encodings and formats: the same contacts must arrive at Kore."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import create_engine, text

from connector.errors import SourceError
from connector.kore.sandbox import Sandbox
from connector.settings import SqlSourceSettings, XlsxSourceSettings
from connector.sources.sql import SqlSource
from connector.sources.xlsx_files import inspect_xlsx
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.helpers import held, rejected, runs
from tests.messy import write_export


def _rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def _write_csv(path: Path, rows: list[list[str]], *, encoding: str, delimiter: str) -> None:
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle, delimiter=delimiter, lineterminator="\r\n").writerows(rows)


def _write_xlsx(path: Path, rows: list[list[str]]) -> None:
    """As Excel would hold it: digit-only phones typed in become numbers."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Contacts"
    for row in rows:
        sheet.append([int(v) if v.isdigit() and len(v) >= 10 else v for v in row])
    book.save(path)


@pytest.mark.slow
def test_csv_encodings_and_xlsx_give_identical_contacts(tmp_path: Path) -> None:
    original = tmp_path / "utf8" / "contacts.csv"
    original.parent.mkdir()
    expected = write_export(original, valid=500, seed=17, cp1252=True)
    rows = _rows(original)
    variants = {"utf8": original}
    for name, encoding, delimiter in (("cp1252", "cp1252", ";"), ("utf16", "utf-16", "\t")):
        variants[name] = tmp_path / name / "contacts.csv"
        variants[name].parent.mkdir()
        _write_csv(variants[name], rows, encoding=encoding, delimiter=delimiter)
    variants["xlsx"] = tmp_path / "xlsx" / "contacts.xlsx"
    variants["xlsx"].parent.mkdir()
    _write_xlsx(variants["xlsx"], rows)
    assert variants["utf16"].read_bytes()[:2] == b"\xff\xfe"

    results = {}
    for name, path in variants.items():
        with Sandbox(secret=SECRET) as sandbox:
            tenant = tenant_config(sandbox, path)
            if name == "xlsx":
                tenant["source"] = {
                    "kind": "xlsx",
                    "path": str(path),
                    "sheet": "Contacts",
                    "min_file_age": "0s",
                }
            config = write_config(path.parent, {"acme": tenant})
            result = run_cli("sync", config=config)
            assert result.returncode == 0, (name, result.stderr)
            results[name] = held(sandbox)

    assert results["utf8"] == expected.contacts
    for name in ("cp1252", "utf16", "xlsx"):
        assert results[name] == results["utf8"], name


def test_xlsx_cells_read_as_text_and_a_missing_sheet_names_the_others(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["First Name", "Last Name", "Mobile Phone", "Country"])
    sheet.append(["Zoë", "Dvořák", 4155550132, "US"])
    sheet.append(["Ann", "Lee", 4.15555e9, "US"])
    sheet.append(["Bo", "Kim", "4.41E+11", "US"])
    path = tmp_path / "c.xlsx"
    book.save(path)

    unit = inspect_xlsx(path, XlsxSourceSettings(kind="xlsx", path=str(path)))
    assert unit.header() == ["First Name", "Last Name", "Mobile Phone", "Country"]
    assert [r.values for r in unit.rows()] == [
        ["Zoë", "Dvořák", "4155550132", "US"],
        ["Ann", "Lee", "4155550000", "US"],
        ["Bo", "Kim", "4.41E+11", "US"],
    ]
    missing = inspect_xlsx(path, XlsxSourceSettings(kind="xlsx", path=str(path), sheet="People"))
    with pytest.raises(Exception, match="no sheet named 'People'") as caught:
        missing.header()
    assert "Sheet" in (getattr(caught.value, "hint", "") or "")
    (tmp_path / "broken.xlsx").write_bytes(b"not a zip")
    with pytest.raises(SourceError, match="not a readable XLSX"):
        inspect_xlsx(tmp_path / "broken.xlsx", XlsxSourceSettings(kind="xlsx", path="x")).header()


def test_xlsx_ruined_numbers_are_rejected_with_their_own_reason(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["First Name", "Last Name", "Mobile Phone"])
    sheet.append(["Ann", "Lee", 4155550132])
    sheet.append(["Bo", "Kim", "4.41E+11"])
    path = tmp_path / "c.xlsx"
    book.save(path)
    tenant = tenant_config(sandbox, path, mapping="generic")
    tenant["source"] = {"kind": "xlsx", "path": str(path), "min_file_age": "0s"}

    result = run_cli("sync", config=write_config(tmp_path, {"acme": tenant}))

    assert result.returncode == 0, result.stderr
    assert set(held(sandbox)) == {"+14155550132"}
    assert [r["reason"] for r in rejected(runs(tmp_path, "acme")[0])] == ["phone_mangled"]


@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_sql_sources_read_in_a_read_only_transaction(
    request: pytest.FixtureRequest, server: str
) -> None:
    url = str(request.getfixturevalue(f"{server}_url"))
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(20))"))
    source = SqlSource(
        SqlSourceSettings(kind="sql", url=url, table="people"),
        state=None,
        full=False,
        id_columns=["id"],
    )
    (unit,) = source.units()
    with unit._connect() as conn, pytest.raises(Exception, match=r"(?i)read.only"):
        conn.execute(text("INSERT INTO people VALUES (1, 'x')"))
    engine.dispose()
