"""The trigger loop on the Google Cloud adapters, each against its real local server: Firestore
ledger, Pub/Sub results / dead letters / completion notices, and a Cloud Storage bucket.

Both targets run under functions-framework as deployed; `functions.relay` stands in for the
Eventarc trigger that delivers completion notices from Pub/Sub to `handle_completion`.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from functions.bootstrap import ledger_from
from functions.cli.devstack.relay import ensure_subscription, relay
from pipelines.backend import RunState
from tests.conftest import PROJECT
from tests.support import env_for, free_port, functions_framework, server, storage_event
from tests.support.pubsub import pull

pytestmark = pytest.mark.slow  # servers and CLI commands in subprocesses

BUCKET = "acme-survey-batches"
MANIFEST = "batches/wave-3/_MANIFEST.json"
PARTS = {
    "part-0000.csv": "id,score\n1,4\n",
    "part-0001.csv": "id,score\n2,5\n",
    "part-0002.csv": "id,score\n3,1\n",
}


@pytest.fixture
def cloud(
    firestore_emulator: str, pubsub_emulator: str, storage_emulator: str, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
    from google.cloud.storage import Client

    name = uuid.uuid4().hex[:8]
    topics = {
        kind: f"projects/{PROJECT}/topics/{kind}-{name}" for kind in ("results", "dead-letter", "completions")
    }
    publisher = PublisherClient()
    for topic in topics.values():
        publisher.create_topic(name=topic)
    results_subscription = f"projects/{PROJECT}/subscriptions/results-{name}"
    with SubscriberClient() as subscriber:
        subscriber.create_subscription(name=results_subscription, topic=topics["results"])
    completions_subscription = f"projects/{PROJECT}/subscriptions/completions-{name}"
    ensure_subscription(topics["completions"], completions_subscription)
    storage = Client(project=PROJECT)
    bucket = storage.bucket(BUCKET)
    if not bucket.exists():
        storage.create_bucket(BUCKET)
    ledger = f"firestore://{PROJECT}/runs-{name}"
    env = env_for(
        tmp_path,
        KFP_TRIGGER_LEDGER=ledger,
        KFP_TRIGGER_RESULTS=f"pubsub://{topics['results']}",
        KFP_TRIGGER_QUARANTINE=f"pubsub://{topics['dead-letter']}",
        KFP_TRIGGER_COMPLETION_TOPIC=f"pubsub://{topics['completions']}",
        KFP_TRIGGER_STORAGE="gcs",
    )
    ports = {target: free_port() for target in ("handle_event", "handle_completion")}
    stop = threading.Event()
    with (
        server(
            functions_framework("handle_event", ports["handle_event"]),
            env,
            ports["handle_event"],
            tmp_path / "handle_event.log",
        ) as events_url,
        server(
            functions_framework("handle_completion", ports["handle_completion"]),
            env,
            ports["handle_completion"],
            tmp_path / "handle_completion.log",
        ) as completion_url,
    ):
        eventarc = threading.Thread(
            target=relay,
            args=(topics["completions"], completions_subscription, completion_url, stop),
            daemon=True,
        )
        eventarc.start()
        try:
            yield {
                "events_url": events_url,
                "bucket": bucket,
                "results": results_subscription,
                "ledger": ledger,
            }
        finally:
            stop.set()
            eventarc.join(timeout=10)


def test_a_landed_batch_runs_once_and_its_result_reaches_pubsub(cloud: dict[str, Any]) -> None:
    bucket = cloud["bucket"]
    bucket.blob(MANIFEST).upload_from_string(json.dumps({"objects": sorted(PARTS)}))
    headers, body = storage_event(BUCKET, MANIFEST, generation=1)

    early = requests.post(cloud["events_url"], data=body, headers=headers, timeout=30)
    assert early.status_code == 503, "the parts have not landed: no run, and Eventarc will redeliver"
    assert "3 of 3 objects missing" in early.text

    for part, text in PARTS.items():
        bucket.blob(f"batches/wave-3/{part}").upload_from_string(text)
    redelivered = requests.post(cloud["events_url"], data=body, headers=headers, timeout=30)
    assert redelivered.status_code == 200, redelivered.text
    (decision,) = redelivered.json()["decisions"]
    assert decision["outcome"] == "run"

    (message,) = pull(cloud["results"], 1, wait=90)
    result = json.loads(message.data)
    assert message.attributes["ce-subject"] == decision["run_key"]
    assert result["state"] == "SUCCEEDED"
    assert result["metrics"]["batch_objects"] == 3
    assert result["metrics"]["batch_bytes"] == sum(len(text) for text in PARTS.values())

    again = requests.post(cloud["events_url"], data=body, headers=headers, timeout=30)
    assert again.json()["decisions"][0]["outcome"] == "duplicate"
    assert pull(cloud["results"], 1, wait=3) == [], "one result per run"
    record = ledger_from(cloud["ledger"]).get(decision["run_key"])
    assert record is not None
    assert record.state is RunState.SUCCEEDED
    assert record.published_at is not None
