"""``demo``: sync the bundled example export into a sandbox it starts, then sync again."""

from __future__ import annotations

import os
import shutil
import threading
from importlib.resources import as_file, files
from pathlib import Path

from connector.cli.output import describe, say
from connector.kore.sandbox import DEFAULT_SECRET, Sandbox
from connector.settings import load_settings
from connector.state import Store
from connector.sync.run import run_tenant


def run_demo(output: Path) -> int:
    output = output.resolve()
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
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
            for label in ("first sync", "second sync (--full: read the file again)"):
                result = run_tenant(
                    store,
                    "demo",
                    settings=settings,
                    base_dir=config.parent,
                    stop=threading.Event(),
                    full=label.startswith("second"),
                )
                say(f"demo: {label}:\n  {describe(result, dry_run=False)}")
                if result.error is not None:
                    say(f"error: {result.error.message}", error=True, level="error")
                    return 1
        finally:
            store.close()
        held = sandbox.state.active()
    say(f"demo: the sandbox holds {len(held)} contacts; the second sync sent nothing twice.")
    say(f"demo: why rows were not sent: {output / 'reports' / 'demo'}/*/rejected.csv")
    return 0
