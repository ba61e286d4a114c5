"""Issue [13], finding 4: a 40 s outage of the state database logged 132 error lines per
tenant, one per replica per tick. It is now two lines per replica: one when the database stops
answering, one when it is back, with how long it was gone; the turns that failed meanwhile are
counted in that line.

The outage is real, and short: each replica reaches PostgreSQL through a loopback proxy that the
test pauses (every connection cut, new ones refused) for a few seconds, a dozen turns of each
replica, then resumes."""

from __future__ import annotations

import re
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from connector.kore.sandbox import Sandbox
from tests.conftest import tenant_config, write_config
from tests.daemons import DaemonProcess, TcpProxy, wait_for

OUTAGE_SECONDS = 4.0
"""How long the database is gone: the length is what is tested, so it is slept, not polled."""


def _since(daemon: DaemonProcess, line: int, text: str) -> str:
    """The daemon's log after its first ``line`` lines when ``text`` is in it, else ``""``."""
    after = "\n".join(daemon.log().splitlines()[line:])
    return after if text in after else ""


def test_an_outage_of_the_state_database_is_two_lines_per_replica(
    tmp_path: Path, sandbox: Sandbox, postgres_url: str
) -> None:
    url = make_url(postgres_url)
    tenants = {}
    for name in ("t1", "t2", "t3"):
        (tmp_path / name).mkdir()
        tenants[name] = {
            **tenant_config(sandbox, tmp_path / name / "*.csv"),
            "schedule": {"every": "1s"},
        }
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        config = write_config(tmp_path, tenants, state_url=proxied)
        replicas = [
            DaemonProcess(config, tmp_path / f"replica{i}.log", listen=False) for i in range(2)
        ]
        try:
            for replica in replicas:  # its turns begun: it ran a tenant, or said why not
                wait_for(lambda r=replica: _since(r, 0, "INFO [t"), 30, "a turn", replica)
            before = [len(replica.log().splitlines()) for replica in replicas]

            proxy.pause()
            for replica in replicas:
                wait_for(lambda r=replica: "is unavailable" in r.log(), 30, "the outage", replica)
            time.sleep(OUTAGE_SECONDS)
            proxy.resume()
            for replica in replicas:
                wait_for(lambda r=replica: "is back after" in r.log(), 30, "the end", replica)

            for replica, start in zip(replicas, before, strict=True):
                lines = replica.log().splitlines()[start:]
                begin = next(i for i, line in enumerate(lines) if "is unavailable" in line)
                end = next(i for i, line in enumerate(lines) if "is back after" in line)
                said = lines[begin : end + 1]
                assert len(said) == 2, "\n".join(said)
                assert not [line for line in lines[:begin] if " INFO " not in line], (
                    "before it: the turns that ended before the database went"
                )
                assert re.search(
                    r" ERROR the state database is unavailable: state database "
                    r"postgresql\+psycopg://\S+: OperationalError: ",
                    said[0],
                ), said[0]
                back = re.search(
                    r" INFO the state database is back after (\d+)s; ([\d,]+) turns "
                    r"failed meanwhile$",
                    said[1],
                )
                assert back is not None, said[1]
                assert int(back[1]) >= OUTAGE_SECONDS
                assert int(back[2]) >= 3 * OUTAGE_SECONDS / 2, "every tenant's turns, counted"
            after = [len(replica.log().splitlines()) for replica in replicas]

            def every_tenant_ran() -> bool:
                logs = [_since(r, n, "") for r, n in zip(replicas, after, strict=True)]
                return all(f"[{name} " in logs[0] + logs[1] for name in tenants)

            wait_for(every_tenant_ran, 30, "every tenant run again")
            for replica in replicas:
                assert replica.stop() == 0
        finally:
            for replica in replicas:
                if replica.process.poll() is None:
                    replica.process.kill()
                    replica.process.wait(30)
