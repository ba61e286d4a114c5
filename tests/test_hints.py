"""What a user is told (issue [11]): every error a user can cause comes with a hint, and a hint
that points at documentation names a ``--help`` topic or the docs' web address, never a file of
the source tree, which an installed package does not have; a warning that holds on every run
carries a code that the tenant's ``acknowledge`` list silences."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from connector.errors import DOCS, WarningCode
from connector.kore.sandbox import Sandbox
from tests.conftest import run_cli, tenant_config, write_config
from tests.helpers import runs, summary

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "connector"
HUBSPOT = "Record ID,First Name,Last Name,Phone Number,Mobile Phone Number,Country/Region\n"


def _trees() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def _error_classes() -> dict[str, ast.ClassDef]:
    """Every ``ConnectorError`` subclass the package defines, by name."""
    classes = {
        node.name: node
        for _, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    found = {"ConnectorError"}
    while True:
        more = {
            name
            for name, node in classes.items()
            if any(isinstance(b, ast.Name) and b.id in found for b in node.bases)
        }
        if more <= found:
            return {name: classes[name] for name in found}
        found |= more


def _hints_itself(node: ast.ClassDef) -> bool:
    """A class whose ``__init__`` takes no hint and hands one to ``super().__init__``: it
    words its own hint, and its callers give none."""
    init = next(
        (n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None
    )
    if init is None or any(a.arg == "hint" for a in init.args.kwonlyargs + init.args.args):
        return False
    return any(
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "__init__"
        and any(k.arg == "hint" for k in call.keywords)
        for call in ast.walk(init)
    )


def _called(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    return node.func.attr if isinstance(node.func, ast.Attribute) else None


def test_every_error_the_package_raises_for_a_user_carries_a_hint() -> None:
    classes = _error_classes()
    need = {name for name, node in classes.items() if not _hints_itself(node)}
    bare = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {_called(node)}(...) without hint="
        for path, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and _called(node) in need
        and not any(k.arg == "hint" for k in node.keywords)
    ]
    assert not bare, "\n".join(bare)


def test_hints_name_the_docs_web_address_never_a_file_of_the_source_tree() -> None:
    wrong = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "hint":
                text = ast.unparse(node.value)
                files = re.findall(r"[\w./-]*(?:README|docs/|\.md\b)[\w./-]*", text)
                if any(not re.fullmatch(r"[\w-]+\.md", f) for f in files) or (
                    files and "{DOCS}" not in text
                ):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
    assert not wrong, "\n".join(wrong)


def test_the_docs_address_is_the_one_the_package_metadata_gives() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["urls"]["Documentation"] == DOCS
    assert DOCS.endswith("/docs/")


def _uninstalled(hint: str) -> list[str]:
    """The paths a hint names that an installed package does not have: anything that looks
    like the README or a docs file, unless it is under the docs' web address."""
    return [
        word
        for word in re.findall(r"\S*(?:README|docs/|\.md\b)\S*", hint)
        if not word.strip("`'\"(),;").startswith(DOCS)
    ]


