"""Metrics and traces (issue 17): the real targets, served by functions-framework over HTTP in
this process, with in-memory OpenTelemetry exporters (KFP_TRIGGER_TELEMETRY=memory).

A golden sequence — a new object, its redelivery, an object no route takes, a deletion, a
product message that carries its own trace context, the first run's completion notice, a
reconcile pass — must show as counters, histograms and gauges, and one trace id must link the
incoming event's request, the submit and the published result."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import functions_framework
import pytest
import requests

from events.eventarc import message_published
from functions import bootstrap
from functions.adapters.otel import MemoryTelemetry
from functions.adapters.pubsub_sink import cloudevent_message
from functions.service.ports import Services
from pipelines.backend import RunState
from tests.support import ROOT, completion_event, serving, storage_event
from tests.support.fakes import RecordingBackend, RecordingSink

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE}-00f067aa0ba902b7-01"  # W3C trace context, example of the spec
PRODUCT_TRACE = "0af7651916cd43dd8448eb211c80319c"
KEY = "some-bucket-folder/some-bucket/folder/a.csv#1"


@pytest.fixture
def telemetry(services: Services) -> Iterator[MemoryTelemetry]:
    """The services of the `services` fixture, with in-memory telemetry, installed for the targets."""
    recorded = MemoryTelemetry()
    object.__setattr__(services, "telemetry", recorded)
    bootstrap.install(services)
    try:
        yield recorded
    finally:
        bootstrap.reset()


@pytest.fixture
def urls(telemetry: MemoryTelemetry) -> Iterator[dict[str, str]]:
    apps = {
        t: functions_framework.create_app(t, str(ROOT / "main.py"))
        for t in ("handle_event", "handle_completion", "reconcile")
    }
    with serving(_dispatch(apps)) as base:
        yield {target: f"{base}/{target}" for target in apps}


def _dispatch(apps: dict[str, Any]) -> Any:
    """One WSGI app serving each target's functions-framework app under /<target>."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        target = environ.get("PATH_INFO", "/").strip("/")
        environ["PATH_INFO"] = "/"
        return apps[target](environ, start_response)

    return app


def post(url: str, headers: dict[str, str], body: bytes, **extra: str) -> dict[str, Any]:
    response = requests.post(url, data=body, headers=headers | extra, timeout=30)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def points(telemetry: MemoryTelemetry, name: str) -> dict[tuple[Any, ...], Any]:
    """One metric's points by their attribute values (sorted by attribute name)."""
    return {tuple(v for _, v in sorted(a.items())): p for a, p in telemetry.points().get(name, [])}


