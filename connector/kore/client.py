"""The Kore contacts API client: pacing, retries and error classes decided here, once.

Timeouts, connection errors and 5xx are retried with exponential backoff and full jitter, up to
``retries`` times; 401/403 is a credentials error; any other 4xx is ``KoreRejected`` for the
caller to handle. A 429 (or any answer carrying Kore's rate-limit message) is no failure: it
slows the API's pace and waits for Retry-After (seconds or an HTTP date), without spending a
retry, until one request has been rate limited for ``max_rate_limit_wait_seconds``. Each API
(import, list, update, delete) is paced on a budget of its own.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from connector.errors import KoreAuthError, KoreRejected, KoreUnavailable
from connector.kore.auth import JwtAuth
from connector.kore.pacing import Limits, Pacer, Pacing
from connector.settings import KoreSettings, is_loopback

log = logging.getLogger(__name__)

RATE_LIMIT_MESSAGE = "rate limit for this api has been reached"
MAX_BACKOFF_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 600.0


API = Literal["import", "list", "update", "delete"]


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange with Kore, for metrics: ``status`` 0 when no answer came, 429 for rate
    limits; ``waited`` the seconds spent waiting for the API's budget before it."""

    method: str
    path: str
    status: int
    seconds: float
    waited: float = 0.0


def limits_of(settings: KoreSettings, api: API = "import") -> Limits:
    """An API's budget: GET /contacts has limits of its own, every write the upload limits."""
    if api == "list":
        return [(60.0, settings.reads_per_minute), (3600.0, settings.reads_per_hour)]
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
        pacers: Callable[[API], Pacing] | None = None,
        observe: Callable[[Answer], None] | None = None,
        gave_up_hint: str = "nothing is lost: the next run re-sends whatever was in flight",
    ) -> None:
        """``sleep`` waits between tries (a run passes one that stops early); ``pacers`` gives
        each API's pacing (a run passes budgets shared through the state database; by default
        each API is paced in this process); ``observe`` sees every exchange; ``gave_up_hint``
        is what to tell the user when the tries run out."""
        self.settings = settings
        self._gave_up_hint = gave_up_hint
        self._sleep = sleep
        self._make_pacer = pacers or (lambda api: Pacer(limits_of(settings, api), sleep=sleep))
        self._pacers: dict[API, Pacing] = {}
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
            # A loopback host is reached directly: a proxy from the environment (HTTP_PROXY,
            # ALL_PROXY…) would read the token on its way there in plain http. Other hosts
            # take HTTPS_PROXY, ALL_PROXY and NO_PROXY, and SSL_CERT_FILE, from it.
            trust_env=not is_loopback(urlsplit(settings.host).hostname or ""),
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
            "import",
            "POST",
            "/contacts/import-contacts",
            files={"result_file": ("contacts.csv", csv_body, "text/csv")},
        )
        return UploadResult(_created(response), uncertain)

    def list_contacts(self) -> list[dict[str, Any]]:
        """Every contact, all pages read."""
        return [contact for page in self.contact_pages() for contact in page]

    def contact_pages(self) -> Iterator[list[dict[str, Any]]]:
        """Kore's contacts a page at a time, so a caller can stop once it found what it looks
        for. The docs show no paging: the first request asks for ``list_page_size`` contacts
        (``limit``), and an answer with ``hasMore: true`` is followed with ``skip`` until a page
        brings nothing new."""
        seen: set[Any] = set()
        params: dict[str, int] = {"limit": self.settings.list_page_size}
        while True:
            response, _ = self._send("list", "GET", "/contacts", params=params)
            body = _json(response)
            results = body.get("results") if isinstance(body, dict) else body
            if not isinstance(results, list):
                raise KoreUnavailable(
                    f"Kore at {self.settings.host}: GET /contacts gave no 'results' list",
                    hint="check kore.host: it answers, but not as Kore's contacts API does "
                    "(a proxy or a login page in the way?)",
                )
            new = [c for c in results if isinstance(c, dict) and c.get("id") not in seen]
            seen.update(c.get("id") for c in new)
            if new:
                yield new
            if not new or not (isinstance(body, dict) and body.get("hasMore") is True):
                return
            params = {"skip": len(seen), "limit": self.settings.list_page_size}

    def bulk_update(self, contacts: list[dict[str, Any]]) -> set[str] | None:
        """Update contacts in place; the ids Kore's answer lists as updated, or None when the
        answer lists none (the docs show no response body: then the request's success is all
        there is to go on)."""
        response, _ = self._send("update", "PUT", "/contacts/bulk-update", json=contacts)
        ids = {str(c["id"]) for c in _created(response) if c.get("id")}
        return ids or None

    def bulk_delete(self, ids: list[str]) -> set[str]:
        """Delete contacts by id; returns the ids Kore did not say it deleted. An answer
        without ``successfulRecords`` or ``failedRecords`` says nothing, so every id is
        returned for the caller to check in Kore's list."""
        response, _ = self._send("delete", "DELETE", "/contacts/bulk-delete", json={"ids": ids})
        body = _json(response)
        if isinstance(body, dict) and isinstance(body.get("successfulRecords"), list):
            done = {_record_id(r) for r in body["successfulRecords"]}
            return {i for i in ids if i not in done}
        if isinstance(body, dict) and isinstance(body.get("failedRecords"), list):
            return {_record_id(r) for r in body["failedRecords"]} & set(ids)
        return set(ids)

    def _pacer(self, api: API) -> Pacing:
        if api not in self._pacers:
            self._pacers[api] = self._make_pacer(api)
        return self._pacers[api]

    def _send(self, api: API, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, bool]:
        """One request with retries; returns the response and whether an earlier try was
        uncertain (may have been carried out)."""
        pacer = self._pacer(api)
        attempts = self.settings.retries + 1
        failures = 0
        limited_for = 0.0
        uncertain = False
        last = ""
        while True:
            waited = pacer.wait()
            started = time.monotonic()
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.ConnectError as exc:
                self._observed(method, path, 0, started, waited)
                hopeless = _hopeless(exc)
                if hopeless is not None:
                    raise KoreUnavailable(
                        f"Kore at {self.settings.host}: {hopeless[0]}", hint=hopeless[1]
                    ) from None
                last = f"cannot connect ({exc})"
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                self._observed(method, path, 0, started, waited)
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
                    self._observed(method, path, 429, started, waited)
                    limited_for += pacer.limited(_retry_after(response))
                    self._patience(method, path, limited_for)
                    continue
                pacer.answered()
                self._observed(method, path, status, started, waited)
                if status < 400:
                    return response, uncertain
                if status >= 500:
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
                        hint=f"{self.settings.host} has no such API: check kore.host (the "
                        "platform's address, e.g. https://platform.kore.ai) and kore.bot_id"
                        if status == 404
                        else None,
                    )
            failures += 1
            if failures >= attempts:
                raise KoreUnavailable(
                    f"Kore at {self.settings.host} did not answer {method} {path} after "
                    f"{attempts} tries: {last}",
                    hint=self._gave_up_hint,
                )
            delay = _backoff(self.settings.backoff_seconds, failures - 1)
            log.warning(
                "%s %s failed (%s); retry %d of %d in %.1fs",
                method,
                path,
                last,
                failures,
                attempts - 1,
                delay,
            )
            self._sleep(delay)

    def _patience(self, method: str, path: str, limited_for: float) -> None:
        """A request whose pauses for rate limits add up to more than the tenant allows ends
        the run."""
        limit = self.settings.max_rate_limit_wait_seconds
        if limited_for > limit:
            raise KoreUnavailable(
                f"Kore at {self.settings.host} kept rate limiting {method} {path} for more than "
                f"{limit:.0f}s (kore.max_rate_limit_wait_seconds)",
                hint="another integration may be spending this bot's budget; nothing is lost: "
                "the next run goes on where this one stopped",
            )

    def _observed(self, method: str, path: str, status: int, started: float, waited: float) -> None:
        if self._observe is not None:
            self._observe(Answer(method, path, status, time.monotonic() - started, waited))


