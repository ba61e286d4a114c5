"""Mapping in worker processes (issue [14], "first sync on every core"): the same results in the
same order as one process, memory bounded by the chunks in flight, and no worker outliving its
run, whether the run ends, is stopped or is killed."""

from __future__ import annotations

import csv
import json
import multiprocessing.forkserver
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from connector.contacts import Contact, Rejection
from connector.errors import ConfigError, ConnectorError
from connector.mapping import BoundMapping, load_mapping
from connector.mapping.apply import sample_updated_at
from connector.settings import CsvSourceSettings, Settings, load_settings
from connector.sources import SourceRow
from connector.sources.csv_files import inspect_csv
from connector.sync.pool import IN_FLIGHT, MappingPool, kept, map_row
from tests.messy import write_export

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 97
"""Rows a chunk: small and odd, so that chunks, workers and files do not line up."""


def _unreadable_times(path: Path) -> None:
    """Give the export ``updated_at`` values that are no time, in two columns, the first from
    row 350 on (past the first few chunks), ``SystemModstamp`` (the mapping's second column)
    first seen before ``LastModifiedDate``."""
    with path.open(encoding="utf-8", newline="") as handle:
        lines = list(csv.reader(handle))
    header, rows = lines[0], lines[1:]
    header.append("SystemModstamp")
    at = header.index("LastModifiedDate")
    for number, row in enumerate(rows):
        row.append("")
        if number == 350 or (number > 350 and number % 41 == 0):
            row[at], row[-1] = "", f"stamp {number}"
        elif number > 400 and number % 37 == 0:
            row[at] = f"last week {number}"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("exports")
    paths = [folder / "contacts.csv", folder / "more.csv"]
    write_export(paths[0], valid=1200, seed=21)
    write_export(paths[1], valid=300, seed=22)
    _unreadable_times(paths[0])
    return paths


def _units(paths: list[Path]) -> list[tuple[str, BoundMapping, list[SourceRow]]]:
    """Each export's name, its mapping (``salesforce``) bound and learnt as a run does, and its
    rows."""
    units = []
    for path in paths:
        export = inspect_csv(path, CsvSourceSettings(kind="csv", path=str(path)))
        bound = load_mapping("salesforce", base=ROOT).bind(export.header(), export.name)
        bound = bound.learn_timestamps(sample_updated_at(bound, export.rows()))
        units.append((export.name, bound, list(export.rows())))
    return units


def _jobs(
    units: list[tuple[str, BoundMapping, list[SourceRow]]],
) -> Iterator[tuple[tuple[str, int], str, BoundMapping, list[SourceRow]]]:
    for name, bound, rows in units:
        for start in range(0, len(rows), CHUNK):
            yield (name, start), name, bound, rows[start : start + CHUNK]
        yield (name, -1), name, bound, []  # a job without rows keeps its place too


def _mapped(
    processes: int, paths: list[Path], *, inline_rows: int = 0
) -> tuple[list[tuple[str, int]], list[Contact | Rejection], list[BoundMapping], list[int]]:
    """The tags and results of every job, the units' mappings, and the workers that mapped
    them."""
    units = _units(paths)
    tags: list[tuple[str, int]] = []
    results: list[Contact | Rejection] = []
    with MappingPool(processes, "US", inline_rows=inline_rows) as pool:
        for tag, mapped in pool.imap(_jobs(units)):
            tags.append(tag)
            results.extend(mapped)
        workers = pool.pids
    return tags, results, [bound for _, bound, _ in units], workers


