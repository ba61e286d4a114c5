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
    "source, row_no, record_id, dnc_known, updated"
)
_RANKED = f"""
    WITH ranked AS (
        SELECT ordinal, {_COLUMNS},
               ROW_NUMBER() OVER (
                   PARTITION BY key ORDER BY updated IS NULL, updated DESC, ordinal
               ) AS place
        FROM staged WHERE key NOT IN (SELECT key FROM flagged)
    )
"""


class Staging:
    def __init__(self) -> None:
        self._db = sqlite3.connect("")
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            f"CREATE TABLE staged (ordinal INTEGER PRIMARY KEY, {_COLUMNS});"
            "CREATE TABLE flagged (key TEXT PRIMARY KEY, source TEXT, row_no INTEGER);"
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
                contact.dnc_known,
                updated,
            )
        )
        if len(self._pending) >= _FLUSH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._db.executemany(
                f"INSERT INTO staged ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                self._pending,
            )
            self._pending.clear()

    def flag(self, keys: tuple[str, ...], source: str, row: int) -> None:
        """Numbers a row flagged do-not-call: no row of this run sends them."""
        self._db.executemany(
            "INSERT OR IGNORE INTO flagged VALUES (?, ?, ?)", [(k, source, row) for k in keys]
        )

    def flagged(self) -> list[tuple[str, str, int]]:
        """Every number flagged in this run, with the first row that flagged it."""
        return list(self._db.execute("SELECT key, source, row_no FROM flagged ORDER BY key"))

    def suppressed(self) -> Iterator[tuple[Contact, str, int]]:
        """Every row whose number another row flagged: (row, flagging source, its row)."""
        self._flush()
        rows = self._db.execute(
            f"""SELECT {_prefixed("s")}, f.source, f.row_no
                FROM staged AS s JOIN flagged AS f ON f.key = s.key ORDER BY s.ordinal"""
        )
        for row in rows:
            yield _contact(row[:11]), row[12], row[13]

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
            yield _contact(row[:11]), row[12], row[13]

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
    key, first, last, salutation, national, code, extension, source, row_no, record_id, known = row[
        :11
    ]
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
        dnc_known=bool(known),
    )
