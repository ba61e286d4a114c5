"""Short-lived JWTs minted from the client secret, one per request, as an httpx auth flow."""

from __future__ import annotations

import time
import uuid
from collections.abc import Generator

import httpx
import jwt
from pydantic import SecretStr

TOKEN_LIFETIME_SECONDS = 300
IAT_BACKDATE_SECONDS = 10
"""A token says it was issued this long ago: a server refuses a token issued in the future
(PyJWT's ``ImmatureSignatureError``), and this absorbs a clock a few seconds ahead of Kore's.
A clock further off is the daemon's to catch (``daemon.max_clock_skew_seconds``)."""


class JwtAuth(httpx.Auth):
    """Sets the ``auth`` and ``accountId`` headers; after a 401 it retries once with a new token.

    Every token carries a unique ``jti``, so apps set to "Enforce JTI" accept it.
    """

    requires_request_body = True

    def __init__(
        self, *, client_id: str, client_secret: SecretStr, account_id: str, algorithm: str
    ) -> None:
        self._client_id = client_id
        self._secret = client_secret
        self._account_id = account_id
        self._algorithm = algorithm

    def __repr__(self) -> str:
        return f"JwtAuth(client_id={self._client_id!r}, algorithm={self._algorithm!r})"

    def mint(self) -> str:
        issued = int(time.time())
        claims = {
            "appId": self._client_id,
            "sub": "kore-connector",
            "iat": issued - IAT_BACKDATE_SECONDS,
            "exp": issued + TOKEN_LIFETIME_SECONDS,
            "jti": uuid.uuid4().hex,
        }
        # the secret's length was checked when the config was read (RFC 7518 §3.2)
        return jwt.encode(claims, self._secret.get_secret_value(), algorithm=self._algorithm)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["auth"] = self.mint()
        request.headers["accountId"] = self._account_id
        response = yield request
        if response.status_code == 401:
            request.headers["auth"] = self.mint()
            yield request
