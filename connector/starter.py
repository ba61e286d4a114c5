"""``init``: a commented ``connector.yaml`` for one tenant, from an export when there is one.

The export's header decides the mapping (docs/mappings.md, "How init chooses"). Its columns are
read by meaning through the synonym table (``headers.roles``); every built-in is bound to it and
scored by how many of the meaningful columns it reads as what they mean. The best wins; a
vendor's mapping that ties the generic one wins when it is the only vendor's that does (it knows
its CRM's values: do-not-call words, salutations, what ``Title`` holds), while a header several
vendors read equally well is nobody's in particular and gets ``generic``. When even the winner
leaves a meaningful column unread, or reads it as something else, ``init`` writes a mapping of
the header's own beside the config, from the synonym table, and names it in ``mapping:``. It
refuses only a header with no phone column or no name column at all.

The file's encoding and delimiter are detected as a run would, and written down, so that
``check`` reads it the same way on another machine.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import re
import stat
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.tokens import CommentToken

from connector.errors import DOCS, ConfigError, ConnectorError, code_of
from connector.mapping import BoundMapping, Mapping, MappingSpec, builtin_names, load_mapping, shown
from connector.mapping.apply import columns_there
from connector.mapping.headers import role_of, roles
from connector.settings import config_mapping, data_folder, load_yaml, read_yaml_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from connector.mapping.headers import Role

GENERIC = "generic"
NAMES: tuple[Role, ...] = ("first_name", "last_name", "full_name")
PHONES: tuple[Role, ...] = ("mobile", "phone")
MEANINGFUL: frozenset[Role] = frozenset(NAMES + PHONES) | {
    "salutation",
    "country",
    "updated_at",
    "id",
    "do_not_call",
    "company",
    "is_company",
}
"""Roles whose columns change what is sent or to whom: a built-in that leaves one of them unread
does not fit the export. A job title, a phone's label and an ambiguous ``Title`` are not among
them."""
_READS_AS: dict[str, frozenset[Role]] = {
    "fields.firstName.from": frozenset(["first_name"]),
    "fields.lastName.from": frozenset(["last_name"]),
    "fields.salutation.from": frozenset(["salutation"]),
    "full_name": frozenset(["full_name"]),
    "id": frozenset(["id"]),
    "updated_at": frozenset(["updated_at"]),
    "company": frozenset(["company"]),
    "is_company": frozenset(["is_company"]),
    "phone.from": frozenset(PHONES),
    "phone.region_from": frozenset(["country"]),
    "skip_when.field": frozenset(["do_not_call"]),
}
"""What a column means when a mapping reads it at each place (``Mapping.columns``)."""


@dataclass(frozen=True)
class Layout:
    """What ``init`` found in an export: how to read it, and which mapping reads it best.
    ``written`` is the text of a mapping of the export's own, when no built-in fits; ``mapping``
    is then the file's name, beside the config."""

    kind: str
    encoding: str | None
    delimiter: str | None
    mapping: str
    columns: list[str]
    warnings: tuple[str, ...]
    written: str | None = None


@dataclass(frozen=True)
class _Candidate:
    """A built-in bound to the header, with the meaningful columns it reads as meant."""

    name: str
    bound: BoundMapping
    read: frozenset[int]


def recognise(export: Path, *, tenant: str = "main") -> Layout:
    """The export's format and the mapping that reads its header: a built-in, or one written
    for it (named ``mapping-<tenant>.yaml``)."""
    kind, encoding, delimiter, header = _inspect(export)
    placed = roles(header)
    meant = {p: role for role, places in placed.items() for p in places}
    _need_a_phone_and_a_name(meant, header, export)
    meaningful = frozenset(p for p, role in meant.items() if role in MEANINGFUL)
    best = _best(_candidates(header, export.name, meant))
    if best is not None and best.read == meaningful:
        used = sorted({p for found in best.bound.positions.values() for p in found})
        columns = [shown(header[p]) for p in used]
        return Layout(kind, encoding, delimiter, best.name, columns, best.bound.warnings)
    name = f"mapping-{tenant}.yaml"
    text = _written(header, placed, export.name)
    bound = Mapping(name, MappingSpec.model_validate(yaml.safe_load(text))).bind(
        header, export.name
    )
    unread = sorted(meaningful - (best.read if best else frozenset()))
    note = (
        f"no built-in mapping reads {_names(header, unread)} as this header means it; init "
        f"wrote {name}, which names every column it reads"
    )
    columns = [shown(header[p]) for p in sorted(meaningful)]
    return Layout(kind, encoding, delimiter, name, columns, (note, *bound.warnings), text)


