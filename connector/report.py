"""Run reports: ``<reports_dir>/<tenant>/<run-id>/rejected.csv``, ``summary.json`` and the
plan's other files.

Rejected rows are written as they happen (streamed). Cells a spreadsheet would evaluate as a
formula are prefixed with a quote in every CSV written for people (the dry run's batch preview
too), never in uploads. The folder is made when the run first has something to say; a run that
read and sent nothing leaves none (its counters are in the runs table), so a daemon on a short
schedule does not fill the disk with empty folders. ``prune`` removes folders older than the
configured number of days.

Where reports are written is a boundary (issue [12], docs/security.md). ``reports_dir`` is the
operator's and is taken as it is: a link is followed, any owner and mode will do. Below it the
connector trusts only folders it can prove are its own: the tenant's folder and the run's
folder are opened without following a link (``O_NOFOLLOW``), made 0700 when missing, and
refused when another user owns them or group or others may write in them. Files are created
inside the open folder (``dir_fd``) with ``O_EXCL | O_NOFOLLOW``: a file or link planted where
one is to go fails the write instead of being written through.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import logging
import os
import re
import shutil
import stat
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from connector.contacts import KORE_COLUMNS, Contact, Rejection
from connector.errors import ConnectorError
from connector.sources import FileTally
from connector.sync.context import RUN_ID_TIME, Event, Listed, RowRejected, UnitRead, counted

log = logging.getLogger(__name__)

REJECTED_COLUMNS = ("source", "row", "record_id", "reason", "detail", "values")

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
_RUN_ID_TAIL = re.compile(r"[0-9a-f]{6}")
"""What follows the start time in a run id (``new_run_id``: three random bytes in hex)."""
_SUMMARY, _SUMMARY_PART = "summary.json", "summary.json.part"


def neutralise(cell: str) -> str:
    """A cell a spreadsheet would run as a formula (starting with ``= + - @``, a tab or a
    carriage return: OWASP's CSV-injection rule), quoted; a phone key (``+`` and digits) is no
    formula and stays as it is."""
    if cell.startswith(_FORMULA_START) and not (cell[:1] == "+" and cell[1:].isdigit()):
        return "'" + cell
    return cell


class Report:
    """The report of one run, in ``reports_dir/tenant/run_id``. Every method that writes
    raises ``ConnectorError`` (one line naming the file or folder) when it cannot, except
    ``reject``, which breaks the report instead (``broken``)."""

    def __init__(self, reports_dir: Path, tenant: str, run_id: str) -> None:
        self.reports_dir = reports_dir
        self.tenant = tenant
        self.run_id = run_id
        self.directory = reports_dir / tenant / run_id
        """The run's folder, as people are shown it."""
        self.reasons: Counter[str] = Counter()
        self.unknown_countries: Counter[str] = Counter()
        self.files: list[dict[str, object]] = []
        self._batches = 0
        self._tenant_folder: int | None = None
        self._run_folder: int | None = None
        self._rejected_file: IO[str] | None = None
        self._rejected: Any = None
        self._tables: dict[str, tuple[IO[str], Any]] = {}
        self.broken: ConnectorError | None = None
        """Why a rejected row or a table's rows could not be written (a full disk, a file
        planted where a table goes): the run fails at its next batch boundary (``check``),
        once the batch in flight has settled."""

    def _folder(self) -> int:
        """The run's folder, open: made (with the tenant's, if missing) the first time."""
        if self._run_folder is None:
            if self._tenant_folder is None:
                self._tenant_folder = _made_tenant(self.reports_dir, self.tenant)
            self._run_folder = _made_below(self._tenant_folder, self.run_id, self.directory)
        return self._run_folder

    def _open(self) -> None:
        try:
            self._rejected_file = _new_file(self._folder(), "rejected.csv")
            self._rejected = csv.writer(self._rejected_file)
            self._rejected.writerow(REJECTED_COLUMNS)
        except OSError as exc:
            raise _cannot_write(exc, self.directory / "rejected.csv") from None

    def reject(self, rejection: Rejection) -> None:
        """Count the row and write it to ``rejected.csv``; a write that fails breaks the report
        (``broken``) instead of raising, so that the batch in flight settles first. A known
        rejection (replayed, ``RowRejected.known``) is written and counted like any other."""
        self.reasons[rejection.reason] += 1
        if rejection.reason == "country_unknown":
            self.unknown_countries[rejection.subject] += 1
        if self.broken is not None:
            return
        values = json.dumps(rejection.values, ensure_ascii=False) if rejection.values else ""
        cells = (
            rejection.source,
            rejection.row,
            rejection.record_id,
            rejection.reason,
            rejection.detail,
            values,
        )
        try:
            if self._rejected is None:
                self._open()
            self._rejected.writerow([neutralise(str(cell)) for cell in cells])
        except OSError as exc:
            self.broken = _cannot_write(exc, self.directory / "rejected.csv")
        except ConnectorError as exc:
            self.broken = exc

    def preflight(self) -> None:
        """Before a run reads or sends anything: the tenant's folder, when it exists, is opened
        (and kept open for the run) and proved the connector's own; else the folder it would be
        made in is writable. A read-only reports_dir, or a tenant folder another user owns or
        may write, fails the run here, not after it sent."""
        self._tenant_folder = _opened_tenant(self.reports_dir, self.tenant)
        if self._tenant_folder is not None:
            existing = self.reports_dir / self.tenant
            writable = os.access(".", os.W_OK | os.X_OK, dir_fd=self._tenant_folder)
        else:
            existing = next(p for p in (self.reports_dir, *self.reports_dir.parents) if p.exists())
            writable = os.access(existing, os.W_OK | os.X_OK)
        if not writable:
            raise ConnectorError(
                f"cannot write the report to {self.directory}: {existing} is not writable",
                hint="check reports_dir, its permissions and that its disk is not read-only",
            )

    def check(self) -> None:
        """Raise what broke the report, if anything did: at a batch boundary, the run ends."""
        if self.broken is not None:
            raise self.broken

    def observe(self, event: Event) -> None:
        """The report is an observer of the run: it writes every ``RowRejected`` and every
        ``Listed`` table, and keeps every ``UnitRead`` for the summary's ``files``. Like every
        observer, it never raises: a write that fails breaks the report (``broken``)."""
        if isinstance(event, RowRejected):
            self.reject(event.rejection)
        elif isinstance(event, Listed):
            self.write_rows(event.table, event.header, event.rows)
        elif isinstance(event, UnitRead):
            self.files.append({"name": event.name, "rows": event.rows, **_lines(event.tally)})

    def write_batch(self, body: bytes) -> Path:
        """Keep a batch file (dry runs), the preview of an upload: ``body`` (``batch_csv``'s
        UTF-8, CRLF lines) byte for byte, except that a cell a spreadsheet would run as a
        formula starts with ``'`` (``neutralise``), since people open it in Excel. What is
        uploaded keeps every cell as it is."""
        if self._rejected is None:
            self._open()
        self._batches += 1
        name = f"batch-{self._batches:04d}.csv"
        rows = csv.reader(io.StringIO(body.decode("utf-8"), newline=""))
        try:
            with _new_file(self._folder(), name) as handle:
                preview = csv.writer(handle, lineterminator="\r\n")
                preview.writerows([neutralise(cell) for cell in row] for row in rows)
        except OSError as exc:
            raise _cannot_write(exc, self.directory / name) from None
        return self.directory / name

    def write_rows(self, name: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
        """Rows of one more CSV in the run's folder (``updates.csv``, ``dnc_in_kore.csv``…):
        the first call for ``name`` makes the file and writes ``header``, later ones add to it
        (the file stays open until ``close``; each call's rows reach the disk before it
        returns). Cells a spreadsheet would run as a formula are neutralised as in
        ``rejected.csv``. A write that fails breaks the report (``broken``) instead of
        raising, as ``reject`` does."""
        if self.broken is not None:
            return
        try:
            if self._rejected is None:
                self._open()
            if name not in self._tables:
                handle = _new_file(self._folder(), name)
                self._tables[name] = (handle, csv.writer(handle))
                self._tables[name][1].writerow(header)
            handle, writer = self._tables[name]
            writer.writerows([neutralise(cell) for cell in row] for row in rows)
            handle.flush()
        except OSError as exc:
            self.broken = _cannot_write(exc, self.directory / name)
        except ConnectorError as exc:
            self.broken = exc

    def close(self, summary: dict[str, Any], *, keep: bool) -> bool:
        """Write ``summary.json`` if the folder exists or ``keep`` asks for it; say whether.
        The summary is written whole or not at all (``summary.json.part`` beside it, then
        renamed): never 0 bytes. The report's folders are let go of, written or not."""
        try:
            if keep and self._rejected is None and self.broken is None:
                self._open()
            if self._rejected_file is None:
                return False
            self._close_files(self._rejected_file)
            self._write_summary(
                {
                    **summary,
                    "rejected_by_reason": dict(sorted(self.reasons.items())),
                    "unknown_countries": dict(self.unknown_countries.most_common()),
                    "files": self.files,
                }
            )
            return True
        finally:
            for descriptor in (self._run_folder, self._tenant_folder):
                if descriptor is not None:
                    os.close(descriptor)
            self._run_folder = self._tenant_folder = None

    def _close_files(self, rejected: IO[str]) -> None:
        """Close ``rejected.csv`` and the tables, all of them; raise for the first that could
        not be written out."""
        files = [(name, handle) for name, (handle, _) in self._tables.items()]
        files.append(("rejected.csv", rejected))
        self._tables.clear()
        failed: ConnectorError | None = None
        for name, handle in files:
            try:
                handle.close()
            except OSError as exc:
                failed = failed or _cannot_write(exc, self.directory / name)
        if failed is not None:
            raise failed

    def _write_summary(self, summary: dict[str, Any]) -> None:
        folder = self._folder()
        made = False
        try:
            handle = _new_file(folder, _SUMMARY_PART)
            made = True
            with handle:
                handle.write(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
            os.rename(_SUMMARY_PART, _SUMMARY, src_dir_fd=folder, dst_dir_fd=folder)
        except OSError as exc:
            if made:
                with contextlib.suppress(OSError):
                    os.unlink(_SUMMARY_PART, dir_fd=folder)
            name = _SUMMARY if made else _SUMMARY_PART
            raise _cannot_write(exc, self.directory / name) from None


def _lines(tally: FileTally | None) -> dict[str, int]:
    return asdict(tally) if tally else {}


def _cannot_write(exc: OSError, path: Path) -> ConnectorError:
    if isinstance(exc, FileExistsError):
        return ConnectorError(
            f"cannot write the report to {path}: a file or link this run did not make is "
            "already there; it is left as it is and nothing was written through it",
            hint="only the connector's user or root can write in its report folders: find "
            "out who put it there",
        )
    return ConnectorError(
        f"cannot write the report to {path}: {exc.strerror}",
        hint="free space in reports_dir, or check it and its permissions; the next run "
        "reads this run's files again",
    )


def _new_file(folder: int, name: str) -> IO[str]:
    """A new report file in the open ``folder``, readable by its owner only (0600) whatever
    the umask; an existing file or link of that name raises ``FileExistsError``."""
    descriptor = os.open(name, _NEW_FILE, 0o600, dir_fd=folder)
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, "w", encoding="utf-8", newline="")


def _folder_name(tenant: str) -> str:
    """``tenant`` as the name of a folder inside reports_dir: never ``.``, ``..`` or a path."""
    if tenant in ("", ".", "..") or "/" in tenant or "\0" in tenant:
        raise ConnectorError(
            f"cannot write the report of tenant {tenant!r}: it is not a folder name",
            hint="rename the tenant in the config: letters, digits, '-', '_' and '.', not "
            "starting with '.'",
        )
    return tenant


def _opened_tenant(reports_dir: Path, tenant: str) -> int | None:
    """The tenant's report folder, open and proved the connector's own (``_below``); None
    when it, or reports_dir, does not exist yet."""
    name = _folder_name(tenant)
    if not reports_dir.exists():
        return None
    root = _open_reports_dir(reports_dir)
    try:
        return _below(root, name, reports_dir / tenant)
    finally:
        os.close(root)


def _made_tenant(reports_dir: Path, tenant: str) -> int:
    """The tenant's report folder, open and proved the connector's own, made when missing,
    with reports_dir and the folders above it (each 0700)."""
    name = _folder_name(tenant)
    try:
        missing = [p for p in (reports_dir, *reports_dir.parents) if not p.exists()]
        for path in reversed(missing):
            path.mkdir(mode=0o700, exist_ok=True)
            path.chmod(0o700)
    except OSError as exc:
        raise _cannot_write(exc, reports_dir) from None
    root = _open_reports_dir(reports_dir)
    try:
        return _made_below(root, name, reports_dir / tenant)
    finally:
        os.close(root)


def _open_reports_dir(reports_dir: Path) -> int:
    """reports_dir, open, as the operator names it: a link is followed, any owner will do."""
    try:
        return os.open(reports_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise _cannot_write(exc, reports_dir) from None


def _below(parent: int, name: str, shown: Path) -> int | None:
    """The folder ``name`` in the open folder ``parent``, opened without following a link,
    or None when there is none. Raises ``ConnectorError`` for a link, a file, or a folder the
    connector cannot prove its own: one owned by another user, or one group or others may
    write in (they could plant files in it)."""
    try:
        descriptor = os.open(name, _FOLDER, dir_fd=parent)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise _cannot_write(exc, shown) from None
        link = stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
        raise ConnectorError(
            f"cannot write the report to {shown}: "
            + (
                "it is a link, and report folders are never followed"
                if link
                else "it is not a folder"
            ),
            hint="move it away; to keep reports elsewhere, set reports_dir",
        ) from None
    info = os.fstat(descriptor)
    user = os.geteuid()
    problem = None
    if info.st_uid != user:
        problem = ConnectorError(
            f"cannot write the report to {shown}: the folder is owned by uid {info.st_uid}, "
            f"not by uid {user} that runs the connector",
            hint="another user made it: check what it holds, then remove it or give it to "
            f"uid {user}; the connector makes the folders it needs (0700)",
        )
    elif info.st_mode & 0o022:
        problem = ConnectorError(
            f"cannot write the report to {shown}: the folder is writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o})",
            hint=f"anyone who may write in it can plant files among the reports: check what it "
            f"holds, then `chmod go-w {shown}`",
        )
    if problem is not None:
        os.close(descriptor)
        raise problem
    return descriptor


def _made_below(parent: int, name: str, shown: Path) -> int:
    """``_below``, the folder made first (0700 whatever the umask) when it is missing."""
    try:
        os.mkdir(name, 0o700, dir_fd=parent)
        made = True
    except FileExistsError:
        made = False
    except OSError as exc:
        raise _cannot_write(exc, shown) from None
    descriptor = _below(parent, name, shown)
    if descriptor is None:
        raise _cannot_write(FileNotFoundError(errno.ENOENT, "removed as it was made"), shown)
    if made:
        os.fchmod(descriptor, 0o700)
    return descriptor


def prune(reports_dir: Path, tenant: str, *, keep_days: int) -> int:
    """Remove the tenant's run folders that started more than ``keep_days`` ago (0 keeps
    every folder); returns how many went. Only what is proved a run folder of the connector's
    goes: inside the tenant's folder (opened as a report opens it: a link, a file or a folder
    of another user raises ``ConnectorError``), named as a run id is (``new_run_id``), a folder
    and not a link, owned by the connector's user. Its contents go without following a link
    (``shutil.rmtree`` on descriptors). A folder that cannot be removed is logged and left."""
    if keep_days <= 0:
        return 0
    folder = _opened_tenant(reports_dir, tenant)
    if folder is None:
        return 0
    oldest = datetime.now(UTC) - timedelta(days=keep_days)
    removed = 0
    try:
        with os.scandir(folder) as entries:
            doomed = [
                entry.name
                for entry in entries
                if (started := _started(entry.name)) is not None
                and started < oldest
                and entry.is_dir(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_uid == os.geteuid()
            ]
        for name in doomed:
            try:
                shutil.rmtree(name, dir_fd=folder)
            except OSError as exc:
                log.warning(
                    "could not remove the old report folder %s: %s",
                    reports_dir / tenant / name,
                    exc.strerror,
                )
                continue
            removed += 1
    finally:
        os.close(folder)
    if removed:
        log.info("removed %s older than %d days", counted(removed, "report folder"), keep_days)
    return removed


def _started(name: str) -> datetime | None:
    """When the run a folder is named after started; None unless the name is a run id."""
    stamp, _, tail = name.partition("-")
    try:
        started = datetime.strptime(stamp, RUN_ID_TIME)
    except ValueError:
        return None
    if started.strftime(RUN_ID_TIME) != stamp or not _RUN_ID_TAIL.fullmatch(tail):
        return None
    return started.replace(tzinfo=UTC)


def contact_rejection(contact: Contact, reason: str, detail: str) -> Rejection:
    """A contact that was mapped but is not sent, with the six columns it would have had."""
    return Rejection(
        reason,
        detail,
        contact.source,
        contact.row,
        contact.record_id,
        dict(zip(KORE_COLUMNS, contact.csv_row(), strict=True)),
    )
