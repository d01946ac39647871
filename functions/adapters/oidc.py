"""The OIDC `Verifier`: who may call the HTTP targets (Google-signed ID tokens of allowed accounts).

Eventarc, Pub/Sub push and Cloud Scheduler all send `Authorization: Bearer <ID token>`, minted
for the caller's service account. `verify` checks the signature against Google's certificates
(google-auth), the issuer, the audience (always passed: with none, google-auth does not check
it), the expiry, and then what google-auth leaves to the caller: `email` in the allowlist and
`email_verified`. A bad or missing token answers 401; a good token from a caller that is not
allowed answers 403. Certificates are cached for `CERTS_TTL_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.auth import transport

from functions.service.ports import AuthError

ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
CERTS_TTL_SECONDS = 300.0
CLOCK_SKEW_SECONDS = 10


@dataclass(frozen=True, slots=True)
class Caller:
    email: str


class _CertsCache(transport.Request):
    """A google-auth transport that remembers GET responses (the certificates) for a while."""

    def __init__(self) -> None:
        from google.auth.transport.requests import Request

        self._request = Request()
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:  # type: ignore[override]
        with self._lock:
            cached = self._cache.get(url)
            if method == "GET" and cached is not None and cached[0] > time.monotonic():
                return cached[1]
        response = self._request(url, method=method, **kwargs)
        if method == "GET" and response.status == 200:
            with self._lock:
                self._cache[url] = (time.monotonic() + CERTS_TTL_SECONDS, response)
        return response


class Verifier:
    def __init__(self, audience: str, callers: Mapping[str, tuple[str, ...]], certs_url: str) -> None:
        """`callers`: target → the emails allowed to call it."""
        self.audience = audience
        self.callers = {target: frozenset(emails) for target, emails in callers.items()}
        self.certs_url = certs_url
        self._transport = _CertsCache()

    def verify(self, authorization: str, target: str) -> Caller:
        """The verified caller of a request to `target` with this `Authorization` header value.

        Raises:
            AuthError: 401 for a missing, malformed, forged, expired or misaddressed token;
                403 for a valid token whose email is not allowed or not verified.
        """
        from google.auth import exceptions
        from google.oauth2 import id_token

        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "a Bearer ID token is required")
        try:
            claims = id_token.verify_token(
                token.strip(),
                self._transport,
                audience=self.audience,
                certs_url=self.certs_url,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        except exceptions.TransportError as exc:
            raise AuthError(503, "cannot fetch the token certificates; retry") from exc
        except (ValueError, exceptions.GoogleAuthError) as exc:
            raise AuthError(401, "the ID token is not valid") from exc
        if claims.get("iss") not in ISSUERS:
            raise AuthError(401, "the ID token was not issued by Google")
        email = claims.get("email")
        if not isinstance(email, str) or email not in self.callers.get(target, frozenset()):
            raise AuthError(403, "this caller is not allowed")
        if claims.get("email_verified") is not True:
            raise AuthError(403, "the caller's email is not verified")
        return Caller(email)
