"""A property of the whole `handle_event`, on functions-framework's own app (issue 34): for any
CloudEvent — events of every source with any of their values replaced by arbitrary JSON, any
ids, times and attributes, any manifest — against routes that use every feature, the answer is
never a 500 (no port fails here, so never a 503 either, but for a batch whose objects are not
all there yet), and every delivery is accounted for: a run or a duplicate of one, a recorded
skip, an ignored event's decision, or a quarantine record.

A few hundred examples in `make check`; a few thousand in the slow tier (`make test`).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import functions_framework
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import signatures
from events.router import Router
from events.storage import name_problem
from functions import bootstrap
from functions.adapters.objects import LocalObjectStore
from functions.service.ports import Services, ledger_ports
from functions.settings import Settings
from pipelines.catalog import load
from tests.support import ROOT, binary, cases, structured
from tests.support.fakes import MemoryLedger, RecordingBackend, RecordingSink

SECRET = "s3cret"
ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
  sleepy: {source: tests.support.echo_pipeline:sleepy_pipeline}
routes:
  - name: landed
    when:
      storage:
        bucket: landing-bucket
        object: "in/{tenant}/{file}"
        name: {suffix: .csv}
        content_types: [text/csv]
    run:
      pipeline: echo
      params: {message: "gs://{object.bucket}/in/{tenant}/"}
      run_key: "{route}/{tenant}/{file}"
    limits:
      rate: {runs: 5, per: 1m}
      max_age: 7d
      concurrency: {max_active: 2, key: "{tenant}", on_newer: queue}
  - name: coalesced
    when: {storage: {bucket: landing-bucket, object: "daily/{day}/{part}"}}
    run: {pipeline: echo, run_key: "{route}/{day}"}
    limits: {coalesce: 5m}
  - name: batches
    when:
      storage:
        bucket: batch-bucket
        object: "b/{batch}/_MANIFEST.json"
        batch: {manifest: true, max_wait: 1h}
    run: {pipeline: echo, params: {message: "{batch}"}}
  - name: signed
    when:
      pubsub:
        topic: product-events
        attributes: {schema_version: "1", tier: {gte: 2, lt: 100}}
        data: {type: [survey.closed, survey.reopened], final: true}
        signature: {secret: PRODUCT_SIGNING_SECRET, max_skew: 1000000d}
    run: {pipeline: sleepy, params: {seconds: {from: data.seconds, default: 0}}}
  - name: unsigned
    when: {pubsub: {topic: other-events, data: {kind: {prefix: a}}}}
    run: {pipeline: echo, params: {message: {from: data.note, raw: true}}}
  - name: nightly
    when: {schedule: {job: nightly, cron: "0 3 * * *", timezone: Europe/Berlin, catch_up: 1d}}
    run: {pipeline: echo, params: {message: "{schedule.slot}"}}
  - name: tables
    when: {bigquery: {table: "acme.{dataset}.responses_{tenant}"}}
    run: {pipeline: echo, params: {message: "{table.id}"}}
  - name: together
    when:
      join:
        key: "{tenant}"
        within: 1h
        parts:
          files: {storage: {bucket: join-bucket, object: "files/{tenant}.csv"}}
          closed: {pubsub: {topic: join-events, data: {type: closed}}, key: "{data.tenant}"}
    run: {pipeline: echo, params: {message: "{parts.files.object.name}"}}
"""

STORAGE = "google.cloud.storage.object.v1.finalized"
PUBSUB = "google.cloud.pubsub.topic.v1.messagePublished"


def storage(bucket: str, name: str) -> tuple[dict[str, str], object]:
    attributes = {
        "specversion": "1.0",
        "id": "s-1",
        "type": STORAGE,
        "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
    }
    data = {"bucket": bucket, "name": name, "generation": "7", "size": "10", "contentType": "text/csv"}
    return attributes, data


def pubsub(topic: str, payload: dict[str, object], **attributes: str) -> tuple[dict[str, str], object]:
    raw = json.dumps(payload).encode()
    full = f"projects/acme/topics/{topic}"
    message = {
        "data": base64.b64encode(raw).decode(),
        "messageId": "m-1",
        "publishTime": "2026-12-07T03:00:00Z",
        "attributes": attributes,
    }
    context = {"specversion": "1.0", "id": "m-1", "type": PUBSUB, "source": f"//pubsub.googleapis.com/{full}"}
    return context, {"message": message}


