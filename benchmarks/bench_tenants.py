"""How many tenants a replica carries: hundreds of tenants, two daemon replicas, one PostgreSQL.

    python benchmarks/bench_tenants.py [--minutes 30] [--tenants 500] [--replicas 2]
        [--workers 4] [--rows-per-minute 5] [--state-url postgresql+psycopg://…]

Every tenant has a bot of its own on one sandbox (in this process), a small export (20 rows) and
``schedule: every 1m``; every minute each tenant's folder gets a new file of ``--rows-per-minute``
rows, so each run has something to deliver. The replicas are real daemon processes
(``--log-format json``) sharing a schema of their own in the PostgreSQL database of
``--state-url`` (default ``$CONNECTOR_TEST_POSTGRES_URL``), dropped at the end.

Every 10 s it samples each replica's CPU seconds, RSS, threads and open files (/proc, Linux) and
its connections (``pg_stat_activity``, by ``application_name``). At the end it prints:

- the first round: how long until every tenant's first run had ended;
- how late runs start against the schedule: for each tenant, each start after its first
  compared with a period after the start before it (whichever replica ran it), as median, p99
  and max; and the fewest runs any tenant had, against the minutes run (a starving tenant shows
  there), and the turns APScheduler dropped for want of a free worker;
- per replica, minute by minute: CPU seconds used, RSS, threads, files, connections.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.kore.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_CLIENT_ID, DEFAULT_SECRET, Sandbox

SAMPLE_SECONDS = 10.0
PERIOD = timedelta(minutes=1)


@dataclass
class Sample:
    at: float
    cpu: float
    rss_mib: float
    threads: int
    files: int
    connections: int


@dataclass
class Replica:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    samples: list[Sample] = field(default_factory=list)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4, help="daemon.workers of each replica")
    parser.add_argument("--rows-per-minute", type=int, default=5)
    parser.add_argument("--state-url", default=os.environ.get("CONNECTOR_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    if not args.state_url:
        parser.error("give --state-url postgresql+psycopg://… (or $CONNECTOR_TEST_POSTGRES_URL)")
    base = make_url(args.state_url).render_as_string(hide_password=False)
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        with tempfile.TemporaryDirectory() as scratch, Sandbox(secret=DEFAULT_SECRET) as sandbox:
            folder = Path(scratch)
            configs = _configs(folder, args, sandbox, base, schema)
            for n in range(args.tenants):
                export(folder / f"t{n:03}" / "first.csv", n, 0, 20)
            started = time.time()
            replicas = [
                start_daemon(f"r{i}", config, folder / f"r{i}.log")
                for i, config in enumerate(configs)
            ]
            done = threading.Event()
            threads = [
                threading.Thread(target=_sample, args=(replicas, admin, done), daemon=True),
                threading.Thread(
                    target=_feed,
                    args=(folder, args.tenants, args.rows_per_minute, done),
                    daemon=True,
                ),
            ]
            for thread in threads:
                thread.start()
            try:
                done.wait(args.minutes * 60)
            finally:
                done.set()
                for replica in replicas:
                    replica.process.send_signal(signal.SIGTERM)
                for replica in replicas:
                    replica.process.wait(120)
            _report(args, replicas, started, sandbox)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return 0


def tenants(count: int, sandbox: Sandbox, *, every: str) -> dict[str, Any]:
    """``count`` tenants named ``t000``…, each with a bot of its own on ``sandbox`` and the
    CSV files of its folder (``t000/*.csv``, beside the config) on ``every``."""
    return {
        f"t{n:03}": {
            "kore": {
                "host": sandbox.url,
                "bot_id": f"st-{n:03}",
                "account_id": DEFAULT_ACCOUNT_ID,
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": "${BENCH_SECRET}",
                "timeout_seconds": 30,
            },
            "source": {"kind": "csv", "path": f"t{n:03}/*.csv", "min_file_age": "0s"},
            "mapping": "salesforce",
            "schedule": {"every": every},
        }
        for n in range(count)
    }


def _configs(
    folder: Path, args: argparse.Namespace, sandbox: Sandbox, base: str, schema: str
) -> list[Path]:
    """One config a replica: the same tenants, each replica its own ``application_name``."""
    every_tenant = tenants(args.tenants, sandbox, every="1m")
    separator = "&" if "?" in base else "?"
    configs = []
    for i in range(args.replicas):
        url = f"{base}{separator}options=-csearch_path%3D{schema}&application_name=bench-r{i}"
        config = {
            "state_url": url,
            "reports_dir": str(folder / "reports"),
            "daemon": {"workers": args.workers},
            "tenants": every_tenant,
        }
        path = folder / f"r{i}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        configs.append(path)
    return configs


def export(path: Path, tenant: int, first: int, count: int) -> None:
    """A Salesforce export of ``count`` contacts, numbered from ``first`` within the tenant."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exchange = 200 + tenant % 700
    part = path.with_suffix(".part")
    with part.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "FirstName", "LastName", "MobilePhone"])
        for n in range(first, first + count):
            writer.writerow([f"{tenant}-{n}", f"F{n}", f"L{tenant}", f"+1415{exchange}{n:04d}"])
    part.replace(path)  # whole or not at all: a daemon must not read half a file


def start_daemon(name: str, config: Path, log: Path) -> Replica:
    env = {**os.environ, "BENCH_SECRET": DEFAULT_SECRET}
    env.pop("CONNECTOR_CONFIG", None)
    command = [sys.executable, "-m", "connector", "daemon", "--config", str(config)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--log-format", "json"], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    return Replica(name, process, log)


def _feed(folder: Path, tenants: int, rows: int, done: threading.Event) -> None:
    """A new file of ``rows`` contacts in every tenant's folder, once a minute."""
    minute = 0
    while rows and not done.wait(PERIOD.total_seconds()):
        minute += 1
        for n in range(tenants):
            export(folder / f"t{n:03}" / f"m{minute:03}.csv", n, 20 + (minute - 1) * rows, rows)


def _sample(replicas: list[Replica], admin: Any, done: threading.Event) -> None:
    while True:
        with admin.connect() as conn:
            connections = dict(
                conn.execute(
                    text(
                        "SELECT application_name, count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() GROUP BY application_name"
                    )
                ).all()
            )
        for replica in replicas:
            found = proc_stats(replica.process.pid)
            if found is not None:
                cpu, rss, threads, files = found
                used = int(connections.get(f"bench-{replica.name}", 0))
                replica.samples.append(Sample(time.time(), cpu, rss, threads, files, used))
        if done.wait(SAMPLE_SECONDS):
            return


def proc_stats(pid: int) -> tuple[float, float, int, int] | None:
    """CPU seconds, RSS in MiB, threads and open files of a live process (/proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        files = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15)
    values = {line.split(":")[0]: line.split(":")[1].split() for line in status if ":" in line}
    return cpu, int(values["VmRSS"][0]) / 1024, int(values["Threads"][0]), files


def log_records(replica: Replica) -> list[dict[str, Any]]:
    found = []
    for line in replica.log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def _report(
    args: argparse.Namespace, replicas: list[Replica], started: float, sandbox: Sandbox
) -> None:
    starts: dict[str, list[datetime]] = defaultdict(list)
    first_end: dict[str, datetime] = {}
    ended: dict[str, int] = defaultdict(int)
    missed = 0
    problems: list[str] = []
    for replica in replicas:
        for record in log_records(replica):
            message = str(record.get("message", ""))
            tenant = record.get("tenant")
            at = datetime.fromisoformat(record["ts"]) if "ts" in record else None
            if message == "run started" and tenant and at:
                starts[tenant].append(at)
            elif message.startswith("run ") and "status" in record and tenant and at:
                ended[str(record["status"])] += 1
                first_end.setdefault(tenant, at)
                first_end[tenant] = min(first_end[tenant], at)
            if "no worker was free" in message:
                missed += 1
            if record.get("level") in ("error", "critical") and len(problems) < 5:
                problems.append(f"{replica.name}: {message[:200]}")
    began = datetime.fromtimestamp(started).astimezone()
    late: list[float] = []
    counts = []
    for n in range(args.tenants):
        mine = sorted(starts.get(f"t{n:03}", []))
        counts.append(len(mine))
        late += [max(0.0, (b - a - PERIOD).total_seconds()) for a, b in pairwise(mine)]
    print(
        f"{args.tenants} tenants, {args.replicas} replicas of {args.workers} workers, "
        f"every 1m, {args.minutes:g} minutes, {args.rows_per_minute} new rows a tenant a minute"
    )
    if len(first_end) == args.tenants:
        last = max(first_end.values())
        print(
            f"first round: every tenant's first run ended {(last - began).total_seconds():.1f}s "
            "after the replicas started"
        )
    else:
        print(f"first round: only {len(first_end)} of {args.tenants} tenants ran at all")
    if late:
        ranked = sorted(late)
        p99 = ranked[min(len(ranked) - 1, int(len(ranked) * 0.99))]
        print(
            f"start delay against the schedule ({len(late):,} runs): median "
            f"{statistics.median(ranked):.2f}s, p99 {p99:.2f}s, max {ranked[-1]:.2f}s"
        )
    print(
        f"runs per tenant: fewest {min(counts)}, median {statistics.median(counts):g}, most "
        f"{max(counts)} (about {args.minutes:g} expected); runs by status: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(ended.items()))
        + f"; turns dropped for want of a worker: {missed}"
    )
    print(f"uploads the sandbox took: {sandbox.state.uploads:,} (across all bots)")
    for problem in problems:
        print(f"error line: {problem}")
    for replica in replicas:
        print(f"\n{replica.name}: minute, CPU s used in it, RSS MiB, threads, files, connections")
        by_minute: dict[int, Sample] = {}
        for sample in replica.samples:
            by_minute[int((sample.at - started) // 60)] = sample
        before = 0.0
        for minute, sample in sorted(by_minute.items()):
            print(
                f"  {minute + 1:>3}  {sample.cpu - before:7.1f}  {sample.rss_mib:7.1f}  "
                f"{sample.threads:4}  {sample.files:4}  {sample.connections:3}"
            )
            before = sample.cpu
        peak = max((s.connections for s in replica.samples), default=0)
        total = replica.samples[-1].cpu if replica.samples else 0.0
        print(f"  CPU seconds in all: {total:.1f}; most connections seen: {peak}")


if __name__ == "__main__":
    raise SystemExit(main())
