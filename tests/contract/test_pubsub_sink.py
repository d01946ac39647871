"""The Pub/Sub sink against the emulator: what a subscriber on the topic really receives."""

from __future__ import annotations

import base64
import json

import pytest

from functions.adapters.pubsub_sink import PubsubSink
from functions.service.records import RunRecord
from functions.service.results import quarantine_record, result_event
from pipelines.backend import RunState
from tests.conftest import PROJECT
from tests.support.pubsub import pull, topic_with_subscription


@pytest.fixture
def topic(pubsub_emulator: str) -> tuple[str, str]:
    return topic_with_subscription("results", ordered=True)


RUN = RunRecord(
    run_key="survey-landed/b/o#1",
    route="survey-landed",
    pipeline="survey",
    version="abc",
    backend="local",
    params={"tenant": "a"},
    event_id="e-1",
    state=RunState.SUCCEEDED,
    attempt=1,
    run_id="r-1",
    created_at=1.0,
    updated_at=2.0,
    finished_at=3.0,
    details={"metrics": {"auc": 0.8}},
)


def test_a_result_arrives_as_a_binary_mode_cloudevent(topic: tuple[str, str]) -> None:
    topic_path, subscription = topic
    event = result_event(RUN)
    PubsubSink(topic_path).publish(event)
    (message,) = pull(subscription, 1, wait=30)
    attributes = dict(message.attributes)
    assert attributes["ce-id"] == event["id"]
    assert attributes["ce-type"] == "dev.kfp-trigger.run.finished.v2"
    assert attributes["ce-subject"] == RUN.run_key
    assert attributes["ce-specversion"] == "1.0"
    assert attributes["content-type"] == "application/json"
    assert message.ordering_key == RUN.run_key
    data = json.loads(message.data)
    assert (data["state"], data["metrics"], data["run_key"]) == ("SUCCEEDED", {"auc": 0.8}, RUN.run_key)


def test_a_repeated_result_carries_the_same_cloudevent_id(topic: tuple[str, str]) -> None:
    topic_path, subscription = topic
    sink = PubsubSink(topic_path)
    sink.publish(result_event(RUN))
    sink.publish(result_event(RUN))
    first, second = pull(subscription, 2, wait=30)
    assert first.attributes["ce-id"] == second.attributes["ce-id"]
    assert first.message_id != second.message_id


def test_a_quarantined_event_keeps_its_body_and_reason(topic: tuple[str, str]) -> None:
    topic_path, subscription = topic
    body = b'{"bucket": "b"}'
    record = quarantine_record(
        "data.name must be a non-empty string",
        {"id": "ev-9", "type": "t", "source": "s"},
        body,
        target="handle_event",
        now=1.0,
    )
    PubsubSink(topic_path).publish(record)
    (message,) = pull(subscription, 1, wait=30)
    assert message.data == body
    assert message.attributes["reason"] == "data.name must be a non-empty string"
    assert message.attributes["event-id"] == "ev-9"
    assert message.attributes["target"] == "handle_event"
    assert base64.b64decode(record["body_base64"]) == body


def test_an_unreachable_topic_is_a_transient_error(pubsub_emulator: str) -> None:
    from events.errors import TransientError

    with pytest.raises(TransientError, match="publishing to"):
        PubsubSink(f"projects/{PROJECT}/topics/does-not-exist").publish(result_event(RUN))
