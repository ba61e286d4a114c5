from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from connector.errors import SourceError
from connector.settings import CsvSourceSettings
from connector.sources import SourceStats, SourceUnit
from connector.sources.files import FileSource

ROWS = [
    ["First Name", "Last Name", "Phone"],
    ["José", "Müller", "+1 415 555 0132"],
    ["Zoë", "Dvořák", "+44 7912 345678"],
]


def _discover(path: str, **settings: str) -> list[SourceUnit]:
    return FileSource(
        CsvSourceSettings(kind="csv", path=path, **settings), state=None, full=True
    ).units()


@pytest.mark.parametrize(
    ("encoding", "bom", "delimiter", "newline"),
    [
        ("utf-8", b"", ",", "\n"),
        ("utf-8", codecs.BOM_UTF8, ";", "\r\n"),
        ("utf-16-le", codecs.BOM_UTF16_LE, "\t", "\r\n"),
        ("utf-16-be", codecs.BOM_UTF16_BE, ",", "\n"),
        ("cp1252", b"", ";", "\r\n"),
        ("utf-32-le", codecs.BOM_UTF32_LE, ",", "\n"),
        ("utf-32-be", codecs.BOM_UTF32_BE, ";", "\r\n"),
    ],
)
def test_encodings_and_delimiters_give_the_same_rows(
    tmp_path: Path, encoding: str, bom: bytes, delimiter: str, newline: str
) -> None:
    rows = [r if encoding != "cp1252" else [c.replace("ř", "r") for c in r] for r in ROWS]
    text = newline.join(delimiter.join(r) for r in rows) + newline
    (tmp_path / "e.csv").write_bytes(bom + text.encode(encoding))
    (found,) = _discover(str(tmp_path / "e.csv"))
    assert found.header() == rows[0]
    assert [r.values for r in found.rows()] == rows[1:]


def test_quoted_newlines_keep_line_numbers_right(tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_text('a,b\n1,"two\nlines"\n3,4\n', encoding="utf-8")
    (found,) = _discover(str(tmp_path / "q.csv"))
    assert [(r.values, r.line) for r in found.rows()] == [(["1", "two\nlines"], 2), (["3", "4"], 4)]


def test_a_glob_finds_each_file_and_the_hash_follows_content(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "b.csv").write_text("x\n1\n")
    (tmp_path / "c.csv").write_text("x\n2\n")
    source = FileSource(
        CsvSourceSettings(kind="csv", path=str(tmp_path / "*.csv")), state=None, full=True
    )
    found = source.units()
    assert [f.name for f in found] == ["a.csv", "c.csv"], "the same content twice is read once"
    assert source.stats == SourceStats(files_seen=3, files_read=2, files_skipped=1)


def test_a_missing_or_empty_file_is_a_source_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.csv: file not found"):
        _discover(str(tmp_path / "nope.csv"))
    (tmp_path / "empty.csv").write_bytes(b"")
    (found,) = _discover(str(tmp_path / "empty.csv"))
    with pytest.raises(SourceError, match=r"empty\.csv: the file is empty"):
        found.header()


def test_a_wrong_declared_encoding_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_bytes(b"a,b\n1,2\n\xff\xfe,3\n")
    with pytest.raises(SourceError, match=r"x.csv line 3: not valid utf-8"):
        _discover(str(tmp_path / "x.csv"), encoding="utf-8")


def test_bytes_cp1252_lacks_are_read_as_latin1(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_bytes("First Name,Last Name\nJosé,M\x81ller\n".encode("latin-1"))
    (found,) = _discover(str(tmp_path / "l.csv"))
    assert "latin-1" in found.describe()
    assert [r.values for r in found.rows()] == [["José", "M\x81ller"]]


def test_an_unknown_declared_encoding_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="not an encoding Python knows"):
        CsvSourceSettings(kind="csv", path="x.csv", encoding="klingon-8")


def test_excel_sep_hint_line_sets_the_delimiter_and_is_not_the_header(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text(
        "sep=;\r\nFirst Name;Phone\r\nAnn;+1 415 201 1001\r\n", encoding="utf-8"
    )
    (found,) = _discover(str(tmp_path / "s.csv"))
    assert found.header() == ["First Name", "Phone"]
    assert [(r.values, r.line) for r in found.rows()] == [(["Ann", "+1 415 201 1001"], 3)]
    assert "semicolon" in found.describe()
