"""What reaches a terminal or a text log: a file name, header or cell cannot forge a log line,
set the terminal's title or hide a hyperlink (control characters and bidirectional overrides are
shown as escapes); JSON keeps every character exactly; and ``check``'s JSON records mask the
preview like every other log record. Issue [12], findings 7 and 12."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import unicodedata
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.kore.sandbox import Sandbox
from connector.logs import TextFormatter, printable
from tests.conftest import run_cli, tenant_config, write_config

FORGED = "22:00:00 INFO [acme] run completed"
NAME = f"contacts.csv\n{FORGED}\x1b]0;pwned\x07\u202e.csv"
"""A file name that starts a log line of its own, sets the terminal's title and reverses what
follows it."""
SHOWN = "contacts.csv\\n22:00:00 INFO [acme] run completed\\x1b]0;pwned\\x07\\u202e.csv"
LINK = "\x1b]8;;https://evil.example/\x07Deutschland\x1b]8;;\x07"
"""A country cell holding an OSC 8 hyperlink: a terminal shows "Deutschland" and links it."""
ROWS = [
    ["Id", "FirstName", "LastName", "MobilePhone", "MailingCountry", f"Notes\x1b[31m{LINK}"],
    ["r1", "Patricia", "Ryan", "+1 201 555 0101", "US", "a"],
    ["r2", "Ashley", "Brock", "+1 201 555 0102", "US", "b"],
    ["r3", "Ivan", "Petrov", "(201) 555-0103", LINK, "c"],
]
PERSONAL = ["Patricia", "Ryan", "Ashley", "Brock", "Ivan", "Petrov", "5550101", "5550102"]
"""What no log record may hold: the export's names and (the tail of) its whole numbers."""

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
HOSTILE = st.sampled_from([*map(chr, range(0x20)), "\x7f", "\x85", "\x9b", *BIDI, "\u2028"])
SOME = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def unsafe(char: str) -> bool:
    """The oracle, written apart from the helper: a control (C0, DEL, C1), a surrogate, a line
    or paragraph separator, or a bidirectional embedding, override or isolate."""
    return unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in BIDI


@SOME
@given(st.text(st.one_of(st.characters(exclude_categories=()), HOSTILE)))
def test_printable_text_holds_no_control_or_bidirectional_character(text: str) -> None:
    shown = printable(text)

    assert not [c for c in shown if unsafe(c)]
    assert shown.count("\\") >= text.count("\\") + sum(map(unsafe, text))


@SOME
@given(st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters=BIDI)))
def test_printable_keeps_printable_text_as_it_is(text: str) -> None:
    assert printable(text) == text


def test_printable_writes_escapes_as_python_does() -> None:
    assert printable(NAME) == SHOWN
    assert printable("a\tb\rc\x00d\x9be\udcff") == "a\\tb\\rc\\x00d\\x9be\\udcff"
    assert printable("Иванов 王秀英 Zoë C:\\exports") == "Иванов 王秀英 Zoë C:\\exports"


