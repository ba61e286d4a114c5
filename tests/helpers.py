"""Reading what a run left behind: the sandbox's contacts, the report, the summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from connector.kore.sandbox import Sandbox


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
