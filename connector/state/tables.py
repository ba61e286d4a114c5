"""The state schema. Only the ``connector.state`` package knows these names.

The migrations in ``migrations/versions`` create exactly these tables; a test compares them.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(100), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(20), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("counters", Text, nullable=False),
    Column("holder", String(200)),
    Column("error", Text),
    Index("ix_runs_tenant_started", "tenant", "started_at"),
    Index("ix_runs_started", "started_at"),
)
"""Runs that did something, or tried: a run that found nothing new leaves no row, only the
tenant's ``leases.checked_at``. Times are the state database's clock (``database_now``)."""

deliveries = Table(
    "deliveries",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("phone_key", String(24), primary_key=True),
    Column("kore_id", String(64)),
    Column("fingerprint", String(32), nullable=False),
    Column("run_id", String(40), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=False),
    Column("origin", String(10), nullable=False),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("salutation", Text),
    Column("number", Text),
    Column("country_code", Text),
    Column("extension", Text),
    Column("row_hash", String(32)),
    Column("record_id", Text),
    Index("ix_deliveries_tenant_row_hash", "tenant", "row_hash"),
)
"""Every number delivered, with what was sent (NULL for rows recorded before migration 0005),
its ``origin`` (``created``, ``adopted``, ``found``: Kore had it before us, or ``legacy``), the
hash of the source row it was last seen in with exactly those values (``row_hash``), and that
row's record id (``record_id``: NULL when the row had none, or before migration 0009)."""

known_rows = Table(
    "known_rows",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("row_hash", String(32), primary_key=True),
    Column("outcome", String(10), nullable=False),
    Column("phone_key", String(24)),
    Column("rejection", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_known_rows_tenant_recorded", "tenant", "recorded_at"),
)
"""Source rows that were not delivered, by the hash of the row (``deliveries.row_hash``'s), with
what became of them, so that the same row in a later export is not mapped again: ``rejected``
(the mapping refused it: ``rejection`` is the JSON of its reason, detail, record id, values,
subject and numbers) or ``lost`` (it lost a duplicate contest for ``phone_key``: ``rejection``
holds its record id and the values it would have sent). Recorded by completed runs; forgotten
``KNOWN_DAYS`` after they were recorded (the row is then mapped once more)."""

batches = Table(
    "batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(100), nullable=False),
    Column("run_id", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("settled_at", DateTime(timezone=True)),
    Index("ix_batches_tenant_status", "tenant", "status"),
    Index("ix_batches_settled", "settled_at"),
)

batch_rows = Table(
    "batch_rows",
    metadata,
    Column("batch_id", Integer, ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("phone_key", String(24), nullable=False),
    Column("first_name", Text, nullable=False),
    Column("last_name", Text, nullable=False),
    Column("salutation", Text, nullable=False),
    Column("number", String(24), nullable=False),
    Column("country_code", String(8), nullable=False),
    Column("extension", String(16), nullable=False),
    Column("source", Text, nullable=False),
    Column("row_no", Integer, nullable=False),
    Column("record_id", Text, nullable=False),
)

processed_files = Table(
    "processed_files",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("content_hash", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False),
    Column("reading", String(64)),
)

source_cursors = Table(
    "source_cursors",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("source", String(200), primary_key=True),
    Column("position", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

leases = Table(
    "leases",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("token", Integer, nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("checked_at", DateTime(timezone=True)),
)
"""The row of each tenant any process ran: who holds it and until when (the database's clock),
and ``checked_at``, when the newest run that found nothing new (and left no ``runs`` row)
started."""

bot_budgets = Table(
    "bot_budgets",
    metadata,
    Column("bot", String(300), primary_key=True),
)
"""One row per bot, locked while an upload slot is taken, so processes take turns."""

bot_uploads = Table(
    "bot_uploads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bot", String(300), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_bot_uploads_bot_at", "bot", "at"),
)

dnc_numbers = Table(
    "dnc_numbers",
    metadata,
    Column("tenant", String(100), primary_key=True),
    Column("phone_key", String(24), primary_key=True),
    Column("source", Text, nullable=False),
    Column("run_id", String(40), nullable=False),
    Column("flagged_at", DateTime(timezone=True), nullable=False),
)
