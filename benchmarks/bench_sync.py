"""Throughput and peak memory of the connector on a generated Salesforce export.

    python benchmarks/bench_sync.py [--rows 100000,1000000] [--profile]

For each size it prints, each as rows/s, seconds, the ratio to the floor and the peak RSS of
all the run's processes together:

- ``floor``: a child that only reads the CSV and hashes every row (what any tool must do);
- ``pandas``: a hand-written pandas + phonenumbers script (read, parse, dedupe, write), when
  pandas is installed (``pip install -e '.[bench]'``);
- ``dry run, 1 process`` and ``dry run, N processes``: the first sync's mapping in one process
  and in one per core (``mapping_processes``; 4 too where the machine has 4 cores);
- ``sandbox``: the first sync with uploads to a sandbox, pacing lifted, one process per core;
- ``no-op``: the same file again (already processed);
- ``1% changed``: the CRM's next full export, one row in a hundred renamed (``renamed: update``);
- ``at 60/min``: a first sync into a fresh sandbox paced at Kore's documented 60 uploads a
  minute, against that rate's floor (the time the uploads alone take, one a second), for the
  sizes whose uploads take at most ``MAX_PACED_SECONDS`` (the rate scaled down to 100,000 rows).

Each run is the real command line in a child process; the peak RSS is the highest sum of the
resident sets of the child and its own children (the mapping processes), sampled every 10 ms
from /proc (Linux); shared pages count once per process, so it overstates.
``--profile`` ends with the top lines of a cProfile of a dry run of the first size (in one
process: the profile sees only its own process).
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

PER_MINUTE = 60
"""Kore's documented upload rate (kore-api.md), for the run paced at it."""
MAX_PACED_SECONDS = 200
"""The paced run is made only when its uploads alone take at most this long (100,000 rows)."""

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


