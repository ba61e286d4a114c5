"""End to end: the real command line in a child process against the sandbox over loopback HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from connector.kore.sandbox import Faults, Sandbox
from connector.state import Store
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.helpers import held, rejected, runs, summary, total
from tests.messy import write_export


def test_messy_export_creates_every_valid_contact_once_and_reports_the_rest(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "exports" / "contacts.csv"
    export.parent.mkdir()
    expected = write_export(export, valid=2000)
    config = write_config(
        tmp_path, {"acme": tenant_config(sandbox, tmp_path / "exports" / "*.csv")}
    )

    first = run_cli("sync", config=config)

    assert first.returncode == 0, first.stderr
    assert held(sandbox) == expected.contacts
    extensions = {
        c["cellPhone"]["phoneNumber"]: c["cellPhone"]["extension"] for c in sandbox.state.active()
    }
    assert {k: v for k, v in extensions.items() if v} == expected.extensions
    (run,) = runs(tmp_path, "acme")
    rows = rejected(run)
    assert Counter(r["reason"] for r in rows) == expected.reasons
    assert all(r["source"] == "contacts.csv" and int(r["row"]) > 1 for r in rows)
    counters = summary(run)["counters"]
    assert counters["rows_read"] == expected.rows
    assert counters["created"] == len(expected.contacts)
    assert summary(run)["status"] == "completed"
    assert "2,000 sent" in first.stdout

    second = run_cli("sync", config=config)
    quiet = json.loads(run_cli("status", "--json", config=config).stdout)["tenants"]["acme"]
    full = run_cli("sync", "--full", config=config)

    assert second.returncode == 0 and full.returncode == 0
    assert len(sandbox.state.upload_log) == len(range(0, 2000, 250))
    assert quiet["last_run"]["counters"]["created"] == len(expected.contacts), (
        "the sync that read nothing left no run record"
    )
    assert quiet["last_check"] >= quiet["last_run"]["started_at"]
    assert "no report (nothing was read or sent)" in second.stdout
    later = runs(tmp_path, "acme")[1:]
    assert len(later) == 1, "the run that read nothing left no report folder"
    assert summary(later[0])["counters"]["already_delivered"] == len(expected.contacts)
    assert summary(later[0])["counters"].get("sent", 0) == 0


@pytest.mark.slow
@pytest.mark.parametrize("duplicates", ["skip", "reject-file"])
def test_failing_and_dropping_sandbox_loses_nothing_and_creates_nothing_twice(
    tmp_path: Path, duplicates: str
) -> None:
    export = tmp_path / "contacts.csv"
    expected = write_export(export, valid=1500, seed=11)
    faults = Faults(fail_every=3, drop_every=5, duplicates=duplicates)  # type: ignore[arg-type]
    with Sandbox(secret=SECRET, faults=faults) as sandbox:
        config = write_config(
            tmp_path, {"acme": tenant_config(sandbox, export, batch_size=100, retries=1)}
        )
        codes = []
        for _ in range(6):
            codes.append(run_cli("sync", config=config).returncode)
            if codes[-1] == 0:
                break
        assert codes[-1] == 0, codes
        assert held(sandbox) == expected.contacts
        assert sum(u.created for u in sandbox.state.upload_log) == len(expected.contacts)
    assert total(tmp_path, "acme", "created") + total(tmp_path, "acme", "adopted") == len(
        expected.contacts
    )
    assert total(tmp_path, "acme", "kore_refused") == 0
    assert total(tmp_path, "acme", "already_in_kore") == 0
    ids = {c["cellPhone"]["phoneNumber"]: c["id"] for c in sandbox.state.active()}
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    recorded = store.tenant("acme").delivered(ids)
    store.close()
    assert {k: d.kore_id for k, d in recorded.items()} == ids


@pytest.mark.slow
def test_kill_9_during_an_upload_resends_only_the_batch_in_flight(tmp_path: Path) -> None:
    export = tmp_path / "contacts.csv"
    expected = write_export(export, valid=1000, seed=5)
    with Sandbox(secret=SECRET, faults=Faults(delay_seconds=0.4)) as sandbox:
        config = write_config(
            tmp_path,
            {"acme": tenant_config(sandbox, export, batch_size=100)},
            daemon={"lease_seconds": 60},
        )
        env = {**os.environ, "TEST_KORE_SECRET": SECRET}
        child = subprocess.Popen(
            [sys.executable, "-m", "connector", "sync", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while sandbox.state.uploads < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
        child.wait()
        time.sleep(0.5)  # the sandbox finishes storing the upload the child was waiting on

        store = Store(f"sqlite:///{tmp_path / 'state.db'}")
        delivered_before = len(store.tenant("acme").delivered(expected.contacts))
        in_flight = store.tenant("acme").pending_count()
        store.close()
        assert in_flight == 100, "the killed run left exactly its batch in flight"
        uploads_before = len(sandbox.state.upload_log)

        sandbox.faults.delay_seconds = 0
        again = run_cli("sync", config=config)  # at once: the lease's lock died with the child

        assert again.returncode == 0, again.stderr
        assert held(sandbox) == expected.contacts
        resent = sum(u.received for u in sandbox.state.upload_log[uploads_before:])
        assert resent == len(expected.contacts) - delivered_before
    last = summary(runs(tmp_path, "acme")[-1])["counters"]
    assert last["pending_resent"] == in_flight
    assert last["adopted"] == in_flight


def test_dry_run_writes_batch_files_and_changes_nothing(tmp_path: Path, sandbox: Sandbox) -> None:
    export = tmp_path / "contacts.csv"
    expected = write_export(export, valid=600, seed=3)
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})

    dry = run_cli("sync", "--dry-run", config=config)

    assert dry.returncode == 0, dry.stderr
    assert sandbox.state.uploads == 0
    (run,) = runs(tmp_path, "acme")
    batches = sorted(run.glob("batch-*.csv"))
    assert len(batches) == 3
    lines = [line for b in batches for line in b.read_text(encoding="utf-8").splitlines()]
    header = "firstName,lastName,salutation,cellPhoneNumber,cellPhoneCountryCode,cellPhoneExtension"
    assert lines.count(header) == 3
    assert len(lines) - 3 == len(expected.contacts)
    assert summary(run)["dry_run"] is True

    real = run_cli("sync", config=config)

    assert real.returncode == 0
    assert held(sandbox) == expected.contacts


def test_numbers_kore_already_has_are_reported_and_the_rest_delivered(tmp_path: Path) -> None:
    export = tmp_path / "contacts.csv"
    expected = write_export(export, valid=300, seed=9)
    taken = sorted(expected.contacts)[:3]
    for duplicates in ("skip", "reject-file"):
        with Sandbox(secret=SECRET, faults=Faults(duplicates=duplicates)) as sandbox:  # type: ignore[arg-type]
            body = "firstName,lastName,salutation,cellPhoneNumber,cellPhoneCountryCode,cellPhoneExtension\n"
            body += "".join(f"Someone,Else,,{k},,\n" for k in taken)
            sandbox.import_contacts(body.encode())
            work = tmp_path / duplicates
            work.mkdir()
            config = write_config(work, {"acme": tenant_config(sandbox, export, batch_size=100)})

            result = run_cli("sync", config=config)

            assert result.returncode == 0, result.stderr
            assert set(held(sandbox)) == set(expected.contacts)
            (run,) = runs(work, "acme")
            refused = [r for r in rejected(run) if r["reason"] == "already_in_kore"]
            assert len(refused) == 3
            assert summary(run)["counters"]["created"] == len(expected.contacts) - 3


@pytest.mark.parametrize("opt_in", ["changes.renamed", "kore.update_changed"])
def test_changed_names_are_skipped_by_default_and_updated_when_the_tenant_opts_in(
    tmp_path: Path, sandbox: Sandbox, opt_in: str
) -> None:
    header = "Id,Salutation,FirstName,LastName,MobilePhone,LastModifiedDate\n"
    (tmp_path / "a.csv").write_text(
        header + "1,,Ann,Lee,+1 415 201 1001,2024-01-01\n2,,Bo,Kim,+1 415 201 1002,2024-01-01\n"
    )
    base = tenant_config(sandbox, tmp_path / "*.csv")
    tenants = {
        "skip": {**base, "changes": {"renamed": "skip", "do_not_call": "keep", "removed": "keep"}},
        "update": {**base, "changes": {"renamed": "update"}}
        if opt_in == "changes.renamed"
        else {**base, "kore": {**base["kore"], "update_changed": True}},
    }
    config = write_config(tmp_path, {"skip": tenants["skip"]})
    assert run_cli("sync", config=config).returncode == 0
    (tmp_path / "b.csv").write_text(header + "1,Ms.,Anne,Lee-Smith,+1 415 201 1001,2024-02-01\n")

    skipped = run_cli("sync", config=config)

    assert skipped.returncode == 0
    assert held(sandbox)["+14152011001"][:2] == ("Ann", "Lee")
    assert summary(runs(tmp_path, "skip")[-1])["counters"]["changed_skipped"] == 1

    config = write_config(tmp_path, {"skip": tenants["update"]})
    updated = run_cli("sync", "--full", config=config)

    assert updated.returncode == 0, updated.stderr
    assert held(sandbox)["+14152011001"][:2] == ("Anne", "Lee-Smith")
    assert held(sandbox)["+14152011002"][:2] == ("Bo", "Kim")
    assert summary(runs(tmp_path, "skip")[-1])["counters"]["updated"] == 1


def test_state_on_postgresql(tmp_path: Path, sandbox: Sandbox, postgres_url: str) -> None:
    export = tmp_path / "contacts.csv"
    expected = write_export(export, valid=500, seed=21)
    config = write_config(
        tmp_path, {"acme": tenant_config(sandbox, export)}, state_url=postgres_url
    )

    first = run_cli("sync", config=config)
    second = run_cli("sync", "--full", config=config)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert held(sandbox) == expected.contacts
    assert summary(runs(tmp_path, "acme")[-1])["counters"]["already_delivered"] == len(
        expected.contacts
    )


def test_tenants_never_see_each_others_state(tmp_path: Path, sandbox: Sandbox) -> None:
    export = tmp_path / "contacts.csv"
    expected = write_export(export, valid=100, seed=2)
    config = write_config(
        tmp_path, {"one": tenant_config(sandbox, export), "two": tenant_config(sandbox, export)}
    )

    result = run_cli("sync", "--tenant", "one", config=config)
    other = run_cli("sync", "--tenant", "two", config=config)

    assert result.returncode == 0 and other.returncode == 0
    counters = summary(runs(tmp_path, "two")[0])["counters"]
    assert counters.get("already_delivered", 0) == 0, "tenant two must not see tenant one's keys"
    assert counters["sent"] == len(expected.contacts)
    assert counters["already_in_kore"] == len(expected.contacts)


@pytest.mark.parametrize("duplicates", ["skip", "reject-file"])
def test_rows_kore_refuses_are_found_and_reported_and_the_rest_delivered(
    tmp_path: Path, duplicates: str
) -> None:
    export = tmp_path / "contacts.csv"
    expected = write_export(export, valid=400, seed=13)
    refused = frozenset(list(expected.contacts)[i] for i in (3, 250, 390))
    faults = Faults(duplicates=duplicates, refuse=refused)  # type: ignore[arg-type]
    with Sandbox(secret=SECRET, faults=faults) as sandbox:
        config = write_config(tmp_path, {"acme": tenant_config(sandbox, export, batch_size=200)})

        result = run_cli("sync", config=config)

        assert result.returncode == 0, result.stderr
        assert set(held(sandbox)) == set(expected.contacts) - refused
        uploads = len(sandbox.state.upload_log)
        if duplicates == "skip":
            assert sandbox.state.listings == 1, (
                "Kore's list is read once a run, then kept up to date"
            )
        again = run_cli("sync", "--full", config=config)
        assert again.returncode == 0
    run = runs(tmp_path, "acme")[0]
    rows = [r for r in rejected(run) if r["reason"] == "kore_refused"]
    assert len(rows) == len(refused)
    values = [json.loads(r["values"]) for r in rows]
    assert {v["cellPhoneCountryCode"] + v["cellPhoneNumber"] for v in values} == refused
    if duplicates == "reject-file":
        assert uploads > 2, "a refused file is narrowed down by splitting it"
        assert all(r["detail"].startswith("HTTP 400") for r in rows)
    assert summary(runs(tmp_path, "acme")[-1])["counters"]["sent"] == len(refused)


def test_a_source_that_goes_quiet_is_reported_loudly(tmp_path: Path, sandbox: Sandbox) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    write_export(exports / "monday.csv", valid=50, seed=30)
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, exports / "*.csv")})
    assert run_cli("sync", config=config).returncode == 0
    header = (exports / "monday.csv").read_text(encoding="utf-8").splitlines()[0]
    (exports / "tuesday.csv").write_text(header + "\n", encoding="utf-8")

    quiet = run_cli("sync", config=config)

    assert quiet.returncode == 0
    assert "acme: empty" in quiet.stdout
    assert "warning: acme: tuesday.csv produced no rows" in quiet.stderr
    run = summary(runs(tmp_path, "acme")[-1])
    assert run["status"] == "empty"
    assert any("produced no rows" in w for w in run["warnings"])
    status = run_cli("status", config=config)
    assert " empty " in status.stdout

    (exports / "wednesday.csv").write_text(
        header + "\n" + ",".join(["x"] * len(header.split(","))) + "\n"
    )
    rejected_all = run_cli("sync", config=config)
    assert "the only row was rejected" in rejected_all.stderr


def test_international_numbers_and_defaults_reach_the_batch_files_and_kore(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = tmp_path / "contacts.csv"
    export.write_text(
        "Id,Salutation,FirstName,LastName,MobilePhone\n"
        "1,,Ann,Lee,(415) 201-1001 x7\n2,Dr.,Bo,Kim,+44 7912 345678\n",
        encoding="utf-8",
    )
    tenant = tenant_config(sandbox, export, phone_format="international", default_salutation="Mx")
    config = write_config(tmp_path, {"acme": tenant})

    dry = run_cli("sync", "--dry-run", config=config)
    real = run_cli("sync", config=config)

    assert dry.returncode == 0 and real.returncode == 0, real.stderr
    (batch,) = runs(tmp_path, "acme")[0].glob("batch-*.csv")
    assert batch.read_text(encoding="utf-8").splitlines()[1:] == [
        "Ann,Lee,Mx,+14152011001,+1,7",
        "Bo,Kim,Dr,+447912345678,+44,",
    ]
    assert held(sandbox) == {
        "+14152011001": ("Ann", "Lee", "Mx"),
        "+447912345678": ("Bo", "Kim", "Dr"),
    }


def test_an_answer_that_lists_refused_rows_too_is_not_taken_as_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another reading of the docs: the answer holds every row, refused ones marked as such."""
    import threading

    import httpx

    from connector.settings import load_settings
    from connector.sync.run import run_tenant

    export = tmp_path / "contacts.csv"
    export.write_text(
        "Id,FirstName,LastName,MobilePhone\n1,Ann,Lee,+1 415 201 1001\n2,Bo,Kim,+1 415 201 1002\n",
        encoding="utf-8",
    )

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"results": []})
        return httpx.Response(
            200,
            json=[
                {"id": "k1", "status": "ACTIVE", "cellPhone": {"phoneNumber": "+14152011001"}},
                {
                    "status": "FAILED",
                    "error": "duplicate",
                    "cellPhone": {"phoneNumber": "+14152011002"},
                },
            ],
        )

    with Sandbox(secret=SECRET) as sandbox:
        config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})
    monkeypatch.setenv("TEST_KORE_SECRET", SECRET)
    settings = load_settings(config)
    store = Store(settings.state_url)
    result = run_tenant(
        store,
        "acme",
        settings=settings,
        base_dir=tmp_path,
        stop=threading.Event(),
        transport=httpx.MockTransport(answer),
    )
    delivered = store.tenant("acme").delivered(["+14152011001", "+14152011002"])
    store.close()

    assert result.status == "completed"
    assert {k: d.kore_id for k, d in delivered.items()} == {"+14152011001": "k1"}
    assert result.counters.created == 1
    assert result.counters.kore_refused == 1


