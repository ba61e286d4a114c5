"""Mappings: how one CRM's export becomes Kore rows.

``spec`` holds the YAML models, ``load`` reads a built-in or a file into them, ``headers``
matches column names, ``apply`` binds a mapping to a header and maps one row at a time, ``names``
splits and cleans names.
"""

from connector.mapping.apply import BoundMapping, ColumnUse, Mapping
from connector.mapping.headers import normalise_header, shown
from connector.mapping.load import (
    builtin_names,
    load_mapping,
    read_otherwise,
    reading_of,
    reading_parts,
)
from connector.mapping.names import split_full_name, split_name
from connector.mapping.spec import PLACEHOLDERS, MappingSpec, names_of

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
