"""The progress bars under a real terminal (a pseudo-terminal), with log records printed while
they are drawn; and nothing of them when standard error is not a terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from connector.kore.sandbox import Faults, Sandbox
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.messy import write_export

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _on_a_terminal(command: list[str]) -> str:
    """Run ``command`` with its standard streams on a pseudo-terminal; all it drew there."""
    main, child = os.openpty()
    env = {**os.environ, "TEST_KORE_SECRET": SECRET, "COLUMNS": "200", "TERM": "xterm"}
    process = subprocess.Popen(command, stdin=child, stdout=child, stderr=child, env=env)
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=120)
    os.close(main)
    assert process.returncode == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_a_terminal_gets_bars_with_totals_and_log_records_above_them(tmp_path: Path) -> None:
    export = tmp_path / "contacts.csv"
    write_export(export, valid=3000, seed=3)
    with Sandbox(secret=SECRET, faults=Faults(delay_seconds=0.05)) as sandbox:
        tenant = tenant_config(sandbox, export, batch_size=100)
        config = write_config(tmp_path, {"acme": tenant})
        drawn = _on_a_terminal(
            [sys.executable, "-m", "connector", "sync", "-v", "--config", str(config)]
        )

    plain = ANSI.sub("", drawn).replace("\r", "\n")
    lines = [line for line in plain.split("\n") if line.strip()]
    bars = [line for line in lines if "━" in line]
    assert any("acme reading" in line and " MB, " in line and "rows (" in line for line in bars)
    sending = [line for line in bars if "acme sending" in line]
    assert sending and "30/30 batches, 3,000 rows sent" in sending[-1], sending[-3:]
    assert "100%" in sending[-1]
    records = [line for line in lines if " INFO [acme " in line]
    assert any("run started" in line for line in records)
    assert any("batch 7 of 30 settled" in line for line in records), "records while the bars run"
    assert not any("━" in line for line in records), "no record is printed into a bar"
    assert any(line.startswith("acme: completed - ") for line in lines)


def test_no_bars_when_standard_error_is_not_a_terminal(tmp_path: Path, sandbox: Sandbox) -> None:
    export = tmp_path / "contacts.csv"
    write_export(export, valid=300, seed=3)
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export, batch_size=50)})

    result = run_cli("sync", "-v", config=config)

    assert result.returncode == 0
    assert "━" not in result.stderr and "\r" not in result.stderr and "\x1b[" not in result.stderr
