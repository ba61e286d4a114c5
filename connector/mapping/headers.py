"""Header names: how a mapping finds its columns, what a column means, and how a message
shows a name.

Names are compared folded (``normalise_header``): case, white space, ``_``, ``-``, ``.`` and
invisible characters do not count, so ``Mobile_Phone``, ``mobile-phone``, ``MobilePhone`` and
``Mobile Phone`` are one name. ``SYNONYMS`` is the one table of what export columns mean (first,
last and full name, salutation, mobile and other phones, country, modified time, record id,
do-not-call, company): the built-in mappings name their columns from it, ``init`` scores the
built-ins and writes mappings with it, and the readers find a header row below a report's title
lines with it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Literal

_IGNORED = re.compile(r"[\s_\-.]+")
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)


def normalise_header(name: str) -> str:
    """A column name folded for comparison: ``Last_Name`` and ``last name`` are one name."""
    return _IGNORED.sub("", name.translate(INVISIBLE)).casefold()


Role = Literal[
    "first_name",
    "last_name",
    "full_name",
    "salutation",
    "mobile",
    "phone",
    "country",
    "updated_at",
    "id",
    "do_not_call",
    "company",
    "is_company",
]

SYNONYMS: dict[Role, tuple[str, ...]] = {
    "first_name": (
        "First Name",
        "Given Name",
        "First",
        "Forename",
        "fname",
        "Person - First name",
        "Contact First Name",
        "Lead First Name",
    ),
    "last_name": (
        "Last Name",
        "Surname",
        "Family Name",
        "Last",
        "lname",
        "Person - Last name",
        "Contact Last Name",
        "Lead Last Name",
    ),
    "full_name": (
        "Full Name",
        "Name",
        "Contact Name",
        "Display Name",
        "Complete Name",
        "Person - Name",
        "Lead Name",
        "File As",
    ),
    "salutation": ("Salutation", "Name Prefix", "Prefix", "Honorific"),
    "mobile": (
        "Mobile Phone",
        "Mobile",
        "Mobile Phone Number",
        "Mobile Number",
        "Cell Phone",
        "Cell",
        "Cellphone",
        "Cell Phone Number",
        "phone_mobile",
        "Person - Phone - Mobile",
    ),
    "phone": (
        "Phone",
        "Phone Number",
        "Business Phone",
        "Work Phone",
        "Office Phone",
        "Direct Phone",
        "Primary Phone",
        "Telephone",
        "Tel",
        "phone_work",
        "telephone1",
        "Person - Phone",
        "Person - Phone - Work",
        "Home Phone",
        "phone_home",
        "Other Phone",
        "phone_other",
        "Person - Phone - Home",
        "Person - Phone - Other",
    ),
    "country": (
        "Country",
        "Country/Region",
        "Mailing Country",
        "Billing Country",
        "Business Country/Region",
        "Business Country",
        "Home Country/Region",
        "Home Country",
        "Address 1: Country/Region",
        "Address 1 - Country",
        "Shipping Country",
        "Other Country/Region",
        "primary_address_country",
        "Person - Country of Postal address",
    ),
    "updated_at": (
        "Last Modified Date",
        "Last Modified Time",
        "Last Modified",
        "Modified Time",
        "Modified On",
        "(Do Not Modify) Modified On",
        "Modified Date",
        "Modified",
        "Updated At",
        "Updated",
        "Last Updated",
        "Update Time",
        "SystemModstamp",
        "date_modified",
        "write_date",
        "Person - Update time",
    ),
    "id": (
        "Id",
        "Record ID",
        "Contact ID",
        "Lead ID",
        "Customer ID",
        "External ID",
        "hs_object_id",
        "(Do Not Modify) Contact",
        "(Do Not Modify) Lead",
        "Person - ID",
    ),
    "do_not_call": (
        "Do Not Call",
        "Do not allow Phone Calls",
        "donotphone",
        "DNC",
        "Person - Do not call",
    ),
    "company": ("Company", "Company Name", "Account Name", "Organization", "Organisation"),
    "is_company": ("Is a Company", "is_company", "Is Company"),
}
"""What export columns mean, each role's names in order of preference (vendors' labels and API
names: ../docs/mappings.md lists where each comes from). A phone column is ``mobile`` only when
its name says so: Kore's field is ``cellPhoneNumber``."""

