"""What goes on the wire to Kore's bulk import: the six columns of a contact, and the file."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from io import StringIO
from typing import TYPE_CHECKING

from connector.contacts import KORE_COLUMNS, Contact

if TYPE_CHECKING:
    from connector.settings import KoreSettings


def kore_row(contact: Contact, settings: KoreSettings) -> tuple[str, ...]:
    """The six columns as uploaded: the tenant's defaults filled in, the number in the
    tenant's chosen form (national significant number by default, or E.164)."""
    first, last, salutation, number, code, extension = contact.csv_row()
    return (
        first,
        last,
        salutation or settings.default_salutation,
        contact.key if settings.phone_format == "international" else number,
        code,
        extension or settings.default_extension,
    )


def batch_csv(rows: Sequence[Sequence[str]]) -> bytes:
    """The six-column file Kore's bulk import takes, UTF-8 without a BOM."""
    buffer = StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(KORE_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")
