"""Names: splitting a full name into salutation, first and last, and looking a value up in a
mapping's ``map`` table."""

from __future__ import annotations

import re
from typing import Literal

from connector.mapping.headers import INVISIBLE

_SPACES = re.compile(r"\s+")
SALUTATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "dr",
        "prof",
        "sir",
        "dame",
        "rev",
        "herr",
        "frau",
        "hr",
        "mme",
        "mlle",
        "sr",
        "sra",
        "srta",
        "sig",
        "dott",
    ]
)
"""Titles that may open a full name (with or without a dot): they go to the salutation."""


def lookup(table: dict[str, str], text: str) -> str:
    if text in table:
        return table[text]
    folded = text.casefold()
    for key, value in table.items():
        if key.casefold() == folded:
            return value
    return text


def split_full_name(full: str) -> tuple[str, str, str]:
    """``Mr. Ada King Lovelace`` -> (``Mr.``, ``Ada``, ``King Lovelace``); ``Lovelace, Ada``
    -> ("", ``Ada``, ``Lovelace``); a title at the start is the salutation, never the name."""
    text = _SPACES.sub(" ", full.translate(INVISIBLE)).strip()
    title = ""
    head, _, rest = text.partition(" ")
    if rest and head.rstrip(".").casefold() in SALUTATIONS:
        title, text = head, rest.strip()
    if "," in text:
        last, _, first = text.partition(",")
    else:
        first, _, last = text.partition(" ")
    return title, first.strip(), last.strip()


def split_name(full: str, part: Literal["first", "last", "salutation"]) -> str:
    """``Ada King Lovelace`` -> first ``Ada``, last ``King Lovelace``; ``Lovelace, Ada`` too;
    a leading title (``Mr.``, ``Dr``, ``Herr``) is the salutation, neither first nor last."""
    title, first, last = split_full_name(full)
    return {"first": first, "last": last, "salutation": title}[part]