def test_workers_map_every_row_as_one_process_does(exports: list[Path]) -> None:
    tags, alone, bound_alone, _ = _mapped(1, exports)
    tags_shared, shared, bound_shared, workers = _mapped(3, exports)
    assert len(workers) == 3
    assert tags_shared == tags == [tag for tag, *_ in _jobs(_units(exports))]
    assert shared == alone
    assert len(alone) == sum(len(rows) for _, _, rows in _units(exports))
    assert {type(item) for item in alone} == {Contact, Rejection}
    reasons = {item.reason for item in alone if isinstance(item, Rejection)}
    assert {"malformed_row", "phone_invalid", "skip_when"} <= reasons
    unread = bound_alone[0].unread_times
    assert unread.count > 10 and unread.columns == ["SystemModstamp", "LastModifiedDate"]
    assert unread.example == "stamp 350"
    assert [b.unread_times for b in bound_shared] == [b.unread_times for b in bound_alone]
    assert bound_shared[1].unread_times.count == 0


def test_the_first_inline_rows_are_mapped_here_and_workers_start_past_them(
    exports: list[Path],
) -> None:
    """A run of fewer rows than ``inline_rows`` starts no process; a longer one maps the
    first ``inline_rows`` here and the rest in workers, with the same results either way."""
    tags, alone, bound_alone, _ = _mapped(1, exports)
    rows = sum(len(rows) for _, _, rows in _units(exports))
    for inline_rows, started in ((rows, 0), (rows - 1, 2), (CHUNK * 3, 2)):
        found = _mapped(2, exports, inline_rows=inline_rows)
        assert found[:3] == (tags, alone, bound_alone)
        assert len(found[3]) == started, inline_rows


def test_inline_rows_count_over_the_pools_life(exports: list[Path]) -> None:
    ((name, bound, rows),) = _units(exports[1:])
    jobs = [(0, name, bound, rows[:CHUNK]), (1, name, bound, rows[CHUNK : 2 * CHUNK])]
    with MappingPool(2, "US", inline_rows=CHUNK * 3) as pool:
        first = list(pool.imap(jobs))
        assert pool.pids == []
        second = list(pool.imap(jobs))  # past the third chunk: the workers start
        assert len(pool.pids) == 2
        assert second == first


def test_chunks_are_read_only_as_results_are_taken(exports: list[Path]) -> None:
    """At most ``IN_FLIGHT`` chunks a process are sent ahead of the one taken: memory holds
    that many chunks whatever the export's size."""
    ((name, bound, rows),) = _units(exports[1:])
    read: list[int] = []

    def jobs() -> Iterator[tuple[int, str, BoundMapping, list[SourceRow]]]:
        for number, start in enumerate(range(0, len(rows), 20)):
            read.append(number)
            yield number, name, bound, rows[start : start + 20]

    for processes in (1, 2):
        read.clear()
        with MappingPool(processes, "US") as pool:
            for taken, (number, _) in enumerate(pool.imap(jobs())):
                assert number == taken
                ahead = len(read) - taken - 1  # chunks read after the one taken
                assert ahead <= (0 if processes == 1 else IN_FLIGHT * processes)
        assert len(read) == taken + 1 > 4 * IN_FLIGHT


class Stopped(Exception):
    """What a run's stop raises between chunks (``RunInterrupted``)."""


def test_a_stop_between_chunks_ends_the_workers_at_once(exports: list[Path]) -> None:
    """The run's stop (raised while the next chunk is read) drops the chunks in flight and
    ends the workers without waiting for their answers; the next chunk starts new ones."""
    ((name, bound, rows),) = _units(exports[1:])
    workers: list[int] = []

    def jobs() -> Iterator[tuple[int, str, BoundMapping, list[SourceRow]]]:
        for number in range(3):
            yield number, name, bound, rows[:50]
        workers.extend(pool.pids)
        raise Stopped

    with MappingPool(2, "US") as pool:
        with pytest.raises(Stopped):
            list(pool.imap(jobs()))
        assert len(workers) == 2 and not [pid for pid in workers if _running(pid)]
        assert pool.pids == []
        assert [n for n, _ in pool.imap([(7, name, bound, rows[:1])])] == [7]
        assert len(pool.pids) == 2