def signed(message: dict[str, Any], topic: str, payload: Any) -> None:
    """Sign `message` as the product does (after whatever it holds was chosen): what its
    routes plan from is then reached, not stopped at the signature."""
    attributes = message.get("attributes")
    if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
        return
    try:
        json.dumps(attributes, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return  # a lone surrogate: no producer can sign it, and the HTTP intake refuses the body
    stamp = int(time.time())
    attributes |= {"timestamp": str(stamp)}
    raw = (
        json.dumps(payload).encode()
        if payload is not None
        else base64.b64decode(str(message.get("data", "")))
    )
    attributes["signature"] = signatures.sign(
        SECRET, stamp, topic, {k: v for k, v in attributes.items() if k != "signature"}, raw
    )


OURS = [
    storage("landing-bucket", "in/acme/a.csv"),
    storage("landing-bucket", "daily/2026-12-07/part-1"),
    storage("batch-bucket", "b/one/_MANIFEST.json"),
    storage("join-bucket", "files/acme.csv"),
    pubsub(
        "product-events",
        {"event_id": "e-1", "type": "survey.closed", "final": True, "seconds": 1},
        schema_version="1",
        tier="7",
    ),
    pubsub("other-events", {"kind": "abc", "note": "x"}),
    pubsub("join-events", {"type": "closed", "tenant": "acme"}),
    pubsub("kfp-trigger-schedules", {}, scheduler_job="nightly"),
]
GOLDEN = [case.cloudevent() for case in cases() if not case.legacy]
NASTY = [
    "\x00",
    "\r\n",
    "\x1b]0;x\x07",
    "\u202e",
    "../",
    "/",
    "\\",
    "%",
    "{0}",
    "\ud800",
    "\u0663",  # Arabic-Indic three
    "\uff19",  # full-width nine
    "9" * 400,
]
TIMES = [
    "2026-12-07T03:00:00Z",
    "0001-01-01T00:30:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2026-02-30T00:00:00Z",
    "",
    "now",
]
texts = (
    st.sampled_from(NASTY + TIMES)
    | st.text(max_size=12)
    | st.lists(st.sampled_from(NASTY), max_size=4).map("".join)
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400), 2**63])
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
manifests = (
    st.builds(lambda objects: json.dumps({"objects": objects}), st.lists(texts | json_values, max_size=4))
    | st.just('{"objects": ' + "[" * 5_000 + "]" * 5_000 + "}")
    | st.text(max_size=40)
)