_ROLE_OF: dict[str, Role] = {
    normalise_header(name): role for role, names in SYNONYMS.items() for name in names
}
_PREFERENCE: dict[str, int] = {
    normalise_header(name): rank for names in SYNONYMS.values() for rank, name in enumerate(names)
}


def role_of(name: str) -> Role | None:
    """What a column means, by the synonym table; None for a column it does not know."""
    return _ROLE_OF.get(normalise_header(name))


def roles(header: Sequence[str]) -> dict[Role, list[int]]:
    """The positions of each role's columns in ``header``, in the table's order of preference
    (then the header's order); a name the header repeats counts once, at its first place."""
    found: dict[Role, list[tuple[int, int]]] = {}
    seen: set[str] = set()
    for position, name in enumerate(header):
        folded = normalise_header(name)
        role = _ROLE_OF.get(folded)
        if role is None or folded in seen:
            continue
        seen.add(folded)
        found.setdefault(role, []).append((_PREFERENCE[folded], position))
    return {role: [p for _, p in sorted(places)] for role, places in found.items()}


def looks_like_header(cells: Sequence[str]) -> bool:
    """Whether a row reads as a contact export's header: a phone column and a name column, or
    any three roles of the synonym table. A report's title, "As of …" and filter lines are one
    or two cells of prose and never do."""
    found = roles(cells)
    named = any(role in found for role in ("first_name", "last_name", "full_name"))
    phoned = "mobile" in found or "phone" in found
    return (named and phoned) or len(found) >= 3


_LISTED = 30
"""Columns a message lists before it says how many more there are."""


def shown(name: str, limit: int = 40) -> str:
    """A header name fit for a one-line message: control and invisible characters written as
    escapes (a binary file's header prints no raw bytes), a long name cut."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def listed(header: Sequence[str]) -> str:
    names = [shown(h) for h in header]
    more = f" … and {len(names) - _LISTED:,} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def quoted(names: Sequence[str]) -> str:
    return " or ".join(f"'{n}'" for n in names)


def closest(candidates: Sequence[str], header: Sequence[str]) -> str:
    choices = {normalise_header(h): shown(h) for h in header}
    for name in candidates:
        close = difflib.get_close_matches(normalise_header(name), list(choices), n=1, cutoff=0.6)
        if close:
            return f" (closest: '{choices[close[0]]}')"
    return ""


def find_columns(
    candidates: Sequence[str],
    header: Sequence[str],
    positions: dict[str, int],
    tokens: dict[int, str],
) -> list[int]:
    """Positions of the candidates present, in the candidates' order; a ``*`` matches a number
    (``Phone * - Value``: every ``Phone N - Value`` by N), remembered in ``tokens``."""
    found: list[int] = []
    for candidate in map(normalise_header, candidates):
        if "*" not in candidate:
            if candidate in positions:
                found.append(positions[candidate])
            continue
        pattern = re.compile(re.escape(candidate).replace(r"\*", r"(\d+)") + "$")
        matches = []
        for name, pos in positions.items():
            match = pattern.match(name)
            if match:
                matches.append((int(match[1]), pos))
                tokens[pos] = match[1]
        found += [pos for _, pos in sorted(matches)]
    return found


def repeated(header: Sequence[str], resolved: dict[str, list[int]], source: str) -> list[str]:
    """A column the mapping reads that the header has twice (HubSpot repeats ``Phone Number``
    for the company): the first is used, and the run says so."""
    counts: dict[str, int] = {}
    for name in header:
        counts[normalise_header(name)] = counts.get(normalise_header(name), 0) + 1
    read = sorted({p for found in resolved.values() for p in found})
    return [
        f"{source}: column '{shown(header[p])}' appears {counts[normalise_header(header[p])]} "
        "times; the first is read"
        for p in read
        if counts[normalise_header(header[p])] > 1
    ]
