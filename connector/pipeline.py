"""One run for one tenant: source -> mapping -> keys & dedupe -> batches -> Kore -> state -> report.

``run_once`` is the one function both ``sync`` and the daemon call. Batches that an earlier run
left in flight are settled first; then every new file is read, mapped and deduplicated; numbers
delivered before are skipped; the rest go out in batches. A file is remembered as processed only
when the run completes, so a crash costs a re-read, never a lost row.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.delivery import Deliverer
from connector.errors import ConnectorError
from connector.kore.client import KoreClient
from connector.mapping import BoundMapping, Contact, Rejection, load_mapping
from connector.report import Report, batch_csv
from connector.settings import Settings, TenantSettings
from connector.sources import SourceFile
from connector.sources.csv_files import CsvSource
from connector.state import Store

log = logging.getLogger(__name__)

Progress = Callable[[str, Counter[str]], None]
_PROGRESS_EVERY = 2000


@dataclass
class RunResult:
    tenant: str
    run_id: str
    status: str
    counters: Counter[str]
    report_dir: Path
    error: ConnectorError | None = None
    warnings: list[str] = field(default_factory=list)


def new_run_id() -> str:
    """Sortable by start time (to the microsecond), unique across processes."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(3)


def run_once(
    name: str,
    tenant: TenantSettings,
    *,
    settings: Settings,
    store: Store,
    base_dir: Path,
    dry_run: bool = False,
    full: bool = False,
    client_factory: Callable[[TenantSettings], KoreClient] | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run one tenant once. User errors end the run as ``failed`` and are returned, not raised."""
    run_id = new_run_id()
    report = Report(settings.reports_dir / name / run_id)
    counters: Counter[str] = Counter()
    result = RunResult(name, run_id, "running", counters, report.directory)
    started = datetime.now(UTC)
    if not dry_run:
        store.start_run(name, run_id, dry_run=False)
    client: KoreClient | None = None
    try:
        mapping = load_mapping(tenant.mapping, base=base_dir)
        files = _new_files(name, tenant, store, counters, full=full)
        bound = {f.content_hash: _bind(mapping.bind, f, result.warnings) for f in files}
        if not dry_run:
            client = (client_factory or (lambda t: KoreClient(t.kore)))(tenant)
            deliverer = Deliverer(
                tenant=name,
                run_id=run_id,
                store=store,
                client=client,
                report=report,
                counters=counters,
                settings=tenant.kore,
            )
            for batch in store.pending_batches(name):
                deliverer.resume(batch)
        in_flight = store.pending_count(name) if dry_run else 0
        if in_flight:
            result.warnings.append(
                f"{in_flight:,} rows of an interrupted run are in flight; "
                "a real run re-sends them before anything else"
            )
        file_rows: Counter[str] = Counter()
        candidates = _read(files, bound, tenant, report, counters, file_rows, progress, name)
        fresh, changed = _against_state(name, candidates, store, counters)
        size = tenant.kore.batch_size
        for start in range(0, len(fresh), size):
            chunk = fresh[start : start + size]
            if dry_run:
                report.write_batch(batch_csv([c.csv_row() for c in chunk]))
                counters["batches"] += 1
                counters["would_send"] += len(chunk)
            else:
                deliverer.send(chunk)
            if progress:
                progress(name, counters)
        if changed and tenant.kore.update_changed and not dry_run:
            deliverer.update(changed)
        elif changed:
            counters["changed_skipped"] += len(changed)
        if not dry_run:
            store.mark_processed(
                name, [(f.content_hash, f.name, file_rows[f.content_hash]) for f in files]
            )
        result.status = "completed"
    except ConnectorError as exc:
        result.status = "failed"
        result.error = exc
    finally:
        if client is not None:
            client.close()
        counters["rejected"] = sum(report.reasons.values())
        public = dict(sorted(counters.items()))
        summary: dict[str, Any] = {
            "run_id": run_id,
            "tenant": name,
            "status": result.status,
            "dry_run": dry_run,
            "full": full,
            "started_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "counters": public,
            "error": result.error.message if result.error else None,
            "warnings": result.warnings,
        }
        report.close(summary)
        if not dry_run:
            store.finish_run(run_id, status=result.status, counters=public)
    return result


def _new_files(
    name: str, tenant: TenantSettings, store: Store, counters: Counter[str], *, full: bool
) -> list[SourceFile]:
    files = CsvSource(tenant.source).discover()
    seen = set() if full else store.processed_hashes(name)
    counters["files_seen"] = len(files)
    new = []
    hashes: set[str] = set()
    for f in files:
        if f.content_hash in seen or f.content_hash in hashes:
            counters["files_skipped"] += 1
            continue
        hashes.add(f.content_hash)
        new.append(f)
    counters["files_read"] = len(new)
    if not files:
        log.warning("tenant %s: no file matches %s", name, tenant.source.path)
    return new


def _bind(
    bind: Callable[[list[str], str], BoundMapping], f: SourceFile, warnings: list[str]
) -> BoundMapping:
    bound = bind(f.header(), f.name)
    for warning in bound.warnings:
        if warning not in warnings:
            log.warning(warning)
            warnings.append(warning)
    return bound


def _read(
    files: list[SourceFile],
    bound: dict[str, BoundMapping],
    tenant: TenantSettings,
    report: Report,
    counters: Counter[str],
    file_rows: Counter[str],
    progress: Progress | None,
    name: str,
) -> dict[str, Contact]:
    """Map every row; keep one contact per key (the most recently updated, else the first)."""
    winners: dict[str, Contact] = {}
    for f in files:
        mapping = bound[f.content_hash]
        for item in _mapped(f, mapping, tenant.default_region, counters, file_rows):
            if progress and counters["rows_read"] % _PROGRESS_EVERY == 0:
                progress(name, counters)
            if isinstance(item, Rejection):
                report.reject(item)
                continue
            held = winners.get(item.key)
            if held is None:
                winners[item.key] = item
                continue
            if _newer(item, held):
                winners[item.key], item, held = item, held, item
            report.reject_contact(
                item, "duplicate_in_source", f"same number as {held.source} row {held.row}"
            )
        if progress:
            progress(name, counters)
    return winners


def _mapped(
    f: SourceFile,
    mapping: BoundMapping,
    region: str,
    counters: Counter[str],
    file_rows: Counter[str],
) -> Iterator[Contact | Rejection]:
    width = len(mapping.header)
    for row in f.rows():
        counters["rows_read"] += 1
        file_rows[f.content_hash] += 1
        if row.error or len(row.values) != width:
            detail = row.error or f"{len(row.values)} cells where the header has {width}"
            yield Rejection(
                "malformed_row",
                detail,
                f.name,
                row.line,
                "",
                {"cells": " | ".join(row.values)[:500]} if row.values else {},
            )
            continue
        yield mapping.apply(row.values, source=f.name, row=row.line, default_region=region)


def _newer(candidate: Contact, held: Contact) -> bool:
    if candidate.updated_at is None:
        return False
    return held.updated_at is None or candidate.updated_at > held.updated_at


def _against_state(
    name: str, candidates: dict[str, Contact], store: Store, counters: Counter[str]
) -> tuple[list[Contact], list[tuple[Contact, str]]]:
    """Split into contacts never delivered and delivered ones whose names changed since."""
    delivered = store.delivered(name, candidates.keys())
    fresh: list[Contact] = []
    changed: list[tuple[Contact, str]] = []
    for key, contact in candidates.items():
        before = delivered.get(key)
        if before is None:
            fresh.append(contact)
            continue
        counters["already_delivered"] += 1
        if before.fingerprint != contact.fingerprint and before.kore_id:
            changed.append((contact, before.kore_id))
    counters["contacts"] = len(candidates)
    return fresh, changed