def test_a_worker_killed_fails_the_run_in_one_line_and_the_pool_starts_afresh(
    exports: list[Path],
) -> None:
    ((name, bound, rows),) = _units(exports[1:])
    with MappingPool(2, "US") as pool:
        first = list(pool.imap([(0, name, bound, rows[:10])]))
        os.kill(pool.pids[0], signal.SIGKILL)
        with pytest.raises(ConnectorError) as caught:
            list(pool.imap((n, name, bound, rows[:10]) for n in range(4)))
        message = caught.value.message
        assert "mapping process" in message and "died (killed by SIGKILL)" in message
        assert "retried" in message and "\n" not in message
        assert caught.value.hint and "mapping_processes: 1" in caught.value.hint
        assert pool.pids == []
        again = list(pool.imap([(0, name, bound, rows[:10])]))
        assert again == first and len(pool.pids) == 2


def test_what_mapping_raises_is_raised_as_in_one_process(exports: list[Path]) -> None:
    """A bug in mapping (here, a cell that is no text) is the same exception either way, with
    the worker's traceback as a note."""
    ((name, bound, _),) = _units(exports[1:])
    broken = SourceRow([None] * len(bound.header), 2)  # type: ignore[list-item]
    errors = []
    for processes in (1, 2):
        with MappingPool(processes, "US") as pool, pytest.raises(AttributeError) as caught:
            list(pool.imap([(0, name, bound, [broken])]))
        errors.append(caught.value)
    assert str(errors[0]) == str(errors[1])
    assert "in a mapping process" in "".join(getattr(errors[1], "__notes__", []))
    short = map_row(bound, name, SourceRow(["x"], 3), "US")
    assert isinstance(short, Rejection) and short.reason == "malformed_row"


def test_a_system_that_refuses_processes_fails_the_run_in_one_line() -> None:
    code = """
import resource
from pathlib import Path
from connector.errors import ConnectorError
from connector.mapping import load_mapping
from connector.sources import SourceRow
from connector.sync.pool import MappingPool
from tests.messy import HEADER

bound = load_mapping("salesforce", base=Path(".")).bind(HEADER, "contacts.csv")
resource.setrlimit(resource.RLIMIT_NOFILE, (12, 12))
try:
    with MappingPool(2, "US") as pool:
        list(pool.imap([(0, "contacts.csv", bound, [SourceRow([""] * len(HEADER), 2)])]))
except ConnectorError as exc:
    print(exc.message)
    print(exc.hint)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    message, hint = done.stdout.splitlines()  # where it fails depends on what ran out first
    assert message.startswith("cannot start a mapping process: ")
    assert "mapping_processes" in hint


_CHILD = """
import json, os, resource, signal, sys
from pathlib import Path
from connector.mapping import load_mapping
from connector.sources import SourceRow
from connector.sync.pool import MappingPool
from tests.messy import HEADER

soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))  # core dumps on, as far as allowed
bound = load_mapping("salesforce", base=Path(".")).bind(HEADER, "contacts.csv")
row = SourceRow([""] * len(HEADER), 2)
pool = MappingPool(2, "US")
assert [len(r) for _, r in pool.imap([(0, "contacts.csv", bound, [row] * 5)])] == [5]

