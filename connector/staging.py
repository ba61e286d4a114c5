"""The contacts of one run, kept on disk until every row is read, and deduplicated there.

A number's most recently updated row must win before anything is sent, so a run cannot send
as it reads. Holding the run's contacts in memory would grow with the export; SQLite's private
temporary database (opened with an empty name: a file in the temporary folder that SQLite
unlinks at once, so nothing of it outlives the process, even after kill -9) keeps memory flat
whatever the size. Rows are written in batches; a window function picks one row per number.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from connector.mapping import Contact
from connector.phones import PhoneKey

_FLUSH = 5000
_COLUMNS = (
    "key, first_name, last_name, salutation, national, country_code, extension, "
    "source, row_no, record_id, updated"
)
_RANKED = f"""
    WITH ranked AS (
        SELECT ordinal, {_COLUMNS},
               ROW_NUMBER() OVER (
                   PARTITION BY key ORDER BY updated IS NULL, updated DESC, ordinal
               ) AS place
        FROM staged
    )
"""


class Staging:
    def __init__(self) -> None:
        self._db = sqlite3.connect("")
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            f"CREATE TABLE staged (ordinal INTEGER PRIMARY KEY, {_COLUMNS});"
        )
        self._pending: list[tuple[object, ...]] = []

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def add(self, contact: Contact) -> None:
        p = contact.phone
        updated = contact.updated_at.timestamp() if contact.updated_at else None
        self._pending.append(
            (
                contact.key,
                contact.first_name,
                contact.last_name,
                contact.salutation,
                p.national,
                p.country_code,
                p.extension,
                contact.source,
                contact.row,
                contact.record_id,
                updated,
            )
        )
        if len(self._pending) >= _FLUSH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._db.executemany(
                f"INSERT INTO staged ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                self._pending,
            )
            self._pending.clear()

    def duplicates(self) -> Iterator[tuple[Contact, str, int]]:
        """Every row that lost to another row with its number: (row, winner's source, its row)."""
        self._flush()
        rows = self._db.execute(
            _RANKED
            + f"""SELECT {_prefixed("lost")}, won.source, won.row_no
                  FROM ranked AS lost JOIN ranked AS won ON won.key = lost.key AND won.place = 1
                  WHERE lost.place > 1 ORDER BY lost.ordinal"""
        )
        for row in rows:
            yield _contact(row[:10]), row[11], row[12]

    def winners(self, chunk: int) -> Iterator[list[Contact]]:
        """One contact per number, in the order the rows were read, ``chunk`` at a time."""
        self._flush()
        rows = self._db.execute(
            _RANKED + f"SELECT {_COLUMNS} FROM ranked WHERE place = 1 ORDER BY ordinal"
        )
        while batch := rows.fetchmany(chunk):
            yield [_contact(row) for row in batch]


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{name.strip()}" for name in _COLUMNS.split(","))


def _contact(row: tuple[object, ...]) -> Contact:
    key, first, last, salutation, national, code, extension, source, row_no, record_id = row[:10]
    return Contact(
        key=str(key),
        first_name=str(first),
        last_name=str(last),
        salutation=str(salutation),
        phone=PhoneKey(str(key), str(national), str(code), str(extension)),
        source=str(source),
        row=int(str(row_no)),
        record_id=str(record_id),
        updated_at=None,
    )
