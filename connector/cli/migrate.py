"""``migrate``: create or upgrade the state database's schema, and say from which revision.

``sync`` and ``daemon`` still migrate when they open the state; the read-only commands never do
(a mistyped ``state_url`` once had ``status`` write eleven tables into a shared server's
``postgres`` database). So, as ``airflow db migrate`` and ``superset db upgrade`` are, schema
changes are also a step of their own: one a deploy job runs before new daemons start, or an
operator runs after ``status`` said the schema is missing or behind, and that says what it did.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from connector.cli.loading import OK, load
from connector.cli.output import say


def add_to(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``migrate`` command's arguments."""
    migrate = commands.add_parser(
        "migrate", parents=[common], help="create or upgrade the state database's schema"
    )
    migrate.add_argument("--json", action="store_true", help="one JSON document")
    migrate.set_defaults(run=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    from connector.state.store import HEAD, Store

    settings, _ = load(args)
    store = Store(settings.state_url)
    store.close()
    found = store.revision_found
    outcome = {"state_url": store.label, "from": found, "to": HEAD, "changed": found != HEAD}
    if args.json:
        print(json.dumps(outcome, indent=2))
    elif found == HEAD:
        say(f"state database {store.label}: already at {HEAD}", details=outcome)
    elif found is None:
        say(f"state database {store.label}: created the schema at {HEAD}", details=outcome)
    else:
        say(f"state database {store.label}: upgraded {found} → {HEAD}", details=outcome)
    return OK
