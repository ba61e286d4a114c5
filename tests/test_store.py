"""One contract, every backend: the same tests against a SQLite file and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from connector.contacts import Contact, PhoneKey
from connector.state import Checkpoint, Delivery, Store, TenantState
from connector.state.store import HEAD
from connector.state.tables import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    opened = Store(url)
    yield opened
    opened.close()


def test_numbers_delivered_before_migration_0005_are_legacy(url: str) -> None:
    """Kept, updated as before, but never deleted: whose they were was not recorded."""
    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(files("connector.migrations")))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.execute(
            text(
                "INSERT INTO deliveries (tenant, phone_key, kore_id, fingerprint, run_id, "
                "delivered_at) VALUES ('acme', '+14152010001', 'k1', 'f', 'r', :at)"
            ),
            {"at": datetime.now(UTC)},
        )
    engine.dispose()
    store = Store(url)
    found = store.tenant("acme").delivered(["+14152010001"])["+14152010001"]
    store.close()
    assert (found.kore_id, found.origin, found.values) == ("k1", "legacy", None)
    assert (found.updatable, found.deletable) == (True, False)


def held_state(store: Store, tenant: str) -> TenantState:
    lease = store.leases.acquire(tenant, seconds=60)
    assert lease is not None
    return store.tenant(tenant, lease)


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


def test_head_names_the_newest_migration(store: Store) -> None:
    config = Config()
    config.set_main_option("script_location", str(files("connector.migrations")))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD == store.revision()


def test_migrations_create_exactly_the_declared_schema(store: Store) -> None:
    inspector = inspect(store.engine)
    tables = set(inspector.get_table_names()) - {"alembic_version"}
    assert tables == set(metadata.tables)
    for name, table in metadata.tables.items():
        assert {c["name"] for c in inspector.get_columns(name)} == {c.name for c in table.columns}


def test_a_batch_is_pending_until_settled(store: Store) -> None:
    acme = held_state(store, "acme")
    contacts = [_contact(n) for n in range(3)]
    batch_id = acme.add_batch("run-1", contacts)
    acme.note_attempt(batch_id)
    (pending,) = acme.pending_batches()
    assert pending.attempts == 1
    assert [c.key for c in pending.contacts] == [c.key for c in contacts]
    assert pending.contacts[1].first_name == "First1" and pending.contacts[1].row == 3
    assert acme.pending_count() == 3

    acme.settle_batch(
        batch_id, "run-1", [Delivery(c, f"k{i}", "created") for i, c in enumerate(contacts)]
    )

    assert acme.pending_batches() == []
    assert acme.pending_count() == 0
    found = acme.delivered([c.key for c in contacts] + ["+19999999999"])
    assert {k: d.kore_id for k, d in found.items()} == {
        c.key: f"k{i}" for i, c in enumerate(contacts)
    }


def test_delivered_lookups_are_chunked_and_tenants_are_isolated(store: Store) -> None:
    acme, other = held_state(store, "acme"), store.tenant("other")
    contacts = [_contact(n) for n in range(1200)]
    batch_id = acme.add_batch("run-1", contacts)
    acme.settle_batch(batch_id, "run-1", [Delivery(c, None, "created") for c in contacts])
    assert len(acme.delivered([c.key for c in contacts])) == 1200
    assert other.delivered([c.key for c in contacts]) == {}
    assert acme.delivered_count() == 1200
    assert other.delivered_count() == 0


def test_settling_a_key_twice_keeps_one_row(store: Store) -> None:
    acme = held_state(store, "acme")
    contact = _contact(1)
    for run in ("run-1", "run-2"):
        batch_id = acme.add_batch(run, [contact])
        acme.settle_batch(batch_id, run, [Delivery(contact, run, "created")])
    assert acme.delivered([contact.key])[contact.key].kore_id == "run-2"
    assert acme.delivered_count() == 1


def test_what_was_sent_and_whose_it_is_is_kept_updated_and_forgotten(store: Store) -> None:
    acme, other = held_state(store, "acme"), store.tenant("other")
    ours, theirs, renamed = _contact(1), _contact(2), _contact(3)
    batch_id = acme.add_batch("run-1", [ours, theirs, renamed])
    acme.settle_batch(
        batch_id,
        "run-1",
        [
            Delivery(ours, "k1", "created"),
            Delivery(theirs, "k2", "found"),
            Delivery(renamed, "k3", "adopted"),
        ],
    )
    found = acme.delivered([ours.key, theirs.key, renamed.key])
    assert found[ours.key].values == ours.csv_row()
    assert (found[ours.key].deletable, found[theirs.key].deletable) == (True, False)
    assert (found[renamed.key].deletable, found[theirs.key].updatable) == (True, False)

    new = replace(renamed, first_name="Renamed")
    acme.record_updates("run-2", [new])
    after = acme.delivered([renamed.key])[renamed.key]
    assert (after.fingerprint, after.values) == (new.fingerprint, new.csv_row())

    acme.forget([ours.key])
    pages = list(acme.every_delivered(chunk=1))
    assert [[key for key, _ in page] for page in pages] == [[theirs.key], [renamed.key]]
    assert list(other.every_delivered()) == []


def test_a_row_hash_is_kept_only_beside_the_values_it_was_delivered_with(store: Store) -> None:
    acme, other = held_state(store, "acme"), held_state(store, "other")
    one, two, three = _contact(1), _contact(2), _contact(3)
    batch_id = acme.add_batch("run-1", [one, two, three])
    acme.settle_batch(batch_id, "run-1", [Delivery(c, "k", "created") for c in (one, two, three)])

    acme.remember_rows(
        [
            ("h1", one.key, one.fingerprint),
            ("h2", two.key, "stale"),
            ("h3", three.key, three.fingerprint),
        ]
    )

    assert _unchanged(acme, ["h1", "h2", "h3", "h4"]) == {"h1": one.key, "h3": three.key}
    assert _unchanged(other, ["h1"]) == {}
    acme.record_updates("run-2", [replace(three, first_name="New")])
    acme.forget([one.key])
    assert _unchanged(acme, ["h1", "h3"]) == {}, "an update or a delete forgets the row"
    acme.remember_rows([("h2", two.key, two.fingerprint)])
    acme.commit_checkpoint(Checkpoint(), flagged=[(two.key, "b.csv row 2")])
    assert _unchanged(acme, ["h2"]) == {}, "so does a do-not-call flag"


def _unchanged(state: TenantState, hashes: list[str]) -> dict[str, str | None]:
    """The hashes known as rows of delivered numbers, with those numbers."""
    return {h: k.key for h, k in state.known(hashes).items() if k.outcome == "delivered"}


def test_flagged_numbers_in_kore_are_found_per_tenant(store: Store) -> None:
    acme, other = held_state(store, "acme"), held_state(store, "other")
    contacts = [_contact(n) for n in range(3)]
    for state in (acme, other):
        batch_id = state.add_batch("run-1", contacts)
        state.settle_batch(batch_id, "run-1", [Delivery(c, "k", "created") for c in contacts])
    acme.commit_checkpoint(Checkpoint(), flagged=[(contacts[1].key, "a.csv row 3")])
    assert set(acme.flagged_in_kore()) == {contacts[1].key}
    assert other.flagged_in_kore() == {}


def test_processed_files_and_runs(store: Store) -> None:
    acme, other = held_state(store, "acme"), store.tenant("other")
    acme.commit_checkpoint(Checkpoint(processed=[("h1", "a.csv", 10), ("h2", "b.csv", 5)]))
    acme.commit_checkpoint(Checkpoint(processed=[("h1", "a.csv", 10)], cursors={"sql:t": "[1]"}))
    assert acme.processed_hashes() == {"h1", "h2"}
    assert acme.cursor("sql:t") == "[1]"
    assert other.processed_hashes() == set()

    acme.start_run("r1")
    acme.finish_run("r1", status="completed", counters={"created": 3})
    last = acme.last_run()
    assert last is not None
    assert (last.id, last.status, last.counters) == ("r1", "completed", {"created": 3})
    assert last.started_at.tzinfo is not None
    assert other.last_run() is None


def test_opening_twice_is_idempotent(store: Store) -> None:
    again = Store(store.engine.url.render_as_string(hide_password=False))
    assert again.tenant("acme").processed_hashes() == set()
    again.close()
