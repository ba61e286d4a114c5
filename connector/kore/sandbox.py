"""A local server that speaks the Kore contacts API as kore-api.md documents it.

It keeps one store per bot id (the ``{botId}`` of the URL), as Kore keeps one contact list per
bot: a number one bot has is new to another, and each bot lists only its own contacts. Within a
bot it enforces the uniqueness rule (one contact per phone number); it checks JWTs against its
own secret, and can inject faults: 500s, 429s, slowness, and connections dropped after the
upload was stored. ``duplicates`` picks the reading of the docs: ``skip`` leaves refused rows out
of the response array; ``reject-file`` answers 400 for a file that holds any refused row.
"""

from __future__ import annotations

import csv
import email.utils
import io
import json
import logging
import math
import socket
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import jwt

from connector.contacts import KORE_COLUMNS
from connector.phones import join_key

log = logging.getLogger(__name__)

PREFIX = "/agentassist/api/v1/public/"
DEFAULT_SECRET = "kore-connector-sandbox-secret-not-for-production"  # noqa: S105 - documented
DEFAULT_CLIENT_ID = "cs-sandbox"
DEFAULT_ACCOUNT_ID = "sandbox-account"


Operation = Literal["import", "list", "update", "delete"]


@dataclass
class Faults:
    """Every Nth request (counting from 1, each operation of each bot counted on its own) of the
    operations in ``on`` fails in the named way; 0 turns a fault off. A dropped request was
    carried out before its connection was dropped.

    ``refuse`` holds E.164 numbers the sandbox will not take, as Kore may refuse a number for
    reasons of its own; they are treated like numbers it already has.
    """

    fail_every: int = 0
    drop_every: int = 0
    reset_every: int = 0
    """Every Nth request's connection is reset while its body is read: not carried out."""
    rate_limit_every: int = 0
    delay_seconds: float = 0.0
    late_seconds: float = 0.0
    """Requests are carried out, then their answer waits this long (past a client's timeout,
    it never arrives in time)."""
    duplicates: Literal["skip", "reject-file"] = "skip"
    refuse: frozenset[str] = frozenset()
    on: frozenset[Operation] = frozenset({"import"})
    rate_window: tuple[int, float] | None = None
    """``(N, S)``: at most N requests of an operation to one bot in any S seconds, as Kore may
    count its limits (they are per bot); a request past it gets a 429 (and is not counted)."""
    retry_after: Literal["seconds", "date", "none"] = "seconds"
    """How a 429 says when to come back: whole seconds, an HTTP date, or not at all."""


@dataclass(frozen=True)
class Upload:
    """One import request the sandbox carried out: its answer and how many rows it held."""

    status: int
    received: int
    created: int


@dataclass
class BotStore:
    """One bot's contacts and the requests made of it."""

    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_phone: dict[str, str] = field(default_factory=dict)
    uploads: int = 0
    listings: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    """Requests by operation (``import``, ``list``, ``update``, ``delete``), faulted ones
    included."""
    limited: dict[str, int] = field(default_factory=dict)
    """429 answers by operation."""
    accepted: dict[str, list[float]] = field(default_factory=dict)
    """When requests of each operation were let through the rate window (monotonic seconds)."""
    upload_log: list[Upload] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def active(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.contacts.values() if c["status"] == "ACTIVE"]


