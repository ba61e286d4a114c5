"""Hostile neighbours of the reports folder and the demo (issue [12]): report files are never
written through a link someone planted, folders another user owns or may write are refused
before anything is sent, pruning stays inside the tenant's folder, the dry run's batch preview
is safe to open in a spreadsheet while Kore gets the exact cells, and ``demo`` empties only a
folder it made."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.errors import ConnectorError
from connector.kore.sandbox import Sandbox
from connector.report import Report, prune
from connector.sync.context import RUN_ID_TIME
from tests.conftest import SECRET, assert_no_canary, run_cli, tenant_config, write_config
from tests.helpers import held, runs

HEADER = ["Id", "FirstName", "LastName", "MobilePhone"]


def _export(path: Path, *rows: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *rows])
    return path


def _connector(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "TEST_KORE_SECRET": SECRET}
    env.pop("CONNECTOR_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "connector", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _old_run_folder(parent: Path, *, days: int = 40) -> Path:
    started = datetime.now(UTC) - timedelta(days=days)
    folder = parent / f"{started.strftime(RUN_ID_TIME)}-abcdef"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text("{}", encoding="utf-8")
    return folder


def _tree(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
    }


def test_a_link_planted_where_the_summary_goes_is_not_written_through(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """The race of the finding, in a real run: while the run uploads, ``summary.json.part``
    appears in its folder as a link to a private file of the user."""
    export = _export(
        tmp_path / "contacts.csv",
        ["1", "Ann", "Lee", "+1 415 201 0901"],
        ["2", "Bo", "Kim", "not a number"],  # rejected while reading: the run folder exists
    )
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, export)})
    victim = tmp_path / "private.txt"
    victim.write_text("the user's own\n", encoding="utf-8")
    victim.chmod(0o600)
    uploading, planted = threading.Event(), threading.Event()
    upload = sandbox.import_contacts

    def after_the_plant(body: bytes, bot: str | None = None) -> tuple[int, Any]:
        uploading.set()
        planted.wait(30)
        return upload(body, bot)

    sandbox.import_contacts = after_the_plant  # type: ignore[method-assign]
    process = _connector("sync", "--config", str(config))
    deadline = time.monotonic() + 120
    try:
        while not uploading.wait(0.05):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run never uploaded"
        (run,) = runs(tmp_path, "acme")
        (run / "summary.json.part").symlink_to(victim)
    finally:
        planted.set()
        out, err = process.communicate(timeout=120)
    assert_no_canary(out + err, "the output of sync")

    assert victim.read_text(encoding="utf-8") == "the user's own\n"
    assert (run / "summary.json.part").is_symlink(), "the planted link is left as it was"
    assert not (run / "summary.json").exists()
    assert process.returncode == 1
    (line,) = _errors(err)
    assert f"{run}/summary.json.part" in line and "already there" in line, line
    assert "Traceback" not in err
    assert set(held(sandbox)) == {"+14152010901"}, "the upload before it stands"


def test_tenant_folders_others_may_write_or_own_are_refused_before_anything_is_sent(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    export = _export(tmp_path / "contacts.csv", ["1", "Ann", "Lee", "+1 415 201 0901"])
    tenants = {name: tenant_config(sandbox, export) for name in ("acme", "beta")}
    config = write_config(tmp_path, tenants)
    reports = tmp_path / "reports"
    shared, foreign = reports / "acme", reports / "beta"
    shared.mkdir(parents=True)
    shared.chmod(0o777)
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)

    result = run_cli("sync", config=config)

    assert result.returncode == 1
    errors = _errors(result.stderr)
    assert len(errors) == 2, result.stderr
    (acme,) = [line for line in errors if f"{shared}:" in line]
    assert "writable by group or others (mode 0777)" in acme
    (beta,) = [line for line in errors if f"{foreign}:" in line]
    assert "owned by uid 65534" in beta
    assert "hint:" in result.stderr and "Traceback" not in result.stderr
    assert held(sandbox) == {}
    assert list(shared.iterdir()) == [] and list(foreign.iterdir()) == []
    status = json.loads(run_cli("status", "--json", config=config).stdout)["tenants"]
    for name, line in (("acme", acme), ("beta", beta)):
        last = status[name]["last_run"]
        assert last["status"] == "failed", "the run is recorded, not left running"
        assert last["error"] in line


def test_a_linked_or_dotted_tenant_folder_is_refused(tmp_path: Path) -> None:
    reports, elsewhere = tmp_path / "reports", tmp_path / "elsewhere"
    elsewhere.mkdir()
    reports.mkdir()
    (reports / "acme").symlink_to(elsewhere, target_is_directory=True)

    linked = Report(reports, "acme", "20250101T000000.000000Z-abcdef")
    with pytest.raises(ConnectorError, match=r"reports/acme: it is a link"):
        linked.preflight()
    for tenant in (".", ".."):
        with pytest.raises(ConnectorError, match="not a folder name"):
            Report(reports, tenant, "20250101T000000.000000Z-abcdef").close({}, keep=True)
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "reports"]


def test_pruning_never_leaves_the_tenant_folder_nor_follows_a_link(tmp_path: Path) -> None:
    reports, outside = tmp_path / "reports", tmp_path / "outside"
    beside = _old_run_folder(tmp_path)  # reports/../<run id>: a tenant named ".." would hit it
    _old_run_folder(reports)  # reports/<run id>: a tenant named "." would hit it
    target = _old_run_folder(outside)
    tenant = reports / "acme"
    old = _old_run_folder(tenant)
    (old / "planted").symlink_to(outside / "kept.txt")
    (outside / "kept.txt").write_text("kept", encoding="utf-8")
    linked = tenant / f"{(datetime.now(UTC) - timedelta(days=50)).strftime(RUN_ID_TIME)}-fedcba"
    linked.symlink_to(target, target_is_directory=True)
    (reports / "linked").symlink_to(outside, target_is_directory=True)
    before = _tree(outside)

    assert prune(reports, "acme", keep_days=30) == 1
    assert not old.exists() and linked.is_symlink()
    for name in (".", "..", "linked"):
        with pytest.raises(ConnectorError):
            prune(reports, name, keep_days=30)
    assert beside.exists() and len(list(reports.glob("*T*Z-abcdef"))) == 1
    assert _tree(outside) == before


def test_the_dry_run_preview_neutralises_formulas_and_kore_gets_the_exact_cells(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    names = {
        "+14152010901": ('=HYPERLINK("http://x.test","open")', "Lee"),
        "+14152010902": ("@SUM(A1)", "+cmd|' /C calc'!A0"),
        "+14152010903": ("-2+3", "Kim"),
    }
    rows = [[str(n), *names[key], key] for n, key in enumerate(names, 1)]
    export = _export(tmp_path / "contacts.csv", *rows)
    tenant = tenant_config(sandbox, export, phone_format="international")
    config = write_config(tmp_path, {"acme": tenant})

    dry = run_cli("sync", "--dry-run", config=config)
    real = run_cli("sync", config=config)

    assert dry.returncode == 0 and real.returncode == 0, dry.stderr + real.stderr
    (batch,) = runs(tmp_path, "acme")[0].glob("batch-*.csv")
    with batch.open(encoding="utf-8", newline="") as handle:
        preview = {r["cellPhoneNumber"]: r for r in csv.DictReader(handle)}
    assert {key: (r["firstName"], r["lastName"]) for key, r in preview.items()} == {
        key: tuple("'" + n if n[0] in "=+-@" else n for n in pair) for key, pair in names.items()
    }
    assert {r["cellPhoneCountryCode"] for r in preview.values()} == {"+1"}, "E.164 as it is"
    assert {key: (first, last) for key, (first, last, _) in held(sandbox).items()} == names


def _deployment(folder: Path) -> dict[str, bytes | None]:
    (folder / "exports").mkdir(parents=True)
    (folder / "connector.yaml").write_text("tenants: {}\n", encoding="utf-8")
    (folder / "state.db").write_bytes(b"SQLite format 3\x00 the real state")
    (folder / "exports" / "contacts.csv").write_text("Id,Phone\n1,+14152010901\n", "utf-8")
    return _tree(folder)


def test_demo_refuses_a_folder_it_did_not_make_and_touches_nothing(tmp_path: Path) -> None:
    deployment = tmp_path / "deployment"
    before = _deployment(deployment)

    process = _connector("demo", "--output", ".", cwd=deployment)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 2, out + err
    (line,) = _errors(err)
    assert str(deployment) in line and "not empty" in line
    assert "hint:" in err and "--output" in err
    assert _tree(deployment) == before


def test_demo_refuses_a_marker_another_user_planted(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    shared.chmod(0o1777)
    (shared / "mine.txt").write_text("data\n", encoding="utf-8")
    marker = shared / ".kore-connector-demo"
    marker.write_text("planted\n", encoding="utf-8")
    os.chown(marker, 65534, 65534)  # tests run as root: a marker of another user
    before = _tree(shared)

    result = run_cli("demo", "--output", str(shared))

    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = _errors(result.stderr)
    assert "no earlier demo made it" in line
    assert _tree(shared) == before


def test_demo_twice_into_its_own_folder_starts_afresh(tmp_path: Path) -> None:
    output = tmp_path / "demo"

    first = run_cli("demo", "--output", str(output))
    second = run_cli("demo", "--output", str(output))

    for result in (first, second):
        assert result.returncode == 0, result.stderr
        assert "16 sent (16 created), 9 rejected" in result.stdout, "a fresh state each time"
    assert len(list((output / "reports" / "demo").iterdir())) == 2, "the first demo's are gone"
