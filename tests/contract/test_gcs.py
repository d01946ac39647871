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


@pytest.mark.parametrize("kind", ["gcs", "local"])
def test_both_stores_list_by_prefix_alike(kind: str, request: pytest.FixtureRequest, tmp_path) -> None:
    """The object store contract for listing, on Cloud Storage (the emulator) and the landing folder."""
    from functions.adapters.objects import LocalObjectStore

    names = ["run/a/metrics", "run/b/model", "run/b/metrics", "runner/x", "other/run/y"]
    if kind == "gcs":
        bucket = request.getfixturevalue("bucket")
        for name in names:
            bucket.blob(name).upload_from_string("{}")
        store, bucket_name = GcsObjectStore(), bucket.name
    else:
        for name in names:
            (tmp_path / "b" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "b" / name).write_text("{}")
        store, bucket_name = LocalObjectStore(tmp_path), "b"
    assert store.list(bucket_name, "run/", 100) == ["run/a/metrics", "run/b/metrics", "run/b/model"]
    assert store.list(bucket_name, "run/", 2) == ["run/a/metrics", "run/b/metrics"]
    assert store.list(bucket_name, "nothing/", 100) == []


def test_a_bucket_the_functions_may_not_read_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cloud Storage answers 403 to an identity without storage.objects.get/list on the bucket
    (cloud.google.com/storage/docs/json_api/v1/status-codes#403): a grant is missing, and no
    retry cures that, so it is `Refused` (an alerted, recorded end), never a 503 for a day."""
    from events.errors import Refused
    from tests.support import serving

    def forbidden(environ: dict[str, object], start_response: object) -> list[bytes]:
        error = {"error": {"code": 403, "message": "runtime@p.iam does not have storage.objects.get access"}}
        start_response("403 Forbidden", [("Content-Type", "application/json")])  # type: ignore[operator]
        return [json.dumps(error).encode()]

    with serving(forbidden) as url:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        store = GcsObjectStore()
        asks = [
            lambda: store.read("private-root", "runs/metrics", 10),
            lambda: store.size("private-root", "runs/metrics"),
            lambda: store.list("private-root", "runs/", 10),
            lambda: list(store.objects("private-root", "runs/")),
        ]
        for ask in asks:
            with pytest.raises(Refused, match=r"gs://private-root: 403 .*roles/storage\.objectViewer"):
                ask()