_NO_TLS = ("WRONG_VERSION_NUMBER", "record layer failure", "wrong version number", "UNEXPECTED_EOF")


def _hopeless(exc: httpx.ConnectError) -> tuple[str, str] | None:
    """A connection that no retry can make: the host's name does not exist, the port does not
    speak TLS, or its certificate is not trusted. ``(message, hint)``; None for the rest
    (refused, unreachable, a name server that did not answer), which may pass."""
    text = str(exc)
    if "Name or service not known" in text or "nodename nor servname" in text:
        return (
            "the host name does not exist",
            "check kore.host (e.g. https://platform.kore.ai, or your region's address)",
        )
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            "its TLS certificate is not trusted",
            "check kore.host; a proxy that re-signs TLS needs its CA in SSL_CERT_FILE",
        )
    if any(marker in text for marker in _NO_TLS):
        return (
            "the port does not speak TLS (https)",
            "check kore.host: a plain-http server (the sandbox) is written http://",
        )
    return None


def _backoff(base: float, attempt: int) -> float:
    return random.uniform(0, min(MAX_BACKOFF_SECONDS, base * 2**attempt))


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (a number, or an HTTP date), capped; None when absent or
    unreadable (the pacer then chooses)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return min(max(0.0, float(value)), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, min(when.timestamp() - time.time(), MAX_RETRY_AFTER_SECONDS))


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
