"""The export folder is a boundary: a real ``sync`` reads nothing whose real path leaves the
folder its source names, says so in one line a file, and never shows what such a file, or any
file that is no table, holds."""

from __future__ import annotations

import shutil
from pathlib import Path

from connector.kore.sandbox import Sandbox
from tests.conftest import run_cli, tenant_config, write_config
from tests.helpers import runs, summary

HEADER = "Id,FirstName,LastName,MobilePhone\n"
PASSWD = Path("/etc/passwd")


def _export(path: Path, name: str, first: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        HEADER
        + "".join(f"{name}{n},{name}{n},Person,+1 201 555 {first + n:04d}\n" for n in range(3)),
        encoding="utf-8",
    )


def _secret_lines(copy: Path) -> list[str]:
    """Pieces of every line of a copy of /etc/passwd long enough to tell (the first field and
    its password marker, the shell): none may appear anywhere the run writes."""
    return [line[:12] for line in copy.read_text().splitlines() if len(line) >= 12]


def _everything_written(tmp_path: Path, *outputs: str) -> str:
    written = [
        p.read_text(errors="replace") for p in (tmp_path / "reports").rglob("*") if p.is_file()
    ]
    return "\n".join([*outputs, *written])


def _contacts(sandbox: Sandbox, bot: str) -> set[str]:
    return {c["firstName"] for c in sandbox.bot(bot).active()}


def test_links_out_of_a_tenants_folder_are_named_and_not_read(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Tenant alpha's upload folder holds its export, a link to tenant beta's export, a link to
    a copy of /etc/passwd, and a link to beta's folder that its ``**`` glob walks into."""
    exports = tmp_path / "exports"
    _export(exports / "alpha" / "alpha.csv", "Alpha", 100)
    _export(exports / "beta" / "beta.csv", "Beta", 200)
    outside = tmp_path / "elsewhere" / "passwd.csv"
    outside.parent.mkdir()
    shutil.copyfile(PASSWD, outside)
    (exports / "alpha" / "from-beta.csv").symlink_to(exports / "beta" / "beta.csv")
    (exports / "alpha" / "passwd.csv").symlink_to(outside)
    (exports / "alpha" / "shared").symlink_to(exports / "beta", target_is_directory=True)
    alpha = tenant_config(sandbox, exports / "alpha" / "**" / "*.csv", bot_id="st-alpha")
    beta = tenant_config(sandbox, exports / "beta" / "*.csv", bot_id="st-beta")
    config = write_config(tmp_path, {"alpha": alpha, "beta": beta})

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    assert _contacts(sandbox, "st-alpha") == {"Alpha0", "Alpha1", "Alpha2"}
    assert _contacts(sandbox, "st-beta") == {"Beta0", "Beta1", "Beta2"}
    unsafe = [line for line in result.stderr.splitlines() if "is not read" in line]
    named = {"from-beta.csv", "passwd.csv", "shared/beta.csv"}
    assert len(unsafe) == len(named), result.stderr
    for name in named:
        (line,) = [x for x in unsafe if f"alpha/{name} is not read" in x]
        assert line.startswith("warning: alpha: ")
        assert f"leaves the export folder {exports / 'alpha'} " in line
        assert str(outside) not in line and "elsewhere" not in line, (
            "where a link leads is not said"
        )
    assert "3 files not read: outside the export folder or not a regular file)" in result.stdout
    (run,) = runs(tmp_path, "alpha")
    counters = summary(run)["counters"]
    assert (counters["unsafe_paths"], counters["files_seen"], counters["files_read"]) == (3, 4, 1)
    written = _everything_written(tmp_path, result.stdout, result.stderr)
    assert not [line for line in _secret_lines(outside) if line in written]
    assert "Beta" not in "".join(p.read_text() for p in run.rglob("*") if p.is_file())


def test_a_single_file_named_in_the_config_is_held_to_its_own_folder(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """``source.path`` naming a link out of its folder is not read either (a tenant could have
    made it), and says how to read the file; a folder that is itself a link (a mount) is read."""
    real = tmp_path / "real"
    _export(real / "contacts.csv", "Linked", 300)
    _export(real / "mounted" / "contacts.csv", "Mounted", 400)
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "contacts.csv").symlink_to(real / "contacts.csv")
    (tmp_path / "mnt").symlink_to(real / "mounted", target_is_directory=True)
    linked = tenant_config(sandbox, upload / "contacts.csv", bot_id="st-linked")
    mounted = tenant_config(sandbox, tmp_path / "mnt" / "contacts.csv", bot_id="st-mounted")
    config = write_config(tmp_path, {"linked": linked, "mounted": mounted})

    result = run_cli("sync", config=config)

    assert result.returncode == 0, result.stderr
    assert _contacts(sandbox, "st-linked") == set()
    assert _contacts(sandbox, "st-mounted") == {"Mounted0", "Mounted1", "Mounted2"}
    (line,) = [x for x in result.stderr.splitlines() if "is not read" in x]
    assert line.startswith(f"warning: linked: {upload / 'contacts.csv'} is not read")
    assert line.endswith("if the link is yours, name the file it leads to in source.path")
    assert summary(runs(tmp_path, "linked")[0])["counters"]["unsafe_paths"] == 1

    check = run_cli("check", "--tenant", "linked", config=config)
    assert f"{upload / 'contacts.csv'} is not read" in check.stdout + check.stderr


def test_a_file_that_is_no_table_is_never_shown_in_a_hint(tmp_path: Path, sandbox: Sandbox) -> None:
    """A copy of /etc/passwd named as the export (the operator's choice) is read, and fails
    the mapping; the hint that would list its header's columns shows none of it. ``init``
    says as little."""
    copy = tmp_path / "exports" / "passwd.csv"
    copy.parent.mkdir()
    shutil.copyfile(PASSWD, copy)
    config = write_config(tmp_path, {"acme": tenant_config(sandbox, copy)})

    result = run_cli("sync", config=config)
    started = run_cli("init", "--from", str(copy), config=tmp_path / "init.yaml")

    assert result.returncode == 2, "a mapping that does not fit the export: a config error"
    (error,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "which passwd.csv lacks" in error
    assert "the header row is not shown" in result.stderr
    assert started.returncode == 2
    assert "the header row is not shown" in started.stderr
    written = _everything_written(
        tmp_path, result.stdout, result.stderr, started.stdout, started.stderr
    )
    assert not [line for line in _secret_lines(copy) if line in written]
