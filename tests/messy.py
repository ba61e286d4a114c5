"""A messy Salesforce Contact export (API field names) whose right answer is known in advance.

The expected E.164 numbers are built from the digits the generator chose, not by the
connector's own phone code, so the end-to-end tests check the connector against the truth.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HEADER = [
    "Id",
    "IsDeleted",
    "AccountId",
    "LastName",
    "FirstName",
    "Salutation",
    "Name",
    "MailingStreet",
    "MailingCity",
    "MailingCountry",
    "Phone",
    "Fax",
    "MobilePhone",
    "HomePhone",
    "OtherPhone",
    "Email",
    "DoNotCall",
    "CreatedDate",
    "LastModifiedDate",
]
FIRST = [
    "Patricia",
    "Ashley",
    "José",
    "Zoë",
    "Søren",
    "Łukasz",
    "Amélie",
    "Chidi",
    "Priya",
    "Wei",
    "Siobhán",
    "Jürgen",
    "Ana",
    "Yuki",
    "Björk",
    "Noémie",
    "Ngọc",
    "Ravi",
    "Fatima",
    "",
]
LAST = [
    "Ryan",
    "Brock",
    "García",
    "Müller",
    "Nguyễn",
    "Okafor",
    "O'Brien",
    "Lefèvre",
    "Sharma",
    "Andersson",
    "Kowalski",
    "Dvořák",
    "Silva",
    "Tanaka",
    "Smith",
    "Jones",
    "",
]
SALUTATIONS = {"Mr.": "Mr", "Mrs.": "Mrs", "Ms.": "Ms", "Dr.": "Dr", "": ""}
AREAS = ["201", "212", "213", "305", "312", "404", "415", "617", "646", "702", "718", "917"]


@dataclass
class Expected:
    """What the sandbox must hold (key -> first, last, salutation) and what must be rejected."""

    contacts: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    rows: int = 0


def _encodable(name: str) -> bool:
    try:
        name.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _us(rng: random.Random, used: set[str]) -> tuple[str, str]:
    while True:
        area = rng.choice(AREAS)
        exchange = str(rng.randint(200, 999))
        if exchange.endswith("11") or exchange == "555":
            continue
        line = f"{rng.randint(0, 9999):04d}"
        key = f"+1{area}{exchange}{line}"
        if key not in used:
            used.add(key)
            return key, area + exchange + line


def _us_written(rng: random.Random, digits: str) -> str:
    a, e, n = digits[:3], digits[3:6], digits[6:]
    return rng.choice(
        [
            f"({a}) {e}-{n}",
            f"{a}-{e}-{n}",
            f"{a}.{e}.{n}",
            f"+1 {a} {e} {n}",
            f"1-{a}-{e}-{n}",
            f"{a}{e}{n}",
            f"{a}{e}{n}.0",
            f" {a} {e} {n} ",
        ]
    )


def _gb(rng: random.Random, used: set[str]) -> tuple[str, str, str]:
    while True:
        rest = f"{rng.randint(0, 999999):06d}"
        key = f"+447912{rest}"
        if key not in used:
            used.add(key)
            written, country = rng.choice(
                [
                    (f"07912 {rest}", "United Kingdom"),
                    (f"07912{rest}", "GB"),
                    (f"+44 7912 {rest}", "GBR"),
                    (f"447912{rest}", "US"),
                    (f"7912 {rest}", "UK"),
                ]
            )
            return key, written, country


def _de(rng: random.Random, used: set[str]) -> tuple[str, str, str]:
    while True:
        rest = f"{rng.randint(0, 99999999):08d}"
        key = f"+49151{rest}"
        if key not in used:
            used.add(key)
            written, country = rng.choice(
                [
                    (f"0151 {rest}", "Germany"),
                    (f"+49 151 {rest}", "US"),
                    (f"0151-{rest}", "DEU"),
                    (f"0151{rest}", "de"),
                ]
            )
            return key, written, country


def write_export(path: Path, *, valid: int = 2000, seed: int = 7, cp1252: bool = False) -> Expected:
    """Write ``valid`` good contacts plus a known mix of bad rows; return what must happen.

    ``cp1252`` keeps to names that Windows-1252 can encode, for comparing encodings.
    """
    rng = random.Random(seed)
    firsts, lasts = FIRST, LAST
    if cp1252:
        firsts = [n for n in FIRST if _encodable(n)]
        lasts = [n for n in LAST if _encodable(n)]
    expected = Expected()
    used: set[str] = set()
    rows: list[dict[str, str]] = []
    serial = 0

    def base(first: str, last: str, salutation: str, country: str, modified: str) -> dict[str, str]:
        nonlocal serial
        serial += 1
        return {
            "Id": f"003Ec{serial:013d}",
            "IsDeleted": "",
            "AccountId": "",
            "LastName": last,
            "FirstName": first,
            "Salutation": salutation,
            "Name": f"{first} {last}".strip(),
            "MailingStreet": "1 Main St",
            "MailingCity": "Springfield",
            "MailingCountry": country,
            "Phone": "",
            "Fax": "",
            "MobilePhone": "",
            "HomePhone": "",
            "OtherPhone": "",
            "Email": f"person{serial}@example.com",
            "DoNotCall": rng.choice(["false", ""]),
            "CreatedDate": "2024-01-23T02:21:49.000+0000",
            "LastModifiedDate": modified,
        }

    def name() -> tuple[str, str, str]:
        first, last = rng.choice(firsts), rng.choice(lasts)
        if not first and not last:
            last = "Doe"
        return first, last, rng.choice(list(SALUTATIONS))

    for i in range(valid):
        first, last, salutation = name()
        kind = rng.random()
        extension = ""
        if kind < 0.7:
            key, digits = _us(rng, used)
            written, country = (
                _us_written(rng, digits),
                rng.choice(["US", "USA", "United States", ""]),
            )
            if rng.random() < 0.1 and not written.endswith(".0"):
                extension = str(rng.randint(1, 9999))
                written += rng.choice([f" x{extension}", f" ext. {extension}", f";ext={extension}"])
        elif kind < 0.85:
            key, written, country = _gb(rng, used)
        else:
            key, written, country = _de(rng, used)
        row = base(first, last, salutation, country, f"2024-02-{1 + i % 28:02d}T10:00:00.000+0000")
        column = rng.choice(["MobilePhone", "Phone", "HomePhone", "OtherPhone"])
        row[column] = written
        if column != "MobilePhone" and rng.random() < 0.3:
            row["MobilePhone"] = "n/a"  # invalid mobile: the next valid column wins
        rows.append(row)
        expected.contacts[key] = (first, last, SALUTATIONS[salutation])
        if extension:
            expected.extensions[key] = extension

    # The same number again under another name: the most recently modified row wins.
    for key in rng.sample(sorted(expected.contacts), valid // 20):
        first, last, salutation = name()
        newer = rng.random() < 0.5
        modified = "2024-03-15T10:00:00.000+0000" if newer else "2023-12-01T10:00:00.000+0000"
        row = base(first, last, salutation, "", modified)
        row["MobilePhone"] = key
        rows.append(row)
        expected.reasons["duplicate_in_source"] += 1
        if newer:
            expected.contacts[key] = (first, last, SALUTATIONS[salutation])
            expected.extensions.pop(key, None)

    def bad(reason: str, count: int, phone: str, *, names: bool = True, dnc: str = "false") -> None:
        for _ in range(count):
            first, last, salutation = name() if names else ("", "", "")
            row = base(first, last, salutation, "US", "2024-02-01T10:00:00.000+0000")
            row["Phone"], row["DoNotCall"] = phone, dnc
            rows.append(row)
            expected.reasons[reason] += 1

    bad("phone_missing", 15, "")
    bad("phone_missing", 5, "n/a")  # a placeholder is no value at all
    bad("phone_missing", 5, "call me")  # a word is no number at all
    for junk in ["12345", "555-0100", "(000) 000-0000", "+1 415 555"]:
        bad("phone_invalid", 5, junk)
    bad("phone_mangled", 10, "4.15555E+09")
    bad("name_missing", 10, "+1 415 201 3344", names=False)
    bad("skip_when", 12, "+1 415 201 5566", dnc="true")

    rng.shuffle(rows)
    duplicate_rows = [r for r in rows if r["LastModifiedDate"].startswith(("2024-03", "2023-12"))]
    assert len(duplicate_rows) == valid // 20
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, HEADER)
        writer.writeheader()
        writer.writerows(rows)
        # A short row (trailing fields left out, as Outlook does: read as empty, so it has no
        # phone) and a row shifted by an unquoted comma (cells past the header: malformed).
        handle.write("003Ec9999999999901,,,Broken,Row\r\n")
        handle.write(
            "003Ec9999999999902,,,Shifted,Extra,Mr.,Shifted Extra,1 Main St,Springfield,"
            "US,+1 415 201 7788,,,,,,x@example.com,false,2024-01-01,2024-01-01,extra\r\n"
        )
    expected.reasons["phone_missing"] += 1
    expected.reasons["malformed_row"] += 1
    expected.rows = len(rows) + 2
    return expected