def _formatted(emit: Any) -> str:
    """What ``emit(logger)`` writes through the text format."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("connector.test_escaping")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return out.getvalue()


def test_a_text_record_is_one_line_whatever_its_data() -> None:
    request = f"GET /{NAME} HTTP/1.1"

    text = _formatted(
        lambda log: log.warning(
            'health: "%s" %s %s', request, "404", "-", extra={"tenant": f"acme\n{FORGED}"}
        )
    )

    (line,) = text.splitlines()
    assert line.endswith(f'WARNING [acme\\n{FORGED}] health: "GET /{SHOWN} HTTP/1.1" 404 -')


def test_a_traceback_keeps_its_lines_and_what_it_quotes_cannot_start_one() -> None:
    def emit(log: logging.Logger) -> None:
        try:
            raise ValueError(f"cannot read {NAME}")
        except ValueError:
            log.exception("internal error")

    lines = _formatted(emit).splitlines()

    assert lines[0].endswith(" ERROR internal error")
    assert lines[1] == "Traceback (most recent call last):"
    assert all(line.startswith("  ") for line in lines[2:]), lines
    assert "  ValueError: cannot read contacts.csv" in lines
    assert f"  {FORGED}\\x1b]0;pwned\\x07\\u202e.csv" in lines


def _hostile_export(tmp_path: Path, sandbox: Sandbox) -> Path:
    """A tenant reading one export whose name, a header and a country cell hold escapes."""
    exports = tmp_path / "exports"
    exports.mkdir()
    body = io.StringIO()
    csv.writer(body, lineterminator="\r\n").writerows(ROWS)
    (exports / NAME).write_text(body.getvalue(), encoding="utf-8", newline="")
    return write_config(tmp_path, {"acme": tenant_config(sandbox, exports / "*.csv")})


def _assert_nothing_acted_on(output: str) -> None:
    assert not [x for x in output.splitlines() if x.startswith(FORGED)], output
    assert not re.search("[\x1b\x07\u202e]", output), output


def test_sync_in_text_forges_no_line_and_prints_no_escape_sequence(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config = _hostile_export(tmp_path, sandbox)

    result = run_cli("-v", "sync", config=config)

    assert result.returncode == 0, result.stderr
    _assert_nothing_acted_on(result.stdout + result.stderr)
    assert f"INFO [acme {_run_id(result.stdout)}] read {SHOWN}: 3 rows" in result.stderr
    assert "warning: acme: mapping salesforce: skip_when.0.field names " in result.stderr
    assert f"which {SHOWN} lacks" in result.stderr


def _run_id(summary: str) -> str:
    found = re.search(r"reports/acme/(\S+)$", summary.strip())
    assert found, summary
    return found.group(1)


def test_check_in_text_shows_the_file_name_and_the_country_cell_escaped(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config = _hostile_export(tmp_path, sandbox)

    result = run_cli("check", config=config)

    assert result.returncode == 0, result.stderr
    _assert_nothing_acted_on(result.stdout + result.stderr)
    assert f"  source:   {tmp_path}/exports/{SHOWN} (utf-8, comma-separated)" in result.stdout
    shown = "\\x1b]8;;https://evil.example/\\x07Deutschland\\x1b]8;;\\x07"
    assert f"  unknown countries: '{shown}' 1" in result.stdout.splitlines()
    assert "Patricia" in result.stdout, "the person who asked sees the preview whole"


def _records(output: str) -> list[dict[str, Any]]:
    """Every line of ``output`` as the one JSON object it must be."""
    found = [json.loads(line) for line in output.splitlines()]
    assert all(isinstance(record, dict) for record in found)
    return found


def test_sync_in_json_keeps_the_file_name_exactly(tmp_path: Path, sandbox: Sandbox) -> None:
    config = _hostile_export(tmp_path, sandbox)

    result = run_cli("--log-format", "json", "sync", config=config)

    assert result.returncode == 0, result.stderr
    records = _records(result.stderr) + _records(result.stdout)
    (read,) = [r for r in records if r["message"].startswith("read ")]
    assert read["message"] == f"read {NAME}: 3 rows (4 lines: 1 header, 3 in rows, 0 blank)"
    assert "\x1b" not in result.stdout + result.stderr


def test_check_in_json_logs_no_name_and_no_whole_number(tmp_path: Path, sandbox: Sandbox) -> None:
    config = _hostile_export(tmp_path, sandbox)

    result = run_cli("--log-format", "json", "check", config=config)

    assert result.returncode == 0, result.stderr
    (record,) = _records(result.stdout)
    assert [x for x in PERSONAL if x in result.stdout + result.stderr] == []
    (source,) = record["check"]["sources"]
    assert source["source"] == f"{tmp_path}/exports/{NAME} (utf-8, comma-separated)"
    assert source["unknown_countries"] == {LINK: 1}
    assert [(row["firstName"], row["cellPhoneNumber"]) for row in source["preview"]] == [
        ("***", "+12*******01"),
        ("***", "+12*******02"),
    ]
    _records(result.stderr)
