"""The docs are checked against the code they describe."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from connector.mapping import builtin_names
from connector.settings import (
    ChangesSettings,
    CsvSourceSettings,
    DaemonSettings,
    KoreSettings,
    ScheduleSettings,
    Settings,
    SqlSourceSettings,
    TenantSettings,
    XlsxSourceSettings,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"
SECTIONS: dict[str, type[BaseModel]] = {
    "Top level": Settings,
    "`daemon`": DaemonSettings,
    "`tenants.<name>`": TenantSettings,
    "`tenants.<name>.kore`": KoreSettings,
    "`tenants.<name>.source` with `kind: csv`": CsvSourceSettings,
    "`tenants.<name>.source` with `kind: xlsx`": XlsxSourceSettings,
    "`tenants.<name>.source` with `kind: sql`": SqlSourceSettings,
    "`tenants.<name>.schedule`": ScheduleSettings,
    "`tenants.<name>.changes`": ChangesSettings,
}


def _documented() -> dict[str, dict[str, str]]:
    """Section -> key -> the default column, from docs/configuration.md's tables."""
    found: dict[str, dict[str, str]] = {}
    section = ""
    for line in (DOCS / "configuration.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:]
            found[section] = {}
        row = re.match(r"\| `([a-z_]+)` \| (.+?) \|", line)
        if row and section:
            found[section][row[1]] = row[2]
    return found


def _shown(default: Any) -> str:
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if default is None:
        return "none"
    if isinstance(default, float) and default.is_integer() and default >= 10:
        return f"`{int(default)}`"
    if default == "":
        return '`""`'
    return f"`{default}`"


@pytest.mark.parametrize("section", list(SECTIONS))
def test_every_setting_is_in_the_reference_with_its_default(section: str) -> None:
    model = SECTIONS[section]
    documented = _documented()[section]
    assert set(documented) == set(model.model_fields), "keys documented = keys the model reads"
    for name, field in model.model_fields.items():
        if field.is_required():
            assert documented[name] == "required", name
        elif isinstance(field.default, BaseModel | dict):
            continue  # a whole section: described in its own table
        elif name not in ("schedule", "changes", "daemon"):
            assert documented[name] == _shown(field.default), name


def test_the_reference_names_every_built_in_mapping() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in text for name in builtin_names())


def test_the_docs_the_readme_links_exist() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    for link in re.findall(r"\]\(([^)#]+\.md)", readme):
        assert (DOCS.parent / link).is_file(), link
    assert (DOCS.parent / "LICENSE").read_text(encoding="utf-8").startswith(" " * 33 + "Apache")
