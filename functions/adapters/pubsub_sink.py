"""The Pub/Sub `Sink`: results and quarantined events as Pub/Sub messages.

A result (a CloudEvent) is published in the CloudEvents Pub/Sub binary content mode: its context
attributes become `ce-` message attributes, `datacontenttype` becomes `content-type`, and the
data is the message body; the ordering key is the run key (the CloudEvent subject). A
quarantine record becomes a dead-letter message: the original request body as data, the reason
and the original CloudEvent attributes as attributes. `publish` returns only when Pub/Sub has
acknowledged the message, so the ledger marks a result published only after it really is.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from events.errors import TransientError

MAX_ATTRIBUTE_VALUE = 1024
PUBLISH_TIMEOUT_SECONDS = 60.0

Message = tuple[bytes, dict[str, str], str]  # data, attributes, ordering key


def cloudevent_message(event: Mapping[str, Any]) -> Message:
    """A structured CloudEvent → the Pub/Sub binary content mode."""
    attributes = {
        f"ce-{name}": str(value)
        for name, value in event.items()
        if name not in ("data", "datacontenttype") and value is not None
    }
    attributes["content-type"] = str(event.get("datacontenttype", "application/json"))
    data = json.dumps(event.get("data"), sort_keys=True, separators=(",", ":")).encode()
    return data, _capped(attributes), str(event.get("subject", ""))[:1024]


def dead_letter_message(record: Mapping[str, Any]) -> Message:
    """A quarantine record → the original body, with the reason and its attributes beside it."""
    attributes = {"reason": str(record["reason"]), "target": str(record["target"]), "at": str(record["at"])}
    attributes["body-sha256"] = str(record["body_sha256"])
    event = record.get("event") or {}
    attributes.update({f"event-{key.removeprefix('ce-')}": str(value) for key, value in event.items()})
    return base64.b64decode(str(record.get("body_base64", ""))), _capped(attributes), ""


def _capped(attributes: dict[str, str]) -> dict[str, str]:
    """Pub/Sub limits: 100 attributes, values of at most 1024 bytes."""
    return {
        key[:256]: value.encode()[:MAX_ATTRIBUTE_VALUE].decode(errors="ignore")
        for key, value in list(attributes.items())[:100]
    }


class PubsubSink:
    def __init__(self, topic: str) -> None:
        """`topic` is `projects/P/topics/T`. Honours PUBSUB_EMULATOR_HOST like every Google client."""
        self.topic = topic
        self._publisher: Any = None

    def _client(self) -> Any:
        if self._publisher is None:
            from google.cloud.pubsub_v1 import PublisherClient, types

            options = types.PublisherOptions(enable_message_ordering=True)
            self._publisher = PublisherClient(publisher_options=options)
        return self._publisher

    def publish(self, document: Mapping[str, object]) -> None:
        data, attributes, ordering_key = (
            cloudevent_message(document) if "specversion" in document else dead_letter_message(document)
        )
        publisher = self._client()
        try:
            publisher.publish(self.topic, data, ordering_key=ordering_key, **attributes).result(
                timeout=PUBLISH_TIMEOUT_SECONDS
            )
        except Exception as exc:
            if ordering_key:
                publisher.resume_publish(self.topic, ordering_key)  # a failed key is paused until resumed
            raise TransientError(f"publishing to {self.topic} failed: {type(exc).__name__}") from exc
