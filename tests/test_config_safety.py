"""A config, a neighbour and a core dump as an attacker would use them: tenant names that name
other folders, secrets in dumps and command lines, files that are no config, YAML that expands
without end, and the memory of a running daemon."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from connector.errors import ConfigError
from connector.kore.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_CLIENT_ID, Sandbox
from connector.mapping.load import load_mapping
from connector.settings import load_settings
from tests.conftest import SECRET, run_cli, tenant_config, write_config
from tests.daemons import wait_for


def _errors(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def _loaded(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "connector.yaml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path)


def _tenant(sandbox: Sandbox, tmp_path: Path, **kore: Any) -> dict[str, Any]:
    return tenant_config(sandbox, tmp_path / "exports" / "*.csv", **kore)


# tenant names


@pytest.mark.parametrize("name", [".", "..", ".hidden", "a/b", "", "a\nb", "a" * 65])
def test_a_tenant_name_that_names_no_folder_of_its_own_is_refused(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("TEST_KORE_SECRET", SECRET)
    config = write_config(tmp_path, {name: _tenant(sandbox, tmp_path)})
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith(f"{config}: tenants ")
    assert caught.value.message.endswith(
        "is not a tenant name: letters, digits, -, _ and . only, "
        "not starting with ., at most 64 (the name names folders)"
    )
    assert "\n" not in caught.value.message


def test_dot_dot_is_refused_from_the_config_the_tenant_option_and_init(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    (tmp_path / "exports").mkdir()
    config = write_config(tmp_path, {"..": _tenant(sandbox, tmp_path)})
    mode = tmp_path.stat().st_mode

    synced = run_cli("sync", config=config)

    assert synced.returncode == 2
    assert _errors(synced.stderr) == [
        f"error: {config}: tenants '..' is not a tenant name: letters, digits, -, _ and . only, "
        "not starting with ., at most 64 (the name names folders)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["connector.yaml", "exports"]
    assert tmp_path.stat().st_mode == mode, "the config's folder is left as it was"

    good = write_config(tmp_path, {"acme": _tenant(sandbox, tmp_path)})
    selected = run_cli("sync", "--tenant", "..", config=good)
    assert selected.returncode == 2 and "no tenant named '..'" in _errors(selected.stderr)[0]

    made = run_cli("init", "--tenant", "..", config=tmp_path / "new.yaml")
    assert made.returncode == 2 and "a tenant's name is letters" in _errors(made.stderr)[0]
    assert not (tmp_path / "new.yaml").exists()


def test_names_with_dots_inside_are_tenants(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_KORE_SECRET", SECRET)
    config = write_config(tmp_path, {"acme.eu-2_b": _tenant(sandbox, tmp_path)})
    assert list(load_settings(config).tenants) == ["acme.eu-2_b"]


# secrets


def test_no_repr_str_or_dump_of_the_settings_shows_a_password_or_the_secret(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_KORE_SECRET", SECRET)
    tenant = _tenant(sandbox, tmp_path)
    tenant["source"] = {
        "kind": "sql",
        "url": "postgresql+psycopg://reader:source-pass-4711@db.internal/crm?sslpassword=key-pass-4711",
        "table": "contacts",
    }
    config = write_config(
        tmp_path, {"acme": tenant}, state_url="postgresql+psycopg://kc:state-pass-4711@db/state"
    )
    (tmp_path / "query").mkdir()
    query = write_config(
        tmp_path / "query",
        {"acme": tenant},
        state_url="postgresql+psycopg://kc@127.0.0.1:1/state?connect_timeout=1&password=q-pass-4711",
    )
    for command in ("check", "status", "migrate"):  # libpq takes a password in the query too
        done = run_cli(command, config=query)
        assert done.returncode != 0 and "pass-4711" not in done.stdout + done.stderr, command
        assert "password=***" in done.stderr, done.stderr

    settings = load_settings(config)

    shown = [repr(settings), str(settings), repr(settings.model_dump())]
    shown += [settings.model_dump_json(), repr(settings.model_dump(mode="json"))]
    for text in shown:
        assert "pass-4711" not in text and SECRET not in text, text
    assert '"postgresql+psycopg://kc:***@db/state"' in settings.model_dump_json()
    assert "reader:***@db.internal/crm" in settings.model_dump_json()
    assert "state_url='postgresql+psycopg://kc:***@db/state'" in repr(settings)
    assert settings.state_url == "postgresql+psycopg://kc:state-pass-4711@db/state", "code reads it"
    assert settings.tenants["acme"].source.url.endswith(
        "@db.internal/crm?sslpassword=key-pass-4711"
    )
    assert "crm?sslpassword=***" in repr(settings.tenants["acme"].source)


def test_a_state_url_that_does_not_parse_is_one_line_for_every_command(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, {}, state_url="postgresql+psycopg://kc:pass-4711@127.0.0.1:notaport/state"
    )
    for command in ("check", "status", "migrate", "sync"):
        done = run_cli(command, config=config)
        assert done.returncode == 2, (command, done.stderr)
        assert _errors(done.stderr) == [
            "error: state_url is not usable: invalid literal for int() with base 10: 'notaport'"
        ], command
        assert "pass-4711" not in done.stderr and "internal error" not in done.stderr


def test_a_secret_shorter_than_its_algorithm_needs_is_refused_at_load(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config = write_config(tmp_path, {"acme": _tenant(sandbox, tmp_path)})

    short = run_cli("check", config=config, env={"TEST_KORE_SECRET": "s" * 31})

    assert short.returncode == 2
    assert _errors(short.stderr) == [
        f"error: {config}: tenants.acme.kore.client_secret is 31 bytes long; HS256 needs at least "
        "32 (RFC 7518 §3.2): give the JWT app's whole client secret as Kore shows it"
    ]
    assert short.stderr.splitlines()[-1].startswith("hint: ")


@pytest.mark.parametrize(
    ("algorithm", "size", "taken"),
    [("HS256", 1, False), ("HS256", 32, True), ("HS512", 63, False), ("HS512", 64, True)],
)
def test_each_algorithm_takes_a_secret_as_long_as_its_hash(
    tmp_path: Path,
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    algorithm: str,
    size: int,
    taken: bool,
) -> None:
    monkeypatch.setenv("TEST_KORE_SECRET", "k" * size)
    config = write_config(tmp_path, {"acme": _tenant(sandbox, tmp_path, jwt_algorithm=algorithm)})
    if taken:
        assert load_settings(config).tenants["acme"].kore.jwt_algorithm == algorithm
    else:
        with pytest.raises(ConfigError, match=f"is {size} bytes long; {algorithm} needs"):
            load_settings(config)


def test_the_sandbox_takes_its_secret_from_a_file_never_from_the_command_line(
    tmp_path: Path,
) -> None:
    on_command_line = run_cli("sandbox", "--port", "0", "--secret", "x" * 40)
    assert on_command_line.returncode == 2
    assert "--secret-file" in on_command_line.stderr
    assert "KORE_SANDBOX_SECRET" in on_command_line.stderr
    short_file = tmp_path / "short"
    short_file.write_text("too-short\n", encoding="utf-8")
    too_short = run_cli("sandbox", "--port", "0", "--secret-file", str(short_file))
    assert too_short.returncode == 2 and "is 9 bytes long" in _errors(too_short.stderr)[0]

    secret = f"sandbox-{uuid.uuid4().hex}-from-a-file"
    (tmp_path / "secret").write_text(secret + "\n", encoding="utf-8")
    command = [sys.executable, "-m", "connector", "sandbox", "--port", "0"]
    command += ["--secret-file", str(tmp_path / "secret")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            url = re.search(r"on (http://\S+) ", server.stdout.readline())
            assert url, "the sandbox says where it listens"
            assert secret.encode() not in Path(f"/proc/{server.pid}/cmdline").read_bytes()
            now = int(time.time())
            claims = {"appId": DEFAULT_CLIENT_ID, "sub": "t", "iat": now, "exp": now + 60}
            token = jwt.encode({**claims, "jti": uuid.uuid4().hex}, secret, algorithm="HS256")
            answer = httpx.get(
                f"{url[1]}/agentassist/api/v1/public/st-x/contacts",
                headers={"auth": token, "accountId": DEFAULT_ACCOUNT_ID},
                timeout=10,
            )
            assert answer.status_code == 200, "the file's secret, without its line break"
        finally:
            server.terminate()


# files that are no config


def test_a_file_that_is_no_config_is_neither_shown_nor_edited(
    tmp_path: Path,
) -> None:
    shadow = tmp_path / "shadow"
    lines = [f"user{n}:$6$salt{n}$MARK{n:04d}hash:19000:0:99999:7:::" for n in range(20)]
    shadow.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = run_cli("check", config=shadow)

    assert result.returncode == 2
    assert _errors(result.stderr) == [
        f"error: {shadow}: not a kore-connector config: 20 of its 20 top-level keys are not "
        "settings; expected a mapping with 'tenants' at the top"
    ]
    assert "MARK" not in result.stdout + result.stderr and "user1" not in result.stderr

    added = run_cli("init", "--tenant", "acme", config=shadow)
    assert added.returncode == 2 and "is not a config init can add to" in added.stderr
    assert shadow.read_text(encoding="utf-8") == "\n".join(lines) + "\n", "init left it alone"


@pytest.mark.parametrize("content", [b"- a\n- b\n", b"just words\n", b"", b"\x00\xff words"])
def test_a_list_a_scalar_an_empty_or_a_binary_file_is_no_config(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "connector.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"not a kore-connector config|not UTF-8 text") as caught:
        load_settings(path)
    assert "words" not in caught.value.message


def test_one_mistyped_key_is_still_named(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"tenant is not a known setting \(did you mean 'tenants'\?\)"
    ):
        _loaded(tmp_path, "tenant: {}\n")


# YAML aliases

BOMB = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""
"""The billion laughs: nine levels of nine aliases to the level below."""


def test_an_alias_bomb_fails_at_once_in_one_line(tmp_path: Path) -> None:
    assert len(BOMB.encode()) < 420, "a few hundred bytes"
    config = tmp_path / "bomb.yaml"
    config.write_text(BOMB, encoding="utf-8")

    result = run_cli("check", config=config, timeout=30)

    assert result.returncode == 2
    assert _errors(result.stderr) == [
        f"error: {config}: refused: its aliases (*name) expand it to 490,329,064 values, more "
        "than the 100,000 allowed"
    ]
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(BOMB, encoding="utf-8")
    with pytest.raises(ConfigError, match="refused: its aliases"):
        load_mapping(str(mapping))


def test_an_alias_inside_its_own_value_or_deep_nesting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 1 column 4: refused: an alias names the value"):
        _loaded(tmp_path, "x: &x [*x]\n")
    with pytest.raises(ConfigError, match="refused: nested more than 50 deep"):
        _loaded(tmp_path, "[" * 60 + "]" * 60)


def test_anchors_for_settings_tenants_share_are_kept(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_KORE_SECRET", SECRET)
    text = f"""
