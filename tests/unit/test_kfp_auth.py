"""Cluster credentials refresh before they expire; each request carries a current token."""

from __future__ import annotations

from types import SimpleNamespace

from pipelines.kfp.auth import MARGIN_SECONDS, RefreshingToken


def test_a_token_is_reused_until_shortly_before_it_expires() -> None:
    now = [1000.0]
    fetched: list[str] = []

    def fetch() -> tuple[str, float]:
        fetched.append(f"token-{len(fetched) + 1}")
        return fetched[-1], now[0] + 3600

    credentials = RefreshingToken(fetch, clock=lambda: now[0])
    config = SimpleNamespace(api_key={})
    credentials.refresh_api_key_hook(config)
    assert config.api_key["authorization"] == "token-1"
    now[0] += 3600 - MARGIN_SECONDS - 1
    credentials.refresh_api_key_hook(config)
    assert config.api_key["authorization"] == "token-1"
    now[0] += 2
    credentials.refresh_api_key_hook(config)
    assert config.api_key["authorization"] == "token-2"
    assert fetched == ["token-1", "token-2"]