def _tree_rss_kib(root: int) -> int:
    """The resident set of ``root`` and every process below it, in KiB (0 once it is gone)."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _run(command: list[str]) -> tuple[float, float, int]:
    """Seconds, peak RSS in MiB (of the child and its children, summed) and exit code of one
    child process."""
    env = {**os.environ, "BENCH_SECRET": DEFAULT_SECRET}
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kib = 0
    while child.poll() is None:
        peak_kib = max(peak_kib, _tree_rss_kib(child.pid))
        time.sleep(0.01)
    code = child.wait()
    seconds = time.perf_counter() - started
    if code:
        assert child.stderr is not None
        print(child.stderr.read().decode(errors="replace")[-2000:], file=sys.stderr)
    return seconds, peak_kib / 1024, code


def _sync(config: Path, *extra: str) -> tuple[float, float, int]:
    return _run([sys.executable, "-m", "connector", "sync", "--config", str(config), *extra])


def _config(
    work: Path,
    sandbox: Sandbox,
    source: str | dict[str, str],
    *,
    processes: int | None = None,
    per_minute: int = 1_000_000,
    name: str = "connector.yaml",
    state: str = "state.db",
) -> Path:
    config = work / name
    tenant = {
        "kore": {
            "host": sandbox.url,
            "bot_id": "st-bench",
            "account_id": DEFAULT_ACCOUNT_ID,
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": "${BENCH_SECRET}",
            "batch_size": 1000,
            "uploads_per_minute": per_minute,
            "uploads_per_hour": 1_000_000,
        },
        "source": {
            **({"kind": "csv", "path": source} if isinstance(source, str) else source),
            "min_file_age": "0s",
        },
        "mapping": "salesforce",
        "changes": {"renamed": "update"},
    }
    settings: dict[str, object] = {
        "state_url": f"sqlite:///{work / state}",
        "reports_dir": str(work / "reports"),
        "tenants": {"bench": tenant},
    }
    if processes is not None:
        settings["mapping_processes"] = processes
    config.write_text(yaml.safe_dump(settings))
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
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp, Sandbox() as sandbox, Sandbox() as paced:
        work = Path(tmp)
        exports = work / "exports"
        exports.mkdir()
        export = exports / "a.csv"
        expected = write_export(export, valid=rows, seed=1)
        size = export.stat().st_size / 1024 / 1024
        print(f"{expected.rows:,} rows ({size:.1f} MiB), {len(expected.contacts):,} valid contacts")
        floor = _run([sys.executable, "-c", FLOOR, str(export)])
        _line("floor (read+hash)", expected.rows, floor, floor[0])
        script = floor
        try:
            import pandas  # noqa: F401
        except ImportError:
            pandas_ok = False
            print(
                "  pandas script      not run: pandas is not installed (pip install -e '.[bench]')"
            )
        else:
            pandas_ok = True
            script = _run([sys.executable, "-c", PANDAS, str(export), str(work / "pandas.csv")])
            _line("pandas script", expected.rows, script, floor[0])
        source = str(exports / "*.csv")
        for processes in sorted({1, cores, *([4] if cores >= 4 else [])}):
            dry = _config(work, sandbox, source, processes=processes, name="dry.yaml")
            label = f"dry run, {processes} proc"
            _line(label, expected.rows, _sync(dry, "--dry-run"), floor[0])
        config = _config(work, sandbox, source)
        sandboxed = _sync(config)
        _line(f"sandbox, {cores} proc", expected.rows, sandboxed, floor[0])
        _line("no-op re-run", expected.rows, _sync(config), floor[0])
        uploads = -(-len(expected.contacts) // 1000)
        rate_floor = (uploads - 1) * 60 / PER_MINUTE
        paced_run: tuple[float, float, int] | None = None
        if rate_floor <= MAX_PACED_SECONDS:
            at_rate = _config(
                work, paced, source, per_minute=PER_MINUTE, name="paced.yaml", state="paced.db"
            )
            paced_run = _sync(at_rate)
            _line(f"at {PER_MINUTE}/min", expected.rows, paced_run, floor[0])
            print(
                f"  {'':18} {uploads} uploads: the rate's floor is {rate_floor:.1f} s; "
                f"{paced_run[0] / rate_floor:.2f}x the floor"
            )
        else:
            print(f"  at {PER_MINUTE}/min         not run: {rate_floor:,.0f} s of uploads alone")
        renamed = _one_percent_changed(export, exports / "b.csv")
        export.unlink()
        before = {c["id"]: c["lastName"] for c in sandbox.state.active()}
        changed = _sync(config)
        _line("1% changed", expected.rows, changed, floor[0])
        after = {c["id"]: c["lastName"] for c in sandbox.state.active()}
        updated = sum(1 for k, v in after.items() if before.get(k) != v)
        print(f"  sandbox holds {len(after):,} contacts, {updated:,} renamed ({renamed:,} asked)")
        goals: list[tuple[str, tuple[float, float, int] | None, float | None, float]] = [
            (
                f"first sync, {cores} proc / pandas",
                sandboxed,
                script[0] if pandas_ok else None,
                0.5,
            ),
            ("next export, 1% changed / floor", changed, floor[0], 5.0 if rows < 10**6 else 3.0),
            (f"at {PER_MINUTE}/min / the rate's floor", paced_run, rate_floor, 1.05),
        ]
        print("  goals (issue 22):")
        for what, got, against, most in goals:
            if got is None or against is None:
                print(f"    {what:40} not measured")
                continue
            ratio = got[0] / against
            verdict = "met" if ratio <= most else "NOT met"
            print(f"    {what:40} {ratio:5.2f}x  (at most {most}x: {verdict})")
        peak = max(result[1] for result in (sandboxed, changed, paced_run) if result)
        verdict = "met" if peak <= 200 else "NOT met"
        print(f"    {'peak RSS of a sync, all processes':40} {peak:5.0f} MiB (200 MiB: {verdict})")
        paced_ok = paced_run is None or len(paced.state.active()) == len(expected.contacts)
        return len(after) == len(expected.contacts) and paced_ok


def profile(rows: int) -> None:
    """The top of a cProfile of a dry run, in this process."""
    from connector.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp, Sandbox() as sandbox:
        work = Path(tmp)
        write_export(work / "a.csv", valid=rows, seed=1)
        config = _config(work, sandbox, str(work / "a.csv"), processes=1)
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
