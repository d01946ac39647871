"""The bad-input catalogue's parts (research/reliability.md §4): the routes its server runs, the
requests it sends, what a row expects, and how a row is checked through the real server. Rows
live in tests/e2e/test_bad_input.py (malformed and hostile input) and test_attacks.py (attacks
on trust boundaries)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import requests

from events import signatures
from events.pubsub import SCHEDULES_TOPIC
from tests.support import binary, cases, env_for, free_port, functions_framework, server, structured

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: any-object
    when: {storage: {bucket: sample-bucket}}
    run: {pipeline: echo, params: {message: "{object.name}"}}
  - name: gated
    when: {storage: {bucket: gated-bucket, content_types: [text/csv], min_size: 1}}
    run: {pipeline: echo}
  - name: product
    when:
      pubsub:
        topic: product-events
        attributes: {schema_version: "1"}
        signature: {secret: PRODUCT_SIGNING_SECRET, max_skew: 5m}
    run: {pipeline: echo, params: {message: {from: data.survey_id, default: ""}}}
  - name: nightly
    when: {schedule: {job: nightly, cron: "0 3 * * *"}}
    run: {pipeline: echo}
  - name: tenant-responses
    when:
      pubsub:
        topic: product-events
        attributes: {schema_version: "2"}
        signature: {secret: PRODUCT_SIGNING_SECRET, max_skew: 5m}
    run:
      pipeline: echo
      params: {message: "gs://acme-survey/{data.tenant}/responses/"}
      run_key: "{route}/{data.tenant}/{data.survey}"
"""

STORAGE = {
    "specversion": "1.0",
    "type": "google.cloud.storage.object.v1.finalized",
    "source": "//storage.googleapis.com/projects/_/buckets/sample-bucket",
}
PRODUCT_TOPIC = "projects/acme/topics/product-events"
PUBSUB = {
    "specversion": "1.0",
    "type": "google.cloud.pubsub.topic.v1.messagePublished",
    "source": f"//pubsub.googleapis.com/{PRODUCT_TOPIC}",
}


def storage(
    event_id: str, name: str, bucket: str = "sample-bucket", **extra: object
) -> tuple[dict[str, str], bytes]:
    attributes = {**STORAGE, "id": event_id, "source": STORAGE["source"].replace("sample-bucket", bucket)}
    data = {"bucket": bucket, "name": name, "generation": "1", "size": "10", **extra}
    return structured(attributes, data)  # structured mode carries any string, as a push body can


SECRET = "s3cret-shared-with-the-product"
Request = tuple[dict[str, str], bytes]
Delivery = Request | Callable[[], Request]  # a callable is built when sent


def sent(delivery: Delivery) -> Request:
    return delivery() if callable(delivery) else delivery


def message(
    message_id: str, data: object, *, signed: int | None = 0, key: str = SECRET, **attributes: str
) -> Callable[[], Request]:
    """A product message, built when sent: `signed` is seconds before the moment of sending that
    it was signed (None: unsigned), so a row signed "now" is still fresh however late it runs."""
    return partial(_message, message_id, data, signed=signed, key=key, **attributes)


def _message(message_id: str, data: object, *, signed: int | None, key: str, **attributes: str) -> Request:
    payload = data.encode() if isinstance(data, str) else json.dumps(data).encode()
    if signed is not None and not isinstance(data, str):
        stamp = int(time.time()) - signed
        attributes = {**attributes, "timestamp": str(stamp)}
        attributes["signature"] = signatures.sign(key, stamp, PRODUCT_TOPIC, attributes, payload)
    raw = data if isinstance(data, str) else base64.b64encode(payload).decode()
    published = "2026-11-27T03:00:00Z"
    body = {
        "message": {"data": raw, "messageId": message_id, "publishTime": published, "attributes": attributes}
    }
    return binary({**PUBSUB, "id": message_id}, body)


def resigned(delivery: Delivery, **changed: str) -> Callable[[], Request]:
    """The same signed delivery with attributes changed after signing (re-published by someone else)."""
    return partial(_resigned, delivery, **changed)


def _resigned(delivery: Delivery, **changed: str) -> Request:
    headers, body = sent(delivery)
    document = json.loads(body)
    document["message"]["attributes"] |= changed
    return headers, json.dumps(document).encode()


def raw(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    return headers, body


def golden(file: str) -> tuple[dict[str, str], bytes]:
    (case,) = [case for case in cases() if case.file == file]
    return structured(*case.cloudevent())


def tick(event_id: str, second: int) -> tuple[dict[str, str], bytes]:
    """A Cloud Scheduler tick for job `nightly`, delivered over Pub/Sub, for the 03:00Z slot."""
    published = f"2026-11-27T03:00:{second:02}Z"
    body = {
        "message": {
            "data": "",
            "messageId": event_id,
            "publishTime": published,
            "attributes": {"scheduler_job": "nightly"},
        }
    }
    return binary(
        {**PUBSUB, "id": event_id, "source": PUBSUB["source"].replace("product-events", SCHEDULES_TOPIC)},
        body,
    )


@dataclass
class Row:
    """One catalogue row: requests, and what each must be answered (status, outcome, reason)."""

    requests: list[Delivery]
    status: int = 200
    outcome: str = "quarantined"
    reason: str = ""
    method: str = "POST"
    answers: list[tuple[int, str]] = field(default_factory=list)  # per request, when they differ


BINARY_HEADERS = binary({**STORAGE, "id": "h-1"}, {})[0]
EMPTY_STRUCTURED = {"content-type": "application/cloudevents+json"}
NESTED = (
    b'{"bucket": "sample-bucket", "name": "n", "generation": "1", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
)


@contextmanager
def catalogue_server(state: Path) -> Iterator[str]:
    """`handle_event` under functions-framework with the catalogue's routes; its URL."""
    (state / "routes.yaml").write_text(ROUTES)
    port = free_port()
    env = env_for(state, routes=state / "routes.yaml", PRODUCT_SIGNING_SECRET=SECRET)
    with server(functions_framework("handle_event", port), env, port, state / "server.log") as base:
        yield base


def outcome_of(answer: dict[str, object]) -> tuple[str, str]:
    if "outcome" in answer:
        return str(answer["outcome"]), str(answer.get("reason", ""))
    decisions = answer["decisions"]
    assert isinstance(decisions, list)
    # Two routes read the product topic, one per schema_version: the other one's skip is noise.
    relevant = [d for d in decisions if "attribute 'schema_version'" not in str(d.get("reason"))]
    (decision,) = relevant or decisions[:1]
    return str(decision["outcome"]), str(decision.get("reason", ""))


def check(url: str, spec: Row) -> None:
    """Send a row's requests and check every answer."""
    expected = spec.answers or [(spec.status, spec.outcome)] * len(spec.requests)
    for delivery, (status, outcome) in zip(spec.requests, expected, strict=True):
        headers, body = sent(delivery)
        response = requests.request(spec.method, url, data=body, headers=headers, timeout=30)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        if status != 200:
            assert "error" in response.json()
            continue
        got, reason = outcome_of(response.json())
        assert got == outcome, (got, reason)
        assert spec.reason in reason, reason