def tree(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo:
        found.append(todo.pop())
        todo.extend(children.get(found[-1], []))
    return found

print(json.dumps({"workers": pool.pids, "descendants": tree(os.getpid())}), flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()
"""


@contextmanager
def _child(how: str) -> Iterator[tuple[subprocess.Popen[str], list[int], list[int]]]:
    """A Python process that maps a chunk in a pool of two, then is killed (``kill``) or waits
    for its standard input to close and exits without closing the pool (``wait``); with the
    workers' process ids and every process under it."""
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, how],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        started = json.loads(child.stdout.readline())
        yield child, started["workers"], started["descendants"]


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_no_worker_outlives_a_parent_killed_with_sigkill() -> None:
    with _child("kill") as (child, workers, descendants):
        assert child.wait(30) == -signal.SIGKILL
    assert len(workers) == 2 and set(workers) <= set(descendants)
    deadline = time.monotonic() + 20
    while any(map(_running, descendants)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in descendants if _running(pid)], "processes left behind"


def test_workers_ignore_the_runs_signals_and_dump_no_core() -> None:
    """Ctrl-C (the terminal's process group) and SIGTERM (systemd's control group) are the
    run's to handle; a worker's memory (names, numbers) never lands in a core file."""
    with _child("wait") as (child, workers, _):
        for pid in workers:
            status = Path(f"/proc/{pid}/status").read_text()
            ignored = int(status.split("SigIgn:")[1].split()[0], 16)
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                assert ignored & 1 << (signum - 1), signum
            limits = Path(f"/proc/{pid}/limits").read_text()
            assert re.search(r"Max core file size +0 +0 ", limits), limits
        child.communicate("", timeout=30)  # exits with the pool open: closed at exit
    assert child.returncode == 0
    assert not [pid for pid in workers if _running(pid)]


_PROBE = """
import os, sys
import connector.countries
channel.send({
    "environ": [e.split(b"=", 1)[0].decode()
                for e in open("/proc/self/environ", "rb").read().split(bytes(1)) if e],
    "os.environ": sorted(os.environ),
    "index": connector.countries._index.cache_info().currsize,
    "imported": [m for m in ("sqlalchemy", "connector.settings", "yaml") if m in sys.modules],
})
"""
_CHILD_WITH_A_SECRET = """
import json, multiprocessing, os, sys
from pathlib import Path
from connector.mapping import load_mapping
from connector.sources import SourceRow
from connector.sync.pool import MappingPool
from tests.messy import HEADER

def servers():
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
            parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        except OSError:
            continue
        if "multiprocessing.forkserver" in command and parent == str(os.getpid()):
            found.append(int(pid))
    return found

bound = load_mapping("salesforce", base=Path(".")).bind(HEADER, "contacts.csv")
job = (0, "contacts.csv", bound, [SourceRow([""] * len(HEADER), 2)] * 100)
found = {"secret": os.environ["KORE_TEST_SECRET"], "servers": [], "workers": []}
with MappingPool(2, "US", inline_rows=300) as pool:
    for _ in range(4):
        list(pool.imap([job]))
        found["servers"].append(servers())
        found["workers"].append(pool.pids)
    context = multiprocessing.get_context("forkserver")
    ours, theirs = context.Pipe()
    probe = context.Process(target=exec, args=(sys.argv[1], {"channel": theirs}))
    probe.start()
    found["probe"] = ours.recv()
    probe.join()
    print(json.dumps(found), flush=True)
    sys.stdin.read()
"""


def _environ(pid: int) -> list[str]:
    """The names in ``/proc/PID/environ``, the environment a process started with as others
    see it; none when the kernel shows nothing (a process that is not dumpable, to a reader
    without CAP_SYS_PTRACE: the suite runs as root in CI, where it shows all)."""
    try:
        block = Path(f"/proc/{pid}/environ").read_bytes()
    except PermissionError:
        return []
    return [entry.split(b"=", 1)[0].decode() for entry in block.split(b"\0") if entry]


def test_the_fork_server_gives_workers_its_country_index_and_no_secret() -> None:
    """The fork server starts in the background once half of ``inline_rows`` are mapped, the
    workers once the rest are. Every process it forks (a worker, and a probe forked as a
    worker is) finds the country index built, has not imported the state's code, and holds
    no variable of the run's environment but ``pool_preload.kept`` ones, neither in
    ``os.environ`` nor in ``/proc/PID/environ``; nor does the server."""
    env = {**os.environ, "KORE_TEST_SECRET": "kc-canary-in-the-environment", "LC_ALL": "C.UTF-8"}
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD_WITH_A_SECRET, _PROBE],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        found = json.loads(child.stdout.readline())
        workers = found["workers"][-1]
        server = found["servers"][-1]
        seen = {pid: _environ(pid) for pid in [*server, *workers]}
        parent = _environ(child.pid)
        child.communicate("", timeout=30)
    assert child.returncode == 0
    assert found["secret"] == env["KORE_TEST_SECRET"]
    assert "KORE_TEST_SECRET" in parent
    assert found["servers"] == [[], server, server, server] and len(server) == 1
    assert found["workers"][:3] == [[], [], []] and len(workers) == 2
    probe = found["probe"]
    assert probe["index"] == 1 and probe["imported"] == []
    for names in [probe["environ"], probe["os.environ"], *seen.values()]:
        assert [name for name in names if not kept(name)] == [], names
    assert {"LC_ALL", "PATH"} <= set(probe["os.environ"]) & set(probe["environ"])


