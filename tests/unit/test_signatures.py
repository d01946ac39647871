"""Producer signatures: what passes, what is refused and why, and the secret's configuration."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from events.model import Envelope, Message
from events.schema import Signature
from events.signatures import problem, sign
from functions import bootstrap
from functions.settings import Settings, SettingsError

NOW = 1_800_000_000
SIGNATURE = Signature(secret="PRODUCT_SIGNING_SECRET", max_skew=300)


def signed(data: bytes, stamp: object = NOW, key: str = "k", signature: str | None = None) -> Message:
    attributes = {"timestamp": str(stamp), "signature": signature or sign(key, int(str(stamp)), data)}
    return Message(
        envelope=Envelope(id="1", type="t", source="s"),
        topic="projects/p/topics/t",
        message_id="1",
        publish_time=datetime.fromtimestamp(NOW, UTC),
        attributes=attributes,
        data=data,
        payload=None,
    )


def test_a_good_signature_passes_inside_the_window() -> None:
    assert problem(signed(b'{"a": 1}'), SIGNATURE, "k", NOW + 299) is None
    assert problem(signed(b'{"a": 1}', NOW + 200), SIGNATURE, "k", NOW) is None, "a little clock skew"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (signed(b"x", key="other"), "the signature does not match"),
        (signed(b"x", signature=sign("k", NOW, b"y")), "the signature does not match"),
        (signed(b"x", signature="v1=" + "0" * 64), "the signature does not match"),
        (signed(b"x", NOW - 301), "signed 301 s ago, more than 300 s"),
        (signed(b"x", NOW + 400), "signed 400 s in the future, more than 300 s"),
        (signed(b"x", signature="v1=abc", stamp="1.5e9"), "not whole Unix seconds"),
    ],
)
def test_refused(message: Message, reason: str) -> None:
    found = problem(message, SIGNATURE, "k", NOW)
    assert found is not None
    assert reason in found


def test_the_signed_bytes_are_timestamp_dot_data() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1800000000." + b'{"a": 1}', hashlib.sha256).hexdigest()
    assert sign("k", NOW, b'{"a": 1}') == "v1=" + expected


def test_a_route_that_checks_signatures_needs_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "pipelines: {echo: {source: 'tests.support.echo_pipeline:echo_pipeline'}}\n"
        "routes:\n  - name: product\n"
        "    when: {pubsub: {topic: t, signature: {secret: PRODUCT_SIGNING_SECRET}}}\n"
        "    run: {pipeline: echo}\n"
    )
    settings = Settings(routes=routes, state_dir=tmp_path, auth="none")
    monkeypatch.delenv("PRODUCT_SIGNING_SECRET", raising=False)
    with pytest.raises(SettingsError, match="PRODUCT_SIGNING_SECRET is not set: route 'product'"):
        bootstrap.build(settings)
    monkeypatch.setenv("PRODUCT_SIGNING_SECRET", "k")
    assert bootstrap.build(settings).router.by_name["product"].signature == SIGNATURE
