"""Mappings: how one CRM's export becomes Kore rows.

``spec`` holds the YAML models, ``load`` reads a built-in or a file into them, ``headers``
matches column names, ``apply`` binds a mapping to a header and maps one row at a time, ``names``
splits and cleans names.

``load``'s names are imported when first asked for (``__getattr__``): ``load`` reads YAML
through ``connector.settings``, which imports SQLAlchemy and pydantic-settings, and a mapping
process (``connector.sync.pool``), which only applies mappings it is given, never needs them
(measured: 19 MiB of a worker's memory and 0.5 s of its fork server's start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from connector.mapping.apply import BoundMapping, ColumnUse, Mapping
from connector.mapping.headers import normalise_header, shown
from connector.mapping.names import split_full_name, split_name
from connector.mapping.spec import PLACEHOLDERS, MappingSpec, names_of

if TYPE_CHECKING:
    from connector.mapping.load import (
        builtin_names,
        load_mapping,
        read_otherwise,
        reading_of,
        reading_parts,
    )
else:

    def __getattr__(name: str) -> Any:
        """``load``'s names, imported the first time one is asked for (PEP 562), then kept.
        Out of mypy's sight, which would take any name for one of them."""
        if name not in _LOADING:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module("connector.mapping.load"), name)
        globals()[name] = value
        return value


_LOADING = frozenset(
    {"builtin_names", "load_mapping", "read_otherwise", "reading_of", "reading_parts"}
)
"""The names ``connector.mapping.load`` gives, on first use."""

__all__ = [
    "PLACEHOLDERS",
    "BoundMapping",
    "ColumnUse",
    "Mapping",
    "MappingSpec",
    "builtin_names",
    "load_mapping",
    "names_of",
    "normalise_header",
    "read_otherwise",
    "reading_of",
    "reading_parts",
    "shown",
    "split_full_name",
    "split_name",
]
