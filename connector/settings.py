"""The configuration file: YAML, ``${VAR}`` from the environment, strict validation.

Settings that are not per tenant (``state_url``, ``reports_dir``) may also come from the
environment as ``CONNECTOR_STATE_URL`` and ``CONNECTOR_REPORTS_DIR``; the environment wins over
the file, as operators expect when they override one value for one run.
"""

from __future__ import annotations

import codecs
import difflib
import ipaddress
import os
import re
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from connector.errors import DOCS, ConfigError, WarningCode

DEFAULT_CONFIG = "connector.yaml"
TENANT_NAME = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$"
"""A tenant's name: letters, digits, ``-``, ``_`` and ``.``, not starting with ``.``, at most
64. It names folders (``reports/<tenant>/``), so ``.``, ``..`` and hidden names cannot be
tenants, nor one longer than a file name may be."""
SECRET_BYTES = {"HS256": 32, "HS512": 64}
"""The shortest client secret each JWT algorithm takes, in bytes: RFC 7518 §3.2 asks for a key
at least as long as the hash's output."""
MAX_YAML_BYTES = 1 << 20
"""A config or mapping file larger than this (1 MiB) is refused unread: it is no config."""
MAX_YAML_DEPTH = 50
"""YAML nested deeper than this is refused (a config nests five levels)."""
MAX_YAML_NODES = 100_000
"""Aliases (``*name``) may expand a YAML document to at most this many values."""
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KoreSettings(_Strict):
    host: str
    bot_id: str = Field(min_length=1)
    account_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    jwt_algorithm: Literal["HS256", "HS512"] = "HS256"
    client_secret: SecretStr = Field(min_length=1)
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    uploads_per_minute: int = Field(default=60, ge=1)
    uploads_per_hour: int = Field(default=1800, ge=1)
    reads_per_minute: int = Field(default=60, ge=1)
    reads_per_hour: int = Field(default=1800, ge=1)
    list_page_size: int = Field(default=1000, ge=1, le=100_000)
    max_rate_limit_wait_seconds: float = Field(default=3600.0, gt=0)
    timeout_seconds: float = Field(default=60.0, gt=0)
    retries: int = Field(default=5, ge=0, le=20)
    backoff_seconds: float = Field(default=1.0, ge=0)
    phone_format: Literal["national", "international"] = "national"
    default_salutation: str = ""
    default_extension: str = ""
    max_name_length: int = Field(default=100, ge=1, le=10_000)
    long_names: Literal["truncate", "reject"] = "truncate"
    update_changed: bool = False

    @field_validator("host")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be a URL such as https://platform.kore.ai")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError("must be https (plain http is allowed only for loopback hosts)")
        return value.rstrip("/")

    @field_validator("client_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        """A secret shorter than ``SECRET_BYTES`` asks for (RFC 7518 §3.2) is a secret cut
        short, or not the one Kore issued."""
        algorithm = info.data.get("jwt_algorithm")
        if algorithm not in SECRET_BYTES:
            return value  # refused as an unknown algorithm already
        size = len(value.get_secret_value().encode())
        if size < SECRET_BYTES[algorithm]:
            other = " (or use jwt_algorithm: HS256)" if algorithm != "HS256" else ""
            raise ValueError(
                f"is {size} bytes long; {algorithm} needs at least {SECRET_BYTES[algorithm]} "
                f"(RFC 7518 §3.2): give the JWT app's whole client secret as Kore shows it{other}"
            )
        return value


def is_loopback(hostname: str) -> bool:
    """Whether ``hostname`` (a URL's host) is this machine: ``localhost`` or a loopback
    address."""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


_SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)
"""Query parameters that may carry a secret: libpq takes ``?password=`` (and
``sslpassword=``) as well as ``user:password@``."""


def hide_password(url: str | URL) -> str:
    """``url`` with its password shown as ``***``, as SQLAlchemy renders it for logs, and so is
    the value of any query parameter whose name says it holds one (``password``,
    ``sslpassword``…); an unparsable URL is not shown at all."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "(an invalid URL)"
    query = {
        name: "***" if _SECRET_PARAMETER.search(name) else value
        for name, value in parsed.query.items()
    }
    shown = parsed.set(query=query).render_as_string(hide_password=True)
    return shown.replace("%2A%2A%2A", "***")


DatabaseUrl = Annotated[str, PlainSerializer(hide_password)]
"""A SQLAlchemy URL: code reads the real one, every dump of the settings (``model_dump``,
``model_dump_json``) shows its password as ``***``; ``repr`` hides it too."""


def _as_timedelta(value: Any) -> Any:
    """``30s``, ``15m``, ``2h``, ``1d`` or a number of seconds as a ``timedelta``; anything
    else is left for pydantic to refuse."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError("must look like 30s, 15m, 2h or 1d")
        value = timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = timedelta(seconds=value)
    return value


def _parse_duration(value: Any) -> Any:
    value = _as_timedelta(value)
    if isinstance(value, timedelta) and value <= timedelta(0):
        raise ValueError("must be longer than zero, e.g. 30s or 15m")
    return value


def _parse_age(value: Any) -> Any:
    value = _as_timedelta(value)
    if isinstance(value, timedelta) and value < timedelta(0):
        raise ValueError("must not be negative, e.g. 0s or 60s")
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]
"""``30s``, ``15m``, ``2h``, ``1d`` (or a number of seconds); zero and negative are refused."""
FileAge = Annotated[timedelta, BeforeValidator(_parse_age)]
"""A duration as ``Duration`` where zero is allowed (it turns a wait off)."""


class _FileSourceSettings(_Strict):
    """What CSV and XLSX sources share: how a file still being written is told, and where the
    table starts.

    ``min_file_age``: a file modified less than this long ago is left for the next run, neither
    read nor remembered. Exports arrive by SFTP or a shared folder, and a run that fires
    mid-copy would otherwise read the bytes so far, remember that partial file and judge a
    snapshot on it. The same rule as Apache NiFi's ``Minimum File Age`` and Spring
    Integration's ``LastModifiedFileListFilter``; 60 s outlasts the pauses of a slow copy.
    ``0s`` turns the wait off (a file is still left when it changes while it is read).

    ``header_row``: the 1-based line (CSV) or sheet row (XLSX) of the header row, when the
    search for it (the first of the leading rows that reads as a header) must be overruled.

    ``max_columns``: the most cells a CSV record may have, the last column a sheet row may use
    (and the most cells it may hold); past it the file fails, nothing of it sent. CRM exports
    of every field run to a few hundred columns; 4,096 leaves room for that ten times over, and
    keeps a row of commas, or one cell in Excel's last column (XFD, 16,384), from turning a
    small file into gigabytes (docs/configuration.md, "Limits")."""

    min_file_age: FileAge = Field(default="60s", validate_default=True)
    header_row: int | None = Field(default=None, ge=1)
    max_columns: int = Field(default=4096, ge=2, le=1_000_000)


class CsvSourceSettings(_FileSourceSettings):
    kind: Literal["csv"]
    path: str = Field(min_length=1)
    snapshot: bool = False
    encoding: str | None = None
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    max_row_chars: int = Field(default=4_194_304, ge=1024)

    @field_validator("encoding")
    @classmethod
    def _known_codec(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"{value!r} is not an encoding Python knows") from None
        return value


class XlsxSourceSettings(_FileSourceSettings):
    """A workbook's limits (``connector.sources.xlsx_files``), each checked before what it
    bounds is unpacked or held: the uncompressed size of the worksheet read
    (``max_sheet_bytes``: streamed, it costs time, about a minute per 256 MiB), of the shared
    strings (``max_strings_bytes``: held in memory) and of every other part openpyxl reads whole
    (``max_part_bytes``: the workbook, its styles and relationships, parsed into objects many
    times their size); and the number of shared strings (``max_shared_strings``). Sizes are
    given as ``64MiB``, ``1GiB`` or a number of bytes."""

    kind: Literal["xlsx"]
    path: str = Field(min_length=1)
    snapshot: bool = False
    sheet: str | None = None
    max_sheet_bytes: ByteSize = Field(default="128MiB", validate_default=True, ge=1 << 16)
    max_strings_bytes: ByteSize = Field(default="64MiB", validate_default=True, ge=1 << 16)
    max_part_bytes: ByteSize = Field(default="2MiB", validate_default=True, ge=1 << 16)
    max_shared_strings: int = Field(default=1_000_000, ge=1)


class SqlSourceSettings(_Strict):
    """A table or query in any database SQLAlchemy reaches; ``cursor`` makes reads incremental.

    ``cursor_lookback``: each incremental read starts this long before the saved position, so
    that rows stamped behind it (a tie at the last second with a smaller id, a transaction that
    committed after the last read) are read; rows read again are recognised as unchanged, not
    sent again. 5 minutes outlasts a CRM's transactions and a modest clock difference between
    its application servers and the database.

    ``cursor_lag``: the saved position never passes the database's clock minus this, so rows
    whose transactions are still open when the read runs, or that an application server ahead
    of the database stamped in the future, are read by the next run. 30 seconds outlasts a
    commit. The same two rules as dlt's incremental ``lag`` and reverse-ETL lookback windows;
    neither applies to a cursor that is not a time (a version number)."""

    kind: Literal["sql"]
    url: DatabaseUrl = Field(min_length=1)
    table: str | None = Field(default=None, min_length=1)
    query: str | None = Field(default=None, min_length=1)
    cursor: str | None = Field(default=None, min_length=1)
    cursor_lookback: Duration = Field(default="5m", validate_default=True)
    cursor_lag: Duration = Field(default="30s", validate_default=True)
    batch_rows: int = Field(default=1000, ge=1)
    snapshot: bool = False

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlSourceSettings:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        if self.snapshot and self.cursor:
            raise ValueError(
                "a snapshot is a full read of the table: give 'snapshot: true' or 'cursor', not both"
            )
        return self

    def __repr__(self) -> str:
        return f"SqlSourceSettings(url={self.display_url!r}, table={self.table!r})"

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        return hide_password(self.url)


SourceSettings = Annotated[
    CsvSourceSettings | XlsxSourceSettings | SqlSourceSettings, Field(discriminator="kind")
]


class ScheduleSettings(_Strict):
    """When the daemon runs a tenant: ``every`` or ``cron`` (UTC), with optional ``jitter``
    (a random delay of up to that much, so replicas and tenants do not all fire at once) and
    ``misfire_grace`` (how late a run may still start; by default one period)."""

    every: Duration | None = None
    cron: str | None = None
    jitter: Duration | None = None
    misfire_grace: Duration | None = None

    @field_validator("cron")
    @classmethod
    def _crontab(cls, value: str | None) -> str | None:
        if value is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(value)
            except ValueError as exc:
                raise ValueError(f"is not a crontab expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ScheduleSettings:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of 'every' or 'cron'")
        return self


class DaemonSettings(_Strict):
    """How the daemon (and every ``sync``) holds tenants, and how it stops."""

    lease_seconds: float = Field(default=60.0, ge=2)
    lease_locks: bool = True
    """A lease's holder also holds a lock that dies with it (PostgreSQL session advisory lock,
    SQLite lock file), so a process that died hands its tenants over at once. False behind a
    pooler that shares server sessions between clients (PgBouncer in transaction or statement
    mode), where session locks do not follow the client: then only expiry hands them over."""
    stop_grace_seconds: float = Field(default=30.0, ge=0)
    workers: int = Field(default=4, ge=1, le=64)
    listen_timeout_seconds: int = Field(default=10, ge=1, le=3600)
    max_clock_skew_seconds: float = Field(default=30.0, gt=0)
    """How far this process's clock may be from the state database's before the daemon takes
    no lease (and ``/healthz`` says ``clock off by N s``): its tokens would be refused by Kore."""


class ChangesSettings(_Strict):
    """What a later export does to contacts already in Kore. ``renamed: update`` sends Kore the
    new names (``kore.update_changed: true`` is the older spelling of the same);
    ``do_not_call: delete`` deletes numbers flagged do-not-call from Kore; ``removed: delete``
    deletes numbers removed from the CRM, unless they are more than ``max_delete_fraction`` of
    the tenant's contacts (a truncated export must not wipe Kore): those a snapshot source no
    longer has, and those of rows the mapping's ``removed_when`` marks (a soft delete), from
    any source. Only the mapping, read at run time, tells whether it has such rules, so
    ``removed: delete`` is valid with any source (``TenantSettings.removals_unjudged``)."""

    renamed: Literal["skip", "update"] = "skip"
    do_not_call: Literal["keep", "delete"] = "keep"
    removed: Literal["keep", "delete"] = "keep"
    max_delete_fraction: float = Field(default=0.2, ge=0, le=1)


class TenantSettings(_Strict):
    kore: KoreSettings
    source: SourceSettings
    mapping: str = Field(min_length=1)
    default_region: str = Field(default="US", pattern=r"^[A-Za-z]{2}$")
    schedule: ScheduleSettings = ScheduleSettings(every=timedelta(minutes=15))
    changes: ChangesSettings = ChangesSettings()
    acknowledge: list[WarningCode] = []
    """Warnings accepted for this tenant (``connector.errors.WarningCode``): a run counts them
    (``warnings_acknowledged``) instead of printing them, so that a warning that holds on every
    run (a HubSpot export has no do-not-call column) does not fill every cron mail."""

    def removals_unjudged(self, *, removed_when: bool) -> str | None:
        """What ``check`` says when ``changes.removed: delete`` can delete nothing: the source
        is no snapshot and the mapping (``removed_when``: whether it has such rules) marks no
        row removed. None when it means something, or is not asked for."""
        if self.changes.removed != "delete" or self.source.snapshot or removed_when:
            return None
        return (
            f"changes.removed: delete deletes nothing: the source is not a snapshot and mapping "
            f"{self.mapping} has no removed_when rule; mark the CRM's deleted rows with "
            "removed_when (docs/mappings.md), or give source.snapshot: true for full exports"
        )

    @property
    def update_renamed(self) -> bool:
        """Whether renamed contacts are updated in Kore (``changes.renamed: update``)."""
        return self.changes.renamed == "update" or self.kore.update_changed

    @field_validator("default_region")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONNECTOR_", extra="forbid", frozen=True)

    state_url: DatabaseUrl = "sqlite:///connector-state.db"
    reports_dir: Path = Path("reports")
    reports_keep_days: int = Field(default=30, ge=0)
    runs_keep_days: int | None = Field(default=None, ge=0)
    """Run records and settled batches older than this are pruned by the daemon; None (the
    default) follows ``reports_keep_days``, 0 keeps them all."""
    mapping_processes: int | None = Field(default=None, ge=1, le=64)
    """Processes a run maps its rows in (phone numbers, names, times), chunk by chunk, with
    the same results in the same order as one; 1 maps in the run's own process. None (the
    default) is one per CPU this process may run on (``mapping_processes_resolved``). Not
    ``daemon.workers``, which counts the tenants a daemon runs at once: each of those runs
    maps in this many."""
    daemon: DaemonSettings = DaemonSettings()
    tenants: dict[Annotated[str, Field(pattern=TENANT_NAME)], TenantSettings]

    @property
    def mapping_processes_resolved(self) -> int:
        """How many processes a run maps its rows in: ``mapping_processes``, or the CPUs this
        process may run on (its affinity mask, which a container's or systemd's ``cpuset``
        narrows, where ``os.cpu_count()`` counts the machine's)."""
        if self.mapping_processes is not None:
            return self.mapping_processes
        return (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """What ``repr`` and ``str`` show: the state URL without its password."""
        for name, value in super().__repr_args__():
            yield name, hide_password(value) if name == "state_url" else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)


def config_path(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get("CONNECTOR_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: Path) -> Settings:
    """Read, expand and validate a config file; every problem is a one-line ``ConfigError``.

    A file that is not a YAML mapping, or whose top-level keys are mostly not settings (another
    file given to ``--config``: ``/etc/shadow`` reads as a mapping of its lines), is refused
    in one line that shows none of it."""
    try:
        text = read_yaml_text(path)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found",
            hint="pass --config PATH or set CONNECTOR_CONFIG; `kore-connector init` writes one",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read config file: {exc.strerror}",
            hint="check the file's permissions, or pass --config PATH",
        ) from None
    data = config_mapping(load_yaml(text, path), path)
    empties: dict[tuple[str, ...], str] = {}
    data = _expand(data, path, (), empties)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(
            _describe(path, exc, empties), hint=f"every key and its values: {DOCS}configuration.md"
        ) from None
    return _anchored(settings, data_folder(path))


def config_mapping(data: Any, path: Path) -> dict[Any, Any]:
    """``data``, a file's YAML, when it reads as a config: a mapping whose top-level keys are
    not mostly unknown. Else a one-line ``ConfigError`` that shows none of it: another file
    given to ``--config`` (``/etc/shadow`` reads as a mapping of its lines) is neither listed
    key by key nor edited by ``init``."""
    unknown = (
        [key for key in data if key not in Settings.model_fields] if isinstance(data, dict) else []
    )
    if isinstance(data, dict) and not (len(unknown) > 1 and 2 * len(unknown) > len(data)):
        return data
    found = (
        f"{len(unknown)} of its {len(data)} top-level keys are not settings"
        if isinstance(data, dict)
        else f"it holds {'nothing' if data is None else 'no mapping'}"
    )
    raise ConfigError(
        f"{path}: not a kore-connector config: {found}; expected a mapping with 'tenants' at "
        "the top",
        hint=f"is --config the right file? `kore-connector init` writes a commented config; "
        f"every key: {DOCS}configuration.md",
    )


def data_folder(config: Path) -> Path:
    """The folder relative data paths (a SQLite ``state_url``, ``reports_dir``, source paths)
    start from: the first of ``$STATE_DIRECTORY``'s colon-separated folders when it is set,
    else the config file's folder.

    A service keeps its config where it cannot write (``/etc``, a read-only mount) and is given
    a writable folder for its data: systemd sets ``STATE_DIRECTORY`` from ``StateDirectory=``,
    the container image sets it to its volume. Without it, as on a desk, data sits beside the
    config, never in the working directory, which a service manager chooses. Mapping files are
    configuration: they stay beside the config file whatever this says.
    """
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(state) if state else config.parent


def _anchored(settings: Settings, base: Path) -> Settings:
    """Resolve relative data paths against ``base`` (``data_folder``), not the working
    directory."""
    tenants = {}
    for name, tenant in settings.tenants.items():
        source = tenant.source
        if isinstance(source, SqlSourceSettings):
            source = source.model_copy(update={"url": _anchored_url(source.url, base)})
        else:
            source = source.model_copy(update={"path": str(base / source.path)})
        tenants[name] = tenant.model_copy(update={"source": source})
    return settings.model_copy(
        update={
            "tenants": tenants,
            "reports_dir": base / settings.reports_dir,
            "state_url": _anchored_url(settings.state_url, base),
        }
    )


def _anchored_url(url: str, base: Path) -> str:
    """A relative SQLite file in a URL, taken from ``base``; every other URL unchanged."""
    prefix = "sqlite:///"
    rest = url.removeprefix(prefix)
    if (
        not url.startswith(prefix)
        or rest.startswith("/")
        or not rest
        or rest.startswith(":memory:")
    ):
        return url
    return prefix + str(base / rest)


def read_yaml_text(path: Path) -> str:
    """A YAML file's text (UTF-8, a BOM dropped). ``OSError`` as opening or reading raises it;
    ``ConfigError`` for a file larger than ``MAX_YAML_BYTES`` (read no further: ``/dev/zero``
    ends) or not UTF-8, and for what is not a regular file: it is never read (a FIFO would
    block the command, a device never end)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(
                f"{path}: not a regular file (a FIFO, a device or a folder); nothing of it was read",
                hint="is it the right path? configs and mappings are YAML files",
            )
        data = handle.read(MAX_YAML_BYTES + 1)
    if len(data) > MAX_YAML_BYTES:
        raise ConfigError(
            f"{path}: larger than {MAX_YAML_BYTES // (1 << 20)} MiB, which no config or mapping is",
            hint="is it the right file? a config or a mapping is a few kilobytes of YAML",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start + 1})",
            hint="is it the right file? configs and mappings are YAML saved as UTF-8",
        ) from None


class _Refused(yaml.YAMLError):
    """YAML that is valid but more than a config needs: too deep, or aliases that expand it
    past ``MAX_YAML_NODES``; ``mark`` is where, when one place is to blame."""

    def __init__(self, problem: str, hint: str, mark: yaml.Mark | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.hint = hint
        self.mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with limits on what a small file can make it build.

    Aliases are kept: anchors for the settings tenants share are a real use. PyYAML builds an
    alias once and shares it, but every later walk (``${VAR}`` expansion, validation) copies it,
    so a few hundred bytes of aliases to aliases (the "billion laughs") name a billion values:
    the document is measured as if expanded, once per distinct node, and refused past
    ``MAX_YAML_NODES``. An alias inside the value it names (a cycle) is refused; so is nesting
    deeper than ``MAX_YAML_DEPTH``, as written or with its aliases written out, which would
    exhaust Python's stack."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = None if parent is None else parent.start_mark
                raise _Refused(f"nested more than {MAX_YAML_DEPTH} deep", _DEEP_HINT, mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            seen: dict[int, tuple[int, int]] = {}
            expanded, _ = _expanded(node, 1, seen, set())
            if expanded > MAX_YAML_NODES and expanded > len(seen):
                raise _Refused(
                    f"its aliases (*name) expand it to {expanded:,} values, more than the "
                    f"{MAX_YAML_NODES:,} allowed",
                    _ALIAS_HINT,
                )
        return node


_ALIAS_HINT = (
    "anchors and aliases may share settings between tenants, not build large documents; "
    "write the values out"
)
_DEEP_HINT = "a config nests a few levels: is it the right file?"


def _expanded(
    node: yaml.Node, depth: int, seen: dict[int, tuple[int, int]], open_nodes: set[int]
) -> tuple[int, int]:
    """How many values ``node`` holds, and how many levels deep it is, with every alias in it
    written out, ``node`` being at level ``depth``. ``seen`` keeps each distinct node's, so
    each is walked once however often it is named."""
    key = id(node)
    if key in open_nodes:
        raise _Refused("an alias names the value it is in", _ALIAS_HINT, node.start_mark)
    if key not in seen:
        if depth > MAX_YAML_DEPTH:
            raise _Refused(f"nested more than {MAX_YAML_DEPTH} deep", _DEEP_HINT, node.start_mark)
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        open_nodes.add(key)
        parts = [_expanded(child, depth + 1, seen, open_nodes) for child in children]
        open_nodes.discard(key)
        seen[key] = (sum(s for s, _ in parts) + 1, max((lv for _, lv in parts), default=0) + 1)
    size, levels = seen[key]
    if depth + levels - 1 > MAX_YAML_DEPTH:
        raise _Refused(f"nested more than {MAX_YAML_DEPTH} deep", _DEEP_HINT, node.start_mark)
    return size, levels


def load_yaml(text: str, path: Path) -> Any:
    """A YAML document, or a ``ConfigError`` with the parser's reason, line and column; YAML
    deeper than ``MAX_YAML_DEPTH`` or whose aliases expand it past ``MAX_YAML_NODES`` values is
    refused before anything walks it (``_BoundedLoader``)."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader, with limits
    except _Refused as exc:
        mark = exc.mark
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: refused: {exc.problem}", hint=exc.hint) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or "cannot be read"
        context = getattr(exc, "context", None)
        raise ConfigError(
            f"{path}{where}: not valid YAML: {reason}" + (f" ({context})" if context else ""),
            hint="check the indentation and the quoting there (a value holding ': ' or "
            "starting with a special character needs quotes)",
        ) from None


def _expand(
    value: Any, path: Path, where: tuple[str, ...], empties: dict[tuple[str, ...], str]
) -> Any:
    """``${VAR}`` replaced from the environment; where a set but empty variable was used is
    kept in ``empties``, for the message should the empty value be refused."""
    if isinstance(value, dict):
        return {
            key: _expand(item, path, (*where, str(key)), empties) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_expand(item, path, (*where, str(i)), empties) for i, item in enumerate(value)]
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match[1]
            if name not in os.environ:
                raise ConfigError(
                    f"{path}: {'.'.join(where)} uses ${{{name}}}, which is not set in the environment",
                    hint=f"export {name}=… before running kore-connector (for the daemon: in the "
                    "unit's EnvironmentFile or the container's environment)",
                )
            if not os.environ[name]:
                empties[where] = name
            return os.environ[name]

        return _VAR.sub(lookup, value)
    return value


def _describe(path: Path, exc: ValidationError, empties: dict[tuple[str, ...], str]) -> str:
    """Every problem on one line, unknown settings first (with the closest known one), in plain
    words; a value that came from an empty ``${VAR}`` names the variable. Never echoes a value.
    A tenant whose name is refused is not judged further."""
    errors = sorted(exc.errors(include_input=False), key=lambda e: e["type"] != "extra_forbidden")
    refused = {e["loc"][:2] for e in errors if e["loc"][:1] == ("tenants",) and "[key]" in e["loc"]}
    errors = [e for e in errors if "[key]" in e["loc"] or e["loc"][:2] not in refused]
    problems = [_problem(error, empties) for error in errors]
    if len(problems) == 1:
        return f"{path}: {problems[0]}"
    return f"{path}: {len(problems)} problems: " + "; ".join(problems)


_TAGS = ("csv", "xlsx", "sql")


def _problem(error: Any, empties: dict[tuple[str, ...], str]) -> str:
    loc = tuple(str(part) for part in error["loc"])
    shown = tuple(_key_shown(part) for part in loc if part not in _TAGS)
    location = ".".join(shown) or "config"
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "missing":
        problem = "is required"
    elif kind == "extra_forbidden":
        close = difflib.get_close_matches(loc[-1], _known_at(loc[:-1]), n=1, cutoff=0.6)
        problem = "is not a known setting" + (f" (did you mean '{close[0]}'?)" if close else "")
    elif kind == "union_tag_invalid":
        tags = [t.strip("' ") for t in str(context.get("expected_tags", "")).split(",")]
        tag = str(context.get("tag", ""))
        close = difflib.get_close_matches(tag, tags, n=1, cutoff=0.5)
        location += ".kind"
        problem = f"'{tag}' is not one of {', '.join(tags)}" + (
            f" (did you mean '{close[0]}'?)" if close else ""
        )
    elif kind == "union_tag_not_found":
        location += ".kind"
        problem = f"is required: one of {', '.join(_TAGS)}"
    elif kind in ("string_too_short", "too_short"):
        problem = "is empty"
    elif kind == "string_pattern_mismatch" and "[key]" in loc:
        location = ".".join(shown[:-2])
        problem = (
            f"{_key_shown(loc[-2], quoted=True)} is not a tenant name: letters, digits, -, _ "
            "and . only, not starting with ., at most 64 (the name names folders)"
        )
    elif kind == "string_pattern_mismatch" and shown[-1:] == ("default_region",):
        problem = "is not a two-letter ISO 3166 region code (US, GB, DE…)"
    else:
        problem = error["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    variable = next((v for where, v in empties.items() if shown[: len(where)] == where), None)
    if variable is not None:
        problem += f" (it comes from ${{{variable}}}, which is set but empty)"
    return f"{location} {problem}"


def _key_shown(key: str, *, quoted: bool = False) -> str:
    """A key as a message shows it (``quoted``: in quotes); an empty, long or unprintable one
    (a line of some other file read as YAML) is described, not echoed."""
    if len(key) > 64 or not key.isprintable():
        return f"(a key of {len(key)} characters)"
    return f"'{key}'" if quoted or not key else key


def _known_at(loc: tuple[str, ...]) -> list[str]:
    """The setting names a config may give where ``loc`` points, for "did you mean"."""
    current: Any = Settings
    for part in loc:
        current = _unwrap(current, part)
        if current is None:
            return []
    model = _unwrap(current, None)
    return (
        list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
    )


def _unwrap(annotation: Any, part: str | None) -> Any:
    """One step into a settings type: ``part`` is a field, a dict key or a source's kind;
    None only unwraps (``Annotated``, optional)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0], part)
    if origin in (Union, UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if part in _TAGS:
            return next(
                (m for m in members if m.model_fields["kind"].annotation == Literal[part]), None
            )
        return _unwrap(members[0], part) if len(members) == 1 else None
    if part is None:
        return annotation
    if origin is dict:
        return get_args(annotation)[1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(part)
        return None if field is None else field.annotation
    return None
