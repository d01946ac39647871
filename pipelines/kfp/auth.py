"""Credentials for `kfp.Client` that stay valid on a long-lived instance.

kfp.Client's own `client_id` (IAP) and AI Platform Pipelines (ADC) paths fetch one token when
the client is built and never refresh it; a warm Cloud Functions instance would start failing
an hour later. `refreshing(credentials)` wraps google-auth credentials in kfp's
`TokenCredentialsBase`: the generated API client calls its hook before every request, and the
hook refreshes the credentials whenever google-auth no longer counts them valid (it does so a
few minutes before they expire, `google.auth._helpers.REFRESH_THRESHOLD`), then sets the token;
`renew` refreshes at once, for a request the server answered 401 (`backend.renewing`).
"""

from __future__ import annotations

import threading
from typing import Any

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


class RefreshingToken:
    """The hook kfp's generated client calls before each request (`refresh_api_key_hook`)."""

    def __init__(self, credentials: Any) -> None:
        self.credentials = credentials
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if not self.credentials.valid:
                self._refresh()
            return str(self.credentials.token)

    def renew(self) -> str:
        """A new token now, however valid google-auth counts the last one: the server refused it
        (revoked, or a clock that disagrees with the server's)."""
        with self._lock:
            self._refresh()
            return str(self.credentials.token)

    def _refresh(self) -> None:
        from google.auth.transport.requests import Request

        self.credentials.refresh(Request())

    def refresh_api_key_hook(self, config: Any) -> None:
        config.api_key["authorization"] = self.token()


def refreshing(credentials: Any) -> Any:
    """A kfp `TokenCredentialsBase` around google-auth `credentials` (kfp is imported only here)."""
    from kfp.client.token_credentials_base import TokenCredentialsBase

    class Credentials(RefreshingToken, TokenCredentialsBase):
        pass

    return Credentials(credentials)


def iap_credentials(client_id: str) -> Any:
    """ID-token credentials for the ambient service account, audience the IAP OAuth client id."""
    from google.auth.transport.requests import Request
    from google.oauth2 import id_token

    return id_token.fetch_id_token_credentials(client_id, Request())


def adc_credentials() -> Any:
    """Application Default Credentials (AI Platform Pipelines hosts)."""
    import google.auth

    credentials, _ = google.auth.default(scopes=SCOPES)
    return credentials
