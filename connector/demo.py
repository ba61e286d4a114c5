"""``demo``: sync the bundled example export into a sandbox it starts, then sync again.

Its folder (``--output``) is its own: made when missing, or emptied when an earlier demo made it,
which the marker file ``.kore-connector-demo`` in it says. Any other folder that holds anything
is refused, so that ``demo --output .`` in a deployment's folder removes nothing (issue [12]).
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from importlib.resources import as_file, files
from pathlib import Path

from connector.cli.output import describe, say
from connector.errors import ConfigError, ConnectorError
from connector.kore.sandbox import DEFAULT_SECRET, Sandbox
from connector.settings import load_settings
from connector.state import Store
from connector.sync.run import run_tenant

MARKER = ".kore-connector-demo"


def run_demo(output: Path) -> int:
    output = output.resolve()
    _take(output)
    with as_file(files("connector.examples")) as examples, Sandbox() as sandbox:
        os.environ.update(
            {
                "KORE_DEMO_HOST": sandbox.url,
                "KORE_DEMO_SECRET": DEFAULT_SECRET,
                "CONNECTOR_STATE_URL": f"sqlite:///{output / 'state.db'}",
                "CONNECTOR_REPORTS_DIR": str(output / "reports"),
            }
        )
        config = Path(examples) / "connector.yaml"
        settings = load_settings(config)
        say(f"demo: a sandbox Kore API is listening on {sandbox.url}")
        say(f"demo: syncing {Path(examples) / 'contacts.csv'} with the built-in salesforce mapping")
        store = Store(settings.state_url)
        try:
            for label, full in (
                ("first sync", False),
                ("second sync (--full: read the file again)", True),
            ):
                result = run_tenant(
                    store,
                    "demo",
                    settings=settings,
                    base_dir=config.parent,
                    stop=threading.Event(),
                    full=full,
                )
                say(f"demo: {label}:")
                say(f"  {describe(result, dry_run=False, full=full)}")
                if result.error is not None:
                    say(f"error: {result.error.message}", error=True, level="error")
                    return 1
        finally:
            store.close()
        held = sandbox.state.active()
    say(f"demo: the sandbox holds {len(held)} contacts; the second sync sent nothing twice.")
    say(f"demo: why rows were not sent: {output / 'reports' / 'demo'}/*/rejected.csv")
    return 0


def _own(status: os.stat_result) -> bool:
    """A folder or regular file (not a link) of this process's user: what an earlier demo of
    this user made. A marker another user planted (in a shared folder such as /tmp) does not
    count, nor does one in a folder another user owns."""
    kind = stat.S_ISDIR(status.st_mode) or stat.S_ISREG(status.st_mode)
    return kind and status.st_uid == os.geteuid()


def _take(output: Path) -> None:
    """Make ``output`` the demo's: made when missing, emptied when the marker of an earlier
    demo is in it, then marked. Raises ``ConfigError`` (exit 2, nothing touched) for a folder
    that holds anything without the marker, for a marker or folder another user owns, or for a
    file; ``ConnectorError`` when the folder cannot be made or emptied."""
    marker = output / MARKER
    try:
        output.mkdir(parents=True, exist_ok=True)
        entries = list(output.iterdir())
        ours = marker in entries and _own(output.lstat()) and _own(marker.lstat())
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(
            f"demo: {output} is not a folder", hint="pass --output with a new or empty folder"
        ) from None
    except OSError as exc:
        raise ConnectorError(
            f"demo: cannot use {output}: {exc.strerror}",
            hint="pass --output with a folder you may write",
        ) from None
    if entries and not ours:
        raise ConfigError(
            f"demo: {output} is not empty and no earlier demo made it; the demo empties its "
            "folder, so it leaves this one alone",
            hint=f"pass --output with a new or empty folder (a folder a demo made holds {MARKER})",
        )
    try:
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry != marker:
                entry.unlink()
        marker.write_text(
            "Made by `kore-connector demo`, which empties this folder each time it runs.\n",
            encoding="utf-8",
        )
    except OSError as exc:
        raise ConnectorError(
            f"demo: cannot empty {output}: {exc.strerror}",
            hint="remove the folder yourself, or pass --output with another one",
        ) from None