def _tenant(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    export = tmp_path / "contacts.csv"
    if not export.exists():
        export.write_text("Id,FirstName,LastName,MobilePhone\n1,Ann,Lee,+1 415 201 0101\n")
    tenant: dict[str, Any] = {
        "kore": {
            "host": "https://platform.kore.ai",
            "bot_id": "st-1",
            "account_id": "a-1",
            "client_id": "cs-1",
            "client_secret": "${TEST_KORE_SECRET}",
        },
        "source": {"kind": "csv", "path": str(export), "min_file_age": "0s"},
        "mapping": "salesforce",
    }
    for where, value in changes.items():
        *path, key = where.split("__")
        place = tenant
        for part in path:
            place = place[part]
        place[key] = value
    return tenant


def _config(tmp_path: Path, text: str | None = None, **changes: Any) -> Path:
    if text is not None:
        path = tmp_path / "connector.yaml"
        path.write_text(text, encoding="utf-8")
        return path
    return write_config(tmp_path, {"acme": _tenant(tmp_path, **changes)})


def _mapping_file(tmp_path: Path, text: str) -> Path:
    (tmp_path / "mine.yaml").write_text(text, encoding="utf-8")
    return _config(tmp_path, mapping="mine.yaml")


Case = Callable[[Path], list[str]]
"""A mistake: given a folder of its own, the command line that makes it."""


def _with(config: Callable[[Path], Path], *command: str) -> Case:
    return lambda tmp_path: [*command, "--config", str(config(tmp_path))]


MISTAKES: dict[str, tuple[Case, str]] = {
    "no config file": (
        lambda tmp: ["check", "--config", str(tmp / "missing.yaml")],
        "config file not found",
    ),
    "not YAML": (_with(lambda t: _config(t, "tenants: [\n"), "check"), "not valid YAML"),
    "not a mapping": (_with(lambda t: _config(t, "- a\n"), "check"), "expected a mapping"),
    "a misspelt key": (
        _with(lambda t: _config(t, kore__bot_idd="st-typo"), "check"),
        "tenants.acme.kore.bot_idd is not a known setting",
    ),
    "an unset ${VAR}": (
        _with(lambda t: _config(t, kore__client_secret="${NOWHERE_SET_42}"), "check"),
        "uses ${NOWHERE_SET_42}, which is not set in the environment",
    ),
    "a postgres:// state_url": (
        _with(
            lambda t: write_config(t, {"acme": _tenant(t)}, state_url="postgres://u@h/db"), "sync"
        ),
        "state_url is not usable",
    ),
    "a postgres:// source.url": (
        _with(
            lambda t: _config(t, source={"kind": "sql", "url": "postgres://u@h/db", "table": "c"}),
            "check",
        ),
        "source.url postgres://u@h/db is not usable",
    ),
    "an unknown warning code": (
        _with(lambda t: _config(t, acknowledge=["no_dnc_column"]), "check"),
        "tenants.acme.acknowledge.0 must be 'no_do_not_call_column'",
    ),
    "a mapping that is neither a built-in nor a file": (
        _with(lambda t: _config(t, mapping="sales_force"), "check"),
        "mapping 'sales_force' is neither a built-in nor a file path",
    ),
    "a mapping file that is not there": (
        _with(lambda t: _config(t, mapping="gone.yaml"), "check"),
        "gone.yaml: cannot read",
    ),
    "a mapping file that is not a mapping": (
        _with(lambda t: _mapping_file(t, "fields: 3\n"), "check"),
        "mapping ",
    ),
    "a column the export lacks": (
        _with(
            lambda t: _mapping_file(t, "fields: {firstName: Vorname}\nphone: {from: [Tel]}\n"),
            "check",
        ),
        "which contacts.csv lacks",
    ),
    "an empty export": (
        _with(lambda t: _config(t, source__path=str(_written(t / "empty.csv", ""))), "check"),
        "the file is empty",
    ),
    "a CSV named as a workbook": (
        _with(
            lambda t: _config(t, source={"kind": "xlsx", "path": str(t / "contacts.csv")}), "check"
        ),
        "not a readable XLSX workbook",
    ),
    "a glob in a missing folder": (
        _with(lambda t: _config(t, source__path=str(t / "nowhere" / "*.csv")), "check"),
        "nowhere",
    ),
    "an unknown tenant": (_with(_config, "check", "--tenant", "nope"), "no tenant named 'nope'"),
    "an unknown option": (lambda tmp: ["sync", "--bogus"], "unrecognized arguments: --bogus"),
    "init: a tenant name with a slash": (
        lambda tmp: ["init", "--tenant", "a/b", "--config", str(tmp / "c.yaml")],
        "a tenant's name is letters",
    ),
    "init: an export that is not there": (
        lambda tmp: ["init", "--from", str(tmp / "gone.csv"), "--config", str(tmp / "c.yaml")],
        "gone.csv: file not found",
    ),
    "init: an export without a phone column": (
        lambda tmp: [
            "init",
            "--from",
            str(_written(tmp / "odd.csv", "First Name,Email\nAnn,a@example.com\n")),
            "--config",
            str(tmp / "c.yaml"),
        ],
        "no phone column in its header",
    ),
    "init: a tenant already there": (
        _with(lambda t: _config(t), "init", "--tenant", "acme"),
        "tenant 'acme' is already there",
    ),
}


def _written(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_mistake_is_one_line_and_a_hint_that_names_nothing_uninstalled(
    tmp_path: Path, mistake: str
) -> None:
    command, said = MISTAKES[mistake]

    result = run_cli(*command(tmp_path))

    assert result.returncode in (1, 2), result.stderr
    lines = result.stderr.splitlines()
    assert not any(x.startswith(("Traceback", "internal error")) for x in lines), result.stderr
    errors = [x for x in lines if x.startswith("error: ")]
    hints = [x for x in lines if x.startswith("hint: ")]
    assert len(errors) == 1 and said in errors[0], result.stderr
    assert len(hints) == 1, f"no hint after {errors[0]}"
    assert not _uninstalled(hints[0]), hints[0]


def test_a_postgres_url_is_told_how_sqlalchemy_spells_it(tmp_path: Path) -> None:
    command, _ = MISTAKES["a postgres:// state_url"]
    result = run_cli(*command(tmp_path))
    assert (
        "hint: SQLAlchemy does not know postgres://: write postgresql+psycopg://" in result.stderr
    )
    assert "u@h" not in result.stderr.splitlines()[-1], "the URL (and its password) is not echoed"


def test_configuration_mistakes_found_before_anything_is_read_exit_2(tmp_path: Path) -> None:
    """A URL SQLAlchemy cannot use is a mistake in the config, like any other (exit 2)."""
    command, _ = MISTAKES["a postgres:// state_url"]
    assert run_cli(*command(tmp_path)).returncode == 2


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"name": "Acme Corp!"}, "tenants 'Acme Corp!' is not a tenant name: letters, digits"),
        ({"default_region": "USA"}, "default_region is not a two-letter ISO 3166 region code"),
    ],
)
def test_patterns_are_said_in_words_not_as_regular_expressions(
    tmp_path: Path, change: dict[str, str], said: str
) -> None:
    tenant = _tenant(tmp_path)
    if "default_region" in change:
        tenant["default_region"] = change["default_region"]
    config = write_config(tmp_path, {change.get("name", "acme"): tenant})

    result = run_cli("check", config=config)

    assert result.returncode == 2
    assert said in result.stderr and "should match pattern" not in result.stderr


