"""Names: splitting a full name into salutation, first and last, keeping an organisation's name
whole, and looking a value up in a mapping's ``map`` table."""

from __future__ import annotations

import re
from collections.abc import Sequence
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


LEGAL_FORMS = frozenset(
    [
        "inc",
        "incorporated",
        "llc",
        "llp",
        "ltd",
        "limited",
        "plc",
        "corp",
        "corporation",
        "company",
        "gmbh",
        "sarl",
        "pty",
        "srl",
    ]
)
"""Words that make a name an organisation's, in any case, dots ignored (``Inc.``, ``L.L.C.``,
``GmbH``): the commonest legal forms of English-, German-, French- and Italian-speaking
countries, none of them a given name or a surname."""
LEGAL_FORMS_AS_WRITTEN = frozenset(
    ["AG", "KG", "BV", "B.V.", "NV", "N.V.", "SA", "S.A.", "SpA", "S.p.A.", "Co."]
)
"""Short legal forms that count only written so, since in another case they are people's names
(``Co`` is a Chinese-Filipino surname, ``Sa`` a given name)."""
COMPANY_FLAGS = frozenset(["true", "1", "yes", "y", "x", "t"])
"""What an ``is_company`` cell says for "this row is an organisation", ignoring case: Odoo's
``True``, a spreadsheet's ``x``, PostgreSQL's ``t``."""
_WORDS = re.compile(r"[\s,()&/]+")


def is_organisation(name: str, *, companies: Sequence[str] = (), company_flag: str = "") -> bool:
    """Whether a name is an organisation's, so that ``Last, First`` does not apply to it: the
    row's ``is_company`` cell says so; or the name is the row's company, or that company
    followed by a comma (a branch written ``My Company, Chicago``); or one of its
    words is a legal form (``Acme, Inc.``)."""
    if company_flag.strip().casefold() in COMPANY_FLAGS:
        return True
    folded = _fold(name)
    head = _fold(name.partition(",")[0])
    if any(_fold(company) in (folded, head) for company in companies if company.strip()):
        return True
    words = [word for word in _WORDS.split(name) if word]
    return any(
        word in LEGAL_FORMS_AS_WRITTEN or word.replace(".", "").casefold() in LEGAL_FORMS
        for word in words
    )


def _fold(text: str) -> str:
    return _SPACES.sub(" ", text.translate(INVISIBLE)).strip().casefold()


def split_full_name(
    full: str, *, companies: Sequence[str] = (), company_flag: str = ""
) -> tuple[str, str, str]:
    """``Mr. Ada King Lovelace`` -> (``Mr.``, ``Ada``, ``King Lovelace``); ``Lovelace, Ada``
    -> ("", ``Ada``, ``Lovelace``); a title at the start is the salutation, never the name.

    An organisation's name (``is_organisation``, given the row's company cells and
    ``is_company`` flag) is kept whole, as the last name with no first name: Kore needs a name
    in one of the two, and a company has no given name to put first (``Dr. Oetker GmbH`` keeps
    its ``Dr.``, ``My Company, Chicago`` is not turned round)."""
    text = _SPACES.sub(" ", full.translate(INVISIBLE)).strip()
    if text and is_organisation(text, companies=companies, company_flag=company_flag):
        return "", "", text
    title = ""
    head, _, rest = text.partition(" ")
    if rest and head.rstrip(".").casefold() in SALUTATIONS:
        title, text = head, rest.strip()
    if "," in text:
        last, _, first = text.partition(",")
    else:
        first, _, last = text.partition(" ")
    return title, first.strip(), last.strip()


def split_name(
    full: str,
    part: Literal["first", "last", "salutation"],
    *,
    companies: Sequence[str] = (),
    company_flag: str = "",
) -> str:
    """``Ada King Lovelace`` -> first ``Ada``, last ``King Lovelace``; ``Lovelace, Ada`` too;
    a leading title (``Mr.``, ``Dr``, ``Herr``) is the salutation, neither first nor last; an
    organisation's name is all last name (``split_full_name``)."""
    title, first, last = split_full_name(full, companies=companies, company_flag=company_flag)
    return {"first": first, "last": last, "salutation": title}[part]
