"""``reconcile`` (issue [5], item 5): Kore's list against the state, through the real command line
against the sandbox, with faults and kill -9 while it brings Kore back in line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.kore.sandbox import Faults, Sandbox
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.helpers import held, runs, summary
from tests.test_lifecycle import expected, number, people, table, write

KORE_HEADER = (
    b"firstName,lastName,salutation,cellPhoneNumber,cellPhoneCountryCode,cellPhoneExtension\r\n"
)


def delete_by_hand(sandbox: Sandbox, keys: list[str]) -> None:
    sandbox.delete([sandbox.state.by_phone[key] for key in keys])


def created_per_number(sandbox: Sandbox) -> dict[str, int]:
    counts: dict[str, int] = {}
    for contact in sandbox.state.contacts.values():
        key = contact["cellPhone"]["phoneNumber"]
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_reconcile_reports_then_apply_brings_back_what_was_deleted_by_hand(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    exports = tmp_path / "exports"
    rows = people(100)
    write(exports / "1.csv", rows)
    tenant = tenant_config(sandbox, exports / "*.csv", batch_size=25)
    tenant["changes"] = {"renamed": "update"}
    config = write_config(tmp_path, {"t": tenant})
    assert run_cli("sync", config=config).returncode == 0
    gone = [number(i) for i in range(10, 20)]
    delete_by_hand(sandbox, gone)
    for i in range(3):
        sandbox.state.contacts[sandbox.state.by_phone[number(i)]]["lastName"] = "Typo"
    sandbox.import_contacts(
        KORE_HEADER + b"Kore,Only,,4152019998,+1,\r\nIn,Both,,4152019999,+1,\r\n"
    )
    write(exports / "2.csv", {999: ["r999", "In", "Both", number(8999), "false", ""]})
    before = held(sandbox)

    looked = run_cli("reconcile", config=config)

    assert looked.returncode == 0, looked.stderr
    assert held(sandbox) == before, "without --apply nothing changes"
    assert "10 missing from Kore, 2 unknown to the state (1 of them in the source), 3 with" in (
        looked.stdout
    )
    report = runs(tmp_path, "t")[-1]
    assert {r["phone_key"] for r in table(report, "missing_in_kore.csv")} == set(gone)
    unknown = {r["phone_key"]: r["plan"] for r in table(report, "unknown_in_kore.csv")}
    assert unknown == {"+14152019998": "keep (not in the source)", number(8999): "adopt"}
    differ = table(report, "names_differ.csv")
    assert {(r["kore_last_name"], r["sent_last_name"], r["plan"]) for r in differ} == {
        ("Typo", f"Last{i}", "correct") for i in range(3)
    }

    applied = run_cli("reconcile", "--apply", config=config)

    assert applied.returncode == 0, applied.stderr
    assert "10 created again, 1 adopted, 3 names corrected, 0 held back" in applied.stdout
    everyone = {
        **expected(rows),
        "+14152019998": ("Kore", "Only", ""),
        number(8999): ("In", "Both", ""),
    }
    assert held(sandbox) == everyone
    assert all(n == 1 for k, n in created_per_number(sandbox).items() if k not in gone)
    assert all(created_per_number(sandbox)[k] == 2 for k in gone), "each re-created once"

    after = run_cli("sync", config=config)

    assert after.returncode == 0, after.stderr
    counters = summary(runs(tmp_path, "t")[-1])["counters"]
    assert (counters["sent"], counters["updated"], counters["already_delivered"]) == (0, 0, 1)
    again = run_cli("reconcile", "--log-format", "json", config=config)
    found = json.loads(again.stdout.splitlines()[0])["found"]
    assert (found["missing"], found["unknown"], found["names_differ"]) == (0, 1, 0)


def test_reconcile_never_recreates_a_number_flagged_do_not_call(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    exports = tmp_path / "exports"
    rows = people(5)
    write(exports / "1.csv", rows)
    config = write_config(tmp_path, {"t": tenant_config(sandbox, exports / "*.csv")})
    assert run_cli("sync", config=config).returncode == 0
    rows[0][4] = "true"
    write(exports / "2.csv", {0: rows[0]})
    assert run_cli("sync", config=config).returncode == 0  # flagged; kept in Kore (keep)
    delete_by_hand(sandbox, [number(0)])

    applied = run_cli("reconcile", "--apply", config=config)

    assert applied.returncode == 0, applied.stderr
    assert number(0) not in held(sandbox)
    plan = table(runs(tmp_path, "t")[-1], "missing_in_kore.csv")
    assert [(r["phone_key"], r["plan"]) for r in plan] == [
        (number(0), "keep (flagged do-not-call)")
    ]


@pytest.mark.slow
def test_faults_while_reconcile_recreates_lose_nothing_and_create_nothing_twice(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    exports = tmp_path / "exports"
    write(exports / "1.csv", people(200))
    tenant = tenant_config(sandbox, exports / "*.csv", batch_size=20, retries=0)
    config = write_config(tmp_path, {"t": tenant})
    assert run_cli("sync", config=config).returncode == 0
    gone = [number(i) for i in range(0, 200, 2)]
    delete_by_hand(sandbox, gone)
    sandbox.faults = Faults(fail_every=3, drop_every=2)

    codes = [run_cli("reconcile", "--apply", config=config).returncode for _ in range(10)]

    assert 1 in codes and codes[-1] == 0, codes
    assert held(sandbox) == expected(people(200))
    assert all(created_per_number(sandbox)[k] == 2 for k in gone), "each re-created once"
    sandbox.faults = Faults()
    quiet = run_cli("reconcile", "--log-format", "json", config=config)
    assert json.loads(quiet.stdout.splitlines()[0])["found"]["missing"] == 0


def test_kill_9_during_reconcile_apply_then_it_finishes_exactly_once(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    write(exports / "1.csv", people(150))
    with Sandbox(secret=SECRET) as sandbox:
        tenant = tenant_config(sandbox, exports / "*.csv", batch_size=10)
        config = write_config(tmp_path, {"t": tenant}, daemon={"lease_seconds": 3})
        assert run_cli("sync", config=config).returncode == 0
        gone = [number(i) for i in range(100)]
        delete_by_hand(sandbox, gone)
        sandbox.faults.delay_seconds = 0.3
        uploads = sandbox.state.uploads
        child = subprocess.Popen(
            [sys.executable, "-m", "connector", "reconcile", "--apply", "--config", str(config)],
            env={**os.environ, "TEST_KORE_SECRET": SECRET},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while sandbox.state.uploads < uploads + 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        time.sleep(3.5)  # the sandbox stores what it was sent; the dead process's lease expires
        sandbox.faults.delay_seconds = 0

        result = run_cli("reconcile", "--apply", config=config)

        assert result.returncode == 0, result.stderr
        assert held(sandbox) == expected(people(150))
        assert all(created_per_number(sandbox)[k] == 2 for k in gone), "each re-created once"
        found = summary(runs(tmp_path, "t")[-1])["counters"]
        assert found["pending_resent"] == 10, "the batch in flight was settled first"
