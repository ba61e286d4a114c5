"""Reading a mapping: a built-in by name or a YAML file by path, and what decides how a
tenant's rows are read (remembered with each file a run read)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from connector.errors import DOCS, ConfigError
from connector.mapping.apply import Mapping
from connector.mapping.headers import SYNONYMS
from connector.mapping.spec import MappingSpec
from connector.settings import load_yaml, read_yaml_text

if TYPE_CHECKING:
    from connector.settings import TenantSettings


def builtin_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml")
        for p in files("connector.mappings").iterdir()
        if p.name.endswith(".yaml")
    )


def reading_parts(mapping: Mapping, tenant: TenantSettings) -> tuple[str, str, int, str]:
    """What decides how a tenant's rows are read, besides their cells and header: the mapping,
    the default region and the limit on names."""
    kore = tenant.kore
    spec = mapping.spec.model_dump_json()
    # A {role: …} reference reads whatever names the synonym table gives it today: those
    # names are part of the reading, so a table that grows marks files read with it as read
    # another way, and their rows as changed.
    spec += "".join(repr(SYNONYMS[role]) for role in SYNONYMS if f'"role":"{role}"' in spec)
    return (
        spec,
        tenant.default_region,
        kore.max_name_length,
        kore.long_names,
    )


def reading_of(mapping: Mapping, tenant: TenantSettings) -> str:
    """``reading_parts`` as a short hash: remembered with each file a completed run read."""
    return hashlib.sha256(repr(reading_parts(mapping, tenant)).encode()).hexdigest()[:32]


def read_otherwise(
    remembered: Sequence[tuple[str, str]], readings: dict[str, str | None], reading: str
) -> str | None:
    """A warning when files this run skips as already read were read another way (the mapping,
    region or name limits have changed since), naming them and ``--full``; else None."""
    names = [name for ident, name in remembered if readings.get(ident) not in (None, reading)]
    if not names:
        return None
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5:,} more" if len(names) > 5 else "")
    return (
        f"{shown} {'was' if len(names) == 1 else 'were'} read before with another mapping, "
        f"region or name limit and {'is' if len(names) == 1 else 'are'} not read again; "
        "`sync --full` reads them with the current one"
    )


def load_mapping(name_or_path: str, *, base: Path | None = None) -> Mapping:
    """A built-in by name (``salesforce``) or a YAML file by path."""
    if name_or_path in builtin_names():
        resource = files("connector.mappings") / f"{name_or_path}.yaml"
        return _parse(name_or_path, resource.read_text(encoding="utf-8"))
    path = Path(name_or_path)
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.suffix:
        raise ConfigError(
            f"mapping '{name_or_path}' is neither a built-in nor a file path",
            hint=f"built-ins: {', '.join(builtin_names())}",
        )
    try:
        text = read_yaml_text(path)
    except OSError as exc:
        raise ConfigError(
            f"mapping {path}: cannot read: {exc.strerror}",
            hint=f"mapping: names a built-in ({', '.join(builtin_names())}) or a YAML file, "
            "relative to the config file's folder",
        ) from None
    return _parse(str(path), text)


def _parse(name: str, text: str) -> Mapping:
    data = load_yaml(text, Path(f"mapping {name}"))
    try:
        return Mapping(name, MappingSpec.model_validate(data))
    except ValidationError as exc:
        error = exc.errors(include_input=False)[0]
        where = (
            ".".join(str(p) for p in error["loc"])
            .replace("from_", "from")
            .replace("in_", "in")
            .replace("any_", "any")
        )
        problem = {"missing": "is required", "extra_forbidden": "is not a mapping key"}.get(
            error["type"], error["msg"].removeprefix("Value error, ")
        )
        raise ConfigError(
            f"mapping {name}: {where or 'mapping'} {problem}",
            hint=f"the mapping language: {DOCS}mappings.md",
        ) from None
