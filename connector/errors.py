"""The exception tree. Every error a user can cause is a ``ConnectorError``.

::

    ConnectorError                 exit 1 unless a subclass says otherwise
    ├── ConfigError                exit 2: bad usage, config or mapping; nothing was sent
    ├── SourceError                a source file or table cannot be read
    ├── StateError                 the state database cannot be used
    │   └── LeaseLost              another process took the tenant over (state.leases)
    ├── TenantBusy                 another process is running the tenant now
    ├── RunInterrupted             a signal stopped the run at a batch boundary or a wait
    └── KoreError                  the Kore API refused or could not be reached
        ├── KoreAuthError          401/403: the credentials are wrong
        ├── KoreUnavailable        retries exhausted on timeouts, 5xx, 429
        └── KoreRejected           a 4xx other than auth, for the request as a whole

Programming mistakes stay outside the tree, so ``except ConnectorError`` never hides a bug.
Messages name the file, tenant, row or key at fault and never carry a secret.
"""

from __future__ import annotations


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


class StateError(ConnectorError):
    pass


class TenantBusy(ConnectorError):
    pass


class RunInterrupted(ConnectorError):
    pass


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
