"""Reading what a run left behind: the sandbox's contacts, the report, the summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from connector.kore.sandbox import Sandbox
from connector.state import Store


def held(sandbox: Sandbox) -> dict[str, tuple[str, str, str]]:
    """What Kore holds: phone key -> (first name, last name, salutation)."""
    return {
        c["cellPhone"]["phoneNumber"]: (c["firstName"], c["lastName"], c["salutation"])
        for c in sandbox.state.active()
    }


def runs(directory: Path, tenant: str) -> list[Path]:
    return sorted((directory / "reports" / tenant).iterdir())


def summary(run: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    return data


def rejected(run: Path) -> list[dict[str, str]]:
    with (run / "rejected.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def total(directory: Path, tenant: str, counter: str) -> int:
    return sum(summary(r)["counters"].get(counter, 0) for r in runs(directory, tenant))


def assert_exactly_once(sandbox: Sandbox, state_url: str, expected: dict[str, str]) -> None:
    """Each expected contact exists once in Kore, with its name; the state has the same
    numbers with the same Kore ids; nothing is pending."""
    active = sandbox.state.active()
    keys = [c["cellPhone"]["phoneNumber"] for c in active]
    assert len(keys) == len(set(keys)), "a number exists twice in Kore"
    assert set(keys) == set(expected)
    assert {c["cellPhone"]["phoneNumber"]: c["firstName"] for c in active} == expected
    store = Store(state_url)
    try:
        state = store.tenant("acme")
        delivered = state.delivered(expected)
        assert set(delivered) == set(expected)
        assert state.delivered_count() == len(expected)
        ids = {c["cellPhone"]["phoneNumber"]: c["id"] for c in active}
        assert {key: d.kore_id for key, d in delivered.items()} == ids
        assert state.pending_count() == 0
    finally:
        store.close()