def test_ctrl_c_during_a_sync_settles_the_batch_in_flight_and_records_interrupted(
    tmp_path: Path,
) -> None:
    export = tmp_path / "contacts.csv"
    expected = write_export(export, valid=500, seed=21)
    with Sandbox(secret=SECRET, faults=Faults(delay_seconds=1)) as sandbox:
        config = write_config(tmp_path, {"acme": tenant_config(sandbox, export, batch_size=100)})
        env = {**os.environ, "TEST_KORE_SECRET": SECRET}
        child = subprocess.Popen(
            [sys.executable, "-m", "connector", "sync", "--config", str(config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while sandbox.state.uploads < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)

        assert child.returncode == 130, "an interruption, not an error"
        assert "stopping after the batch in flight" in err
        assert "Traceback" not in err
        assert ": interrupted - " in out
        status = json.loads(run_cli("status", "--json", config=config).stdout)["tenants"]["acme"]
        assert status["last_run"]["status"] == "interrupted"
        assert status["pending"] == 0 and status["lease"] is None
        assert len(held(sandbox)) == 100, "the batch in flight was settled, no other was sent"

        sandbox.faults.delay_seconds = 0
        assert run_cli("sync", config=config).returncode == 0
        assert held(sandbox) == expected.contacts
        assert sum(u.received for u in sandbox.state.upload_log) == len(expected.contacts)


def test_a_contact_kore_had_before_the_batch_is_never_adopted_after_an_uncertain_try(
    tmp_path: Path,
) -> None:
    """Issue [5], item 7: an interrupted upload must not make an older Kore contact ours."""
    from connector.kore.wire import batch_csv

    export = tmp_path / "contacts.csv"
    expected = write_export(export, valid=200, seed=31)
    theirs = sorted(expected.contacts)[0]
    with Sandbox(secret=SECRET, faults=Faults(drop_every=1)) as sandbox:
        body = batch_csv([("Someone", "Else", "", theirs, "", "")])
        sandbox.faults.drop_every = 0
        status, created = sandbox.import_contacts(body)
        assert status == 200 and len(created) == 1
        sandbox.state.contacts[created[0]["id"]]["createdAt"] = "2020-01-01T00:00:00.000Z"
        sandbox.faults.drop_every = 1  # the upload is stored, then the connection drops
        config = write_config(
            tmp_path, {"acme": tenant_config(sandbox, export, batch_size=500, retries=0)}
        )
        interrupted = run_cli("sync", config=config)
        sandbox.faults.drop_every = 0

        result = run_cli("sync", config=config)

    assert interrupted.returncode == 1
    assert result.returncode == 0, result.stderr
    last = runs(tmp_path, "acme")[-1]
    counters = summary(last)["counters"]
    assert counters["already_in_kore"] == 1, "the older contact is not ours"
    assert counters["adopted"] == len(expected.contacts) - 1
    (row,) = [r for r in rejected(last) if r["reason"] == "already_in_kore"]
    assert json.loads(row["values"])["cellPhoneNumber"] == theirs[2:]
