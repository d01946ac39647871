"""The trigger loop on the Google Cloud adapters, each against its real local server: Firestore
ledger, Pub/Sub results / dead letters / completion notices, and a Cloud Storage bucket.

Both targets run under functions-framework as deployed (`tests.support.stack.deployed`), with
the relay standing in for the Eventarc trigger that delivers completion notices.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from functions.bootstrap import ledger_from
from pipelines.backend import RunState
from tests.conftest import PROJECT
from tests.support import ROUTES, storage_event
from tests.support.pubsub import pull
from tests.support.stack import deployed

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
    from google.cloud.pubsub_v1 import PublisherClient
    from google.cloud.storage import Client

    name = uuid.uuid4().hex[:8]
    dead_letter = f"projects/{PROJECT}/topics/dead-letter-{name}"
    PublisherClient().create_topic(name=dead_letter)
    storage = Client(project=PROJECT)
    bucket = storage.bucket(BUCKET)
    if not bucket.exists():
        storage.create_bucket(BUCKET)
    ledger = f"firestore://{PROJECT}/runs-{name}"
    environment = {
        "KFP_TRIGGER_LEDGER": ledger,
        "KFP_TRIGGER_QUARANTINE": f"pubsub://{dead_letter}",
        "KFP_TRIGGER_STORAGE": "gcs",
    }
    with deployed(tmp_path, ROUTES, **environment) as stack:
        yield {**stack, "bucket": bucket, "ledger": ledger}


def test_a_landed_batch_runs_once_and_its_result_reaches_pubsub(cloud: dict[str, Any]) -> None:
    bucket = cloud["bucket"]
    bucket.blob(MANIFEST).upload_from_string(json.dumps({"objects": sorted(PARTS)}))
    headers, body = storage_event(BUCKET, MANIFEST, generation=1)

    early = requests.post(cloud["events_url"], data=body, headers=headers, timeout=30)
    assert early.status_code == 503, "the parts have not landed: no run, and Eventarc will redeliver"
    assert "missing or empty: 3 of 3 objects" in early.text

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
