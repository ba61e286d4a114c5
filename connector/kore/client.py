"""The Kore contacts API client: pacing, retries and error classes decided here, once.

Timeouts, connection errors and 5xx are retried with exponential backoff and full jitter; 429
(or any answer carrying Kore's rate-limit message) waits for Retry-After; 401/403 is a
credentials error; any other 4xx is ``KoreRejected`` for the caller to handle.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from connector.errors import KoreAuthError, KoreRejected, KoreUnavailable
from connector.kore.auth import JwtAuth
from connector.kore.pacing import Limits, Pacer, Pacing
from connector.settings import KoreSettings

log = logging.getLogger(__name__)

RATE_LIMIT_MESSAGE = "rate limit for this api has been reached"
MAX_BACKOFF_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 600.0


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange with Kore, for metrics: ``status`` 0 when no answer came."""

    method: str
    path: str
    status: int
    seconds: float


def limits_of(settings: KoreSettings) -> Limits:
    return [(60.0, settings.uploads_per_minute), (3600.0, settings.uploads_per_hour)]


@dataclass(frozen=True)
class UploadResult:
    """The contacts Kore says it created; ``uncertain`` when an earlier try may have stored rows."""

    created: list[dict[str, Any]]
    uncertain: bool


class KoreClient:
    def __init__(
        self,
        settings: KoreSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        pacer: Pacing | None = None,
        observe: Callable[[Answer], None] | None = None,
    ) -> None:
        """``sleep`` waits between tries (a run passes one that stops early); ``pacer`` keeps
        to the bot's limits (a run passes the budget shared through the state database);
        ``observe`` sees every exchange."""
        self.settings = settings
        self._sleep = sleep
        self._pacer = pacer or Pacer(limits_of(settings), sleep=sleep)
        self._observe = observe
        self._http = httpx.Client(
            base_url=f"{settings.host}/agentassist/api/v1/public/{settings.bot_id}",
            auth=JwtAuth(
                client_id=settings.client_id,
                client_secret=settings.client_secret,
                account_id=settings.account_id,
                algorithm=settings.jwt_algorithm,
            ),
            timeout=settings.timeout_seconds,
            transport=transport,
            headers={"User-Agent": "kore-connector"},
        )

    def __repr__(self) -> str:
        return f"KoreClient(host={self.settings.host!r}, bot_id={self.settings.bot_id!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KoreClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def import_contacts(self, csv_body: bytes) -> UploadResult:
        """POST one CSV file; Kore answers with the contacts it created."""
        response, uncertain = self._send(
            "POST",
            "/contacts/import-contacts",
            files={"result_file": ("contacts.csv", csv_body, "text/csv")},
        )
        return UploadResult(_created(response), uncertain)

    def list_contacts(self) -> list[dict[str, Any]]:
        """Every contact. The docs show no paging; an answer with ``hasMore: true`` is followed
        with ``skip``/``limit`` until a page brings nothing new."""
        found: list[dict[str, Any]] = []
        seen: set[Any] = set()
        params: dict[str, int] = {}
        while True:
            response, _ = self._send("GET", "/contacts", params=params)
            body = _json(response)
            results = body.get("results") if isinstance(body, dict) else body
            if not isinstance(results, list):
                raise KoreUnavailable(
                    f"Kore at {self.settings.host}: GET /contacts gave no 'results' list"
                )
            new = [c for c in results if isinstance(c, dict) and c.get("id") not in seen]
            found += new
            seen.update(c.get("id") for c in new)
            if not new or not (isinstance(body, dict) and body.get("hasMore") is True):
                return found
            params = {"skip": len(found), "limit": len(results)}

    def bulk_update(self, contacts: list[dict[str, Any]]) -> set[str] | None:
        """Update contacts in place; the ids Kore's answer lists as updated, or None when the
        answer lists none (the docs show no response body: then the request's success is all
        there is to go on)."""
        response, _ = self._send("PUT", "/contacts/bulk-update", json=contacts)
        ids = {str(c["id"]) for c in _created(response) if c.get("id")}
        return ids or None

    def bulk_delete(self, ids: list[str]) -> set[str]:
        """Delete contacts by id; returns the ids Kore did not say it deleted. An answer
        without ``successfulRecords`` or ``failedRecords`` says nothing, so every id is
        returned for the caller to check in Kore's list."""
        response, _ = self._send("DELETE", "/contacts/bulk-delete", json={"ids": ids})
        body = _json(response)
        if isinstance(body, dict) and isinstance(body.get("successfulRecords"), list):
            done = {_record_id(r) for r in body["successfulRecords"]}
            return {i for i in ids if i not in done}
        if isinstance(body, dict) and isinstance(body.get("failedRecords"), list):
            return {_record_id(r) for r in body["failedRecords"]} & set(ids)
        return set(ids)

    def _send(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, bool]:
        """One request with retries; returns the response and whether an earlier try was uncertain."""
        attempts = self.settings.retries + 1
        uncertain = False
        last = ""
        for attempt in range(attempts):
            self._pacer.wait()
            wait: float | None = None
            started = time.monotonic()
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.ConnectError as exc:
                self._observed(method, path, 0, started)
                last = f"cannot connect ({exc})"
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                self._observed(method, path, 0, started)
                uncertain = True
                last = f"{type(exc).__name__}: {exc or 'no response'}"
            else:
                status = response.status_code
                detail = _detail(response) if status >= 400 else ""
                if (
                    status == 429
                    or RATE_LIMIT_MESSAGE in detail.lower()
                    or (status < 400 and _rate_limit_object(response))
                ):
                    status = 429
                self._observed(method, path, status, started)
                if status < 400:
                    return response, uncertain
                if status == 429:
                    wait = _retry_after(response)
                    last = f"rate limited ({response.status_code})"
                elif status >= 500:
                    uncertain = True
                    last = f"HTTP {status}: {detail}"
                elif status in (401, 403):
                    raise KoreAuthError(
                        f"Kore at {self.settings.host} refused the credentials (HTTP {status}): {detail}",
                        hint="check client_id, client_secret, account_id and the app's API scopes",
                    )
                else:
                    raise KoreRejected(
                        f"Kore refused {method} {path} (HTTP {status}): {detail}",
                        status=status,
                        detail=detail,
                        uncertain=uncertain,
                    )
            if attempt + 1 < attempts:
                delay = (
                    wait if wait is not None else _backoff(self.settings.backoff_seconds, attempt)
                )
                log.warning(
                    "%s %s failed (%s); retry %d of %d in %.1fs",
                    method,
                    path,
                    last,
                    attempt + 1,
                    attempts - 1,
                    delay,
                )
                self._sleep(delay)
        raise KoreUnavailable(
            f"Kore at {self.settings.host} did not answer {method} {path} after {attempts} tries: {last}",
            hint="nothing is lost: the next run re-sends whatever was in flight",
        )

    def _observed(self, method: str, path: str, status: int, started: float) -> None:
        if self._observe is not None:
            self._observe(Answer(method, path, status, time.monotonic() - started))


