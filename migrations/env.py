"""Alembic environment. ``connector.state.store`` passes an open connection in; the
``alembic`` command line (for writing new revisions) uses ``sqlalchemy.url`` from alembic.ini."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from connector.state.tables import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as own:
        context.configure(connection=own, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
