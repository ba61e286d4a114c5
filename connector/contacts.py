"""The domain's values: a contact ready for Kore, its phone key, a rejected row. No I/O, and
nothing heavy to import: the state, the report and the command line use these without loading
the phone library."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

KORE_COLUMNS = (
    "firstName",
    "lastName",
    "salutation",
    "cellPhoneNumber",
    "cellPhoneCountryCode",
    "cellPhoneExtension",
)


@dataclass(frozen=True, slots=True)
class PhoneKey:
    """A valid number: ``key`` is E.164; the other fields are the Kore CSV columns."""

    key: str
    national: str
    country_code: str
    extension: str


@dataclass(frozen=True, slots=True)
class Contact:
    """A row ready for Kore, with where it came from."""

    key: str
    first_name: str
    last_name: str
    salutation: str
    phone: PhoneKey
    source: str
    row: int
    record_id: str
    updated_at: datetime | None
    dnc_known: bool = True
    """Whether the row's export says whether to call it (has its do-not-call column)."""
    row_hash: str = ""
    """The hash of the source row (its cells and the mapping that read them), when read from
    one: the state keeps it beside the number, so the same row need not be mapped again."""

    def csv_row(self) -> tuple[str, str, str, str, str, str]:
        p = self.phone
        return (
            self.first_name,
            self.last_name,
            self.salutation,
            p.national,
            p.country_code,
            p.extension,
        )

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.csv_row())


def fingerprint(row: Sequence[str]) -> str:
    return hashlib.sha256("\x1f".join(row).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that will not be sent: a reason code, a human detail and the values at fault."""

    reason: str
    detail: str
    source: str
    row: int
    record_id: str
    values: dict[str, str] = field(default_factory=dict)
    subject: str = ""
    """The one value at fault, where there is one (the country of ``country_unknown``)."""
    keys: tuple[str, ...] = ()
    """The valid numbers of the row, where they were read: those a ``skip_when`` rule flagged
    (no row sends them), or those of a row without a name (still in the CRM)."""