BASE = {
    "tenants": {
        "acme": {
            "kore": {
                "host": "https://platform.kore.ai",
                "bot_id": "st-1",
                "account_id": "a1",
                "client_id": "cs-1",
                "client_secret": "s3cr3t-value-0123456789abcdef-32",
            },
            "source": {"kind": "csv", "path": "exports/*.csv"},
            "mapping": "salesforce",
        }
    }
}


def test_mapping_processes_default_to_the_cpus_this_process_may_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "connector.yaml"
    path.write_text(json.dumps(BASE), encoding="utf-8")
    monkeypatch.delenv("CONNECTOR_MAPPING_PROCESSES", raising=False)
    assert load_settings(path).mapping_processes_resolved == len(os.sched_getaffinity(0))
    monkeypatch.setenv("CONNECTOR_MAPPING_PROCESSES", "1")
    assert load_settings(path).mapping_processes_resolved == 1
    monkeypatch.delenv("CONNECTOR_MAPPING_PROCESSES")
    path.write_text(json.dumps({**BASE, "mapping_processes": 65}), encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping_processes must be less than or equal to 64"):
        load_settings(path)
    assert Settings(tenants={}, mapping_processes=3).mapping_processes_resolved == 3


def test_the_resource_tracker_starts_without_the_environment_and_the_process_keeps_it() -> None:
    """multiprocessing's tracker is dumpable: started by ``start_resource_tracker`` it holds no
    secret, while the process that started it keeps its whole environment."""
    code = (
        "import os\n"
        "from multiprocessing import resource_tracker\n"
        "from connector.sync.pool import start_resource_tracker\n"
        "start_resource_tracker()\n"
        "print(resource_tracker._resource_tracker._pid, os.environ['KORE_TEST_SECRET'])\n"
        "input()\n"
    )
    env = {**os.environ, "KORE_TEST_SECRET": "tracker-canary-4711"}
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        tracker, secret = child.stdout.readline().split()
        assert secret == "tracker-canary-4711", "the process keeps its environment"
        block = Path(f"/proc/{tracker}/environ").read_bytes()
        names = {entry.split(b"=", 1)[0].decode() for entry in block.split(b"\0") if entry}
        assert b"tracker-canary-4711" not in block
        assert names and all(kept(name) for name in names)
        child.stdin.write("\n")
        child.stdin.flush()
    finally:
        child.communicate(timeout=30)


def test_the_fork_server_never_sees_ctrl_c_or_a_stop_meant_for_the_run() -> None:
    """Ctrl-C and systemd's stop reach the whole process group; the fork server is started with
    them blocked, so one that comes while it imports its preload cannot kill it."""
    mapping_pool = MappingPool(2, "US")
    try:
        mapping_pool._serve()
        server = multiprocessing.forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
        status = Path(f"/proc/{server}/status").read_text()
        blocked = int(re.search(r"^SigBlk:\s*([0-9a-f]+)", status, re.M)[1], 16)  # type: ignore[index]
        for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            assert blocked & (1 << (stop - 1)), f"{stop.name} reaches the fork server"
    finally:
        mapping_pool.close()
