"""The exception tree. Every error a user can cause is a ``ConnectorError``.

::

    ConnectorError                 exit 1 unless a subclass says otherwise
    ├── ConfigError                exit 2: bad usage, config or mapping; nothing was sent
    ├── SourceError                a source file or table cannot be read
    ├── StateError                 the state database cannot be used
    │   ├── LeaseLost              another process took the tenant over (state.leases)
    │   ├── StateUnavailable       the database did not answer: an outage (state.store)
    │   └── SchemaNotReady         exit 2: no schema, or another version's (state.store)
    ├── TenantBusy                 another process is running the tenant now
    ├── RunInterrupted             a stop ended the run at a batch boundary or a wait: an
    │                              interruption (exit 128+N after signal N), not an error
    └── KoreError                  the Kore API refused or could not be reached
        ├── KoreAuthError          401/403: the credentials are wrong
        ├── KoreUnavailable        retries exhausted on timeouts, 5xx, 429
        └── KoreRejected           a 4xx other than auth, for the request as a whole

Programming mistakes stay outside the tree, so ``except ConnectorError`` never hides a bug.
Messages name the file, tenant, row or key at fault and never carry a secret. Every error a user
can cause carries a hint; a hint that points at documentation names a ``--help`` topic or a page
under ``DOCS``, never a file of the source tree, which an installed package does not have.

Warnings a run may give every time for a reason the operator has accepted end with a code from
``WarningCode`` in brackets; a tenant's ``acknowledge`` list silences them (``coded``,
``code_of``).
"""

from __future__ import annotations

import re
from typing import Literal

DOCS = "https://github.com/kore-connector/kore-connector/blob/main/docs/"
"""Where the documentation is read: the ``Documentation`` address in pyproject.toml. Hints name
``f"{DOCS}mappings.md"``, not ``docs/mappings.md``."""

WarningCode = Literal["no_do_not_call_column", "no_region_column", "repeated_column"]
"""Warnings that hold for a tenant's exports on every run until the export itself changes, so
that an operator can accept them once (``tenants.<name>.acknowledge``) instead of reading them in
every cron mail: a ``skip_when`` (do-not-call) rule whose column the export lacks, a
``phone.region_from`` column it lacks, a column the mapping reads that the header has twice."""
_CODE = re.compile(r" \[([a-z_]+)\]$")


def coded(text: str, code: WarningCode) -> str:
    """A warning as it is shown, in summaries and logs alike: the text, then its code."""
    return f"{text} [{code}]"


def code_of(warning: str) -> str | None:
    """The code a warning ends with (``coded``), or None for a warning that has none."""
    found = _CODE.search(warning)
    return found[1] if found else None


class ConnectorError(Exception):
    """An error the user can act on: one line of message and an optional hint."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(ConnectorError):
    exit_code = 2


class SourceError(ConnectorError):
    pass


_EXTRAS = {
    "postgresql": ("postgres", "postgresql+psycopg://"),
    "mysql": ("mysql", "mysql+pymysql://"),
    "mariadb": ("mysql", "mysql+pymysql://"),
}


def missing_driver(setting: str, url: str, exc: Exception) -> ConfigError:
    """A database URL whose driver is not installed: which extra of the package brings it."""
    backend = url.split(":", 1)[0].split("+", 1)[0]
    extra = _EXTRAS.get(backend)
    return ConfigError(
        f"{setting} {url}: its database driver is not installed ({exc})",
        hint=f"pip install 'kore-connector[{extra[0]}]' and write the URL as {extra[1]}…"
        if extra
        else "install the SQLAlchemy driver the URL names",
    )


def url_hint(url: str) -> str:
    """What to write instead of a database URL SQLAlchemy cannot use. ``postgres://`` is how
    libpq, Heroku and many hosting panels spell PostgreSQL, and SQLAlchemy refuses it; any other
    is shown the shape of a URL. The URL itself is not repeated: it may hold a password."""
    backend = url.split(":", 1)[0].split("+", 1)[0].strip().lower()
    if backend == "postgres":
        return (
            "SQLAlchemy does not know postgres://: write postgresql+psycopg://user@host/database "
            "(pip install 'kore-connector[postgres]')"
        )
    return (
        "a database URL is dialect+driver://user:password@host/database, e.g. "
        "sqlite:///connector-state.db or postgresql+psycopg://user@host/database; "
        f"see {DOCS}configuration.md"
    )


class StateError(ConnectorError):
    pass


class TenantBusy(ConnectorError):
    pass


class RunInterrupted(ConnectorError):
    """A stop (a signal, or the lease lost) ended the run at a batch boundary or a wait; the
    message says how far it came. A command a signal stopped exits 128+N (130 after Ctrl-C,
    143 after SIGTERM) and prints it as an interruption, not as an error; a lost lease is a
    failure, hence exit 1 here."""


class KoreError(ConnectorError):
    pass


class KoreAuthError(KoreError):
    pass


class KoreUnavailable(KoreError):
    pass


class KoreRejected(KoreError):
    """The API answered 4xx for the whole request; ``status`` and ``detail`` say how.

    ``uncertain`` is set when an earlier try of the same request may have been carried out.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        detail: str,
        uncertain: bool = False,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.detail = detail
        self.uncertain = uncertain
