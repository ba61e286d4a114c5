"""A soak: one daemon, 30 tenants, new rows every minute; does anything grow?

    python benchmarks/soak.py [--minutes 30] [--tenants 30] [--every 5s] [--warm-up 5]
        [--rows-per-minute 20] [--state-url URL]

Every tenant has a bot of its own on one sandbox (in this process), a first export of 20 rows,
``schedule: every 5s`` (as the red team's soak), and a new file of ``--rows-per-minute`` rows a
minute. The state is a SQLite file in the soak's folder unless ``--state-url`` names a database
(a PostgreSQL URL gets a schema of its own, dropped at the end).

Each minute it prints the daemon's RSS, open files, threads and CPU seconds (/proc, Linux), the
run records the state holds and the contacts the sandbox holds. At the end, for RSS, files and
threads: the lowest and highest value in the first and second half after the warm-up (a sample
catches the runs in flight; a leak lifts both), and the larger growth of the two in per cent;
flat means within 10 %.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_tenants import export, proc_stats, start_daemon, tenants

from connector.kore.sandbox import DEFAULT_SECRET, Sandbox


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--tenants", type=int, default=30)
    parser.add_argument("--every", default="5s", help="each tenant's schedule")
    parser.add_argument("--warm-up", type=float, default=5.0, help="minutes not judged")
    parser.add_argument("--rows-per-minute", type=int, default=20)
    parser.add_argument("--state-url", help="default: a SQLite file in the soak's folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, Sandbox(secret=DEFAULT_SECRET) as sandbox:
        folder = Path(scratch)
        url, drop = _state(args.state_url, folder)
        try:
            return _soak(args, folder, url, sandbox)
        finally:
            drop()


def _state(given: str | None, folder: Path) -> tuple[str, Any]:
    """The state URL the daemon uses, and how to clean it up."""
    if not given:
        return f"sqlite:///{folder / 'state.db'}", lambda: None
    base = make_url(given).render_as_string(hide_password=False)
    if make_url(given).get_backend_name() != "postgresql":
        return base, lambda: None
    schema = f"soak_{secrets.token_hex(4)}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}", drop


def _soak(args: argparse.Namespace, folder: Path, url: str, sandbox: Sandbox) -> int:
    config = folder / "connector.yaml"
    settings = {
        "state_url": url,
        "reports_dir": str(folder / "reports"),
        "tenants": tenants(args.tenants, sandbox, every=args.every),
    }
    config.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    for n in range(args.tenants):
        export(folder / f"t{n:03}" / "first.csv", n, 0, 20)
    daemon = start_daemon("soak", config, folder / "daemon.log")
    engine = create_engine(url)
    rows: list[tuple[float, float, int, int]] = []
    print(
        f"{args.tenants} tenants every {args.every}, {args.rows_per_minute} new rows a tenant a "
        f"minute, {args.minutes:g} minutes; state {make_url(url).get_backend_name()}"
    )
    print("minute  RSS MiB  files  threads  CPU s  run records  contacts in Kore")
    try:
        started = time.monotonic()
        for minute in range(1, int(args.minutes) + 1):
            time.sleep(max(0.0, started + minute * 60 - time.monotonic()))
            for n in range(args.tenants):
                first = 20 + (minute - 1) * args.rows_per_minute
                export(folder / f"t{n:03}" / f"m{minute:03}.csv", n, first, args.rows_per_minute)
            found = proc_stats(daemon.process.pid)
            if found is None:
                print("the daemon is gone:", (folder / "daemon.log").read_text()[-2000:])
                return 1
            cpu, rss, threads, files = found
            with engine.connect() as conn:
                records = conn.execute(text("SELECT count(*) FROM runs")).scalar_one()
            contacts = len(sandbox.state.active())
            rows.append((rss, float(files), threads, minute))
            print(
                f"{minute:>6}  {rss:7.1f}  {files:5}  {threads:7}  {cpu:5.1f}  {records:11,}  "
                f"{contacts:,}"
            )
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        daemon.process.wait(120)
        engine.dispose()
    _verdict(rows, args.warm_up)
    return 0


def _verdict(rows: list[tuple[float, float, int, int]], warm_up: float) -> None:
    """Each measure's lowest and highest value in the first and the second half after the
    warm-up. A sample catches whatever runs are in flight (each holds a thread and a few
    files), so one sample against another says little; a leak lifts the floor and the peak
    of the second half over the first's."""
    after = [row for row in rows if row[3] >= warm_up]
    if len(after) < 4:
        print("too short to judge: run well past the warm-up")
        return
    first, second = after[: len(after) // 2], after[len(after) // 2 :]
    for name, at in (("RSS", 0), ("open files", 1), ("threads", 2)):
        low = [round(min(float(row[at]) for row in half), 1) for half in (first, second)]
        high = [round(max(float(row[at]) for row in half), 1) for half in (first, second)]
        growth = max((b - a) / a * 100 if a else 0.0 for a, b in (low, high))
        verdict = "flat" if growth <= 10 else "GROWS"
        print(
            f"{name}: {low[0]:g} to {high[0]:g} in minutes {first[0][3]}-{first[-1][3]}, "
            f"{low[1]:g} to {high[1]:g} in minutes {second[0][3]}-{second[-1][3]}; "
            f"{growth:+.1f} % ({verdict})"
        )


if __name__ == "__main__":
    raise SystemExit(0 if main() == 0 else 1)
