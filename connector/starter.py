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

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from connector.errors import ConfigError, ConnectorError
from connector.mapping import BoundMapping, Mapping, MappingSpec, builtin_names, load_mapping, shown
from connector.mapping.headers import listed, role_of, roles

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
            f"{export}: no {' and no '.join(lacks)} column in its header; columns there: "
            f"{listed(header)}",
            hint="write a mapping of your own (docs/mappings.md) and name it in mapping:",
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


def write_config(target: Path, *, tenant: str, export: Path | None, force: bool) -> Layout | None:
    """Write the config, and the mapping written for the export when no built-in fits it (never
    over an existing file unless ``force``); returns what was recognised in ``export``."""
    if target.exists() and not force:
        raise ConfigError(
            f"{target} exists; init does not overwrite it",
            hint="pass --force to replace it, or --config to write another file",
        )
    layout = recognise(export, tenant=tenant) if export is not None else None
    if layout is not None and layout.written is not None:
        mapping_file = target.parent / layout.mapping
        if mapping_file.exists() and not force:
            raise ConfigError(
                f"{mapping_file} exists; init does not overwrite it",
                hint="pass --force to replace it, or --tenant to name another",
            )
        _write(mapping_file, layout.written)
    source = _source(layout, export, target)
    text = _TEMPLATE.format(
        tenant=tenant,
        source=source,
        mapping=layout.mapping if layout else GENERIC,
        variable=f"{tenant.upper().replace('-', '_').replace('.', '_')}_KORE_SECRET",
        recognised=_recognised(layout, export),
    )
    _write(target, text)
    return layout


def _write(path: Path, text: str) -> None:
    """A file readable by its owner only: a config holds the tenant's settings."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None


def _source(layout: Layout | None, export: Path | None, target: Path) -> str:
    if layout is None or export is None:
        return "{kind: csv, path: exports/*.csv}"
    try:
        path = str(export.resolve().relative_to(target.resolve().parent))
    except ValueError:
        path = str(export.resolve())
    parts = [f"kind: {layout.kind}", f"path: {_yaml_quoted(path)}"]
    if layout.encoding:
        parts.append(f"encoding: {layout.encoding}")
    if layout.delimiter:
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


def _wrapped(line: str, width: int = 96) -> str:
    words, out, current = line.split(" "), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            out.append(current)
            current = "#  " + word
        else:
            current = f"{current} {word}" if current else word
    out.append(current)
    return "\n".join(out)


_TEMPLATE = """\
# kore-connector configuration, written by `kore-connector init`.
# Every key, its default and meaning: docs/configuration.md. Check it with `kore-connector check`
# (add --online to prove the credentials), then `kore-connector sync --dry-run`.
{recognised}

state_url: sqlite:///connector-state.db      # PostgreSQL for several processes
reports_dir: reports                         # one folder per run, kept 30 days

tenants:
  {tenant}:
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
    changes:                                 # what later exports do to contacts in Kore
      renamed: skip                          # or update
      do_not_call: keep                      # or delete
      removed: keep                          # or delete (snapshots, removed_when rows)
"""
