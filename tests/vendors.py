"""Exports in each CRM's documented layout, with messy phones, and what must become of them.

Headers come from the vendors' documentation (see ../shared/crm-exports.md); each layout names
the columns a person, a number and a do-not-call flag go to. The right answer is built from the
digits chosen here, not by the connector's code.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.messy import _de, _gb, _us, _us_written


@dataclass(frozen=True)
class Layout:
    mapping: str
    header: list[str]
    first: str
    last: str
    mobile: str
    work: str
    country: str
    salutation: str | None = None
    home: str | None = None
    record_id: str | None = None
    updated: str | None = None
    updated_format: str = "%Y-%m-%dT%H:%M:%S.000+0000"
    dnc: str | None = None
    dnc_yes: str = "true"
    dnc_no: str = "false"
    labels: tuple[str, str] | None = None
    encoding: str = "utf-8"


LAYOUTS = {
    "salesforce_api": Layout(
        "salesforce",
        [
            "Id",
            "FirstName",
            "LastName",
            "Salutation",
            "MobilePhone",
            "Phone",
            "HomePhone",
            "MailingCountry",
            "DoNotCall",
            "LastModifiedDate",
            "Email",
        ],
        first="FirstName",
        last="LastName",
        salutation="Salutation",
        mobile="MobilePhone",
        work="Phone",
        home="HomePhone",
        country="MailingCountry",
        record_id="Id",
        updated="LastModifiedDate",
        dnc="DoNotCall",
    ),
    "salesforce_report": Layout(
        "salesforce",
        [
            "Contact ID",
            "Salutation",
            "First Name",
            "Last Name",
            "Mobile",
            "Business Phone",
            "Home Phone",
            "Mailing Country",
            "Do Not Call",
            "Email Opt Out",
            "Last Modified Date",
        ],
        first="First Name",
        last="Last Name",
        salutation="Salutation",
        mobile="Mobile",
        work="Business Phone",
        home="Home Phone",
        country="Mailing Country",
        record_id="Contact ID",
        updated="Last Modified Date",
        updated_format="%m/%d/%Y %I:%M %p",
        dnc="Do Not Call",
        dnc_yes="1",
        dnc_no="0",
    ),
    "hubspot": Layout(
        "hubspot",
        [
            "Record ID",
            "First Name",
            "Last Name",
            "Email",
            "Phone Number",
            "Mobile Phone Number",
            "Job Title",
            "Contact owner",
            "State/Region",
            "Country/Region",
            "Last Modified Date",
        ],
        first="First Name",
        last="Last Name",
        mobile="Mobile Phone Number",
        work="Phone Number",
        country="Country/Region",
        record_id="Record ID",
        updated="Last Modified Date",
        updated_format="%Y-%m-%d %H:%M",
    ),
    "zoho": Layout(
        "zoho",
        [
            "Record Id",
            "Contact Owner",
            "Salutation",
            "First Name",
            "Last Name",
            "Email",
            "Phone",
            "Mobile",
            "Home Phone",
            "Other Phone",
            "Mailing Country",
            "Email Opt Out",
            "Modified Time",
        ],
        first="First Name",
        last="Last Name",
        salutation="Salutation",
        mobile="Mobile",
        work="Phone",
        home="Home Phone",
        country="Mailing Country",
        record_id="Record Id",
        updated="Modified Time",
        updated_format="%m/%d/%Y %I:%M %p",
    ),
    "dynamics365": Layout(
        "dynamics365",
        [
            "(Do Not Modify) Contact",
            "(Do Not Modify) Row Checksum",
            "(Do Not Modify) Modified On",
            " Full Name",
            "Salutation",
            "First Name",
            "Last Name",
            "Business Phone",
            "Home Phone",
            "Mobile Phone",
            "Address 1: Country/Region",
            "Do not allow Phone Calls",
        ],
        first="First Name",
        last="Last Name",
        salutation="Salutation",
        mobile="Mobile Phone",
        work="Business Phone",
        home="Home Phone",
        country="Address 1: Country/Region",
        record_id="(Do Not Modify) Contact",
        updated="(Do Not Modify) Modified On",
        updated_format="%m/%d/%Y %I:%M %p",
        dnc="Do not allow Phone Calls",
        dnc_yes="Do Not Allow",
        dnc_no="Allow",
        encoding="utf-8-sig",
    ),
    "pipedrive": Layout(
        "pipedrive",
        [
            "Person - ID",
            "Person - Name",
            "Person - First name",
            "Person - Last name",
            "Person - Phone - Work",
            "Person - Phone - Home",
            "Person - Phone - Mobile",
            "Person - Phone - Other",
            "Person - Email - Work",
            "Person - Organization",
            "Person - Labels",
            "Person - Owner",
            "Person - Country of Postal address",
        ],
        first="Person - First name",
        last="Person - Last name",
        mobile="Person - Phone - Mobile",
        work="Person - Phone - Work",
        home="Person - Phone - Home",
        country="Person - Country of Postal address",
        record_id="Person - ID",
    ),
    "google_contacts": Layout(
        "google_contacts",
        [
            "First Name",
            "Middle Name",
            "Last Name",
            "Name Prefix",
            "Name Suffix",
            "Nickname",
            "Labels",
            "E-mail 1 - Label",
            "E-mail 1 - Value",
            "Phone 1 - Label",
            "Phone 1 - Value",
            "Phone 2 - Label",
            "Phone 2 - Value",
            "Address 1 - Country",
        ],
        first="First Name",
        last="Last Name",
        salutation="Name Prefix",
        mobile="Phone 2 - Value",
        work="Phone 1 - Value",
        country="Address 1 - Country",
        labels=("Phone 1 - Label", "Phone 2 - Label"),
        encoding="utf-8-sig",
    ),
    "generic": Layout(
        "generic",
        [
            "ID",
            "Salutation",
            "First Name",
            "Last Name",
            "Mobile",
            "Phone",
            "Home Phone",
            "Country",
            "Do Not Call",
            "Email",
        ],
        first="First Name",
        last="Last Name",
        salutation="Salutation",
        mobile="Mobile",
        work="Phone",
        home="Home Phone",
        country="Country",
        dnc="Do Not Call",
        dnc_yes="yes",
        dnc_no="no",
    ),
    "outlook": Layout(
        "outlook",
        [
            "Title",
            "First Name",
            "Middle Name",
            "Last Name",
            "Suffix",
            "Company",
            "Business Phone",
            "Business Phone 2",
            "Home Phone",
            "Home Phone 2",
            "Mobile Phone",
            "Other Phone",
            "Primary Phone",
            "Business Country/Region",
            "Home Country/Region",
            "E-mail Address",
        ],
        first="First Name",
        last="Last Name",
        salutation="Title",
        mobile="Mobile Phone",
        work="Business Phone",
        home="Home Phone",
        country="Business Country/Region",
    ),
}


@dataclass
class Outcome:
    contacts: dict[str, tuple[str, str]] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)


def write(layout: Layout, path: Path, *, valid: int = 300, seed: int = 3) -> Outcome:
    rng = random.Random(seed)
    used: set[str] = set()
    outcome = Outcome()
    rows: list[dict[str, str]] = []
    firsts = ["Ana", "José", "Zoë", "Søren", "Amélie", "Chidi", "Ngọc", ""]
    lasts = ["García", "Müller", "O'Brien", "Nguyễn", "Dvořák", "Smith", "Lee"]

    def person(i: int) -> dict[str, str]:
        row = dict.fromkeys(layout.header, "")
        first, last = rng.choice(firsts), rng.choice(lasts)
        row[layout.first], row[layout.last] = first, last
        if layout.salutation:
            row[layout.salutation] = rng.choice(["Mr.", "Ms.", "Dr.", ""])
        if layout.record_id:
            row[layout.record_id] = f"rec-{i:06d}"
        if layout.updated:
            row[layout.updated] = f"2024-02-{1 + i % 27:02d}T10:00:00"
        if layout.dnc:
            row[layout.dnc] = layout.dnc_no
        return row

    def number() -> tuple[str, str, str]:
        kind = rng.random()
        if kind < 0.6:
            key, digits = _us(rng, used)
            return key, _us_written(rng, digits), rng.choice(["US", "United States", "USA"])
        if kind < 0.8:
            return _gb(rng, used)
        return _de(rng, used)

    for i in range(valid):
        row = person(i)
        key, written, country = number()
        row[layout.country] = country
        if rng.random() < 0.5:
            row[layout.mobile] = written
            if rng.random() < 0.4:  # a valid work number too: the mobile must win
                other_key, other, _ = number()
                used.discard(other_key)
                row[layout.work] = other if country == "US" else ""
        else:
            row[rng.choice([c for c in (layout.work, layout.home) if c])] = written
            if layout.mobile and rng.random() < 0.3:
                row[layout.mobile] = "n/a"
        if layout.labels:
            row[layout.labels[0]] = "Work" if row[layout.work] else ""
            row[layout.labels[1]] = "* Mobile" if row[layout.mobile] else ""
        rows.append(row)
        outcome.contacts[key] = (row[layout.first], row[layout.last])

    if layout.labels:  # two numbers in one cell: the first valid one is taken
        for i in range(10):
            row = person(valid + i)
            key, written, country = number()
            second_key, second, _ = number()
            used.discard(second_key)
            row[layout.country] = country
            row[layout.mobile] = f"junk ::: {written} ::: {second if country == 'US' else 'x'}"
            row[layout.labels[1]] = "Mobile ::: Mobile ::: Mobile"
            rows.append(row)
            outcome.contacts[key] = (row[layout.first], row[layout.last])

    for key in sorted(outcome.contacts)[:10]:  # the same number later, under another name
        row = person(90_000 + len(rows))
        row[layout.first], row[layout.last] = "Later", "Duplicate"
        row[layout.mobile] = key
        if layout.labels:
            row[layout.labels[1]] = "Mobile"
        if layout.updated:
            row[layout.updated] = "2023-12-01T10:00:00"
        rows.append(row)
        outcome.reasons["duplicate_in_source"] += 1

    for junk, reason in (
        ("", "phone_missing"),
        ("12345", "phone_invalid"),
        ("4.41E+11", "phone_mangled"),
    ):
        for _ in range(5):
            row = person(len(rows))
            row[layout.mobile], row[layout.country] = junk, "US"
            rows.append(row)
            outcome.reasons[reason] += 1
    for _ in range(4):
        row = person(len(rows))
        row[layout.first] = row[layout.last] = ""
        row[layout.mobile] = "+1 415 201 9988"
        rows.append(row)
        outcome.reasons["name_missing"] += 1
    if layout.dnc:
        for _ in range(6):
            row = person(len(rows))
            row[layout.mobile], row[layout.dnc] = "+1 415 201 7766", layout.dnc_yes
            rows.append(row)
            outcome.reasons["skip_when"] += 1

    for row in rows:
        if layout.updated and row[layout.updated]:
            from datetime import datetime

            moment = datetime.fromisoformat(row[layout.updated])
            row[layout.updated] = moment.strftime(layout.updated_format)
    with path.open("w", encoding=layout.encoding, newline="") as handle:
        writer = csv.DictWriter(handle, layout.header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return outcome
