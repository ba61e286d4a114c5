"""Throughput and peak memory of the connector on a generated Salesforce export.

    python benchmarks/bench_sync.py [--rows 100000,1000000] [--profile]

For each size it prints, each as rows/s, seconds and the child's peak RSS:

- ``floor``: a child that only reads the CSV and hashes every row (what any tool must do);
- ``pandas``: a hand-written pandas + phonenumbers script (read, parse, dedupe, write), when
  pandas is installed (``pip install -e '.[bench]'``);
- ``dry run`` and ``sandbox``: the first sync, without and with uploads to a sandbox;
- ``no-op``: the same file again (already processed);
- ``1% changed``: the CRM's next full export, one row in a hundred renamed (``renamed: update``).

Each run is the real command line in a child process; its peak RSS is its own high-water mark
(VmHWM) as the kernel reports it in /proc (Linux). Pacing is lifted for the sandbox: at Kore's
documented 60 uploads a minute, 100 files of 1,000 rows take 100 s whatever the connector does.
``--profile`` ends with the top lines of a cProfile of a dry run of the first size.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.kore.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_CLIENT_ID, DEFAULT_SECRET, Sandbox
from tests.messy import write_export

FLOOR = """
import csv, hashlib, sys
with open(sys.argv[1], encoding="utf-8", newline="") as handle:
    for row in csv.reader(handle):
        hashlib.sha256("\\x1f".join(row).encode()).digest()
"""

PANDAS = """
import sys
import pandas as pd
import phonenumbers

frame = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False, on_bad_lines="skip")

def key(row):
    for column in ("MobilePhone", "Phone", "HomePhone", "OtherPhone"):
        value = row[column]
        if not value:
            continue
        try:
            number = phonenumbers.parse(value, "US")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None

frame["key"] = frame.apply(key, axis=1)
frame = frame[frame["key"].notna()].drop_duplicates("key")
frame[["FirstName", "LastName", "Salutation", "key"]].to_csv(sys.argv[2], index=False)
"""


def _run(command: list[str]) -> tuple[float, float, int]:
    """Seconds, peak RSS in MiB and exit code of one child process.

    The peak is the child's own high-water mark (VmHWM), read until it exits: the rusage of a
    child would count this process's memory at the fork.
    """
    env = {**os.environ, "BENCH_SECRET": DEFAULT_SECRET}
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
        time.sleep(0.01)
    code = child.wait()
    seconds = time.perf_counter() - started
    if code:
        assert child.stderr is not None
        print(child.stderr.read().decode(errors="replace")[-2000:], file=sys.stderr)
    return seconds, peak_kib / 1024, code


def _sync(config: Path, *extra: str) -> tuple[float, float, int]:
    return _run([sys.executable, "-m", "connector", "sync", "--config", str(config), *extra])


def _config(work: Path, sandbox: Sandbox, source: str) -> Path:
    config = work / "connector.yaml"
    tenant = {
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
        "source": {"kind": "csv", "path": source, "min_file_age": "0s"},
        "mapping": "salesforce",
        "changes": {"renamed": "update"},
    }
    config.write_text(
        yaml.safe_dump(
            {
                "state_url": f"sqlite:///{work / 'state.db'}",
                "reports_dir": str(work / "reports"),
                "tenants": {"bench": tenant},
            }
        )
    )
    return config


def _one_percent_changed(export: Path, changed: Path) -> int:
    """The next full export: every hundredth data row gets a new last name."""
    renamed = 0
    with (
        export.open(encoding="utf-8", newline="") as old,
        changed.open("w", encoding="utf-8", newline="") as new,
    ):
        reader, writer = csv.reader(old), csv.writer(new)
        header = next(reader)
        writer.writerow(header)
        last = header.index("LastName")
        for n, row in enumerate(reader):
            if n % 100 == 0 and len(row) == len(header):
                row[last] = f"{row[last]}-Changed"
                renamed += 1
            writer.writerow(row)
    return renamed


def _line(label: str, rows: int, result: tuple[float, float, int], floor: float) -> None:
    seconds, peak, code = result
    print(
        f"  {label:18} {rows / seconds:>10,.0f} rows/s {seconds:8.2f} s  "
        f"{seconds / floor:6.2f}x floor  peak RSS {peak:6.1f} MiB"
        + (f"  EXIT {code}" if code else "")
    )


def bench(rows: int) -> bool:
    with tempfile.TemporaryDirectory() as tmp, Sandbox() as sandbox:
        work = Path(tmp)
        exports = work / "exports"
        exports.mkdir()
        export = exports / "a.csv"
        expected = write_export(export, valid=rows, seed=1)
        size = export.stat().st_size / 1024 / 1024
        print(f"{expected.rows:,} rows ({size:.1f} MiB), {len(expected.contacts):,} valid contacts")
        floor = _run([sys.executable, "-c", FLOOR, str(export)])
        _line("floor (read+hash)", expected.rows, floor, floor[0])
        try:
            import pandas  # noqa: F401
        except ImportError:
            print(
                "  pandas script      not run: pandas is not installed (pip install -e '.[bench]')"
            )
        else:
            script = _run([sys.executable, "-c", PANDAS, str(export), str(work / "pandas.csv")])
            _line("pandas script", expected.rows, script, floor[0])
        config = _config(work, sandbox, str(exports / "*.csv"))
        _line("first: dry run", expected.rows, _sync(config, "--dry-run"), floor[0])
        _line("first: sandbox", expected.rows, _sync(config), floor[0])
        _line("no-op re-run", expected.rows, _sync(config), floor[0])
        renamed = _one_percent_changed(export, exports / "b.csv")
        export.unlink()
        before = {c["id"]: c["lastName"] for c in sandbox.state.active()}
        _line("1% changed", expected.rows, _sync(config), floor[0])
        after = {c["id"]: c["lastName"] for c in sandbox.state.active()}
        updated = sum(1 for k, v in after.items() if before.get(k) != v)
        print(f"  sandbox holds {len(after):,} contacts, {updated:,} renamed ({renamed:,} asked)")
        return len(after) == len(expected.contacts)


def profile(rows: int) -> None:
    """The top of a cProfile of a dry run, in this process."""
    from connector.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp, Sandbox() as sandbox:
        work = Path(tmp)
        write_export(work / "a.csv", valid=rows, seed=1)
        config = _config(work, sandbox, str(work / "a.csv"))
        os.environ["BENCH_SECRET"] = DEFAULT_SECRET
        profiler = cProfile.Profile()
        profiler.runcall(cli, ["sync", "--dry-run", "--config", str(config)])
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    print(f"profile of a dry run of {rows:,} rows (top 15 by own time):")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:4000])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", default="100000,1000000", help="valid contacts per export, comma-separated"
    )
    parser.add_argument("--profile", action="store_true", help="end with a profile of a dry run")
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]
    ok = all([bench(rows) for rows in sizes])
    if args.profile:
        profile(sizes[0])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
