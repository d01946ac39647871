"""Cluster credentials refresh before they expire; each request carries a current token."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

from google.auth import _helpers

from pipelines.kfp.auth import RefreshingToken
from tests.support.fakes import StubCredentials


def test_a_token_is_reused_while_valid_and_refreshed_shortly_before_it_expires() -> None:
    threshold = _helpers.REFRESH_THRESHOLD.total_seconds()
    stub = StubCredentials(3600, threshold - 10, 3600)
    hook = RefreshingToken(stub)
    config = SimpleNamespace(api_key={})
    hook.refresh_api_key_hook(config)
    hook.refresh_api_key_hook(config)
    assert (config.api_key["authorization"], stub.refreshed) == ("token-1", 1), "valid: reused"
    stub.expiry = _helpers.utcnow() + datetime.timedelta(seconds=threshold - 10)  # about to expire
    hook.refresh_api_key_hook(config)
    assert config.api_key["authorization"] == "token-2"
    hook.refresh_api_key_hook(config)  # token-2 was issued inside the threshold: refreshed again
    assert (config.api_key["authorization"], stub.refreshed) == ("token-3", 3)
