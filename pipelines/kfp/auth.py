"""Credentials for `kfp.Client` that stay valid on a long-lived instance.

kfp.Client's own `client_id` (IAP) and AI Platform Pipelines (ADC) paths fetch one token when
the client is built and never refresh it; a warm Cloud Functions instance would start failing
an hour later. `refreshing(fetch)` gives a `TokenCredentialsBase` whose hook (called by the
generated API client before every request) reuses the token until `MARGIN_SECONDS` before it
expires, then fetches a new one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

MARGIN_SECONDS = 300.0
Fetch = Callable[[], tuple[str, float]]  # → (token, expiry as a Unix time)


class RefreshingToken:
    def __init__(self, fetch: Fetch, clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._expiry = 0.0

    def token(self) -> str:
        with self._lock:
            if self._clock() >= self._expiry - MARGIN_SECONDS:
                self._token, self._expiry = self._fetch()
            return self._token

    def refresh_api_key_hook(self, config: Any) -> None:
        config.api_key["authorization"] = self.token()


def refreshing(fetch: Fetch) -> Any:
    """A kfp `TokenCredentialsBase` around `fetch` (kfp is imported only here)."""
    from kfp.client.token_credentials_base import TokenCredentialsBase

    class Credentials(RefreshingToken, TokenCredentialsBase):
        pass

    return Credentials(fetch)


def iap_id_token(client_id: str) -> Fetch:
    """ID tokens for the ambient service account, with the IAP OAuth client id as audience."""

    def fetch() -> tuple[str, float]:
        from google.auth import jwt
        from google.auth.transport.requests import Request
        from google.oauth2 import id_token

        token = id_token.fetch_id_token(Request(), client_id)
        claims = jwt.decode(token, verify=False)
        return token, float(claims["exp"])

    return fetch


def adc_access_token() -> Fetch:
    """Application Default Credentials access tokens (AI Platform Pipelines hosts)."""

    def fetch() -> tuple[str, float]:
        import google.auth
        from google.auth.transport.requests import Request

        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        credentials.refresh(Request())
        expiry = credentials.expiry.timestamp() if credentials.expiry else time.time() + 3000
        return str(credentials.token), expiry

    return fetch
