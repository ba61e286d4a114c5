"""What a file's name or kind can do to a run: a name that is not UTF-8 is read and shown in one
escaped form everywhere it is stored or written; ``--log-format json`` lines are valid UTF-8 JSON
whatever a name holds; a FIFO or a device is named and counted, never opened, and a config that
is not a regular file is refused in one line."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from connector.kore.sandbox import Sandbox
from tests.conftest import run_cli, tenant_config, write_config
from tests.helpers import rejected, runs, summary

HEADER = "Id,FirstName,LastName,MobilePhone\n"
LATIN1 = "ok\udcff.csv"
"""``ok\\xff.csv`` as Python lists it: the byte 0xFF, a Latin-1 ``ÿ``, is not UTF-8."""
SHOWN = "ok\\xff.csv"


def _export(folder: Path, name: str | bytes, rows: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(os.path.join(os.fsencode(folder), os.fsencode(name)), "w", encoding="utf-8") as out:
        out.write(HEADER + rows)


def _records(output: str) -> list[dict[str, Any]]:
    """Every line of ``output`` as the JSON object it must be."""
    found = [json.loads(line) for line in output.splitlines()]
    assert all(isinstance(record, dict) for record in found)
    return found


def test_a_name_that_is_not_utf8_is_read_and_shown_escaped(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    exports = tmp_path / "exports"
    _export(exports, LATIN1, "R1,Ana,Bo,+1 201 555 0101\nR2,Bad,Phone,12\n")
    _export(exports, "plain.csv", "R3,Cy,Do,+1 201 555 0102\n")
    config = write_config(tmp_path, {"u": tenant_config(sandbox, exports / "*.csv", bot_id="st-u")})

    result = run_cli("sync", config=config)
    again = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    assert {c["firstName"] for c in sandbox.bot("st-u").active()} == {"Ana", "Cy"}
    (run,) = runs(tmp_path, "u")
    assert [(r["source"], r["row"]) for r in rejected(run)] == [(SHOWN, "3")]
    assert summary(run)["counters"]["files_read"] == 2
    assert [w for w in summary(run)["warnings"] if f"which {SHOWN} lacks" in w]
    with sqlite3.connect(tmp_path / "state.db") as db:
        names = {name for (name,) in db.execute("SELECT name FROM processed_files")}
    assert names == {SHOWN, "plain.csv"}
    assert again.returncode == 0, again.stderr
    assert "(no new file)" in again.stdout


def test_json_lines_are_valid_utf8_with_every_unsafe_character_escaped(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """``check --log-format json`` over names holding bytes that are not UTF-8, a right-to-left
    override and a C1 control (CSI): every line parses, and none holds those characters raw."""
    exports = tmp_path / "exports"
    names = [b"bad\xff\xfe.csv", "rtl\u202ecsv.exe.csv", "c1\x9bx.csv"]
    for n, name in enumerate(names):
        _export(exports, name, f"R{n},Ana,Bo,+1 201 555 010{n}\n")
    config = write_config(tmp_path, {"u": tenant_config(sandbox, exports / "*.csv")})

    result = run_cli("--log-format", "json", "check", config=config)

    assert result.returncode == 0, result.stderr
    assert not {"\u202e", "\x9b", "\ufffd"} & set(result.stdout)
    assert "\\u202e" in result.stdout and "\\u009b" in result.stdout
    (record,) = [r for r in _records(result.stdout) if "check" in r]
    sources = sorted(s["source"].split(" (")[0] for s in record["check"]["sources"])
    assert sources == sorted(
        f"{exports}/{shown}"
        for shown in ["bad\\xff\\xfe.csv", "rtl\u202ecsv.exe.csv", "c1\x9bx.csv"]
    )


def test_a_fifo_matched_by_the_glob_is_named_and_counted_never_opened(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    exports = tmp_path / "exports"
    _export(exports, "contacts.csv", "R1,Ana,Bo,+1 201 555 0101\n")
    os.mkfifo(exports / "fifo.csv")
    (exports / "folder.csv").mkdir()
    config = write_config(tmp_path, {"u": tenant_config(sandbox, exports / "*.csv", bot_id="st-u")})

    result = run_cli("sync", config=config, timeout=60)

    assert result.returncode == 0, result.stderr
    assert {c["firstName"] for c in sandbox.bot("st-u").active()} == {"Ana"}
    lines = [x for x in result.stderr.splitlines() if "regular file" in x]
    assert lines == [
        f"warning: u: {exports}/fifo.csv is not a regular file (a FIFO or a device); not read"
    ]
    assert "folder.csv" not in result.stdout + result.stderr, "a folder is no export"
    counters = summary(runs(tmp_path, "u")[0])["counters"]
    assert (counters["unsafe_paths"], counters["files_seen"], counters["files_read"]) == (1, 2, 1)


def test_a_fifo_named_as_the_export_or_the_config_is_refused_in_one_line(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    os.mkfifo(exports / "fifo.csv")
    config = write_config(tmp_path, {"u": tenant_config(sandbox, exports / "fifo.csv")})
    fifo_config = tmp_path / "config-fifo.yaml"
    os.mkfifo(fifo_config)

    export = run_cli("check", config=config, timeout=60)
    refused = run_cli("check", config=fifo_config, timeout=60)

    assert export.returncode != 0
    assert f"error: {exports}/fifo.csv is not a regular file" in export.stdout + export.stderr
    assert "not found" not in export.stdout + export.stderr
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[0] == (
        f"error: {fifo_config}: not a regular file (a FIFO, a device or a folder); nothing of it"
        " was read"
    )
