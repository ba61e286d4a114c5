"""Issue [13], finding 3: a tenant removed by SIGHUP kept running its run to the end, and
``/metrics`` kept its series. Its run now stops at the next batch boundary, recorded
``interrupted`` with its lease released, and its series leave ``/metrics``."""

from __future__ import annotations

import signal
from pathlib import Path

from connector.kore.sandbox import Faults, Sandbox
from connector.state import Store
from tests.conftest import SECRET, tenant_config, write_config
from tests.daemons import DaemonProcess, wait_for, write_contacts
from tests.helpers import held


def test_a_tenant_removed_mid_run_stops_at_its_next_batch_and_leaves_the_metrics(
    tmp_path: Path,
) -> None:
    expected = write_contacts(tmp_path / "acme" / "a.csv", "610", 400)
    kept = write_contacts(tmp_path / "other" / "a.csv", "611", 20)
    with (
        Sandbox(secret=SECRET, faults=Faults(delay_seconds=0.5)) as slow,
        Sandbox(secret=SECRET) as quick,
    ):
        tenants = {
            "acme": tenant_config(slow, tmp_path / "acme" / "*.csv", batch_size=50),
            "other": tenant_config(quick, tmp_path / "other" / "*.csv"),
        }
        config = write_config(tmp_path, tenants)
        daemon = DaemonProcess(config, tmp_path / "daemon.log")
        store = Store(f"sqlite:///{tmp_path / 'state.db'}")
        try:
            wait_for(lambda: held(quick) == kept, 30, "the other tenant's contacts", daemon)
            wait_for(lambda: slow.state.uploads >= 2, 30, "acme mid-run", daemon)
            assert 'tenant="acme"' in daemon.get("/metrics").text

            write_config(tmp_path, {"other": tenants["other"]})
            daemon.process.send_signal(signal.SIGHUP)

            ended = "tenant acme removed: its run ended interrupted"
            wait_for(lambda: ended in daemon.log(), 30, "acme's run to stop", daemon)
            assert slow.state.uploads < 8 and len(held(slow)) < len(expected), "it stopped early"
            last = store.tenant("acme").last_run()
            assert last is not None and last.status == "interrupted"
            assert last.error is not None and "interrupted after" in last.error
            lease = store.leases.current("acme")
            assert lease is not None and not lease.held, "its lease was released"
            page = daemon.get("/metrics").text
            assert 'tenant="acme"' not in page, page
            assert 'kore_connector_contacts_delivered{tenant="other"} 20.0' in page
            assert "tenant acme removed: its run stops at its next batch boundary" in daemon.log()
            assert daemon.stop() == 0
        finally:
            store.close()
            if daemon.process.poll() is None:
                daemon.process.kill()
                daemon.process.wait(30)