def _merged(stores: list[BotStore]) -> BotStore:
    """Every bot's contacts and counts in one store: a copy for reading (the contacts are the
    bots' own objects), which no request changes."""
    merged = BotStore()
    for store in stores:
        with store.lock:
            merged.contacts.update(store.contacts)
            merged.by_phone.update(store.by_phone)
            merged.uploads += store.uploads
            merged.listings += store.listings
            for operation, count in store.requests.items():
                merged.requests[operation] = merged.requests.get(operation, 0) + count
            for operation, count in store.limited.items():
                merged.limited[operation] = merged.limited.get(operation, 0) + count
            for operation, times in store.accepted.items():
                merged.accepted[operation] = sorted([*merged.accepted.get(operation, []), *times])
            merged.upload_log.extend(store.upload_log)
    return merged


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (killed, timed out) is no server error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Sandbox:
    """Run with ``start()``/``stop()`` or as a context manager; ``url`` is the host to configure."""

    def __init__(
        self,
        *,
        port: int = 0,
        secret: str = DEFAULT_SECRET,
        client_id: str = DEFAULT_CLIENT_ID,
        account_id: str = DEFAULT_ACCOUNT_ID,
        faults: Faults | None = None,
    ) -> None:
        self.secret = secret
        self.client_id = client_id
        self.account_id = account_id
        self.faults = faults or Faults()
        self._stores: dict[str, BotStore] = {}
        self._first = BotStore()
        self._seen_jti: set[str] = set()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Sandbox(url={self.url!r})"

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Sandbox:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # the stores

    def bot(self, bot_id: str) -> BotStore:
        """One bot's store, made when the bot is first called (or asked for). The first bot
        takes the store ``state`` showed until then, with what was put in it directly (contacts
        a test imported before the connector's first request)."""
        with self._lock:
            store = self._stores.get(bot_id)
            if store is None:
                store = self._first if not self._stores else BotStore()
                self._stores[bot_id] = store
            return store

    @property
    def state(self) -> BotStore:
        """The store of the one bot called so far (before any: the store the first bot will
        take), which is what a test of one tenant means. Once several bots have been called, a
        merged copy of their stores, for reading: ``bot(id)`` gives one bot's."""
        with self._lock:
            stores = list(self._stores.values())
        return self._first if len(stores) <= 1 else _merged(stores)

    def _store(self, bot: str | None) -> BotStore:
        """The store a direct call works on: the named bot's, or the first bot's."""
        return self._first if bot is None else self.bot(bot)

    # the API

    def authorise(self, headers: Any) -> str | None:
        """None when the request may proceed, else the reason for a 401."""
        token = headers.get("auth")
        if not token:
            return "missing auth header"
        if headers.get("accountId") != self.account_id:
            return "unknown accountId"
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256", "HS512"],
                # a secret shorter than RFC 7518 §3.2 asks for signs nothing this accepts
                options={"require": ["exp", "iat"], "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as exc:
            return f"invalid token: {exc}"
        if claims.get("appId") != self.client_id:
            return "unknown appId"
        jti = claims.get("jti")
        if not jti:
            return "token has no jti and the app enforces JTI"
        with self._lock:  # a token is the app's, whichever bot it is sent to
            if jti in self._seen_jti:
                return "token jti was used before"
            self._seen_jti.add(jti)
        return None

    def import_contacts(self, body: bytes, bot: str | None = None) -> tuple[int, Any]:
        """Create the CSV's contacts in the bot's store (``bot``: its id; by default the first
        bot's, the one ``state`` shows)."""
        store = self._store(bot)
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
        if rows and set(KORE_COLUMNS) - set(rows[0]):
            return 400, _error(f"missing columns: {sorted(set(KORE_COLUMNS) - set(rows[0]))}")
        created: list[dict[str, Any]] = []
        with store.lock:
            keys: list[str | None] = []
            for row in rows:
                key = join_key(
                    row.get("cellPhoneNumber") or "", row.get("cellPhoneCountryCode") or ""
                )
                duplicate = key is None or key in store.by_phone or key in keys
                if duplicate or key in self.faults.refuse:
                    if self.faults.duplicates == "reject-file":
                        return 400, _error("Contact with this phone number already exists")
                    duplicate = True
                keys.append(None if duplicate else key)
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            for row, key in zip(rows, keys, strict=True):
                if key is None:
                    continue
                contact_id = uuid.uuid4().hex[:24]
                contact: dict[str, Any] = {
                    "status": "ACTIVE",
                    "firstName": row["firstName"],
                    "lastName": row["lastName"],
                    "salutation": row["salutation"],
                    "accountId": self.account_id,
                    "cellPhone": {
                        "phoneNumber": key,
                        "countryCode": row["cellPhoneCountryCode"],
                        "extension": row["cellPhoneExtension"],
                    },
                    "fullName": f"{row['firstName']} {row['lastName']}".strip(),
                    "address": [],
                    "createdAt": stamp,
                    "updatedAt": stamp,
                    "id": contact_id,
                }
                store.contacts[contact_id] = contact
                store.by_phone[key] = contact_id
                created.append(contact)
        return 200, created

    def bulk_update(self, items: Any, bot: str | None = None) -> tuple[int, Any]:
        if not isinstance(items, list):
            return 400, _error("expected a JSON array")
        store = self._store(bot)
        updated = []
        with store.lock:
            for item in items:
                contact = store.contacts.get(str(item.get("id")))
                if contact is None:
                    continue
                for name in ("firstName", "lastName", "fullName", "salutation"):
                    if name in item:
                        contact[name] = item[name]
                phone = item.get("cellPhone")
                if isinstance(phone, dict):  # the number is the key: its other parts may change
                    kept = {k: phone[k] for k in ("countryCode", "extension") if k in phone}
                    contact["cellPhone"] = {**contact["cellPhone"], **kept}
                contact["updatedAt"] = datetime.now(UTC).isoformat()
                updated.append(dict(contact))
        return 200, updated

    def bulk_delete(self, body: Any, bot: str | None = None) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
            return 400, _error('expected a JSON object {"ids": [...]}')
        ids = [str(i) for i in body["ids"]]
        done = {c["id"] for c in self.delete(ids, bot)}
        return 200, {
            "totalRequested": len(ids),
            "successful": len(done),
            "failed": len(ids) - len(done),
            "successfulRecords": [{"id": i} for i in ids if i in done],
            "failedRecords": [{"id": i} for i in ids if i not in done],
        }

    def delete(self, ids: list[str], bot: str | None = None) -> list[dict[str, Any]]:
        store = self._store(bot)
        removed = []
        with store.lock:
            for contact_id in ids:
                contact = store.contacts.get(contact_id)
                if contact is not None and contact["status"] == "ACTIVE":
                    contact["status"] = "INACTIVE"
                    store.by_phone.pop(contact["cellPhone"]["phoneNumber"], None)
                    removed.append(dict(contact))
        return removed


_OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "contacts"): "list",
    ("POST", "contacts/import-contacts"): "import",
    ("PUT", "contacts/bulk-update"): "update",
    ("DELETE", "contacts/bulk-delete"): "delete",
}


