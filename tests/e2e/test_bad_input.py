"""The bad-input catalogue (research/reliability.md §4), row by row, through the real server.

Each row sends its requests to `handle_event` served by functions-framework and checks the
answer the catalogue prescribes: 4xx only for what is not a CloudEvent at all; for a delivered
event, 200 with a quarantine record, an ignore, a skip or a duplicate, never a 500. Rows tested
elsewhere through the same server: authentication (tests/e2e/test_auth.py, every target), the
body-size cap and batch mode (test_http_server.py), log forging (test_http_server.py).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from events import signatures
from events.pubsub import SCHEDULES_TOPIC
from tests.support import binary, cases, env_for, free_port, functions_framework, server, structured

pytestmark = pytest.mark.slow  # servers and CLI commands in subprocesses

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


def message(
    message_id: str, data: object, *, signed: int | None = 0, key: str = SECRET, **attributes: str
) -> tuple[dict[str, str], bytes]:
    """A product message; `signed`: seconds before now it was signed (None: unsigned)."""
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


def resigned(delivery: tuple[dict[str, str], bytes], **changed: str) -> tuple[dict[str, str], bytes]:
    """The same signed delivery with attributes changed after signing (re-published by someone else)."""
    headers, body = delivery
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

    requests: list[tuple[dict[str, str], bytes]]
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

CATALOGUE: dict[str, Row] = {
    "non-POST method": Row([raw(BINARY_HEADERS, b"{}")], 405, method="PUT"),
    **{
        f"binary mode without {header}": Row(
            [raw({k: v for k, v in BINARY_HEADERS.items() if k != header}, b"{}")], 400
        )
        for header in ("ce-id", "ce-source", "ce-type", "ce-specversion")
    },
    "specversion 2.0": Row([raw({**BINARY_HEADERS, "ce-specversion": "2.0"}, b"{}")], 400),
    "structured body empty": Row([raw(EMPTY_STRUCTURED, b"")], 400),
    "structured body not JSON": Row([raw(EMPTY_STRUCTURED, b"<xml/>")], 400),
    "text/plain without ce- headers": Row([raw({"content-type": "text/plain"}, b"hello")], 415),
    **{
        f"a cross-site {kind} body holding a structured CloudEvent": Row(
            [raw({"content-type": kind}, structured({**STORAGE, "id": "xs-1"}, {"name": "x"})[1])], 415
        )
        for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
    },
    "application/xml body of a delivered event": Row(
        [raw({**BINARY_HEADERS, "content-type": "application/xml"}, b"<object/>")],
        reason="not strict JSON: not JSON (Expecting value at position 0)",
    ),
    "unknown ce-type": Row(
        [structured({**STORAGE, "id": "t-1", "type": "com.example.surprise"}, {})],
        reason="unknown event type",
    ),
    "bucket nobody listens to": Row(
        [storage("b-1", "a.csv", bucket="not-allowlisted")], reason="no route listens"
    ),
    "64 KB ce-id": Row([storage("i" * 65536, "a.csv")], reason="'id' is longer than 1024"),
    "push envelope without message": Row(
        [binary({**PUBSUB, "id": "m-0"}, {"subscription": "projects/p/subscriptions/s"})],
        reason="data.message",
    ),
    "attributes of the wrong type": Row(
        [
            binary(
                {**PUBSUB, "id": "m-1"},
                {"message": {"data": "e30=", "publishTime": "2026-11-27T03:00:00Z", "attributes": {"n": 7}}},
            )
        ],
        reason="attributes",
    ),
    **{
        f"base64 with {what}": Row([message(f"b64-{what}", data)], reason="base64")
        for what, data in (
            ("bad padding", "eyJhIjogMX0"),
            ("the URL-safe alphabet", "eyJzdXJ2ZXlfaWQiOiAiPz8_In0-"),
            ("embedded whitespace", "eyJh Ijog MX0="),
        )
    },
    **{
        f"body {what}": Row([raw(BINARY_HEADERS, body)], reason=reason)
        for what, body, reason in (
            ("not UTF-8", b'{"name": "\xff"}', "not strict JSON: not valid UTF-8"),
            ("with a BOM", b'\xef\xbb\xbf{"name": "a"}', "not strict JSON: not JSON (Unexpected UTF-8 BOM"),
            ("with an overlong encoding", b'{"name": "\xc0\xaf"}', "not strict JSON: not valid UTF-8"),
            ("with duplicate keys", b'{"name": "a", "name": "b"}', "not strict JSON: duplicate key 'name'"),
            ("with NaN", b'{"size": NaN}', "not strict JSON: NaN is not valid JSON"),
            ("with Infinity", b'{"size": Infinity}', "not strict JSON: Infinity is not valid JSON"),
            ("with 1e400", b'{"size": 1e400}', "not strict JSON: 1e400 is out of range"),
            ("nested 5000 deep", NESTED, "not strict JSON: nested deeper than 64 levels"),
        )
    },
    "a lone surrogate in the name": Row(
        [raw(BINARY_HEADERS, b'{"bucket": "sample-bucket", "name": "a\\ud800"}')],
        reason="not strict JSON: a string holds a lone surrogate",
    ),
    "NUL in the name": Row([storage("nul", "a\x00b.csv")], reason="control characters"),
    **{
        f"object name {what}": Row([storage(f"name-{what}", name)], reason="not an acceptable object name")
        for what, name in (
            ("with ../", "folder/../secret.csv"),
            ("with a leading /", "/etc/passwd"),
            ("with a backslash", "folder\\x.csv"),
            ("with //", "folder//x.csv"),
            ("with U+202E", "invoice\u202ecsv.exe"),
            ("with a zero-width space", "fol\u200bder/x.csv"),
            ("of 1025 bytes", "x" * 1025),
        )
    },
    "a non-NFC name is kept exactly": Row([storage("nfd", "caf\u0065\u0301.csv")], outcome="run"),
    "metadata-only update, archive, delete": Row(
        [
            structured({**STORAGE, "id": f"m-{kind}", "type": f"google.cloud.storage.object.v1.{kind}"}, {})
            for kind in ("metadataUpdated", "archived", "deleted")
        ],
        outcome="ignored",
    ),
    "the same name and generation again": Row(
        [storage("g-1", "same.csv"), storage("g-1-again", "same.csv")],
        answers=[(200, "run"), (200, "duplicate")],
    ),
    "an older generation after a newer one": Row(
        [storage("gen-5", "gen.csv", generation="5"), storage("gen-4", "gen.csv", generation="4")],
        answers=[(200, "run"), (200, "skipped")],
    ),
    "a 0-byte object on a gated route": Row(
        [storage("zero", "z.csv", bucket="gated-bucket", size="0", contentType="text/csv")], outcome="skipped"
    ),
    "an unexpected content type on a gated route": Row(
        [storage("ct", "z.exe", bucket="gated-bucket", contentType="application/x-msdownload")],
        outcome="skipped",
    ),
    "a failed BigQuery job, a job still running, another method": Row(
        [
            golden(file)
            for file in (
                "audit/bigquery-job-failed.json",
                "audit/bigquery-jobchange-running.json",
                "audit/LogEntryData-pubsubCreateTopic.json",
            )
        ],
        outcome="ignored",
    ),
    "a duplicate Scheduler tick": Row(
        [tick("tick-1", 4), tick("tick-2", 9)], answers=[(200, "run"), (200, "duplicate")]
    ),
    "a product message of an unknown schema version": Row(
        [message("v9", {"survey_id": "s-1"}, event_id="p-9", schema_version="9")], outcome="skipped"
    ),
    "a product message without a signature": Row(
        [message("u-1", {"event_id": "p-u", "survey_id": "s"}, signed=None, schema_version="1")],
        reason="signature: unsigned",
    ),
    "a product message signed with another key": Row(
        [message("u-2", {"event_id": "p-k", "survey_id": "s"}, key="guessed", schema_version="1")],
        reason="signature: the signature does not match",
    ),
    "a signature timestamp of non-ASCII digits (²)": Row(
        [
            message(
                "n-1", {"event_id": "p-n1"}, signed=None, timestamp="²", signature="v1=00", schema_version="1"
            )
        ],
        reason="signature: the timestamp attribute is not whole Unix seconds",
    ),
    "a non-ASCII signature": Row(
        [
            message(
                "n-2",
                {"event_id": "p-n2"},
                signed=None,
                timestamp=str(int(time.time())),
                signature="v1=ünïcode",
                schema_version="1",
            )
        ],
        reason="signature: the signature does not match",
    ),
    **{
        f"a storage generation of {generation!r}": Row(
            [storage(f"g-{n}", "hostile-generation.csv", generation=generation)],
            reason="data.generation must be an integer",
        )
        for n, generation in enumerate(["--7", "²", "1_000", " 7", "+7", "99999999999999999999"])
    },
    "a product message replayed after the window (stale timestamp)": Row(
        [message("u-3", {"event_id": "p-s", "survey_id": "s"}, signed=3600, schema_version="1")],
        reason="s ago, more than 300 s (a replay or a skewed clock)",
    ),
    "a product message replayed inside the window (new messageId, same event_id)": Row(
        [
            message("r-1", {"event_id": "p-r", "survey_id": "s"}, schema_version="1"),
            message("r-2", {"event_id": "p-r", "survey_id": "s"}, schema_version="1"),
        ],
        answers=[(200, "run"), (200, "duplicate")],
    ),
    "a signed product message without event_id (it could be replayed in the window)": Row(
        [message("n-1", {"survey_id": "s"}, schema_version="1")],
        reason="signature: a signed message must carry an event_id",
    ),
    "a signed message re-published with another attribute": Row(
        [resigned(message("a-1", {"event_id": "p-a", "survey_id": "s"}, schema_version="1"), env="prod")],
        reason="signature: the signature does not match",
    ),
    "a scheduler_job attribute on the product topic is no schedule tick": Row(
        [message("st-1", {"event_id": "p-st"}, signed=None, schema_version="1", scheduler_job="nightly")],
        reason="signature: unsigned",
    ),
    "template and format strings in a value": Row(
        [
            message(
                "tpl",
                {"survey_id": "{0.__class__}{{7*7}}${jndi:ldap://x}$(id)", "event_id": "p-tpl"},
                schema_version="1",
            )
        ],
        outcome="run",
    ),
    "a tenant that climbs out of its folder, into a parameter": Row(
        [
            message(
                "tv-1",
                {"event_id": "p-tv1", "tenant": "../../other-tenant/x", "survey": "s"},
                schema_version="2",
            )
        ],
        outcome="skipped",
        reason="the value of {data.tenant} has a backslash, a leading '/', or an empty, '.' or '..' folder",
    ),
    "a tenant with NUL, a newline and a right-to-left override": Row(
        [
            message(
                "tv-2",
                {"event_id": "p-tv2", "tenant": "x\u0000\n\u202egpj.exe", "survey": "s"},
                schema_version="2",
            )
        ],
        outcome="skipped",
        reason="the value of {data.tenant} contains control characters",
    ),
    "a JSON object where the template wants text": Row(
        [
            message(
                "tv-3", {"event_id": "p-tv3", "tenant": {"nested": ["x"]}, "survey": "s"}, schema_version="2"
            )
        ],
        outcome="skipped",
        reason="{data.tenant} is a JSON object or list, not text",
    ),
    "a proper tenant runs": Row(
        [message("tv-4", {"event_id": "p-tv4", "tenant": "acme-eu", "survey": "s"}, schema_version="2")],
        outcome="run",
    ),
    "two events whose values would render one run key": Row(
        [
            message("k-1", {"event_id": "p-k1", "tenant": "acme/eu", "survey": "s1"}, schema_version="2"),
            message("k-2", {"event_id": "p-k2", "tenant": "acme", "survey": "eu/s1"}, schema_version="2"),
        ],
        outcome="run",
    ),
    "a time far in the future": Row(
        [
            structured(
                {**STORAGE, "id": "future", "time": "2999-01-01T00:00:00Z"},
                {"bucket": "sample-bucket", "name": "future.csv", "generation": "1"},
            )
        ],
        outcome="run",
    ),
}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("catalogue")
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


@pytest.mark.parametrize("row", list(CATALOGUE))
def test_catalogue_row(url: str, row: str) -> None:
    spec = CATALOGUE[row]
    expected = spec.answers or [(spec.status, spec.outcome)] * len(spec.requests)
    for (headers, body), (status, outcome) in zip(spec.requests, expected, strict=True):
        response = requests.request(spec.method, url, data=body, headers=headers, timeout=30)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        if status != 200:
            assert "error" in response.json()
            continue
        got, reason = outcome_of(response.json())
        assert got == outcome, (got, reason)
        assert spec.reason in reason, reason
