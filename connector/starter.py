"""``init``: a commented ``connector.yaml`` for one tenant, from an export when there is one.

The export's header decides the built-in mapping: every built-in is bound to it, and the one
that binds and reads the most of its columns wins (the fewest warnings, then ``generic``,
breaking a tie: a vendor's mapping that reads no more than the generic one has no claim). The file's encoding and delimiter are detected
as a run would, and written down, so that ``check`` reads it the same way on another machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from connector.errors import ConfigError, ConnectorError
from connector.mapping import BoundMapping, builtin_names, load_mapping, shown

GENERIC = "generic"


@dataclass(frozen=True)
class Layout:
    """What ``init`` found in an export: how to read it, and which mapping reads it best."""

    kind: str
    encoding: str | None
    delimiter: str | None
    mapping: str
    columns: list[str]
    warnings: tuple[str, ...]


def recognise(export: Path) -> Layout:
    """The export's format and the built-in mapping its header matches best."""
    from connector.settings import CsvSourceSettings, XlsxSourceSettings

    if export.suffix.lower() == ".xlsx":
        from connector.sources.xlsx_files import inspect_xlsx

        workbook = inspect_xlsx(export, XlsxSourceSettings(kind="xlsx", path=str(export)))
        kind, encoding, delimiter, header = "xlsx", None, None, workbook.header()
    else:
        from connector.sources.csv_files import inspect_csv

        csv_file = inspect_csv(export, CsvSourceSettings(kind="csv", path=str(export)))
        kind, encoding, delimiter = "csv", csv_file.encoding, csv_file.dialect()
        header = csv_file.header()
    best: tuple[tuple[int, int, int], str, BoundMapping] | None = None
    for name in builtin_names():
        try:
            bound = load_mapping(name).bind(header, export.name)
        except ConnectorError:
            continue
        read = len({p for found in bound.positions.values() for p in found})
        score = (read, -len(bound.warnings), int(name == GENERIC))
        if best is None or score > best[0]:
            best = (score, name, bound)
    if best is None:
        raise ConfigError(
            f"{export}: no built-in mapping reads this header (it needs a name and a phone column)",
            hint="write a mapping of your own (docs/mappings.md) and name it in mapping:",
        )
    _, name, bound = best
    used = sorted({p for found in bound.positions.values() for p in found})
    return Layout(kind, encoding, delimiter, name, [shown(header[p]) for p in used], bound.warnings)


def write_config(target: Path, *, tenant: str, export: Path | None, force: bool) -> Layout | None:
    """Write the config (never over an existing file unless ``force``); returns what was
    recognised in ``export``."""
    if target.exists() and not force:
        raise ConfigError(
            f"{target} exists; init does not overwrite it",
            hint="pass --force to replace it, or --config to write another file",
        )
    layout = recognise(export) if export is not None else None
    source = _source(layout, export, target)
    text = _TEMPLATE.format(
        tenant=tenant,
        source=source,
        mapping=layout.mapping if layout else GENERIC,
        variable=f"{tenant.upper().replace('-', '_').replace('.', '_')}_KORE_SECRET",
        recognised=_recognised(layout, export),
    )
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write: {exc.strerror}") from None
    return layout


def _source(layout: Layout | None, export: Path | None, target: Path) -> str:
    if layout is None or export is None:
        return "{kind: csv, path: exports/*.csv}"
    try:
        path = str(export.resolve().relative_to(target.resolve().parent))
    except ValueError:
        path = str(export.resolve())
    parts = [f"kind: {layout.kind}", f"path: {_quoted(path)}"]
    if layout.encoding:
        parts.append(f"encoding: {layout.encoding}")
    if layout.delimiter:
        parts.append(f"delimiter: {_quoted(layout.delimiter)}")
    return "{" + ", ".join(parts) + "}"


def _quoted(value: str) -> str:
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
      removed: keep                          # or delete (snapshot sources only)
"""
