"""One-line run summaries, shared by ``sync`` and ``demo``."""

from __future__ import annotations

from connector.pipeline import RunResult


def describe(result: RunResult, *, dry_run: bool) -> str:
    c = result.counters
    if dry_run:
        sent = f"{c['would_send']:,} would be sent in {c['batches']:,} batch files"
    else:
        parts = [f"{c['created']:,} created"]
        parts += [f"{c[k]:,} {k.replace('_', ' ')}" for k in ("adopted", "updated") if c[k]]
        sent = f"{c['sent']:,} sent ({', '.join(parts)})"
    files = f" from {c['files_read']:,} new file(s)" if c["files_seen"] else ""
    return (
        f"{result.tenant}: {result.status} - {c['rows_read']:,} rows read{files}, {sent}, "
        f"{c['rejected']:,} rejected, {c['already_delivered']:,} already delivered; "
        f"report: {result.report_dir}"
    )