def test_a_golden_sequence_is_counted_measured_and_traced(
    urls: dict[str, str], telemetry: MemoryTelemetry, services: Services, backend: RecordingBackend
) -> None:
    new = storage_event("some-bucket", "folder/a.csv", event_id="e-1")
    assert post(urls["handle_event"], *new, traceparent=INCOMING)["decisions"][0]["outcome"] == "run"
    post(urls["handle_event"], *new)  # a redelivery
    post(urls["handle_event"], *storage_event("nobody-listens", "x.csv", event_id="e-2"))
    headers, body = storage_event("some-bucket", "folder/a.csv", event_id="e-3")
    post(urls["handle_event"], headers | {"ce-type": "google.cloud.storage.object.v1.deleted"}, body)
    product = {"traceparent": f"00-{PRODUCT_TRACE}-b7ad6b7169203331-01", "producer": "survey-service"}
    headers, data = message_published(
        "projects/local/topics/product-events",
        json.dumps({"type": "survey.closed", "survey_id": "s-1"}).encode(),
        product,
        message_id="m-1",
    )
    assert post(urls["handle_event"], headers, json.dumps(data).encode())["decisions"][0]["outcome"] == "run"
    backend.states["fake-1"] = RunState.SUCCEEDED
    post(urls["handle_completion"], *completion_event(KEY, "SUCCEEDED"))
    post(urls["reconcile"], {"content-type": "application/json"}, b"{}")

    events = {key: p.value for key, p in points(telemetry, "kfp_trigger.events").items()}
    assert events == {
        ("run", "some-bucket-folder", "storage"): 1,
        ("duplicate", "some-bucket-folder", "storage"): 1,
        ("quarantined", "", "storage"): 1,
        ("ignored", "", "storage"): 1,
        ("run", "survey-closed", "pubsub"): 1,
    }
    runs = {key: p.value for key, p in points(telemetry, "kfp_trigger.runs").items()}
    assert runs == {
        ("local", "some-bucket-folder", "SUBMITTED"): 1,
        ("local", "survey-closed", "SUBMITTED"): 1,
        ("local", "some-bucket-folder", "SUCCEEDED"): 1,
    }
    to_submit = points(telemetry, "kfp_trigger.event_to_submit")
    assert {key: p.count for key, p in to_submit.items()} == {
        ("local", "some-bucket-folder"): 1,
        ("local", "survey-closed"): 1,
    }
    duration = points(telemetry, "kfp_trigger.run.duration")
    assert {key: p.count for key, p in duration.items()} == {("local", "some-bucket-folder", "SUCCEEDED"): 1}
    assert [p.value for p in points(telemetry, "kfp_trigger.queue.depth").values()] == [0]
    assert [p.value for p in points(telemetry, "kfp_trigger.joins.open").values()] == [0]

    # One trace: the event's request, its routing, the submit, the result's publishing, the result.
    spans = telemetry.spans.get_finished_spans()
    traced = sorted(s.name for s in spans if f"{s.context.trace_id:032x}" == TRACE)
    assert traced == ["handle_event", "kfp_trigger.event", "kfp_trigger.publish_result", "kfp_trigger.submit"]
    by_name = {s.name: s for s in spans if f"{s.context.trace_id:032x}" == TRACE}
    assert by_name["kfp_trigger.submit"].parent.span_id == by_name["kfp_trigger.event"].context.span_id
    assert by_name["handle_event"].parent.span_id == int("00f067aa0ba902b7", 16)  # the caller's span
    assert isinstance(services.results, RecordingSink)
    (result,) = services.results.published
    assert result["traceparent"].split("-")[1] == TRACE
    assert cloudevent_message(result)[1]["ce-traceparent"] == result["traceparent"]  # on Pub/Sub
    # The product message's own trace context (a message attribute) is what its run continues.
    product_spans = [s.name for s in spans if f"{s.context.trace_id:032x}" == PRODUCT_TRACE]
    assert sorted(product_spans) == ["kfp_trigger.event", "kfp_trigger.submit"]
    assert services.store.get(KEY).trace.split("-")[1] == TRACE  # type: ignore[union-attr]


def test_google_s_trace_header_is_a_parent_too(urls: dict[str, str], telemetry: MemoryTelemetry) -> None:
    cloud_trace = f"{TRACE}/{int('00f067aa0ba902b7', 16)};o=1"
    post(
        urls["handle_event"],
        *storage_event("some-bucket", "folder/b.csv"),
        **{"X-Cloud-Trace-Context": cloud_trace},
    )
    names = {s.name for s in telemetry.spans.get_finished_spans() if f"{s.context.trace_id:032x}" == TRACE}
    assert names == {"handle_event", "kfp_trigger.event", "kfp_trigger.submit"}


def test_a_malformed_trace_context_starts_a_new_trace(
    urls: dict[str, str], telemetry: MemoryTelemetry
) -> None:
    """A caller's garbage is no parent: the request is still served and traced on its own."""
    post(
        urls["handle_event"],
        *storage_event("some-bucket", "folder/c.csv"),
        traceparent="00-zz-not-a-trace-01",
    )
    spans = telemetry.spans.get_finished_spans()
    assert {s.name for s in spans} == {"handle_event", "kfp_trigger.event", "kfp_trigger.submit"}
    assert len({s.context.trace_id for s in spans}) == 1
    assert spans[0].context.trace_id != int(TRACE, 16)


@pytest.mark.parametrize(
    ("mode", "built"), [("off", "Untraced"), ("memory", "MemoryTelemetry"), ("otlp", "OtelTelemetry")]
)
def test_the_setting_picks_the_exporters(mode: str, built: str) -> None:
    from functions.settings import Settings

    telemetry = bootstrap.telemetry_from(Settings(telemetry=mode))  # type: ignore[arg-type]
    assert type(telemetry).__name__ == built
    assert telemetry.recording is (mode != "off")
