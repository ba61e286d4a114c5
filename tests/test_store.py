"""One contract, every backend: the same tests against a SQLite file and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from connector.mapping import Contact
from connector.phones import PhoneKey
from connector.state import Store
from connector.state.tables import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = Store(url)
    yield opened
    opened.close()


def _contact(n: int) -> Contact:
    key = f"+1415201{n:04d}"
    return Contact(
        key,
        f"First{n}",
        "Last",
        "",
        PhoneKey(key, key[2:], "+1", ""),
        "a.csv",
        n + 2,
        f"id{n}",
        None,
    )


def test_migrations_create_exactly_the_declared_schema(store: Store) -> None:
    inspector = inspect(store.engine)
    tables = set(inspector.get_table_names()) - {"alembic_version"}
    assert tables == set(metadata.tables)
    for name, table in metadata.tables.items():
        assert {c["name"] for c in inspector.get_columns(name)} == {c.name for c in table.columns}


def test_a_batch_is_pending_until_settled(store: Store) -> None:
    contacts = [_contact(n) for n in range(3)]
    batch_id = store.add_batch("acme", "run-1", contacts)
    store.note_attempt(batch_id)
    (pending,) = store.pending_batches("acme")
    assert pending.attempts == 1
    assert [c.key for c in pending.contacts] == [c.key for c in contacts]
    assert pending.contacts[1].first_name == "First1" and pending.contacts[1].row == 3
    assert store.pending_count("acme") == 3

    store.settle_batch(
        "acme", batch_id, "run-1", [(c.key, f"k{i}", c.fingerprint) for i, c in enumerate(contacts)]
    )

    assert store.pending_batches("acme") == []
    assert store.pending_count("acme") == 0
    found = store.delivered("acme", [c.key for c in contacts] + ["+19999999999"])
    assert {k: d.kore_id for k, d in found.items()} == {
        c.key: f"k{i}" for i, c in enumerate(contacts)
    }


def test_delivered_lookups_are_chunked_and_tenants_are_isolated(store: Store) -> None:
    contacts = [_contact(n) for n in range(1200)]
    batch_id = store.add_batch("acme", "run-1", contacts)
    store.settle_batch("acme", batch_id, "run-1", [(c.key, None, c.fingerprint) for c in contacts])
    assert len(store.delivered("acme", [c.key for c in contacts])) == 1200
    assert store.delivered("other", [c.key for c in contacts]) == {}
    assert store.delivered_count("acme") == 1200
    assert store.delivered_count("other") == 0


def test_settling_a_key_twice_keeps_one_row(store: Store) -> None:
    contact = _contact(1)
    for run in ("run-1", "run-2"):
        batch_id = store.add_batch("acme", run, [contact])
        store.settle_batch("acme", batch_id, run, [(contact.key, run, contact.fingerprint)])
    assert store.delivered("acme", [contact.key])[contact.key].kore_id == "run-2"
    assert store.delivered_count("acme") == 1


def test_processed_files_and_runs(store: Store) -> None:
    store.mark_processed("acme", [("h1", "a.csv", 10), ("h2", "b.csv", 5)])
    store.mark_processed("acme", [("h1", "a.csv", 10)])
    assert store.processed_hashes("acme") == {"h1", "h2"}
    assert store.processed_hashes("other") == set()

    store.start_run("acme", "r1", dry_run=False)
    store.finish_run("r1", status="completed", counters={"created": 3})
    last = store.last_run("acme")
    assert last is not None
    assert (last.id, last.status, last.counters) == ("r1", "completed", {"created": 3})
    assert last.started_at.tzinfo is not None
    assert store.last_run("other") is None


def test_opening_twice_is_idempotent(store: Store) -> None:
    again = Store(store.engine.url.render_as_string(hide_password=False))
    assert again.processed_hashes("acme") == set()
    again.close()