def _backoff(base: float, attempt: int) -> float:
    return random.uniform(0, min(MAX_BACKOFF_SECONDS, base * 2**attempt))


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After", "")
    if value.strip().isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    when = email.utils.parsedate_to_datetime(value) if value else None
    if when is not None:
        return max(0.0, min(when.timestamp() - time.time(), MAX_RETRY_AFTER_SECONDS))
    return 60.0


def _rate_limit_object(response: httpx.Response) -> bool:
    """A success status whose body is an error object with Kore's rate-limit message."""
    head = response.content[:2048].lstrip()
    return head.startswith(b"{") and RATE_LIMIT_MESSAGE in head.decode(errors="replace").lower()


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(response: httpx.Response) -> str:
    body = _json(response)
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("msg") or errors[0])[:300]
        for key in ("message", "msg", "error"):
            if key in body:
                return str(body[key])[:300]
    return response.text[:300].strip() or response.reason_phrase


def _record_id(record: Any) -> str:
    """A bulk-delete record: ``{"id": …}``, or the bare id."""
    return str(record.get("id") if isinstance(record, dict) else record)


def _created(response: httpx.Response) -> list[dict[str, Any]]:
    """The created contacts: the documented array, or a list under a common key."""
    body = _json(response)
    if isinstance(body, dict):
        body = next(
            (body[k] for k in ("results", "contacts", "data") if isinstance(body.get(k), list)),
            None,
        )
    if not isinstance(body, list):
        return []
    return [c for c in body if isinstance(c, dict)]