def test_json_gets_its_document_when_the_command_fails_before_any_tenant(
    tmp_path: Path,
) -> None:
    command, _ = MISTAKES["an unset ${VAR}"]
    args = [a for a in command(tmp_path) if a != "check"]

    for verb in ("sync", "reconcile", "check"):
        result = run_cli(*args[:-2], verb, "--json", *args[-2:])
        document = json.loads(result.stdout)
        assert result.returncode == document["exit_code"] == 2
        assert "NOWHERE_SET_42" in document["error"] and document["hint"]


def test_an_unset_variable_is_told_where_to_set_it(tmp_path: Path) -> None:
    command, _ = MISTAKES["an unset ${VAR}"]
    result = run_cli(*command(tmp_path))
    assert "hint: export NOWHERE_SET_42=… before running kore-connector" in result.stderr


def test_every_warning_code_is_documented() -> None:
    configuration = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    mappings = (ROOT / "docs" / "mappings.md").read_text(encoding="utf-8")
    for code in get_args(WarningCode):
        assert f"| `{code}` |" in configuration, code
        assert f"`{code}`" in mappings, code


def test_an_acknowledged_warning_is_counted_not_printed(tmp_path: Path, sandbox: Sandbox) -> None:
    """A HubSpot export has no do-not-call column: the warning holds on every run, and once the
    tenant acknowledges it, a cron job's mail no longer carries it."""
    exports = tmp_path / "exports"
    exports.mkdir()
    _written(exports / "week-1.csv", HUBSPOT + "1,Ann,Lee,,+1 415 201 0101,United States\n")
    tenant = tenant_config(sandbox, exports / "*.csv", mapping="hubspot")
    config = write_config(tmp_path, {"acme": tenant})

    warned = run_cli("sync", config=config)

    assert warned.returncode == 0, warned.stderr
    warning = (
        "warning: acme: mapping hubspot: skip_when.0.field names 'Do Not Call' or "
        "'do_not_call', which week-1.csv lacks; no row is skipped by that rule "
        "[no_do_not_call_column]"
    )
    assert warning in warned.stderr.splitlines()
    assert "acknowledge: [no_do_not_call_column] in tenants.acme" in warned.stderr
    (first,) = runs(tmp_path, "acme")
    assert summary(first)["warnings"] == [warning.removeprefix("warning: acme: ")]
    assert summary(first)["counters"]["warnings_acknowledged"] == 0

    tenant["acknowledge"] = ["no_do_not_call_column"]
    config.write_text(
        yaml.safe_dump({**yaml.safe_load(config.read_text()), "tenants": {"acme": tenant}})
    )
    _written(exports / "week-2.csv", HUBSPOT + "2,Bo,Kim,,+1 415 201 0102,United States\n")
    quiet = run_cli("sync", config=config)

    assert quiet.returncode == 0, quiet.stderr
    assert "warning:" not in quiet.stderr and "acknowledge" not in quiet.stderr
    _, second = runs(tmp_path, "acme")
    assert summary(second)["warnings"] == []
    assert summary(second)["counters"]["warnings_acknowledged"] == 1
    assert summary(second)["counters"]["created"] == 1