def _inspect(export: Path) -> tuple[str, str | None, str | None, list[str]]:
    """The export's kind, encoding (the one to pin in the config), delimiter and header."""
    from connector.settings import CsvSourceSettings, XlsxSourceSettings

    if export.suffix.lower() == ".xlsx":
        from connector.sources.xlsx_files import inspect_xlsx

        workbook = inspect_xlsx(export, XlsxSourceSettings(kind="xlsx", path=str(export)))
        return "xlsx", None, None, workbook.header()
    from connector.sources.csv_files import inspect_csv

    csv_file = inspect_csv(export, CsvSourceSettings(kind="csv", path=str(export)))
    encoding: str | None = csv_file.pinned_encoding
    return "csv", encoding, csv_file.dialect(), csv_file.header()


def _need_a_phone_and_a_name(meant: dict[int, Role], header: Sequence[str], export: Path) -> None:
    """No mapping can be written for a header without a phone or a name column: say so in one
    line naming the columns that are there."""
    lacks = [
        what
        for what, wanted in (("phone", PHONES), ("name", NAMES))
        if not any(role in wanted for role in meant.values())
    ]
    if lacks:
        raise ConfigError(
            f"{export}: no {' and no '.join(lacks)} column in its header; {columns_there(header)}",
            hint=f"write a mapping of your own ({DOCS}mappings.md) and name it in mapping:",
        )


def _candidates(header: list[str], source: str, meant: dict[int, Role]) -> list[_Candidate]:
    found = []
    for name in builtin_names():
        try:
            bound = load_mapping(name).bind(header, source)
        except ConnectorError:
            continue
        found.append(_Candidate(name, bound, _read_as_meant(bound, meant)))
    return found


def _read_as_meant(bound: BoundMapping, meant: dict[int, Role]) -> frozenset[int]:
    """The header's meaningful columns the mapping reads in the place their meaning belongs."""
    read = set()
    for where, places in bound.positions.items():
        wanted = _READS_AS.get(re.sub(r"\.\d+\.", ".", where), frozenset())
        read |= {p for p in places if meant.get(p) in wanted and meant[p] in MEANINGFUL}
    return frozenset(read)


def _best(candidates: list[_Candidate]) -> _Candidate | None:
    """The built-in that reads the most meaningful columns as meant. A tie goes to the one
    vendor's mapping among the leaders, else to generic: a header that several vendors read
    equally well is no vendor's in particular."""
    if not candidates:
        return None
    most = max(len(c.read) for c in candidates)
    leaders = [c for c in candidates if len(c.read) == most]
    vendors = [c for c in leaders if c.name != GENERIC]
    if len(vendors) == 1:
        return vendors[0]
    generic = [c for c in leaders if c.name == GENERIC]
    return generic[0] if generic else min(leaders, key=lambda c: (len(c.bound.warnings), c.name))


def _names(header: Sequence[str], places: Sequence[int]) -> str:
    return ", ".join(f"'{shown(header[p])}'" for p in places)


def _written(header: Sequence[str], placed: dict[Role, list[int]], source: str) -> str:
    """A mapping that reads every meaningful column of ``header`` by its meaning (``placed``:
    ``roles(header)``), mobiles first, each name as the export spells it, and a comment on each
    column read as something its name alone does not say."""

    def names(*wanted: Role) -> str:
        return "[" + ", ".join(_quoted(header[p]) for r in wanted for p in placed.get(r, [])) + "]"

    lines = [
        f"# Mapping for {_comment(source)}, written by `kore-connector init` from its header: no",
        "# built-in mapping reads all its columns as they are meant. Every column named here must",
        "# be in the export (docs/mappings.md); `kore-connector check` shows what it makes of the",
        "# first rows. Edit it freely.",
        f"description: {_quoted(f'Written by init from the header of {source}.')}",
    ]
    for role, comment in _TOP_LEVEL.items():
        if role in placed:
            lines += [f"# {comment}", f"{role}: {{from: {names(role)}}}"]
    if "do_not_call" in placed:
        said = ", ".join(_quoted(v) for v in load_mapping(GENERIC).spec.skip_when[0].in_)
        lines += [
            "# rows a contact center must not dial",
            "skip_when:",
            f"  - {{field: {names('do_not_call')}, in: [{said}]}}",
        ]
    lines.append("fields:" if any(r in placed for r in _FIELDS.values()) else "fields: {}")
    for field, role in _FIELDS.items():
        if role in placed:
            lines += [*_context(header, placed, role), f"  {field}: {{from: {names(role)}}}"]
    lines += [
        "phone:",
        "  # mobiles first: Kore's field is cellPhoneNumber",
        f"  from: {names(*PHONES)}",
    ]
    if "country" in placed:
        lines.append(f"  region_from: {names('country')}")
    return "\n".join(lines) + "\n"


