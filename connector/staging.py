"""The contacts of one run, kept on disk until every row is read, and deduplicated there.

A number's most recently updated row must win before anything is sent, so a run cannot send
as it reads. Holding the run's contacts in memory would grow with the export; SQLite's private
temporary database (opened with an empty name: a file in the temporary folder that SQLite
unlinks at once, so nothing of it outlives the process, even after kill -9) keeps memory flat
whatever the size. Rows are written in batches; a window function picks one row per number.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator

from connector.contacts import Contact, PhoneKey
from connector.errors import ConnectorError

_FLUSH = 5000
_COLUMNS = (
    "key, first_name, last_name, salutation, national, country_code, extension, "
    "source, row_no, record_id, dnc_known, updated, row_hash"
)
_WIDTH = len(_COLUMNS.split(","))
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
            "CREATE TABLE seen (key TEXT PRIMARY KEY);"
            "CREATE TABLE skipped (ordinal INTEGER PRIMARY KEY, key TEXT, unit TEXT, line INTEGER,"
            " cells TEXT);"
            "CREATE TABLE known (key TEXT PRIMARY KEY, kore_id TEXT, deletable INTEGER);"
            "CREATE TABLE planned (ordinal INTEGER PRIMARY KEY, action TEXT, kore_id TEXT);"
            "CREATE TABLE doomed (key TEXT PRIMARY KEY, kore_id TEXT);"
        )
        self._pending: list[tuple[object, ...]] = []
        self._skipped: list[tuple[object, ...]] = []

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        """Close; a failure of the working file (a full temporary folder) becomes one line."""
        self.close()
        if isinstance(exc, sqlite3.Error):
            # SQLite's own order for its temporary files; only named here, never opened
            folder = os.environ.get("SQLITE_TMPDIR") or os.environ.get("TMPDIR") or "/var/tmp"  # noqa: S108
            raise ConnectorError(
                f"the run's working file in {folder}: {exc}",
                hint="free space there, or set SQLITE_TMPDIR to a folder with room; the next "
                "run reads this run's files again",
            ) from None

    def add(self, contact: Contact, ordinal: int | None = None) -> None:
        """A mapped contact, with its place among the run's rows (by default, after every row
        so far)."""
        p = contact.phone
        updated = contact.updated_at.timestamp() if contact.updated_at else None
        self._pending.append(
            (
                ordinal,
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
                contact.row_hash,
            )
        )
        if len(self._pending) >= _FLUSH:
            self._flush()

    def _flush(self) -> None:
        if self._skipped:
            self._db.executemany("INSERT INTO skipped VALUES (?, ?, ?, ?, ?)", self._skipped)
            self._db.executemany(
                "INSERT OR IGNORE INTO seen VALUES (?)", [(row[1],) for row in self._skipped]
            )
            self._skipped.clear()
        if self._pending:
            self._db.executemany(
                f"INSERT INTO staged (ordinal, {_COLUMNS}) VALUES ({', '.join('?' * (_WIDTH + 1))})",
                self._pending,
            )
            self._pending.clear()

    def flag(self, keys: tuple[str, ...], source: str, row: int) -> None:
        """Numbers a row flagged do-not-call: no row of this run sends them."""
        self._db.executemany(
            "INSERT OR IGNORE INTO flagged VALUES (?, ?, ?)", [(k, source, row) for k in keys]
        )

    def skip(self, ordinal: int, key: str, unit: str, line: int, cells: list[str]) -> None:
        """A row unchanged since the last completed run: not mapped, its number known. Its cells
        are kept in case another row of the run has its number or flags it."""
        self._skipped.append((ordinal, key, unit, line, "\x1f".join(cells)))
        if len(self._skipped) >= _FLUSH:
            self._flush()

    def contested(self) -> Iterator[tuple[int, str, int, list[str]]]:
        """Skipped rows whose number another row of the run has, or flags: they must be mapped
        after all, to take their part. ``(ordinal, unit, line, cells)``."""
        self._flush()
        rows = self._db.execute(
            """SELECT ordinal, unit, line, cells FROM skipped
               WHERE key IN (SELECT key FROM staged) OR key IN (SELECT key FROM flagged)
               ORDER BY ordinal"""
        )
        for ordinal, unit, line, cells in rows.fetchall():
            yield int(ordinal), str(unit), int(line), str(cells).split("\x1f")

    def see(self, keys: tuple[str, ...]) -> None:
        """Numbers the export has on rows that are not sent (a row without a name): they are
        still in the CRM, so a snapshot does not count them as removed."""
        self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", [(k,) for k in keys])

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
            yield _contact(row), row[_WIDTH], row[_WIDTH + 1]

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
            yield _contact(row), row[_WIDTH], row[_WIDTH + 1]

    def winners(self, chunk: int) -> Iterator[list[tuple[int, Contact]]]:
        """One contact per number with its ordinal, in the order the rows were read, ``chunk``
        at a time."""
        self._flush()
        rows = self._db.execute(
            _RANKED + f"SELECT ordinal, {_COLUMNS} FROM ranked WHERE place = 1 ORDER BY ordinal"
        )
        while batch := rows.fetchmany(chunk):
            yield [(int(row[0]), _contact(row[1:])) for row in batch]

    # the plan: what the run will do, decided before anything is sent

    def plan(self, rows: list[tuple[int, str, str | None]]) -> None:
        """``(ordinal, action, kore_id)`` for winners to create or update."""
        self._db.executemany("INSERT INTO planned VALUES (?, ?, ?)", rows)

    def count(self, action: str) -> int:
        """How many contacts are planned for ``action``."""
        return int(
            self._db.execute("SELECT COUNT(*) FROM planned WHERE action = ?", (action,)).fetchone()[
                0
            ]
        )

    def planned(self, action: str, chunk: int) -> Iterator[list[tuple[Contact, str]]]:
        """The contacts planned for ``action`` in the order they were read, with their Kore id
        (empty for creates), ``chunk`` at a time."""
        rows = self._db.execute(
            f"""SELECT {_prefixed("s")}, p.kore_id FROM planned AS p
                JOIN staged AS s ON s.ordinal = p.ordinal
                WHERE p.action = ? ORDER BY p.ordinal""",
            (action,),
        )
        while batch := rows.fetchmany(chunk):
            yield [(_contact(row), str(row[_WIDTH] or "")) for row in batch]

    def doom(self, rows: list[tuple[str, str | None]]) -> None:
        """``(key, kore_id)`` of contacts to delete from Kore."""
        self._db.executemany("INSERT OR IGNORE INTO doomed VALUES (?, ?)", rows)

    def doomed(self) -> list[tuple[str, str | None]]:
        return list(self._db.execute("SELECT key, kore_id FROM doomed ORDER BY key"))

    def absent(
        self, known: Iterable[list[tuple[str, str | None, bool]]]
    ) -> list[tuple[str, str | None, bool]]:
        """Of the numbers delivered before (``(key, kore_id, deletable)`` in chunks), those no
        row of this run has: a snapshot's removed contacts."""
        self._flush()
        for rows in known:
            self._db.executemany("INSERT OR IGNORE INTO known VALUES (?, ?, ?)", rows)
        return [
            (str(key), None if kore_id is None else str(kore_id), bool(deletable))
            for key, kore_id, deletable in self._db.execute(
                """SELECT key, kore_id, deletable FROM known
                   WHERE key NOT IN (SELECT key FROM staged)
                     AND key NOT IN (SELECT key FROM flagged)
                     AND key NOT IN (SELECT key FROM seen)
                   ORDER BY key"""
            )
        ]


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{name.strip()}" for name in _COLUMNS.split(","))


def _contact(row: tuple[object, ...]) -> Contact:
    key, first, last, salutation, national, code, extension, source, row_no, record_id, known = row[
        :11
    ]  # the row's first eleven columns, then ``updated`` (not kept) and ``row_hash``
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
        row_hash=str(row[12] or "") if len(row) > 12 else "",
    )
