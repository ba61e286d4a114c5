"""Header names: how a mapping finds its columns, what a column means, and how a message
shows a name.

Names are compared folded (``normalise_header``): case, white space, ``_``, ``-``, ``.`` and
invisible characters do not count, so ``Mobile_Phone``, ``mobile-phone``, ``MobilePhone`` and
``Mobile Phone`` are one name. ``SYNONYMS`` is the one table of what export columns mean (first,
last and full name, salutation, mobile and other phones, country, modified time, record id,
do-not-call, company, deleted): the built-in mappings name their columns from it (a test holds
them to it), ``generic`` reads each role's every name (``{role: X}``), ``init`` reads a header
by meaning with it (``roles``) to score the built-ins and to write a mapping when none fits,
and the readers find a header row below a report's title lines with it (``looks_like_header``).
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
    "title",
    "job_title",
    "mobile",
    "phone",
    "phone_label",
    "country",
    "updated_at",
    "id",
    "do_not_call",
    "company",
    "is_company",
    "deleted",
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
        "Customer Name",
        "Person - Name",
        "Lead Name",
        "File As",
    ),
    "salutation": ("Salutation", "Name Prefix", "Prefix", "Honorific"),
    "title": ("Title",),
    "job_title": ("Job Title", "Job Position", "Position", "Job"),
    "mobile": (
        "Mobile Phone",
        "Mobile",
        "Mobile Phone Number",
        "Mobile Number",
        "Cell Phone",
        "Cell",
        "Cell Phone Number",
        "Cell Number",
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
        "Business Phone 2",
        "Home Phone",
        "Home Phone 2",
        "phone_home",
        "telephone2",
        "Other Phone",
        "phone_other",
        "Person - Phone - Home",
        "Person - Phone - Other",
        "Phone * - Value",
    ),
    "phone_label": ("Phone * - Label", "Phone * - Type"),
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
        "Address 1: Country",
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
        "Last Modified At",
        "Modified Time",
        "Modified On",
        "(Do Not Modify) Modified On",
        "Modified Date",
        "Modified At",
        "Modified",
        "Updated At",
        "Updated On",
        "Updated",
        "Last Updated",
        "Last Updated on",
        "Update Time",
        "SystemModstamp",
        "date_modified",
        "write_date",
        "Person - Update time",
        "Person - Updated",
    ),
    "id": (
        "Id",
        "Record ID",
        "Record ID - Contact",
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
    "company": (
        "Company",
        "Company Name",
        "Account Name",
        "Organization",
        "Organisation",
        "Organization Name",
        "Related Company",
        "Person - Organization",
        "Organization * - Name",
    ),
    "is_company": ("Is a Company", "Is Company"),
    "deleted": ("IsDeleted", "Deleted", "statecode", "Status"),
}
"""What export columns mean: each role's names in order of preference, vendors' labels and API
names (../shared/crm-exports.md and docs/mappings.md say where each comes from). Names are
compared folded, so ``FirstName``, ``first_name`` and ``First Name`` are one entry; no folded name
is in two roles. A ``*`` stands for a number (``Phone * - Value`` is Google's ``Phone 1 - Value``,
``Phone 2 - Value``, …).

A phone column is ``mobile`` only when its name says so: Kore's field is ``cellPhoneNumber``, and
every mapping tries mobiles first. ``title`` is a role of its own because exports disagree on it:
Outlook and Odoo write the salutation there (``Mr.``, ``Mister``), Salesforce, HubSpot and Zoho
the job (``Operations Manager``); only a mapping for an export known to mean the salutation reads
it, and ``roles`` reads it as one only beside a ``job_title`` column. ``job_title`` and
``phone_label`` are never dialled or sent: they say what the columns beside them are.
``deleted`` holds the flags that say a record is gone from the CRM though still exported or
queried (Salesforce's ``IsDeleted``, SuiteCRM's ``deleted``, Dynamics' ``statecode`` and its
``Status`` label): what ``removed_when`` rules read, never what tells a header."""

_EXACT: dict[str, tuple[Role, int]] = {
    normalise_header(name): (role, rank)
    for role, names in SYNONYMS.items()
    for rank, name in enumerate(names)
}
_NUMBERED: list[tuple[re.Pattern[str], Role, int]] = [
    (re.compile(re.escape(normalise_header(name)).replace(r"\*", r"\d+") + "$"), role, rank)
    for role, names in SYNONYMS.items()
    for rank, name in enumerate(names)
    if "*" in name
]


def _entry(folded: str) -> tuple[Role, int] | None:
    """The role and rank of a folded name: an entry (``Phone * - Value`` too, as written), else
    a numbered one (``Phone 2 - Value``)."""
    if folded in _EXACT:
        return _EXACT[folded]
    for pattern, role, rank in _NUMBERED:
        if pattern.match(folded):
            return role, rank
    return None


def role_of(name: str) -> Role | None:
    """What a column means by its name alone, by the synonym table; None for a name it lacks."""
    entry = _entry(normalise_header(name))
    return entry[0] if entry else None


_NAME = normalise_header("Name")


def roles(header: Sequence[str]) -> dict[Role, list[int]]:
    """The positions of each role's columns in ``header``, in the table's order of preference
    (then the header's order); a name the header repeats counts once, at its first place.

    Two names mean something else beside certain columns, as a person reading the header would
    take them: a bare ``Name`` beside a last-name column with no first-name column is the first
    name (a prospecting tool's ``Name``, ``Last_Name``), and ``Title`` beside a job-title column
    is the salutation (Odoo's ``Title`` and ``Job Position``, Outlook's ``Title`` and
    ``Job Title``).
    """
    found: dict[Role, list[tuple[int, int]]] = {}
    seen: set[str] = set()
    for position, name in enumerate(header):
        folded = normalise_header(name)
        entry = _entry(folded)
        if entry is None or folded in seen:
            continue
        seen.add(folded)
        found.setdefault(entry[0], []).append((entry[1], position))
    placed = {role: [p for _, p in sorted(places)] for role, places in found.items()}
    return _in_context(placed, header)


def _in_context(placed: dict[Role, list[int]], header: Sequence[str]) -> dict[Role, list[int]]:
    """``roles`` after the two readings that depend on the columns beside a name."""
    if "last_name" in placed and "first_name" not in placed:
        bare = [p for p in placed.get("full_name", []) if normalise_header(header[p]) == _NAME]
        if bare:
            placed["first_name"] = bare
            placed["full_name"] = [p for p in placed["full_name"] if p not in bare]
    if "job_title" in placed and "title" in placed:
        placed["salutation"] = placed.get("salutation", []) + placed.pop("title")
    return {role: places for role, places in placed.items() if places}


def looks_like_header(cells: Sequence[str]) -> bool:
    """Whether a row reads as a contact export's header: a phone column and a name column, or
    any three roles of the synonym table. A report's title, "As of …" and filter lines are one
    or two cells of prose and never do. A ``deleted`` flag is no sign: ``Status`` is a common
    word of a report's filter lines."""
    found = roles(cells)
    found.pop("deleted", None)
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