tenants:
  acme:
    kore: &kore
      host: {sandbox.url}
      bot_id: st-acme
      account_id: {DEFAULT_ACCOUNT_ID}
      client_id: {DEFAULT_CLIENT_ID}
      client_secret: ${{TEST_KORE_SECRET}}
    source: &source {{kind: csv, path: exports/*.csv}}
    mapping: salesforce
  beta:
    kore: {{<<: *kore, bot_id: st-beta}}
    source: *source
    mapping: salesforce
"""
    tenants = _loaded(tmp_path, text).tenants
    assert tenants["beta"].kore.host == sandbox.url and tenants["beta"].kore.bot_id == "st-beta"
    assert tenants["beta"].source == tenants["acme"].source


# the memory of a running daemon

NEIGHBOUR = (
    ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all"]
    if os.geteuid() == 0
    else []
)
"""A prefix that runs a command as a process of this user with no capabilities (root drops its
own), as a neighbour on the machine would be."""
CORES_ON = ["sh", "-c", 'ulimit -S -c "$(ulimit -H -c)" && exec "$@"', "sh"]
"""A prefix that turns core files on (the soft limit raised to the hard one)."""


def _core_limits(pid: int) -> list[str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return line.split()[4:6]
    raise AssertionError(f"no core limit in /proc/{pid}/limits")


def _peek(pid: int) -> subprocess.CompletedProcess[bytes]:
    """A neighbour reads the process's environment, where ``${VAR}`` secrets live."""
    command = [*NEIGHBOUR, "cat", f"/proc/{pid}/environ"]
    return subprocess.run(command, capture_output=True, check=False)


def test_a_running_daemon_writes_no_core_and_neighbours_cannot_read_its_memory(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    (tmp_path / "exports").mkdir()
    tenant = {**_tenant(sandbox, tmp_path), "schedule": {"every": "1h"}}
    config = write_config(tmp_path, {"acme": tenant})
    env = {k: v for k, v in os.environ.items() if k != "CONNECTOR_CONFIG"}
    daemon_command = [sys.executable, "-m", "connector", "daemon", "--config", str(config)]
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [*NEIGHBOUR, *CORES_ON, *daemon_command, "--listen", "127.0.0.1:0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**env, "TEST_KORE_SECRET": SECRET},
        )
    control = subprocess.Popen([*NEIGHBOUR, *CORES_ON, "sleep", "60"], env=env)
    try:
        wait_for(lambda: "serving /healthz" in log.read_text(errors="replace"), 30, "the daemon")
        assert _core_limits(control.pid) != ["0", "0"], "the prefix turned core files on"
        assert _peek(control.pid).returncode == 0, "a neighbour reads a process left as it was"

        assert _core_limits(daemon.pid) == ["0", "0"]
        peeked = _peek(daemon.pid)
        refused = peeked.returncode != 0 and b"Permission denied" in peeked.stderr
        leaked = SECRET.encode() in peeked.stdout  # not shown: a failure would print it
        assert refused and not leaked, "a neighbour read the daemon's environment"
    finally:
        control.kill()
        daemon.terminate()
        assert daemon.wait(60) == 0, log.read_text(errors="replace")
        control.wait(10)
