"""Producer signatures: what passes, what is refused and why, and the secret's configuration."""

from __future__ import annotations

import json
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


TOPIC = "projects/p/topics/t"


def signed(
    data: bytes = b'{"event_id": "e-1"}',
    stamp: object = NOW,
    key: str = "k",
    signature: str | None = None,
    topic: str = TOPIC,
    **extra: str,
) -> Message:
    """A message signed for `topic` with `extra` attributes (then delivered on TOPIC)."""
    attributes = {"env": "test", **extra, "timestamp": str(stamp)}
    attributes["signature"] = signature or sign(key, int(str(stamp)), topic, attributes, data)
    payload = json.loads(data) if data.startswith(b"{") else None
    return Message(
        envelope=Envelope(id="1", type="t", source="s"),
        topic=TOPIC,
        message_id="1",
        publish_time=datetime.fromtimestamp(NOW, UTC),
        attributes=attributes,
        data=data,
        payload=payload,
    )


def test_a_good_signature_passes_inside_the_window() -> None:
    assert problem(signed(), SIGNATURE, "k", NOW + 299) is None
    assert problem(signed(stamp=NOW + 200), SIGNATURE, "k", NOW) is None, "a little clock skew"
    assert problem(signed(googclient_x="added by a client library"), SIGNATURE, "k", NOW) is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (signed(key="other"), "the signature does not match"),
        (signed(signature=sign("k", NOW, TOPIC, {"env": "test"}, b"y")), "the signature does not match"),
        (signed(signature="v2=" + "0" * 64), "the signature does not match"),
        (signed(topic="projects/p/topics/elsewhere"), "the signature does not match"),
        (signed(stamp=NOW - 301), "signed 301 s ago, more than 300 s"),
        (signed(stamp=NOW + 400), "signed 400 s in the future, more than 300 s"),
        (signed(signature="v2=abc", stamp="1.5e9"), "not whole Unix seconds"),
        (signed(signature="v2=abc", stamp="²"), "not whole Unix seconds"),
        (signed(signature="v2=ünïcode"), "the signature does not match"),
        (signed(b'{"survey_id": "s-1"}'), "must carry an event_id"),
    ],
)
def test_refused(message: Message, reason: str) -> None:
    found = problem(message, SIGNATURE, "k", NOW)
    assert found is not None
    assert reason in found


def test_the_signed_bytes_are_canonical() -> None:
    """The documented form, byte for byte (docs/routes.md, "Signed product messages")."""
    import hashlib
    import hmac

    from events.signatures import canonical

    attributes = {"type": "survey.closed", "tenant id": "acme/eu", "timestamp": "1", "signature": "x"}
    expected = b"v2\n1800000000\nprojects/p/topics/t\ntenant%20id=acme%2Feu&type=survey.closed\n{}"
    assert canonical(NOW, TOPIC, attributes, b"{}") == expected
    mac = hmac.new(b"k", expected, hashlib.sha256).hexdigest()
    assert sign("k", NOW, TOPIC, attributes, b"{}") == "v2=" + mac


def test_attributes_changed_after_signing_break_the_signature() -> None:
    """A signed message re-published with other attributes must not match another route."""
    from dataclasses import replace

    message = signed()
    forged = replace(message, attributes={**message.attributes, "env": "prod"})
    assert problem(forged, SIGNATURE, "k", NOW) == "the signature does not match"


def test_a_route_that_checks_signatures_needs_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "pipelines: {echo: {source: 'tests.support.echo_pipeline:echo_pipeline'}}\n"
        "routes:\n  - name: product\n"
        "    when: {pubsub: {topic: tpc, signature: {secret: PRODUCT_SIGNING_SECRET}}}\n"
        "    run: {pipeline: echo}\n"
    )
    settings = Settings(routes=routes, state_dir=tmp_path, auth="none")
    monkeypatch.delenv("PRODUCT_SIGNING_SECRET", raising=False)
    with pytest.raises(SettingsError, match="PRODUCT_SIGNING_SECRET is not set: route 'product'"):
        bootstrap.build(settings)
    monkeypatch.setenv("PRODUCT_SIGNING_SECRET", "k")
    assert bootstrap.build(settings).router.by_name["product"].signature == SIGNATURE


def test_the_readmes_python_producer_signs_as_the_reference_checks() -> None:
    """The routes guide's producer example, run as written, makes messages the route accepts."""
    import re

    from tests.support import ROOT

    guide = (ROOT / "docs" / "routes.md").read_text()
    section = guide[guide.index("**Signed product messages.**") :]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)[:1]
    published: list[tuple[str, bytes, dict[str, str]]] = []

    class Publisher:
        def publish(self, topic: str, data: bytes, **attributes: str) -> Publisher:
            published.append((topic, data, attributes))
            return self

        def result(self) -> None:
            return None

    namespace: dict[str, object] = {}
    exec(code, namespace)
    publish_signed = namespace["publish_signed"]
    publish_signed(Publisher(), TOPIC, "k", {"event_id": "e-9"}, type="survey.closed", tenant="acme/eu")  # type: ignore[operator]
    ((topic, data, attributes),) = published
    message = Message(
        envelope=Envelope(id="1", type="t", source="s"),
        topic=topic,
        message_id="1",
        publish_time=datetime.fromtimestamp(NOW, UTC),
        attributes=attributes,
        data=data,
        payload=json.loads(data),
    )
    assert problem(message, SIGNATURE, "k", int(attributes["timestamp"])) is None