def _over_window(store: BotStore, faults: Faults, operation: Operation) -> float | None:
    """Seconds until the operation's rate window at the bot has room again; None (and the
    request counted) when it has room now."""
    window = faults.rate_window
    if window is None:
        return None
    allowed, seconds = window
    now = time.monotonic()
    with store.lock:
        times = store.accepted.setdefault(operation, [])
        recent = [t for t in times if t > now - seconds]
        times[:] = recent
        if len(recent) >= allowed:
            return recent[-allowed] + seconds - now
        times.append(now)
    return None


def _retry_after(style: str, wait: float) -> dict[str, str]:
    if style == "seconds":
        return {"Retry-After": str(max(1, math.ceil(wait)))}
    if style == "date":
        return {"Retry-After": email.utils.formatdate(math.ceil(time.time() + wait), usegmt=True)}
    return {}


def _error(message: str) -> dict[str, Any]:
    return {"errors": [{"msg": message}]}


def _handler_for(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("sandbox: " + format, *args)

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        def _route(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            path = self.path.split("?", 1)[0]
            inside = path[len(PREFIX) :] if path.startswith(PREFIX) else ""
            bot_id, _, rest = inside.partition("/")
            store = sandbox.bot(bot_id) if bot_id and rest.startswith("contacts") else None
            operation = _OPERATIONS.get((method, rest)) if store is not None else None
            number = 0 if store is None or operation is None else self._count(store, operation)
            faults = sandbox.faults
            if operation in faults.on and faults.reset_every and number % faults.reset_every == 0:
                self.rfile.read(length // 2)
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()
                return None
            body = self.rfile.read(length) if length else b""
            if store is None:
                return self._reply(404, _error("not found"))
            reason = sandbox.authorise(self.headers)
            if reason:
                return self._reply(401, _error(reason))
            if operation is not None:
                return self._operate(store, bot_id, operation, body, number)
            if method == "DELETE" and rest.startswith("contacts/"):
                removed = sandbox.delete([rest.removeprefix("contacts/")], bot_id)
                return (
                    self._reply(200, removed[0])
                    if removed
                    else self._reply(404, _error("no such contact"))
                )
            return self._reply(404, _error("not found"))

        def _count(self, store: BotStore, operation: Operation) -> int:
            """Count a request of ``operation`` to the bot (faulted ones too); returns its
            number."""
            with store.lock:
                number = store.requests.get(operation, 0) + 1
                store.requests[operation] = number
                if operation == "import":
                    store.uploads = number
                if operation == "list":
                    store.listings += 1
            return number

        def _operate(
            self, store: BotStore, bot_id: str, operation: Operation, body: bytes, number: int
        ) -> None:
            """One operation on one bot's store, with the faults switched on for it."""
            faults = sandbox.faults
            faulty = operation in faults.on
            if faulty and faults.delay_seconds:
                time.sleep(faults.delay_seconds)
            wait = _over_window(store, faults, operation) if faulty else None
            if wait is None and faulty and faults.rate_limit_every:
                wait = 1.0 if number % faults.rate_limit_every == 0 else None
            if wait is not None:
                with store.lock:
                    store.limited[operation] = store.limited.get(operation, 0) + 1
                return self._reply(
                    429,
                    _error("Rate limit for this API has been reached. Please try again later"),
                    _retry_after(faults.retry_after, wait),
                )
            if faulty and faults.fail_every and number % faults.fail_every == 0:
                return self._reply(500, _error("internal error (injected)"))
            if operation == "list":
                status, answer = 200, {"results": store.active()}
            elif operation == "import":
                status, answer = self._import(store, bot_id, body)
            elif operation == "update":
                status, answer = sandbox.bulk_update(_loads(body), bot_id)
            else:
                status, answer = sandbox.bulk_delete(_loads(body), bot_id)
            if faulty and faults.drop_every and number % faults.drop_every == 0:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if faulty and faults.late_seconds:
                time.sleep(faults.late_seconds)
            return self._reply(status, answer)

        def _import(self, store: BotStore, bot_id: str, body: bytes) -> tuple[int, Any]:
            file_body = _multipart_file(self.headers.get("Content-Type", ""), body, "result_file")
            if file_body is None:
                return 400, _error("expected multipart/form-data with a result_file part")
            status, answer = sandbox.import_contacts(file_body, bot_id)
            received = max(
                0, sum(1 for _ in csv.reader(io.StringIO(file_body.decode("utf-8-sig")))) - 1
            )
            with store.lock:
                store.upload_log.append(
                    Upload(status, received, len(answer) if status == 200 else 0)
                )
            return status, answer

        def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


def _multipart_file(content_type: str, body: bytes, name: str) -> bytes | None:
    if not content_type.startswith("multipart/form-data"):
        return None
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == name:
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else None
    return None
