"""The shipped service layouts as shipped: the systemd unit's command line and the container's,
run as they would run there (the config in a folder the service cannot write, the data in
``STATE_DIRECTORY``, the working directory of someone else's choosing), and the unit's
hardening as ``systemd-analyze security`` rates it.

The daemon runs as the user running the tests, not as a user made for the test: the
interpreter may sit where no other user can reach it (a pyenv under ``/root``). When that user
is root, it runs without any capability (``setpriv``), so a folder's mode binds it as it binds
an unprivileged service user."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import httpx
import pytest
import yaml

from connector.kore.sandbox import Sandbox
from tests.conftest import REQUIRE_SERVERS, SECRET, tenant_config
from tests.daemons import wait_for, write_contacts
from tests.helpers import held

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "kore-connector.service"
CONTAINERFILE = ROOT / "Containerfile"
MAX_EXPOSURE = 3.0
"""``systemd-analyze security`` calls 0 to 3.9 "OK"; this unit is held to the brief's 3.0."""


def _tool(name: str) -> str:
    """The path of a tool these tests need: missing, the test skips, or fails in CI
    (``CONNECTOR_TEST_REQUIRE_SERVERS=1``), where the tool must be installed."""
    found = shutil.which(name)
    if found is None:
        if REQUIRE_SERVERS:
            pytest.fail(f"{name} is not installed but CONNECTOR_TEST_REQUIRE_SERVERS=1")
        pytest.skip(f"{name} is not installed")
    return found


def _unit() -> dict[str, list[str]]:
    """The unit's ``[Service]`` settings: key -> every value given, in order."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def _containerfile() -> dict[str, list[str]]:
    """The Containerfile's instructions: name -> the text of each, continuation lines joined."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text(encoding="utf-8"))
    instructions: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, rest = line.strip().partition(" ")
            instructions.setdefault(name, []).append(rest.strip())
    return instructions


def _image_env() -> dict[str, str]:
    return dict(
        pair.split("=", 1)
        for env in _containerfile()["ENV"]
        for pair in shlex.split(env, posix=True)
    )


def _healthcheck() -> list[str]:
    (check,) = _containerfile()["HEALTHCHECK"]
    command: list[str] = json.loads(check[check.index("CMD") + 3 :])
    return command


@dataclass(frozen=True)
class Layout:
    """A command line and the environment it gets from its service manager, in the paths of
    the machine it was written for."""

    command: list[str]
    env: dict[str, str]


def _unit_layout() -> Layout:
    unit = _unit()
    (state,) = unit["StateDirectory"]
    return Layout(shlex.split(unit["ExecStart"][0]), {"STATE_DIRECTORY": f"/var/lib/{state}"})


def _container_layout() -> Layout:
    instructions = _containerfile()
    (entrypoint,) = instructions["ENTRYPOINT"]
    (cmd,) = instructions["CMD"]
    return Layout(json.loads(entrypoint) + json.loads(cmd), _image_env())


LAYOUTS = {"systemd unit": _unit_layout, "container": _container_layout}


def test_the_unit_keeps_data_in_its_state_directory_and_metrics_on_loopback() -> None:
    unit = _unit()
    assert unit["StateDirectory"] == ["kore-connector"]
    assert unit["ConfigurationDirectory"] == ["kore-connector"]
    assert unit["User"] != ["root"] and unit["User"] != [""], "a user of its own"
    assert "--config /etc/kore-connector/connector.yaml" in unit["ExecStart"][0]
    assert unit["ExecStart"][0].endswith("daemon --listen 127.0.0.1:9108")


def test_the_image_runs_unprivileged_with_a_state_volume_and_metrics_on_loopback() -> None:
    instructions = _containerfile()
    env = _image_env()
    assert instructions["USER"] == ["10001:10001"]
    assert instructions["VOLUME"] == [env["STATE_DIRECTORY"]] == ["/var/lib/kore-connector"]
    assert env["CONNECTOR_CONFIG"] == "/etc/kore-connector/connector.yaml"
    assert env["CONNECTOR_LISTEN"] == "127.0.0.1:9108"
    assert _healthcheck()[:2] == ["python3", "-c"], "slim images have no curl"


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_shipped_command_line_delivers_with_a_read_only_config_and_answers_healthz(
    tmp_path: Path, layout: str
) -> None:
    etc, state = tmp_path / "etc-kc", tmp_path / "state"
    etc.mkdir()
    expected = write_contacts(state / "exports" / "a.csv", "310", 30)
    mapping = files("connector.mappings") / "salesforce.yaml"
    (etc / "acme.yaml").write_text(mapping.read_text(encoding="utf-8"), encoding="utf-8")
    prefix = []
    if os.geteuid() == 0:
        prefix = [_tool("setpriv"), "--inh-caps=-all", "--bounding-set=-all", "--"]
    with Sandbox(secret=SECRET) as sandbox:
        config = {
            "state_url": "sqlite:///connector-state.db",
            "reports_dir": "reports",
            "tenants": {"acme": tenant_config(sandbox, Path("exports/*.csv"), mapping="acme.yaml")},
        }
        (etc / "connector.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        etc.chmod(0o555)
        shipped = LAYOUTS[layout]()
        here = {
            "/opt/kore-connector/bin": str(Path(sys.executable).parent),
            "/etc/kore-connector": str(etc),
            "/var/lib/kore-connector": str(state),
            "127.0.0.1:9108": "127.0.0.1:0",
            "$PATH": os.environ["PATH"],
        }

        def placed(text: str) -> str:
            for there, local in here.items():
                text = text.replace(there, local)
            return text

        env = {k: v for k, v in os.environ.items() if k != "CONNECTOR_CONFIG"}
        env |= {k: placed(v) for k, v in shipped.env.items()} | {"TEST_KORE_SECRET": SECRET}
        log = tmp_path / "daemon.log"
        with log.open("wb") as out:
            daemon = subprocess.Popen(
                [*prefix, *(placed(arg) for arg in shipped.command)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=etc,  # a service manager's choice: the connector must not write there
            )
        try:

            def logged() -> str:
                return log.read_text(encoding="utf-8", errors="replace")

            with contextlib.suppress(AssertionError):  # waited long enough: the log tells why
                wait_for(lambda: held(sandbox) == expected or daemon.poll() is not None, 60, "")
            assert held(sandbox) == expected, logged()
            address = re.search(r"on http://([\d.]+:\d+)", logged())
            assert address, logged()
            assert httpx.get(f"http://{address[1]}/healthz", timeout=10).status_code == 200
            for listen in (address[1], address[1].replace("127.0.0.1", "0.0.0.0")):
                check = subprocess.run(
                    _healthcheck(), env=env | {"CONNECTOR_LISTEN": listen}, check=False
                )
                assert check.returncode == 0, f"the image's HEALTHCHECK against {listen}"

            assert (state / "connector-state.db").is_file()
            assert list((state / "reports" / "acme").iterdir())
            assert sorted(p.name for p in etc.iterdir()) == ["acme.yaml", "connector.yaml"]
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(60) == 0, logged()
            stopped = subprocess.run(
                _healthcheck(), env=env | {"CONNECTOR_LISTEN": address[1]}, check=False
            )
            assert stopped.returncode == 1, "the HEALTHCHECK fails once nothing answers"
        finally:
            daemon.kill()
            etc.chmod(0o755)


def test_systemd_analyze_security_rates_the_unit_ok() -> None:
    analyze = _tool("systemd-analyze")
    done = subprocess.run(
        [analyze, "security", "--offline=yes", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\S+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found[1]) <= MAX_EXPOSURE, done.stdout
