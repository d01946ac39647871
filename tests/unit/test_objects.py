"""Batch readiness: a manifest's objects must all exist and be non-empty before a run starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from events.errors import BadEvent
from functions.adapters.objects import LocalObjectStore
from functions.service.batches import NotReady, ready

BUCKET = "acme-survey-batches"


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing" / BUCKET / "batches" / "b1"
    folder.mkdir(parents=True)
    (folder / "_MANIFEST.json").write_text(json.dumps({"objects": ["part-0.csv", "sub/part-1.csv"]}))
    return tmp_path / "landing"


def land(landing: Path, name: str, text: str) -> None:
    path = landing / BUCKET / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_complete_batch_is_ready(landing: Path) -> None:
    land(landing, "batches/b1/part-0.csv", "a,b\n")
    land(landing, "batches/b1/sub/part-1.csv", "a,b\n1,2\n")
    batch = ready(LocalObjectStore(landing), BUCKET, "batches/b1/_MANIFEST.json")
    assert batch.uris == (f"gs://{BUCKET}/batches/b1/part-0.csv", f"gs://{BUCKET}/batches/b1/sub/part-1.csv")
    assert batch.total_bytes == 4 + 8


@pytest.mark.parametrize(
    "present",
    [{}, {"batches/b1/part-0.csv": "x"}, {"batches/b1/part-0.csv": "x", "batches/b1/sub/part-1.csv": ""}],
)
def test_missing_or_empty_objects_are_not_ready(landing: Path, present: dict[str, str]) -> None:
    for name, text in present.items():
        land(landing, name, text)
    with pytest.raises(NotReady, match="missing or empty"):
        ready(LocalObjectStore(landing), BUCKET, "batches/b1/_MANIFEST.json")


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ("not json", "not JSON"),
        ('{"files": []}', "not JSON of the form"),
        ('{"objects": []}', "1 to"),
        ('{"objects": ["../../other-bucket/secret"]}', r"'\.\.' folder"),
        ('{"objects": ["/etc/passwd"]}', "leading '/'"),
        ('{"objects": [7]}', "relative"),
        ('{"objects": ["part-0.csv\\u0000.exe"]}', "control characters"),
        ('{"objects": ["part\\u202e0.csv"]}', "bidirectional"),
        ('{"objects": ["a"], "objects": ["b"]}', "duplicate key"),
        ('{"objects": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper"),
    ],
    ids=[
        "not-json",
        "no-objects",
        "empty",
        "climbs",
        "absolute",
        "number",
        "nul",
        "bidi",
        "duplicate",
        "deep",
    ],
)
def test_a_bad_manifest_is_a_bad_event(landing: Path, manifest: str, reason: str) -> None:
    land(landing, "batches/b1/_MANIFEST.json", manifest)
    with pytest.raises(BadEvent, match=reason):
        ready(LocalObjectStore(landing), BUCKET, "batches/b1/_MANIFEST.json")


def test_the_local_store_never_leaves_the_bucket_folder(landing: Path) -> None:
    (landing / "outside.txt").write_text("secret")
    store = LocalObjectStore(landing)
    assert store.size(BUCKET, "../outside.txt") is None
    assert store.read(BUCKET, "../outside.txt", 100) is None


def test_a_name_no_file_system_can_hold_is_no_object_there(landing: Path) -> None:
    """A manifest may list any name (GCS takes 1,024 bytes); a local segment holds 255."""
    store = LocalObjectStore(landing)
    assert store.size(BUCKET, "b/" + "9" * 400) is None
    assert store.read(BUCKET, "9" * 400 + "/x.csv", 100) is None


def test_metrics_are_read_from_metrics_artifacts_only(tmp_path: Path) -> None:
    from functions.service.batches import metrics_at

    land(tmp_path, "root/run/evaluate/metrics", '{"auc": 0.81, "rows": 40, "note": "text", "flag": true}')
    land(tmp_path, "root/run/train/model", '{"weights": 1}')
    land(tmp_path, "root/run/other/metrics", "not json")
    outputs = {
        "metrics": f"gs://{BUCKET}/root/run/evaluate/metrics",
        "model": f"gs://{BUCKET}/root/run/train/model",
        "other-metrics": f"gs://{BUCKET}/root/run/other/metrics",
        "local-metrics": "/tmp/not/a/gs/uri",
    }
    assert metrics_at(LocalObjectStore(tmp_path), outputs) == {"auc": 0.81, "rows": 40.0}


def test_a_bad_metrics_file_or_value_is_skipped_not_raised(tmp_path: Path) -> None:
    """A metrics file is the run's own output, read with the events' strict reader: one holding
    an integer past a double, or nested too deep, costs its own values, not the run's result."""
    from functions.service.batches import metrics_at

    land(tmp_path, "runs/1/a/metrics", '{"auc": 0.8, "huge": ' + "9" * 400 + ', "zero": 0}')
    land(tmp_path, "runs/1/b/metrics", "[" * 100_000 + "]" * 100_000)
    outputs = {"a-metrics": f"gs://{BUCKET}/runs/1/a/metrics", "b-metrics": f"gs://{BUCKET}/runs/1/b/metrics"}
    assert metrics_at(LocalObjectStore(tmp_path), outputs) == {"auc": 0.8, "zero": 0.0}
