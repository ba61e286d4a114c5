"""The state store: one documented method per operation, short transactions, batched SQL.

Every method takes the tenant, so tenants never see each other's rows. SQLAlchemy errors are
turned into ``StateError`` here, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from connector.errors import StateError
from connector.mapping import Contact
from connector.phones import PhoneKey
from connector.state.tables import (
    batch_rows,
    batches,
    deliveries,
    processed_files,
    runs,
    source_cursors,
)

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Delivered:
    kore_id: str | None
    fingerprint: str


@dataclass(frozen=True)
class PendingBatch:
    id: int
    run_id: str
    attempts: int
    contacts: list[Contact]


@dataclass(frozen=True)
class RunRecord:
    id: str
    tenant: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    dry_run: bool
    counters: dict[str, Any]


def now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Store:
    """The connector's state database; the schema is created or upgraded on open."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
            self.label = parsed.render_as_string(hide_password=True)
            self.engine: Engine = create_engine(parsed, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise StateError(f"state_url is not usable: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._migrate()

    def _migrate(self) -> None:
        config = Config()
        config.set_main_option("script_location", str(files("connector.migrations")))
        with self._begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StateError(
                f"state database {self.label}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                hint="check state_url and that the database is running",
            ) from exc

    # runs

    def start_run(self, tenant: str, run_id: str, *, dry_run: bool) -> None:
        with self._begin() as conn:
            conn.execute(
                insert(runs).values(
                    id=run_id,
                    tenant=tenant,
                    started_at=now(),
                    status="running",
                    dry_run=dry_run,
                    counters="{}",
                )
            )

    def finish_run(self, run_id: str, *, status: str, counters: dict[str, Any]) -> None:
        with self._begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(
                    status=status,
                    finished_at=now(),
                    counters=json.dumps(counters, sort_keys=True),
                )
            )

    def last_run(self, tenant: str) -> RunRecord | None:
        with self._begin() as conn:
            row = conn.execute(
                select(runs)
                .where(runs.c.tenant == tenant, runs.c.dry_run.is_(False))
                .order_by(runs.c.started_at.desc(), runs.c.id.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return RunRecord(
            id=row.id,
            tenant=row.tenant,
            started_at=_aware(row.started_at) or now(),
            finished_at=_aware(row.finished_at),
            status=row.status,
            dry_run=row.dry_run,
            counters=json.loads(row.counters),
        )

    # delivered keys

    def delivered(self, tenant: str, keys: Iterable[str]) -> dict[str, Delivered]:
        """Which of ``keys`` were delivered before, in chunked ``IN`` queries."""
        found: dict[str, Delivered] = {}
        key_list = list(keys)
        with self._begin() as conn:
            for start in range(0, len(key_list), _CHUNK):
                chunk = key_list[start : start + _CHUNK]
                result = conn.execute(
                    select(
                        deliveries.c.phone_key, deliveries.c.kore_id, deliveries.c.fingerprint
                    ).where(deliveries.c.tenant == tenant, deliveries.c.phone_key.in_(chunk))
                )
                for key, kore_id, print_ in result:
                    found[key] = Delivered(kore_id, print_)
        return found

    def delivered_count(self, tenant: str) -> int:
        with self._begin() as conn:
            count = conn.execute(
                select(func.count()).select_from(deliveries).where(deliveries.c.tenant == tenant)
            ).scalar_one()
        return int(count)

    def record_updates(self, tenant: str, run_id: str, updated: Sequence[tuple[str, str]]) -> None:
        """New fingerprints for keys whose Kore contact was updated in place (one executemany)."""
        if not updated:
            return
        statement = (
            update(deliveries)
            .where(deliveries.c.tenant == bindparam("t"), deliveries.c.phone_key == bindparam("k"))
            .values(fingerprint=bindparam("f"), run_id=run_id, delivered_at=now())
        )
        with self._begin() as conn:
            conn.execute(
                statement, [{"t": tenant, "k": key, "f": print_} for key, print_ in updated]
            )

    # batches in flight

    def add_batch(self, tenant: str, run_id: str, contacts: Sequence[Contact]) -> int:
        """Record a batch as pending, before its upload: a crash after this costs a retry only."""
        with self._begin() as conn:
            inserted = conn.execute(
                insert(batches).values(
                    tenant=tenant,
                    run_id=run_id,
                    status="pending",
                    attempts=0,
                    created_at=now(),
                )
            ).inserted_primary_key
            assert inserted is not None
            batch_id = inserted[0]
            conn.execute(
                insert(batch_rows),
                [
                    {
                        "batch_id": batch_id,
                        "position": i,
                        "phone_key": c.key,
                        "first_name": c.first_name,
                        "last_name": c.last_name,
                        "salutation": c.salutation,
                        "number": c.phone.national,
                        "country_code": c.phone.country_code,
                        "extension": c.phone.extension,
                        "source": c.source,
                        "row_no": c.row,
                        "record_id": c.record_id,
                    }
                    for i, c in enumerate(contacts)
                ],
            )
        return int(batch_id)

    def note_attempt(self, batch_id: int) -> None:
        with self._begin() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id)
                .values(attempts=batches.c.attempts + 1)
            )

    def pending_batches(self, tenant: str) -> list[PendingBatch]:
        with self._begin() as conn:
            heads = conn.execute(
                select(batches.c.id, batches.c.run_id, batches.c.attempts)
                .where(batches.c.tenant == tenant, batches.c.status == "pending")
                .order_by(batches.c.id)
            ).all()
            found = []
            for head in heads:
                rows = conn.execute(
                    select(batch_rows)
                    .where(batch_rows.c.batch_id == head.id)
                    .order_by(batch_rows.c.position)
                ).all()
                found.append(
                    PendingBatch(
                        head.id,
                        head.run_id,
                        head.attempts,
                        [
                            Contact(
                                key=r.phone_key,
                                first_name=r.first_name,
                                last_name=r.last_name,
                                salutation=r.salutation,
                                phone=PhoneKey(r.phone_key, r.number, r.country_code, r.extension),
                                source=r.source,
                                row=r.row_no,
                                record_id=r.record_id,
                                updated_at=None,
                            )
                            for r in rows
                        ],
                    )
                )
        return found

    def pending_count(self, tenant: str) -> int:
        with self._begin() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(batch_rows)
                .join(batches)
                .where(batches.c.tenant == tenant, batches.c.status == "pending")
            ).scalar_one()
        return int(count)

    def settle_batch(
        self,
        tenant: str,
        batch_id: int,
        run_id: str,
        delivered: Sequence[tuple[str, str | None, str]],
    ) -> None:
        """Record ``(key, kore_id, fingerprint)`` as delivered and close the batch, atomically."""
        stamp = now()
        with self._begin() as conn:
            keys = [key for key, _, _ in delivered]
            for start in range(0, len(keys), _CHUNK):
                conn.execute(
                    delete(deliveries).where(
                        deliveries.c.tenant == tenant,
                        deliveries.c.phone_key.in_(keys[start : start + _CHUNK]),
                    )
                )
            if delivered:
                conn.execute(
                    insert(deliveries),
                    [
                        {
                            "tenant": tenant,
                            "phone_key": key,
                            "kore_id": kore_id,
                            "fingerprint": print_,
                            "run_id": run_id,
                            "delivered_at": stamp,
                        }
                        for key, kore_id, print_ in delivered
                    ],
                )
            conn.execute(delete(batch_rows).where(batch_rows.c.batch_id == batch_id))
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id)
                .values(status="settled", settled_at=stamp)
            )

    # processed files

    def processed_hashes(self, tenant: str) -> set[str]:
        with self._begin() as conn:
            result = conn.execute(
                select(processed_files.c.content_hash).where(processed_files.c.tenant == tenant)
            )
            return {h for (h,) in result}

    def mark_processed(self, tenant: str, done: Sequence[tuple[str, str, int]]) -> None:
        """Remember ``(content_hash, name, rows)`` so the file is not read again."""
        if not done:
            return
        with self._begin() as conn:
            hashes = [h for h, _, _ in done]
            conn.execute(
                delete(processed_files).where(
                    processed_files.c.tenant == tenant, processed_files.c.content_hash.in_(hashes)
                )
            )
            conn.execute(
                insert(processed_files),
                [
                    {
                        "tenant": tenant,
                        "content_hash": h,
                        "name": name,
                        "rows": rows,
                        "processed_at": now(),
                    }
                    for h, name, rows in done
                ],
            )

    # source cursors

    def cursor(self, tenant: str, source: str) -> str | None:
        """Where an incremental source stopped: an opaque string the source wrote."""
        with self._begin() as conn:
            value = conn.execute(
                select(source_cursors.c.position).where(
                    source_cursors.c.tenant == tenant, source_cursors.c.source == source
                )
            ).scalar_one_or_none()
        return None if value is None else str(value)

    def save_cursor(self, tenant: str, source: str, position: str) -> None:
        with self._begin() as conn:
            conn.execute(
                delete(source_cursors).where(
                    source_cursors.c.tenant == tenant, source_cursors.c.source == source
                )
            )
            conn.execute(
                insert(source_cursors).values(
                    tenant=tenant, source=source, position=position, updated_at=now()
                )
            )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
