"""The contacts of one run, kept on disk until every row is read, and deduplicated there.

A number's most recently updated row must win before anything is sent, so a run cannot send
as it reads. Holding the run's contacts in memory would grow with the export; SQLite's private
temporary database (opened with an empty name: a file in the temporary folder that SQLite
unlinks at once, so nothing of it outlives the process, even after kill -9) keeps memory flat
whatever the size. Rows are written in batches; a window function picks one row per number.

A row a ``removed_when`` rule matched (its record was removed from the CRM) is kept apart, with
its record id: it says its numbers are gone, and it withdraws the rows of its record read before
it in the run (an older export that still had the contact), which are neither sent nor hold a
number. Every other row holds its number (``live`` and the lists beside it).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

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
        FROM live WHERE key NOT IN (SELECT key FROM flagged)
    )
"""


class Absent(NamedTuple):
    """A number delivered before that no row of a snapshot has."""

    key: str
    kore_id: str | None
    deletable: bool
    record_id: str | None
    """The record id it was delivered from; None when not known."""
    unreadable_row: int | None
    """The first row of the run whose number could not be read and that carries that record
    id: the contact may still be in the CRM, on that row."""


class Staging:
    def __init__(self) -> None:
        self._db = sqlite3.connect("")
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            f"CREATE TABLE staged (ordinal INTEGER PRIMARY KEY, {_COLUMNS});"
            "CREATE TABLE flagged (key TEXT PRIMARY KEY, source TEXT, row_no INTEGER);"
            "CREATE TABLE seen (key TEXT PRIMARY KEY);"
            "CREATE TABLE skipped (ordinal INTEGER PRIMARY KEY, key TEXT, unit TEXT, line INTEGER,"
            " cells TEXT, memo TEXT);"
            "CREATE INDEX skipped_key ON skipped (key);"
            "CREATE TABLE outcomes (row_hash TEXT PRIMARY KEY, outcome TEXT, key TEXT, memo TEXT);"
            "CREATE TABLE known (key TEXT PRIMARY KEY, kore_id TEXT, deletable INTEGER,"
            " record_id TEXT);"
            "CREATE TABLE unreadable (record_id TEXT, row_no INTEGER, shifted INTEGER);"
            "CREATE INDEX unreadable_record ON unreadable (record_id);"
            "CREATE TABLE planned (ordinal INTEGER PRIMARY KEY, action TEXT, kore_id TEXT);"
            "CREATE TABLE doomed (key TEXT PRIMARY KEY, kore_id TEXT);"
            "CREATE TABLE sent (key TEXT PRIMARY KEY, ordinal INTEGER UNIQUE);"
            "CREATE TABLE removed (ordinal INTEGER, key TEXT, record_id TEXT, source TEXT,"
            " row_no INTEGER);"
            "CREATE INDEX removed_record ON removed (record_id, ordinal);"
            "CREATE INDEX removed_key ON removed (key);"
            # the staged rows that no later row of the run marks removed by their record id
            "CREATE VIEW live AS SELECT * FROM staged AS s WHERE s.record_id = '' OR NOT EXISTS"
            " (SELECT 1 FROM removed AS r"
            "  WHERE r.record_id = s.record_id AND r.ordinal > s.ordinal);"
        )
        self._pending: list[tuple[object, ...]] = []
        self._skipped: list[tuple[object, ...]] = []
        self._unreadable: list[tuple[str, int, bool]] = []
        self._removed: list[tuple[int, str | None, str, str, int]] = []
        self._outcomes: list[tuple[str, str, str | None, str]] = []

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
        if self._unreadable:
            self._db.executemany("INSERT INTO unreadable VALUES (?, ?, ?)", self._unreadable)
            self._unreadable.clear()
        if self._removed:
            self._db.executemany("INSERT INTO removed VALUES (?, ?, ?, ?, ?)", self._removed)
            self._removed.clear()
        if self._skipped:
            self._db.executemany("INSERT INTO skipped VALUES (?, ?, ?, ?, ?, ?)", self._skipped)
            self._skipped.clear()
        if self._outcomes:
            self._db.executemany(
                "INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?)", self._outcomes
            )
            self._outcomes.clear()
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

    def remove(
        self, ordinal: int, keys: tuple[str, ...], record_id: str, source: str, row: int
    ) -> None:
        """A row whose record was removed from the CRM (``removed_when``), its place among the
        run's rows, its valid numbers (none, too) and its record id ("" for none)."""
        marked = [(ordinal, key, record_id, source, row) for key in keys or (None,)]
        self._removed.extend(marked)
        if len(self._removed) >= _FLUSH:
            self._flush()

    def skip(
        self,
        ordinal: int,
        key: str,
        unit: str,
        line: int,
        cells: list[str],
        lost: str | None = None,
    ) -> None:
        """A row unchanged since the last completed run: not mapped, its number known and held.
        ``lost``: it lost that number's duplicate contest then (what the report said of it,
        ``Rejection.remembered``); else it was delivered with exactly its values. Its cells are
        kept in case it must take its part after all (``contested``)."""
        self._skipped.append((ordinal, key, unit, line, "\x1f".join(cells), lost))
        if len(self._skipped) >= _FLUSH:
            self._flush()

    def contested(self) -> Iterator[tuple[int, str, int, list[str], bool]]:
        """Skipped rows that must be mapped after all, to take their part: those whose number
        another row of the run has, flags or marks removed (a removed row may withdraw one of
        its record); the losers of a contest whose delivered row this run does not have
        unchanged; and the rows of a number that several unchanged delivered rows share (the
        same row twice). ``(ordinal, unit, line, cells, lost)`` in the order read; they are
        skipped no more."""
        self._flush()
        rows = self._db.execute(
            """WITH delivered AS (
                   SELECT key, COUNT(*) AS rows FROM skipped WHERE memo IS NULL GROUP BY key
               )
               SELECT ordinal, unit, line, cells, memo IS NOT NULL FROM skipped
               WHERE key IN (SELECT key FROM staged) OR key IN (SELECT key FROM flagged)
                  OR key IN (SELECT key FROM removed)
                  OR COALESCE((SELECT rows FROM delivered AS d WHERE d.key = skipped.key), 0)
                     != 1
               ORDER BY ordinal"""
        ).fetchall()
        self._db.executemany("DELETE FROM skipped WHERE ordinal = ?", [(row[0],) for row in rows])
        for ordinal, unit, line, cells, lost in rows:
            yield int(ordinal), str(unit), int(line), str(cells).split("\x1f"), bool(lost)

    def losers(self) -> Iterator[tuple[int, str, str, int, str, int]]:
        """Skipped rows that lose their number's contest again, to the unchanged delivered row
        that won it before: ``(ordinal, memo, unit, line, winner's unit, winner's line)`` in
        the order read. Call after ``contested``."""
        self._flush()
        rows = self._db.execute(
            """SELECT lost.ordinal, lost.memo, lost.unit, lost.line, won.unit, won.line
               FROM skipped AS lost JOIN skipped AS won ON won.key = lost.key
               WHERE lost.memo IS NOT NULL AND won.memo IS NULL ORDER BY lost.ordinal"""
        )
        for ordinal, memo, unit, line, won_unit, won_line in rows:
            yield int(ordinal), str(memo), str(unit), int(line), str(won_unit), int(won_line)

    def outcome(self, row_hash: str, outcome: str, key: str | None, memo: str) -> None:
        """What became of a row this run mapped, for the state to know it by its hash next time
        (``rejected``, or ``lost`` a contest for ``key``; ``memo``: ``Rejection.remembered``)."""
        self._outcomes.append((row_hash, outcome, key, memo))
        if len(self._outcomes) >= _FLUSH:
            self._flush()

    def outcomes(self, chunk: int) -> Iterator[list[tuple[str, str, str | None, str]]]:
        """The outcomes recorded (``outcome``), ``chunk`` at a time."""
        self._flush()
        rows = self._db.execute("SELECT row_hash, outcome, key, memo FROM outcomes")
        while batch := rows.fetchmany(chunk):
            yield [(str(h), str(o), None if k is None else str(k), str(m)) for h, o, k, m in batch]

    def any_outcomes(self) -> bool:
        self._flush()
        return self._db.execute("SELECT 1 FROM outcomes LIMIT 1").fetchone() is not None

    def see(self, keys: tuple[str, ...]) -> None:
        """Numbers the export has on rows that are not sent (a row without a name): they are
        still in the CRM, so a snapshot does not count them as removed."""
        self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", [(k,) for k in keys])

    def unreadable(self, record_id: str, row: int, *, shifted: bool) -> None:
        """A row whose number could not be read, with the record id it carries ("" for none);
        ``shifted`` when its cells do not line up with the header, so the id cell may hold
        another column's value."""
        self._unreadable.append((record_id, row, shifted))
        if len(self._unreadable) >= _FLUSH:
            self._flush()

    def unreadable_rows(self) -> tuple[int, int]:
        """How many rows of the run could not be read, and how many of them carry no record id."""
        self._flush()
        rows, without_id = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(record_id = ''), 0) FROM unreadable"
        ).fetchone()
        return int(rows), int(without_id)

    def flagged(self) -> list[tuple[str, str, int]]:
        """Every number flagged in this run, with the first row that flagged it."""
        return list(self._db.execute("SELECT key, source, row_no FROM flagged ORDER BY key"))

    def suppressed(self) -> Iterator[tuple[Contact, str, int]]:
        """Every row whose number another row flagged: (row, flagging source, its row)."""
        self._flush()
        rows = self._db.execute(
            f"""SELECT {_prefixed("s")}, f.source, f.row_no
                FROM live AS s JOIN flagged AS f ON f.key = s.key
                WHERE s.ordinal NOT IN (SELECT ordinal FROM sent) ORDER BY s.ordinal"""
        )
        for row in rows:
            yield _contact(row), row[_WIDTH], row[_WIDTH + 1]

    def duplicates(self) -> Iterator[tuple[int, Contact, str, int, bool]]:
        """Every row that lost to another row with its number: (ordinal, row, winner's source,
        its row, whether the row was uploaded early), in the order read."""
        self._flush()
        rows = self._db.execute(
            _RANKED
            + f"""SELECT {_prefixed("lost")}, won.source, won.row_no, lost.ordinal,
                         lost.ordinal IN (SELECT ordinal FROM sent)
                  FROM ranked AS lost JOIN ranked AS won ON won.key = lost.key AND won.place = 1
                  WHERE lost.place > 1 ORDER BY lost.ordinal"""
        )
        for row in rows:
            yield row[_WIDTH + 2], _contact(row), row[_WIDTH], row[_WIDTH + 1], bool(row[-1])

    def withdrawn(self) -> Iterator[tuple[Contact, str, int]]:
        """Every row that a row read after it marks removed by its record id: (row, the removing
        row's source, its row). Neither sent nor holding its number."""
        self._flush()
        rows = self._db.execute(
            f"""SELECT {_prefixed("s")}, r.source, MIN(r.row_no) FROM staged AS s
                JOIN removed AS r ON r.record_id = s.record_id AND r.ordinal > s.ordinal
                WHERE s.record_id != '' AND s.ordinal NOT IN (SELECT ordinal FROM sent)
                GROUP BY s.ordinal ORDER BY s.ordinal"""
        )
        for row in rows:
            yield _contact(row), row[_WIDTH], row[_WIDTH + 1]

    def removals(self, chunk: int) -> Iterator[list[tuple[str, frozenset[str]]]]:
        """The numbers that rows marked removed, or rows they withdrew, have and that no other
        row of the run holds (as a contact, flagged, unchanged or without a name), each with
        the record ids of those rows ("" for a row without one), ``chunk`` at a time."""
        self._flush()
        if self._db.execute("SELECT 1 FROM removed LIMIT 1").fetchone() is None:
            return  # nothing marked removed: most runs
        rows = self._db.execute(
            """WITH marked (key, record_id) AS (
                   SELECT key, record_id FROM removed WHERE key IS NOT NULL
                   UNION
                   SELECT key, record_id FROM staged
                   WHERE ordinal NOT IN (SELECT ordinal FROM live)
               )
               SELECT key, group_concat(record_id, char(31)) FROM marked
               WHERE key NOT IN (SELECT key FROM live)
                 AND key NOT IN (SELECT key FROM flagged)
                 AND key NOT IN (SELECT key FROM seen)
                 AND key NOT IN (SELECT key FROM skipped)
               GROUP BY key ORDER BY key"""
        )
        while batch := rows.fetchmany(chunk):
            yield [(str(key), frozenset(str(ids).split("\x1f"))) for key, ids in batch]

    def winners(self, chunk: int) -> Iterator[list[tuple[int, Contact, int | None]]]:
        """One contact per number with its ordinal, in the order the rows were read, ``chunk``
        at a time; with the ordinal of the row of its number uploaded early, if one was."""
        self._flush()
        rows = self._db.execute(
            _RANKED
            + f"""SELECT r.ordinal, {_prefixed("r")}, e.ordinal FROM ranked AS r
                  LEFT JOIN sent AS e ON e.key = r.key WHERE r.place = 1 ORDER BY r.ordinal"""
        )
        while batch := rows.fetchmany(chunk):
            yield [(int(row[0]), _contact(row[1:]), row[-1]) for row in batch]

    # uploads while the run reads (``connector.sync.early``)

    def index_keys(self) -> None:
        """Index the contacts by number, for ``present``."""
        self._db.execute("CREATE INDEX IF NOT EXISTS staged_key ON staged (key)")

    def present(self, keys: list[str], *, before: int) -> set[str]:
        """Which of ``keys`` a contact read before the ordinal ``before`` has."""
        self._flush()
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            found.update(
                key
                for (key,) in self._db.execute(
                    f"SELECT DISTINCT key FROM staged WHERE ordinal < ? AND key IN "
                    f"({', '.join('?' * len(part))})",
                    (before, *part),
                )
            )
        return found

    def mark_sent(self, rows: list[tuple[str, int]]) -> None:
        """``(key, ordinal)`` of contacts uploaded early."""
        self._db.executemany("INSERT INTO sent VALUES (?, ?)", rows)

    def contacts_at(self, ordinals: list[int]) -> dict[int, Contact]:
        """The contacts read at these ordinals."""
        self._flush()
        found: dict[int, Contact] = {}
        for start in range(0, len(ordinals), 500):
            part = ordinals[start : start + 500]
            rows = self._db.execute(
                f"SELECT ordinal, {_COLUMNS} FROM staged WHERE ordinal IN "
                f"({', '.join('?' * len(part))})",
                part,
            )
            found.update((int(row[0]), _contact(row[1:])) for row in rows)
        return found

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

    def know(self, known: Iterable[list[tuple[str, str | None, bool, str | None]]]) -> None:
        """The numbers delivered before, ``(key, kore_id, deletable, record_id)`` in chunks:
        what a snapshot is compared with."""
        self._flush()
        for rows in known:
            self._db.executemany("INSERT OR IGNORE INTO known VALUES (?, ?, ?, ?)", rows)

    def stray(self) -> int:
        """Shifted unreadable rows whose id cell is no delivered number's record id: that cell
        may hold another column's value, so the row could be any contact's. Call after
        ``know``."""
        self._flush()
        (count,) = self._db.execute(
            """SELECT COUNT(*) FROM unreadable
               WHERE shifted AND record_id != ''
                 AND record_id NOT IN (SELECT record_id FROM known WHERE record_id IS NOT NULL)"""
        ).fetchone()
        return int(count)

    def absent(self) -> list[Absent]:
        """Of the numbers delivered before (see ``know``), those no row of this run has: a
        snapshot's removed contacts, each with the unreadable row that carries its record id."""
        self._flush()
        return [
            Absent(
                str(key),
                None if kore_id is None else str(kore_id),
                bool(deletable),
                None if record_id is None else str(record_id),
                None if row_no is None else int(row_no),
            )
            for key, kore_id, deletable, record_id, row_no in self._db.execute(
                """SELECT k.key, k.kore_id, k.deletable, k.record_id, u.row_no
                   FROM known AS k
                   LEFT JOIN (
                       SELECT record_id, MIN(row_no) AS row_no FROM unreadable
                       WHERE record_id != '' GROUP BY record_id
                   ) AS u ON u.record_id = k.record_id
                   WHERE k.key NOT IN (SELECT key FROM live)
                     AND k.key NOT IN (SELECT key FROM flagged)
                     AND k.key NOT IN (SELECT key FROM seen)
                     AND k.key NOT IN (SELECT key FROM skipped)
                   ORDER BY k.key"""
            )
        ]


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{name.strip()}" for name in _COLUMNS.split(","))


def _contact(row: Sequence[Any]) -> Contact:
    """A contact from a row of ``staged`` as ``_COLUMNS`` orders it (``updated`` is not kept):
    SQLite gives back the types it was given."""
    key, first, last, salutation, national, code, extension, source, row_no, record_id = row[:10]
    return Contact(
        key,
        first,
        last,
        salutation,
        PhoneKey(key, national, code, extension),
        source,
        row_no,
        record_id,
        None,
        bool(row[10]),
        False,
        (row[12] or "") if len(row) > 12 else "",
    )
