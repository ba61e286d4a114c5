"""Kore's rate limits (issue [6]): a sync against a server that counts its limit over a shorter
window than the one configured, or that allows less than configured, completes without failing
on 429 — the real command line against the sandbox over loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.kore.sandbox import Faults, Sandbox
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.helpers import held, runs, summary
from tests.test_lifecycle import expected, people, write

pytestmark = pytest.mark.slow


def _sync(
    tmp_path: Path, faults: Faults, per_minute: int, count: int = 800
) -> tuple[Sandbox, dict[str, int]]:
    rows = people(count)
    write(tmp_path / "contacts.csv", rows)
    with Sandbox(secret=SECRET, faults=faults) as sandbox:
        tenant = tenant_config(
            sandbox,
            tmp_path / "contacts.csv",
            batch_size=20,
            retries=0,
            uploads_per_minute=per_minute,
            uploads_per_hour=100_000,
        )
        result = run_cli("sync", config=write_config(tmp_path, {"t": tenant}))
        assert result.returncode == 0, result.stderr
        assert held(sandbox) == expected(rows), "everything delivered"
    counters = summary(runs(tmp_path, "t")[-1])["counters"]
    assert counters["rate_limited"] == sandbox.state.limited.get("import", 0)
    return sandbox, counters


def test_a_server_counting_over_a_shorter_window_gets_few_429s(tmp_path: Path) -> None:
    """Kore's documented 60 a minute, counted as 10 in any 10 s: even spacing keeps to both."""
    faults = Faults(rate_window=(10, 10.0), on=frozenset({"import"}))

    sandbox, counters = _sync(tmp_path, faults, per_minute=60, count=500)

    assert sandbox.state.requests["import"] == 25 + counters["rate_limited"]
    assert counters["rate_limited"] <= 2, "at most one upload in ten rate limited"


@pytest.mark.parametrize("retry_after", ["seconds", "none"])
def test_a_busier_bot_slows_the_pace_and_the_run_still_completes(
    tmp_path: Path, retry_after: str
) -> None:
    """Another integration spends half the bot's budget: the server allows half of what is
    configured. Every 429 halves the pace; the run completes, and no retry is spent on it."""
    faults = Faults(
        rate_window=(5, 1.0),
        on=frozenset({"import"}),
        retry_after=retry_after,  # type: ignore[arg-type]
    )

    _, counters = _sync(tmp_path, faults, per_minute=600)

    assert counters["rate_limited"] >= 1
    assert counters["waited_seconds"] > 0
