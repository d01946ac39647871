"""The trigger loop on the `kfp` backend (the KFP API fake): lost responses, every end state,
and the exit handler's word for success."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from functions.service import completion, intake
from functions.service.ports import Services
from pipelines.backend import RunState
from pipelines.kfp.backend import KfpBackend
from tests.support import Reply, call, completion_event, serving, storage_event
from tests.support.fakes import RecordingSink
from tests.support.kfp_fake import FakeKfp

RUN_KEY = "some-bucket-folder/some-bucket/folder/kfp.csv#1"


@pytest.fixture
def fake() -> FakeKfp:
    return FakeKfp()


@pytest.fixture
def on_kfp(services: Services, fake: FakeKfp) -> Iterator[Services]:
    with serving(fake) as url:
        catalog = {name: replace(pipeline, backend="kfp") for name, pipeline in services.catalog.items()}
        yield replace(services, catalog=catalog, backends={"kfp": KfpBackend.for_host(url, "kubeflow")})


def deliver(services: Services) -> Reply:
    headers, body = storage_event("some-bucket", "folder/kfp.csv")
    return call(intake.handle, services, headers, body)


def results(services: Services) -> list[dict[str, object]]:
    assert isinstance(services.results, RecordingSink)
    return [dict(r) for r in services.results.published]


def test_a_lost_create_response_still_gives_one_run_and_one_result(on_kfp: Services, fake: FakeKfp) -> None:
    fake.fail_next("POST", "/runs", "lost")
    assert deliver(on_kfp).status == 503, "ambiguous: ask Eventarc to redeliver"
    assert deliver(on_kfp).status == 200, "the redelivery looks the run up and adopts it"
    assert deliver(on_kfp).status == 200
    (run_id,) = fake.runs
    record = on_kfp.store.get(RUN_KEY)
    assert record is not None
    assert (record.state, record.run_id) == (RunState.SUBMITTED, run_id)
    assert completion.reconcile(on_kfp).done == 0, "still PENDING"
    fake.states[run_id] = "SUCCEEDED"
    assert completion.reconcile(on_kfp).done == 1
    assert completion.reconcile(on_kfp).done == 0
    (result,) = results(on_kfp)
    assert result["data"]["state"] == "SUCCEEDED"
    assert result["data"]["run_id"] == run_id


@pytest.mark.parametrize(
    ("server_state", "ended"),
    [
        ("CANCELED", RunState.CANCELED),
        ("FAILED", RunState.FAILED),
        ("SKIPPED", RunState.SKIPPED),
        ("PAUSED", None),
        ("CANCELING", None),
        ("RUNNING", None),
    ],
)
def test_one_reconcile_pass_ends_what_has_ended(
    on_kfp: Services, fake: FakeKfp, server_state: str, ended: RunState | None
) -> None:
    deliver(on_kfp)
    (run_id,) = fake.runs
    fake.states[run_id] = server_state
    completion.reconcile(on_kfp)
    record = on_kfp.store.get(RUN_KEY)
    assert record is not None
    assert record.state is (ended or RunState.SUBMITTED)
    assert len(results(on_kfp)) == (1 if ended else 0)


def test_the_exit_handlers_notice_waits_for_the_run_to_end(on_kfp: Services, fake: FakeKfp) -> None:
    """On KFP the exit task runs while its run is RUNNING and says COMPLETE (the MLMD state): the
    notice is delivered again until the API server reports the run's end, which decides."""
    deliver(on_kfp)
    (run_id,) = fake.runs
    fake.states[run_id] = "RUNNING"
    headers, body = completion_event(RUN_KEY, "COMPLETE")
    assert call(completion.handle, on_kfp, headers, body).status == 503
    assert results(on_kfp) == []
    fake.states[run_id] = "SUCCEEDED"
    assert call(completion.handle, on_kfp, headers, body).status == 200
    (result,) = results(on_kfp)
    assert result["data"]["state"] == "SUCCEEDED"


def test_a_kfp_result_carries_the_metrics_its_run_wrote_under_the_pipeline_root(
    on_kfp: Services, fake: FakeKfp, tmp_path: Path
) -> None:
    """The API lists no artifact URIs: the metrics files are found under the run's root in the
    pipeline root, where the v2 driver writes `<root>/<pipeline>/<run id>/<task>/<salt>/<output>`."""
    import json

    from functions.adapters.objects import LocalObjectStore

    rooted = {
        name: replace(p, pipeline_root="gs://acme-pipelines/root") for name, p in on_kfp.catalog.items()
    }
    landing = tmp_path / "buckets"
    services = replace(on_kfp, catalog=rooted, objects=LocalObjectStore(landing))
    assert deliver(services).status == 200
    (run_id,) = fake.runs
    pipeline_name = "echo-pipeline"
    written = landing / "acme-pipelines" / "root" / pipeline_name / run_id / "evaluate" / "f1e2d3" / "metrics"
    written.parent.mkdir(parents=True)
    written.write_text(json.dumps({"accuracy": 0.81, "rows": 600}))
    unrelated = (
        landing / "acme-pipelines" / "root" / pipeline_name / "another-run" / "evaluate" / "x" / "metrics"
    )
    unrelated.parent.mkdir(parents=True)
    unrelated.write_text(json.dumps({"accuracy": 0.1}))
    fake.states[run_id] = "SUCCEEDED"
    assert completion.reconcile(services).done == 1
    (result,) = results(services)
    assert result["data"]["metrics"] == {"accuracy": 0.81, "rows": 600.0}