def places(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    items = (
        document.items()
        if isinstance(document, dict)
        else enumerate(document)
        if isinstance(document, list)
        else ()
    )
    for key, value in items:
        found += [(*prefix, key), *places(value, (*prefix, key))]
    return found


def decoded(data: object) -> Any:
    """A message's data as JSON, or None (binary, text: left as they are)."""
    try:
        return json.loads(base64.b64decode(str(data)))
    except ValueError:
        return None


@st.composite
def deliveries(draw: Any) -> tuple[dict[str, str], bytes, str]:
    """A seed event with up to three of its values (any depth, a message's payload decoded too)
    replaced, its attributes perhaps changed; sent in binary or structured mode; with a manifest."""
    attributes, data = draw(st.sampled_from(OURS) | st.sampled_from(GOLDEN))
    attributes, data = dict(attributes), json.loads(json.dumps(data))
    message = data.get("message") if isinstance(data, dict) else None
    payload = decoded(message["data"]) if isinstance(message, dict) and message.get("data") else None
    for _ in range(draw(st.integers(0, 3))):
        document = draw(
            st.sampled_from(
                [d for d in (data, payload) if isinstance(d, dict | list) and places(d)] or [data]
            )
        )
        if not isinstance(document, dict | list) or not places(document):
            break
        path = draw(st.sampled_from(places(document)))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = draw(json_values)
    if payload is not None and isinstance(message, dict):
        message["data"] = base64.b64encode(json.dumps(payload).encode()).decode()
    if attributes["source"].endswith("/product-events") and isinstance(message, dict):
        signed(message, "projects/acme/topics/product-events", payload)
    if draw(st.booleans()):
        attributes[draw(st.sampled_from(["id", "time", "subject", "type"]))] = draw(
            st.sampled_from(TIMES) | texts
        )
    attributes = {key: value for key, value in attributes.items() if isinstance(value, str)}
    fits_headers = all(value.isascii() and value.isprintable() for value in attributes.values())
    encode = binary if fits_headers and draw(st.booleans()) else structured  # HTTP headers hold no CR/LF
    headers, body = encode(attributes, data)
    return headers, body, draw(manifests)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Services]:
    state = tmp_path_factory.mktemp("whole")
    (state / "routes.yaml").write_text(ROUTES)
    loaded = load(state / "routes.yaml", state / "packages")
    services = Services(
        settings=Settings(routes=state / "routes.yaml", state_dir=state, landing_dir=state / "landing"),
        router=Router(loaded.rules),
        limits=loaded.config.limits,
        catalog=loaded.catalog,
        **ledger_ports(MemoryLedger()),
        backends={"local": RecordingBackend()},
        results=RecordingSink(),
        quarantine=RecordingSink(),
        objects=LocalObjectStore(state / "landing"),
        secrets={"PRODUCT_SIGNING_SECRET": SECRET},
    )
    return functions_framework.create_app("handle_event", str(ROOT / "main.py")).test_client(), services


def land_manifest(services: Services, body: bytes, manifest: str) -> None:
    """Put `manifest` where the event's object would be, if it names a batch's manifest."""
    try:
        data = json.loads(body)
        data = data.get("data", data) if "specversion" in data else data
        bucket, name = data["bucket"], data["name"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return
    if (
        bucket == "batch-bucket"
        and isinstance(name, str)
        and name.endswith("_MANIFEST.json")
        and not name_problem(name)
    ):
        path = services.settings.landing_dir / bucket / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(manifest)


def accounted(services: Services, answer: dict[str, Any], quarantined_before: int) -> None:
    quarantined = len(services.quarantine.published)  # type: ignore[attr-defined]
    if "outcome" in answer:
        assert answer["outcome"] in ("quarantined", "ignored", "duplicate"), answer
        if answer["outcome"] == "quarantined":
            assert quarantined == quarantined_before + 1, "a quarantine record"
        return
    assert answer["decisions"], answer
    for decision in answer["decisions"]:
        assert decision["outcome"] in ("run", "duplicate", "skipped", "queued", "retry"), decision


def check(served: tuple[Any, Services], delivery: tuple[dict[str, str], bytes, str]) -> None:
    client, services = served
    bootstrap.install(services)  # each test's own (the suite resets the process's services)
    headers, body, manifest = delivery
    land_manifest(services, body, manifest)
    before = len(services.quarantine.published)  # type: ignore[attr-defined]
    response = client.post("/", data=body, headers=headers)
    assert response.status_code != 500, response.get_data(as_text=True)
    if response.status_code in (400, 415):  # not a CloudEvent at all: refused with the reason
        assert "error" in response.get_json()
        return
    answer = response.get_json()
    if response.status_code == 503:  # the one transient answer without a failing port
        assert any("missing or empty" in str(d.get("reason")) for d in answer.get("decisions", [])), answer
        return
    assert response.status_code in (200, 429), (response.status_code, answer)
    accounted(services, answer, before)


SETTINGS = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}


@settings(max_examples=300, **SETTINGS)
@given(deliveries())
def test_no_delivery_is_answered_500_and_each_is_accounted_for(
    served: tuple[Any, Services], delivery: tuple[dict[str, str], bytes, str]
) -> None:
    check(served, delivery)


@pytest.mark.slow
@settings(max_examples=3000, **SETTINGS)
@given(deliveries())
def test_thousands_of_deliveries(
    served: tuple[Any, Services], delivery: tuple[dict[str, str], bytes, str]
) -> None:
    check(served, delivery)
