"""Throughput and peak memory of a sync of a 100,000-row export: dry run, then into the sandbox.

    python benchmarks/bench_sync.py [--rows 100000]

Each sync runs as its own child process (the real command line); its peak RSS is the child's
high-water mark as the kernel reports it in /proc (Linux). Upload pacing is lifted for the
sandbox run: at Kore's documented 60 uploads a minute, 100 files of 1,000 rows take 100 s
whatever the connector does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.kore.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_CLIENT_ID, DEFAULT_SECRET, Sandbox
from tests.messy import write_export


def _sync(config: Path, *extra: str) -> tuple[float, float, int]:
    """Seconds, peak RSS in MiB and exit code of one ``kore-connector sync``.

    The peak is the child's own high-water mark (VmHWM), read until it exits: the rusage of a
    child would count this process's memory at the fork.
    """
    env = {**os.environ, "BENCH_SECRET": DEFAULT_SECRET}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "connector", "sync", "--config", str(config), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak_kib = 0
    status = Path(f"/proc/{child.pid}/status")
    while child.poll() is None:
        try:
            lines = status.read_text().splitlines()
        except OSError:
            break
        for line in lines:
            if line.startswith("VmHWM:"):
                peak_kib = max(peak_kib, int(line.split()[1]))
        time.sleep(0.02)
    code = child.wait()
    return time.perf_counter() - started, peak_kib / 1024, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="valid contacts in the export")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Sandbox() as sandbox:
        work = Path(tmp)
        export = work / "contacts.csv"
        expected = write_export(export, valid=args.rows, seed=1)
        size = export.stat().st_size / 1024 / 1024
        print(
            f"export: {expected.rows:,} rows ({size:.1f} MiB), {len(expected.contacts):,} valid contacts"
        )
        config = work / "connector.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "state_url": f"sqlite:///{work / 'state.db'}",
                    "reports_dir": str(work / "reports"),
                    "tenants": {
                        "bench": {
                            "kore": {
                                "host": sandbox.url,
                                "bot_id": "st-bench",
                                "account_id": DEFAULT_ACCOUNT_ID,
                                "client_id": DEFAULT_CLIENT_ID,
                                "client_secret": "${BENCH_SECRET}",
                                "batch_size": 1000,
                                "uploads_per_minute": 1_000_000,
                                "uploads_per_hour": 1_000_000,
                            },
                            "source": {"kind": "csv", "path": str(export)},
                            "mapping": "salesforce",
                        }
                    },
                }
            )
        )
        for label, extra in (
            ("dry run", ("--dry-run",)),
            ("sandbox", ()),
            ("re-run (--full)", ("--full",)),
        ):
            seconds, peak, code = _sync(config, *extra)
            print(
                f"{label:16} {expected.rows / seconds:>9,.0f} rows/s  {seconds:6.1f} s  "
                f"peak RSS {peak:6.1f} MiB  exit {code}"
            )
        held = len(sandbox.state.active())
        print(f"sandbox holds {held:,} contacts (expected {len(expected.contacts):,})")
        return 0 if held == len(expected.contacts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
