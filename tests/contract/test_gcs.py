"""Cloud Storage against the emulator: batch readiness reads, and metrics from a gs:// root."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from functions.adapters.objects import GcsObjectStore
from functions.service import completion, intake
from functions.service.batches import NotReady, ready
from functions.service.ports import Services
from pipelines.backend import RunState
from tests.conftest import PROJECT
from tests.support import call, completion_event, storage_event
from tests.support.fakes import RecordingBackend, RecordingSink


@pytest.fixture
def bucket(storage_emulator: str):
    from google.cloud.storage import Client

    return Client(project=PROJECT).create_bucket(f"kfp-trigger-{uuid.uuid4().hex[:10]}")


def test_readiness_reads_cloud_storage(bucket) -> None:
    store = GcsObjectStore()
    bucket.blob("b/_MANIFEST.json").upload_from_string(json.dumps({"objects": ["x.csv", "y.csv"]}))
    bucket.blob("b/x.csv").upload_from_string("1\n")
    assert store.size(bucket.name, "b/missing.csv") is None
    assert store.read(bucket.name, "b/missing.csv", 10) is None
    with pytest.raises(NotReady, match="1 of 2"):
        ready(store, bucket.name, "b/_MANIFEST.json")
    bucket.blob("b/y.csv").upload_from_string("22\n")
    batch = ready(store, bucket.name, "b/_MANIFEST.json")
    assert batch.total_bytes == 5
    assert batch.uris == (f"gs://{bucket.name}/b/x.csv", f"gs://{bucket.name}/b/y.csv")


def test_the_result_carries_metrics_read_from_a_gs_pipeline_root(
    bucket,
    services: Services,
    backend: RecordingBackend,
) -> None:
    """A cluster run reports output URIs but no values: the metrics come from the artifact file."""
    services = replace(services, objects=GcsObjectStore())
    root = f"root/{uuid.uuid4().hex[:6]}"
    bucket.blob(f"{root}/evaluate-model/metrics").upload_from_string(
        json.dumps({"auc": 0.77, "rows_test": 40})
    )
    backend.outputs = {"metrics": f"gs://{bucket.name}/{root}/evaluate-model/metrics"}
    headers, body = storage_event("some-bucket", "folder/gcs.csv")
    call(intake.handle, services, headers, body)
    backend.states["fake-1"] = RunState.SUCCEEDED
    backend.metrics = {}
    headers, body = completion_event("some-bucket-folder/some-bucket/folder/gcs.csv#1", "SUCCEEDED")
    call(completion.handle, services, headers, body)
    assert isinstance(services.results, RecordingSink)
    (result,) = services.results.published
    assert result["data"]["metrics"] == {"auc": 0.77, "rows_test": 40.0}
