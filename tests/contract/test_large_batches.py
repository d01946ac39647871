"""A manifest batch of 20,000 objects on the Firestore ledger (the emulator): one run starts with
every object, and the run document stays small, since a Firestore document holds at most 1 MiB
(firebase.google.com/docs/firestore/quotas) and 20,000 URIs take about 1.3 MB. The objects are
stored as the run's members, apart from it; its result still counts them all."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from functions.adapters.objects import LocalObjectStore
from functions.bootstrap import ledger_from
from functions.service import intake
from functions.service.ports import Services, ledger_ports
from functions.service.records import Outcome
from pipelines.parameters import BATCH_OBJECTS_PARAMETER
from tests.conftest import PROJECT
from tests.support import call, storage_event
from tests.support.fakes import RecordingBackend

pytestmark = pytest.mark.emulator

OBJECTS = 20_000
BUCKET = "acme-survey-batches"


def test_a_20000_object_manifest_starts_one_run_whose_document_stays_small(
    services: Services, backend: RecordingBackend, firestore_emulator: str, tmp_path: Path
) -> None:
    folder = tmp_path / "landing" / BUCKET / "batches" / "wave-9"
    folder.mkdir(parents=True)
    names = [f"part-{n:05d}.csv" for n in range(OBJECTS)]
    for name in names:
        (folder / name).write_text("id\n1\n")
    (folder / "_MANIFEST.json").write_text(json.dumps({"objects": names}))
    collection = f"runs-{uuid.uuid4().hex[:12]}"
    ledger = ledger_from(f"firestore://{PROJECT}/{collection}")
    landing = LocalObjectStore(tmp_path / "landing")
    on_firestore = replace(services, **ledger_ports(ledger), objects=landing, clock=time.time)

    answer = call(intake.handle, on_firestore, *storage_event(BUCKET, "batches/wave-9/_MANIFEST.json"))
    assert answer.status == 200, answer.body
    (decision,) = answer.body["decisions"]
    assert decision["outcome"] == Outcome.RUN
    (submitted,) = backend.submitted
    assert len(submitted.params[BATCH_OBJECTS_PARAMETER]) == OBJECTS, "the engine gets every object"

    from google.cloud import firestore

    from functions.adapters.firestore.database import document_id

    stored = (
        firestore.Client(project=PROJECT).collection(collection).document(document_id(decision["run_key"]))
    )
    size = len(json.dumps(stored.get().to_dict(), default=str))
    assert size < 100_000, f"the run document holds {size} bytes"
    assert len(ledger.members(decision["run_key"])) == OBJECTS
