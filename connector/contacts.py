"""The domain's values: a contact ready for Kore, its phone key, a rejected row. No I/O, and
nothing heavy to import: the state, the report and the command line use these without loading
the phone library."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
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


_UNSAFE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)
_BLANKS = re.compile(r"\s+")


def safe_name(text: str) -> tuple[str, bool]:
    """A name fit to send and to show: control characters (NUL, ESC, BEL…), bidirectional
    overrides and invisible characters removed, and every run of whitespace (tabs and line
    breaks too) made one space, in Unicode's composed form (NFC: a Vietnamese cp1258 export
    decodes to a letter and its combining accents; Kore and people see one letter). Returns the
    name and whether anything but whitespace went."""
    text = unicodedata.normalize("NFC", text)
    kept = _UNSAFE.sub("", text)
    return _BLANKS.sub(" ", kept).strip(), len(kept) != len(text)


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
    cleaned: bool = False
    """Whether control, bidirectional or invisible characters were removed from its names."""
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

    def hashed(self, row_hash: str) -> Contact:
        """This contact with the hash of its row (``dataclasses.replace`` costs ten times as
        much, and a run makes one per row)."""
        return Contact(
            self.key,
            self.first_name,
            self.last_name,
            self.salutation,
            self.phone,
            self.source,
            self.row,
            self.record_id,
            self.updated_at,
            self.dnc_known,
            self.cleaned,
            row_hash,
        )


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

    def remembered(self) -> str:
        """The rejection as JSON, without its source and row (``recalled`` reads it back): what
        the state keeps of a row that the same row in a later export need not be mapped for."""
        kept: dict[str, object] = {
            "reason": self.reason,
            "detail": self.detail,
            "record_id": self.record_id,
        }
        kept |= {"values": self.values, "subject": self.subject, "keys": list(self.keys)}
        return json.dumps(kept, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def recalled(cls, text: str, *, source: str, row: int) -> Rejection:
        """The rejection ``remembered`` wrote, for the row ``row`` of ``source``. Raises
        ``ValueError`` (``json.JSONDecodeError``, ``KeyError``) for text it did not write."""
        kept = json.loads(text)
        return cls(
            str(kept["reason"]),
            str(kept["detail"]),
            source,
            row,
            str(kept["record_id"]),
            {str(k): str(v) for k, v in kept["values"].items()},
            str(kept["subject"]),
            tuple(str(k) for k in kept["keys"]),
        )
