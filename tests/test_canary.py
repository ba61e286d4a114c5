"""The client secret is a canary (``tests.conftest.SECRET``): beside the suite-wide checks, one
run through every surface at the most talkative settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.kore.sandbox import Faults, Sandbox
from tests.conftest import SECRET, leaks, run_cli, tenant_config, write_config
from tests.helpers import runs
from tests.messy import write_export


def test_the_search_finds_a_planted_secret(tmp_path: Path) -> None:
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "oops.log").write_bytes(b"token=" + SECRET.encode() + b"\n")
    (tmp_path / "clean.log").write_text("nothing here", encoding="utf-8")
    try:
        assert leaks(tmp_path) == [str(tmp_path / "deep" / "er" / "oops.log")]
    finally:
        (tmp_path / "deep" / "er" / "oops.log").unlink()  # the session's own search finds it


@pytest.mark.slow
def test_debug_and_json_logs_reports_and_state_never_hold_the_secret(tmp_path: Path) -> None:
    export = tmp_path / "contacts.csv"
    write_export(export, valid=300, seed=11)
    with Sandbox(
        secret=SECRET, faults=Faults(fail_every=3, drop_every=4, rate_limit_every=5)
    ) as sandbox:
        config = write_config(tmp_path, {"acme": tenant_config(sandbox, export, batch_size=50)})
        outputs = [
            run_cli("check", "--online", "-v", config=config),
            run_cli(
                "check", "--online", "-v", config=config, env={"TEST_KORE_SECRET": SECRET + "x"}
            ),
            run_cli("sync", "-v", "--dry-run", config=config),
            run_cli("sync", "-v", config=config),
            run_cli("reconcile", "-v", "--log-format", "json", config=config),
            run_cli("status", "--json", config=config),
        ]
    assert [o.returncode for o in outputs] == [0, 1, 0, 0, 0, 0], [o.stderr[-300:] for o in outputs]
    assert any(" DEBUG " in o.stderr for o in outputs), "debug records were written"
    assert any('"level": ' in o.stderr for o in outputs), "and JSON ones"
    for done in outputs:
        assert SECRET not in done.stdout + done.stderr
    assert len(runs(tmp_path, "acme")) >= 3
    assert leaks(tmp_path) == []