_TOP_LEVEL: dict[Role, str] = {
    "id": "the record id, for reports",
    "updated_at": "the most recently modified row wins a duplicate number",
    "full_name": "split into first and last when both are empty",
    "company": "a full name equal to the company is an organisation's, kept whole",
    "is_company": "a row flagged as a company keeps its name whole",
}
"""The mapping's keys named after the role they read, with the comment written above each."""
_FIELDS: dict[str, Role] = {
    "firstName": "first_name",
    "lastName": "last_name",
    "salutation": "salutation",
}


def _context(header: Sequence[str], placed: dict[Role, list[int]], role: Role) -> list[str]:
    """Comments for the columns of ``role`` that their name alone would give another role:
    a bare ``Name`` beside a last name, ``Title`` beside a job title (``headers.roles``)."""
    said = []
    for p in placed[role]:
        alone = role_of(header[p])
        if alone != role:
            beside = placed["last_name" if alone == "full_name" else "job_title"][0]
            said.append(
                f"  # '{_comment(header[p])}' beside '{_comment(header[beside])}' is read as "
                f"the {role.replace('_', ' ')}"
            )
    return said


def _quoted(value: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes are YAML's), an invisible character in a
    header name written as an escape so that a person editing the file sees it."""
    text = json.dumps(value, ensure_ascii=False)
    return "".join(c if c.isprintable() else _escape(ord(c)) for c in text)


def _escape(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _comment(value: str) -> str:
    """A header name fit for a YAML comment: one line, printable."""
    return shown(value, limit=60)


@dataclass(frozen=True)
class Written:
    """What ``init`` did: ``how`` the tenant went into the config (a new file, ``added`` to an
    existing one, or ``replaced`` there), the ``source_path`` it was given, and what was
    recognised in the export, if one was given."""

    how: Literal["created", "added", "replaced"]
    source_path: str
    layout: Layout | None
    strangers: tuple[str, ...] = ()
    """Files beside the export that the glob also reads but that are not read like it (another
    header, encoding or delimiter, or unreadable): the glob is too wide for this folder."""


def write_config(target: Path, *, tenant: str, export: Path | None, force: bool) -> Written:
    """Write the tenant into the config: a new file, or added to the one there with its comments
    kept; a tenant of that name is replaced only with ``force``. A mapping written for the
    export (when no built-in fits it) goes beside the config, never over an existing file
    unless ``force``."""
    existing = _Config.read(target) if target.exists() else None
    if existing is not None and tenant in existing.tenants and not force:
        raise ConfigError(
            f"{target}: tenant {tenant!r} is already there; init does not replace it",
            hint="pass --force to replace that tenant (the others are kept), or --tenant to add "
            "another",
        )
    layout = recognise(export, tenant=tenant) if export is not None else None
    source_path = _export_glob(export, target) if export else f"exports/{tenant}/*.csv"
    if existing is not None and export is not None:
        _one_tenant_a_file(existing, tenant, export, source_path, target)
    if layout is not None and layout.written is not None:
        mapping_file = target.parent / layout.mapping
        if mapping_file.exists() and not force:
            raise ConfigError(
                f"{mapping_file} exists; init does not overwrite it",
                hint="pass --force to replace it, or --tenant to name another",
            )
        _write(mapping_file, layout.written)
    block = _tenant_block(tenant, layout, export, source_path)
    strangers = _strangers(export) if export is not None else ()
    if existing is None:
        _write(target, _HEADER.format(docs=DOCS) + block)
        return Written("created", source_path, layout, strangers)
    how: Literal["added", "replaced"] = "replaced" if tenant in existing.tenants else "added"
    existing.put(tenant, block)
    _replace(target, existing.text())
    return Written(how, source_path, layout, strangers)


_NEIGHBOURS = 5
"""Files beside an export that ``init`` compares with it: enough to tell a folder of one CRM's
exports from a shared drop folder, few enough to stay quick."""


def _strangers(export: Path) -> tuple[str, ...]:
    """Names of the files beside ``export`` with its extension (the first ``_NEIGHBOURS``, by
    name) that are not read like it: a header, encoding or delimiter of their own."""
    from connector.errors import ConnectorError

    own = _inspect(export)
    found: list[str] = []
    siblings = sorted(p for p in export.parent.glob(f"*{export.suffix}") if p != export)
    for sibling in siblings[:_NEIGHBOURS]:
        try:
            if not sibling.is_file() or _inspect(sibling) != own:
                found.append(sibling.name)
        except ConnectorError:
            found.append(sibling.name)
    return tuple(found)


def _export_glob(export: Path, target: Path) -> str:
    """Every file like the export in its folder (``exports/*.csv`` for
    ``exports/acme-2025-03.csv``), so that next week's export, under a new name, is read too.
    Relative to where data paths resolve (``settings.data_folder``: ``$STATE_DIRECTORY``, else
    the config's folder) when the export is under it, so that the config works wherever config
    and data are moved together; absolute otherwise."""
    folder = export.resolve().parent
    files = f"*{export.suffix}" if export.suffix else glob.escape(export.name)
    try:
        relative = folder.relative_to(data_folder(target).resolve())
    except ValueError:
        return str(Path(glob.escape(str(folder))) / files)
    return str(Path(glob.escape(str(relative))) / files) if relative.parts else files


def _one_tenant_a_file(
    config: _Config, tenant: str, export: Path, source_path: str, target: Path
) -> None:
    """Refuse a glob that would read another tenant's exports, or that another tenant's
    ``source.path`` matches the export of: the same file read for two tenants sends one CRM's
    contacts to two bots."""
    base = data_folder(target)
    ours = _matches(base / source_path)
    for name, settings in config.tenants.items():
        source = settings.get("source") if isinstance(settings, dict) else None
        path = source.get("path") if isinstance(source, dict) else None
        if name == tenant or not isinstance(path, str) or "${" in path:
            continue
        theirs = _matches(base / path)
        if export.resolve() in theirs:
            problem = f"tenant {name!r} reads it already (source.path {path})"
        elif ours & theirs:
            problem = (
                f"{source_path}, the glob init would write, also reads tenant {name!r}'s exports "
                f"(source.path {path})"
            )
        else:
            continue
        raise ConfigError(
            f"{export}: {problem}",
            hint=f"give each tenant's exports a folder of their own (e.g. exports/{tenant}/), "
            "then run init again",
        )


def _matches(pattern: Path) -> set[Path]:
    """The files a source path names now, as the run finds them (``sources.files``)."""
    if not glob.has_magic(str(pattern)):
        return {pattern.resolve()}
    return {Path(found).resolve() for found in glob.glob(str(pattern), recursive=True)}


def _not_a_config(path: Path) -> ConfigError:
    """What init says of a file at the --config path that it must not edit (its lines are not
    shown: it may be any file)."""
    return ConfigError(
        f"{path} exists and is not a config init can add to: expected a mapping with 'tenants' "
        "at the top",
        hint="move it away, or pass --config to write another file",
    )


class _Config:
    """A config file edited as text that people wrote: ruamel.yaml's round trip keeps its
    comments, key order, quoting and flow maps, as ansible-lint's ``FormattedYAML`` does; the
    indentation is read from the file, so that lines init does not touch come out as they were.
    """

    def __init__(self, path: Path, yaml: YAML, document: CommentedMap, unit: int) -> None:
        self.yaml = yaml
        self.document = document
        self.unit = unit
        tenants = document.get("tenants")
        if tenants is None:
            document["tenants"] = tenants = CommentedMap()
        if not isinstance(tenants, CommentedMap):
            raise ConfigError(
                f"{path}: tenants is not a mapping of tenants by name",
                hint=f"tenants: holds one key per tenant; see {DOCS}configuration.md",
            )
        tenants.fa.set_block_style()
        self.tenants = tenants

    @classmethod
    def read(cls, path: Path) -> _Config:
        try:
            text = read_yaml_text(path)
        except OSError as exc:
            raise ConfigError(
                f"{path}: cannot read the config init would add to: {exc}",
                hint="check the file, or pass --config to write another one",
            ) from None
        data = load_yaml(text, path)  # a broken file is said as every other command says it
        try:
            config_mapping(data, path)
        except ConfigError:
            raise _not_a_config(path) from None
        mapping, offset = _indentation(text)
        yaml = YAML()
        yaml.preserve_quotes = True
        yaml.width = 4096  # long lines stay as they were written
        yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
        try:
            document = yaml.load(text)
        except YAMLError as exc:
            raise ConfigError(
                f"{path}: init cannot edit it: {exc}".splitlines()[0],
                hint="fix what it names (a key given twice?), or pass --config to write another "
                "file",
            ) from None
        if not isinstance(document, CommentedMap):
            raise _not_a_config(path)
        return cls(path, yaml, document, mapping)

    def put(self, name: str, block: str) -> None:
        """Add the tenant ``block`` (as ``_tenant_block`` writes it) after the last tenant, or
        put it in the place of the tenant of that name.

        ruamel.yaml keeps the comment lines that follow a nested block with its last value: the
        next section's heading (``# Daemon settings``) or the next tenant's is stored on the last
        tenant's last line. Those lines (the ones at or left of the tenants' own column) move to
        the new block's last line, so that they stay above what they head, and a replaced
        tenant's own comments go with it."""
        column = int(self.tenants.lc.col) if self.tenants else self.unit
        parsed = self.yaml.load(_reindented(block, column, self.unit))["tenants"]
        new = parsed[name]
        before = name if name in self.tenants else next(reversed(self.tenants), None)
        following = "" if before is None else _detach_following(self.tenants[before], column)
        self.tenants[name] = new
        self.tenants.ca.items.pop(name, None)
        if name in parsed.ca.items:  # the comments between the name and its first key
            self.tenants.ca.items[name] = parsed.ca.items[name]
        if following:
            _trailing_tokens(new)[-1].value += following

    def text(self) -> str:
        out = io.StringIO()
        self.yaml.dump(self.document, out)
        return out.getvalue()


def _indentation(text: str) -> tuple[int, int]:
    """The file's mapping indent and block sequences' offset (``- `` under its key: 0 at the
    key's column, 2 indented), from the first of each; 2 and 2 when the file has none."""
    mapping = offset = None
    previous: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if previous is not None and previous.rstrip().endswith(":"):
            step = _indent(line) - _indent(previous)
            if stripped.startswith("- ") and offset is None:
                offset = step
            elif not stripped.startswith("- ") and step > 0 and mapping is None:
                mapping = step
        previous = line.split(" #", 1)[0]
    return mapping or 2, 2 if offset is None else offset


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _reindented(block: str, column: int, unit: int) -> str:
    """``tenants:`` and the tenant ``block`` (written two spaces a level, the tenant's name at
    column 2) with the name at ``column`` and ``unit`` spaces a level, as the file has them."""
    lines = []
    for line in block.splitlines():
        level = _indent(line) // 2
        lines.append(" " * (column + (level - 1) * unit) + line.lstrip(" "))
    return "tenants:\n" + "\n".join(lines) + "\n"


def _trailing_tokens(node: object) -> list[CommentToken]:
    """The comments after each last value on the way down to ``node``'s last line, outermost
    first: where ruamel.yaml keeps the lines that follow a nested block."""
    tokens = []
    while isinstance(node, CommentedMap | CommentedSeq) and len(node):
        last = list(node)[-1] if isinstance(node, CommentedMap) else len(node) - 1
        entry = node.ca.items.get(last)
        after = entry[2 if isinstance(node, CommentedMap) else 0] if entry else None
        if isinstance(after, CommentToken):
            tokens.append(after)
        node = node[last]
    return tokens


def _detach_following(node: object, column: int) -> str:
    """Cut from the comments after ``node``'s last line those that head what follows it: from
    the first line at or left of ``column`` on, with the blank lines before it (and trailing
    blank lines). Lines indented further are the node's own and stay."""
    following = ""
    for token in _trailing_tokens(node):
        own, newline, rest = token.value.partition("\n")
        lines = rest.splitlines(keepends=True)
        cut = next(
            (i for i, line in enumerate(lines) if line.strip() and _indent(line) <= column),
            len(lines),
        )
        while cut and not lines[cut - 1].strip():
            cut -= 1
        token.value = own + newline + "".join(lines[:cut])
        following += "".join(lines[cut:])
    return following


def _write(path: Path, text: str) -> None:
    """A file readable by its owner only: a config holds the tenant's settings."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot write: {exc.strerror}",
            hint="check the folder and its permissions, or pass --config to write elsewhere",
        ) from None


def _replace(path: Path, text: str) -> None:
    """Replace the config whole or not at all (a file beside it, then renamed over it), with
    the old file's permissions and, where this user may, its owner and group: a config made
    ``root:kore-connector 0640`` stays readable by the daemon."""
    target = path.resolve()  # a symlinked config is edited where it lives
    status = target.stat()
    temporary = target.with_name(f".{target.name}.init-{os.getpid()}")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, stat.S_IMODE(status.st_mode))
        with contextlib.suppress(PermissionError):
            os.chown(temporary, status.st_uid, status.st_gid)
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(
            f"{path}: cannot write: {exc.strerror}",
            hint="check the folder and its permissions, or pass --config to write elsewhere",
        ) from None


def _tenant_block(tenant: str, layout: Layout | None, export: Path | None, path: str) -> str:
    """The tenant's lines of the config, its name at column 2: what was recognised in the
    export as comments, then its settings. Its last line carries a comment, which is where the
    comments that follow it are kept (``_Config.put``)."""
    codes = sorted({code for w in layout.warnings if (code := code_of(w))}) if layout else []
    acknowledge = (
        f"    # acknowledge: [{', '.join(codes)}]   # accepts the warnings above: counted, "
        "not printed\n"
        if codes
        else ""
    )
    return _TENANT.format(
        tenant=tenant,
        recognised=textwrap.indent(_recognised(layout, export), "    "),
        source=_source(layout, path),
        mapping=layout.mapping if layout else GENERIC,
        variable=secret_variable(tenant),
        acknowledge=acknowledge,
    )


def secret_variable(tenant: str) -> str:
    """The environment variable the config names for the tenant's client secret."""
    return f"{tenant.upper().replace('-', '_').replace('.', '_')}_KORE_SECRET"


def _source(layout: Layout | None, path: str) -> str:
    parts = [f"kind: {layout.kind if layout else 'csv'}", f"path: {_yaml_quoted(path)}"]
    if layout is not None and layout.encoding:
        parts.append(f"encoding: {layout.encoding}")
    if layout is not None and layout.delimiter:
        parts.append(f"delimiter: {_yaml_quoted(layout.delimiter)}")
    return "{" + ", ".join(parts) + "}"


def _yaml_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t") + '"'


def _recognised(layout: Layout | None, export: Path | None) -> str:
    if layout is None or export is None:
        return "# No export was given: the generic mapping reads plain English headers."
    lines = [
        f"# Recognised {export.name}: {layout.kind}"
        + (f", {layout.encoding}" if layout.encoding else "")
        + f"; the {layout.mapping} mapping reads its columns "
        + ", ".join(layout.columns)
        + "."
    ]
    lines += [f"# Note: {warning}" for warning in layout.warnings]
    return "\n".join(_wrapped(line) for line in lines)


def _wrapped(line: str, width: int = 92) -> str:
    """A comment line cut at ``width`` (the tenant's lines are indented 4 more)."""
    words, out, current = line.split(" "), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            out.append(current)
            current = "#  " + word
        else:
            current = f"{current} {word}" if current else word
    out.append(current)
    return "\n".join(out)


_HEADER = """\
# kore-connector configuration, written by `kore-connector init`.
# Every key, its default and meaning: {docs}configuration.md
# Check it with `kore-connector check` (add --online to prove the credentials), then
# `kore-connector sync --dry-run`. `kore-connector init --from EXPORT --tenant NAME` adds tenants.

state_url: sqlite:///connector-state.db      # PostgreSQL for several processes
reports_dir: reports                         # one folder per run, kept 30 days

tenants:
"""

_TENANT = """\
  {tenant}:
{recognised}
    kore:
      host: https://platform.kore.ai         # your region's platform address
      bot_id: st-replace-with-your-bot-id    # the bot (stream) id, st-...
      account_id: replace-with-your-account-id
      client_id: cs-replace-with-your-client-id
      client_secret: ${{{variable}}}   # set it in the environment, never here
      batch_size: 1000                       # rows per uploaded file
    source: {source}
    mapping: {mapping}
    default_region: US                       # for numbers written without a country code
    schedule: {{every: 15m}}                   # how often the daemon runs this tenant
{acknowledge}    changes:                                 # what later exports do to contacts in Kore
      renamed: skip                          # or update
      do_not_call: keep                      # or delete
      removed: keep                          # or delete (snapshots, removed_when rows)
"""
