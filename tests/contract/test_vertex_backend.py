"""The `vertex` backend (GAPIC PipelineServiceClient over REST) against the local fake."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials

from events.errors import TransientError
from pipelines.backend import RunState, Submission
from pipelines.catalog import LoadedRoutes
from pipelines.engines import ASK_AGAIN_SECONDS, Engine
from pipelines.vertex import VertexBackend, job_id
from tests.support import call, serving
from tests.support.vertex_fake import FakeVertex


@pytest.fixture
def fake() -> FakeVertex:
    return FakeVertex()


@pytest.fixture
def vertex(fake: FakeVertex) -> Iterator[VertexBackend]:
    with serving(fake) as url:
        yield VertexBackend(
            "acme-analytics",
            "europe-west1",
            "gs://acme-pipelines/root",
            service_account="runner@acme-analytics.iam.gserviceaccount.com",
            endpoint=url,
            credentials=AnonymousCredentials(),
        )


def submission(test_routes: LoadedRoutes, key: str = "Survey_Landed/b/o#1") -> Submission:
    return Submission(key, "survey-landed", test_routes.catalog["echo"], {"message": "hi"})


@pytest.mark.parametrize("key", ["Survey_Landed/b/o#1", "x" * 500, "1-starts-with-a-digit", "ÜNICODE ✓"])
def test_job_ids_are_valid_and_stable(key: str) -> None:
    import re

    assert re.fullmatch(r"[a-z][a-z0-9-]{0,127}", job_id(key))
    assert job_id(key) == job_id(key)


def test_a_job_carries_its_run_key_labels_and_parameters(
    vertex: VertexBackend, fake: FakeVertex, test_routes: LoadedRoutes
) -> None:
    name = vertex.submit(submission(test_routes))
    (job,) = fake.jobs.values()
    assert job["name"] == name
    assert job["displayName"] == "Survey_Landed/b/o#1"
    assert job["labels"] == {
        "kfp-trigger-route": "survey-landed",
        "pipeline-hash": test_routes.catalog["echo"].version[:12],
    }
    assert job["runtimeConfig"]["parameterValues"] == {"message": "hi", "run_key": "Survey_Landed/b/o#1"}
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://acme-pipelines/root"
    assert job["serviceAccount"] == "runner@acme-analytics.iam.gserviceaccount.com"
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "echo-pipeline"
    assert "templateUri" not in job


def test_a_job_from_a_registry_template_records_its_template_uri(
    vertex: VertexBackend, fake: FakeVertex, test_routes: LoadedRoutes
) -> None:
    from dataclasses import replace

    uri = "https://europe-west1-kfp.pkg.dev/acme-analytics/pipelines/echo-pipeline/v3"
    pipeline = replace(test_routes.catalog["echo"], template_uri=uri)
    vertex.submit(Submission("k", "survey-landed", pipeline, {"message": "hi"}))
    (job,) = fake.jobs.values()
    assert job["templateUri"] == uri
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "echo-pipeline"  # inline too, as the SDK does


def test_the_fake_refuses_a_template_uri_outside_the_registry(
    vertex: VertexBackend, fake: FakeVertex, test_routes: LoadedRoutes, caplog: pytest.LogCaptureFixture
) -> None:
    """The refusal's own words go to the log; the error (which a result may carry) says which
    call was refused and how, never what the message quotes (a parameter's value)."""
    from dataclasses import replace

    from events.errors import PermanentError

    pipeline = replace(test_routes.catalog["echo"], template_uri="https://example.com/echo.yaml")
    with pytest.raises(PermanentError) as refused:
        vertex.submit(Submission("k", "survey-landed", pipeline, {"message": "s3cret-value"}))
    assert str(refused.value) == "Vertex create pipeline job: BadRequest (HTTP 400)"
    (logged,) = [record for record in caplog.records if record.getMessage() == "Vertex refused"]
    assert "templateUri" in logged.fields["message"]  # type: ignore[attr-defined]


def test_the_same_run_twice_is_one_create_and_one_adopt(
    vertex: VertexBackend, fake: FakeVertex, test_routes: LoadedRoutes
) -> None:
    first = vertex.submit(submission(test_routes))
    second = vertex.submit(submission(test_routes))
    assert first == second
    assert (fake.creates, len(fake.jobs)) == (2, 1)
    assert vertex.find("Survey_Landed/b/o#1") == first
    assert vertex.find("another key") is None


def test_unavailable_on_create_is_retried_later_and_still_one_job(
    vertex: VertexBackend, fake: FakeVertex, test_routes: LoadedRoutes
) -> None:
    fake.fail_next("create", "503")
    with pytest.raises(TransientError, match="ServiceUnavailable"):
        vertex.submit(submission(test_routes))
    assert fake.jobs == {}
    vertex.submit(submission(test_routes))
    vertex.submit(submission(test_routes))
    assert len(fake.jobs) == 1


# Every PipelineState (google/cloud/aiplatform/v1/pipeline_state.proto) and what it means to us.
PIPELINE_STATES = {
    "PIPELINE_STATE_UNSPECIFIED": RunState.PENDING,
    "PIPELINE_STATE_QUEUED": RunState.PENDING,
    "PIPELINE_STATE_PENDING": RunState.PENDING,
    "PIPELINE_STATE_RUNNING": RunState.RUNNING,
    "PIPELINE_STATE_SUCCEEDED": RunState.SUCCEEDED,
    "PIPELINE_STATE_FAILED": RunState.FAILED,
    "PIPELINE_STATE_CANCELLING": RunState.RUNNING,  # it may still end otherwise
    "PIPELINE_STATE_CANCELLED": RunState.CANCELED,
    "PIPELINE_STATE_PAUSED": RunState.RUNNING,
}


@pytest.mark.parametrize(("server_state", "ours"), sorted(PIPELINE_STATES.items()))
def test_every_job_state_is_mapped(
    vertex: VertexBackend, fake: FakeVertex, test_routes: LoadedRoutes, server_state: str, ours: RunState
) -> None:
    name = vertex.submit(submission(test_routes))
    fake.states[job_id("Survey_Landed/b/o#1")] = server_state
    assert vertex.status(name).state is ours


def test_the_trigger_loop_on_vertex(services, vertex: VertexBackend, fake: FakeVertex) -> None:
    """503 on create → redelivered → one job; CANCELLED → one CANCELED result after one pass."""
    from dataclasses import replace

    from functions.service import completion, intake
    from tests.support import storage_event

    catalog = {name: replace(pipeline, backend="vertex") for name, pipeline in services.catalog.items()}
    on_vertex = replace(services, catalog=catalog, backends={"vertex": vertex})
    headers, body = storage_event("some-bucket", "folder/vertex.csv")
    fake.fail_next("create", "503")
    assert call(intake.handle, on_vertex, headers, body).status == 503
    assert call(intake.handle, on_vertex, headers, body).status == 200
    (job_key,) = fake.jobs
    fake.states[job_key] = "PIPELINE_STATE_CANCELLED"
    assert completion.reconcile(on_vertex).done == 1
    (result,) = on_vertex.results.published
    assert result["data"]["state"] == "CANCELED"
    assert result["data"]["run_id"].endswith(f"/pipelineJobs/{job_key}")


def test_a_vertex_result_carries_the_jobs_metrics_and_version(
    services, vertex: VertexBackend, fake: FakeVertex
) -> None:
    from dataclasses import replace

    from functions.service import completion, intake
    from tests.support import storage_event

    catalog = {name: replace(pipeline, backend="vertex") for name, pipeline in services.catalog.items()}
    on_vertex = replace(services, catalog=catalog, backends={"vertex": vertex})
    headers, body = storage_event("some-bucket", "folder/vertex.csv")
    assert call(intake.handle, on_vertex, headers, body).status == 200
    (job_key,) = fake.jobs
    fake.finish(job_key, "PIPELINE_STATE_SUCCEEDED", {"evaluate": {"accuracy": 0.81}})
    assert completion.reconcile(on_vertex).done == 1
    (result,) = on_vertex.results.published
    assert (result["data"]["state"], result["data"]["metrics"]) == ("SUCCEEDED", {"accuracy": 0.81})
    assert result["data"]["version"] == catalog["echo"].version
    assert result["data"]["finished_at"] is not None


def test_a_vertex_pipeline_needs_its_project(tmp_path) -> None:
    from functions import bootstrap
    from functions.settings import Settings, SettingsError
    from tests.support import ROUTES

    routes = tmp_path / "routes.yaml"
    routes.write_text(
        ROUTES.read_text().replace(
            "source: tests.support.echo_pipeline:echo_pipeline",
            "source: tests.support.echo_pipeline:echo_pipeline\n    backend: vertex",
        )
    )
    with pytest.raises(SettingsError, match="KFP_TRIGGER_VERTEX_PROJECT"):
        bootstrap.build(Settings(routes=routes, state_dir=tmp_path, auth="none"))
    configured = Settings(
        routes=routes,
        state_dir=tmp_path,
        auth="none",
        vertex_project="p",
        vertex_location="europe-west1",
        vertex_pipeline_root="gs://b/root",
    )
    assert "vertex" in bootstrap.build(configured).backends


def test_the_fake_lists_jobs_by_label_as_the_service_does(
    vertex: VertexBackend, fake: FakeVertex, test_routes: LoadedRoutes
) -> None:
    vertex.submit(submission(test_routes, "a"))
    vertex.submit(Submission("b", "other-route", test_routes.catalog["echo"], {"message": "hi"}))
    listed = vertex.client.list_pipeline_jobs(
        request={"parent": vertex.parent, "filter": 'labels.kfp-trigger-route="survey-landed"'}
    )
    assert [job.display_name for job in listed] == ["a"]


def unreachable(port: int, timeout: float = 1.0) -> VertexBackend:
    return VertexBackend(
        "acme-analytics",
        "europe-west1",
        "gs://acme-pipelines/root",
        endpoint=f"http://127.0.0.1:{port}",
        credentials=AnonymousCredentials(),
        timeout=timeout,
    )


def test_a_refused_connection_is_transient(test_routes: LoadedRoutes) -> None:
    """The REST transport raises requests' ConnectionError, not an API error: still transient."""
    from tests.support import free_port

    backend = unreachable(free_port())
    with pytest.raises(TransientError):
        backend.submit(submission(test_routes))
    with pytest.raises(TransientError):
        backend.find("Survey_Landed/b/o#1")
    with pytest.raises(TransientError):
        backend.status("projects/acme-analytics/locations/europe-west1/pipelineJobs/kfpt-x")


def test_an_endpoint_that_never_answers_is_transient_within_the_timeout(test_routes: LoadedRoutes) -> None:
    import socket
    import time

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        backend = unreachable(silent.getsockname()[1], timeout=1.0)
        started = time.monotonic()
        with pytest.raises(TransientError):
            backend.submit(submission(test_routes))
        assert time.monotonic() - started < 10


def test_a_notified_pipeline_is_told_where_to_report_its_end(fake: FakeVertex, tmp_path: Path) -> None:
    from events.rules import PipelineDef
    from pipelines.catalog import build_pipeline

    echo = PipelineDef(
        "echo", "tests.support.echo_pipeline:echo_pipeline", None, "vertex", None, {}, notify=True
    )
    notified = build_pipeline(echo, tmp_path, tmp_path / "packages")
    topic = "pubsub://projects/acme-analytics/topics/kfp-trigger-completions"
    with serving(fake) as url:
        backend = VertexBackend(
            "acme-analytics",
            "europe-west1",
            "gs://acme-pipelines/root",
            endpoint=url,
            credentials=AnonymousCredentials(),
            completion_topic=topic,
        )
        backend.submit(Submission("Survey_Landed/b/o#1", "survey-landed", notified, {"message": "hi"}))
    (job,) = fake.jobs.values()
    assert job["runtimeConfig"]["parameterValues"] == {
        "message": "hi",
        "run_key": "Survey_Landed/b/o#1",
        "completion_topic": topic,
    }


def test_a_finished_job_reports_its_metrics_times_and_error(
    vertex: VertexBackend, fake: FakeVertex, test_routes: LoadedRoutes
) -> None:
    name = vertex.submit(submission(test_routes))
    job = job_id("Survey_Landed/b/o#1")
    fake.finish(job, "PIPELINE_STATE_SUCCEEDED", {"evaluate": {"accuracy": 0.81, "auc": 0.77, "note": "x"}})
    status = vertex.status(name)
    assert status.state is RunState.SUCCEEDED
    assert status.metrics == {"accuracy": 0.81, "auc": 0.77}
    assert status.outputs == {"evaluate/metrics": f"gs://acme-pipelines/root/{job}/evaluate/metrics"}
    assert status.started_at is not None
    assert status.finished_at is not None
    assert status.error is None
    failed = vertex.submit(submission(test_routes, "Survey_Landed/b/o#2"))
    fake.finish(job_id("Survey_Landed/b/o#2"), "PIPELINE_STATE_FAILED", error="The DAG failed.")
    assert (vertex.status(failed).state, vertex.status(failed).error) == (RunState.FAILED, "The DAG failed.")


@pytest.mark.parametrize("kind", ["503", "429", "drop"])
def test_an_overloaded_or_broken_service_is_transient_and_the_retry_makes_one_job(
    vertex: VertexBackend, fake: FakeVertex, test_routes: LoadedRoutes, kind: str
) -> None:
    fake.fail_next("create", kind)
    with pytest.raises(TransientError):
        vertex.submit(submission(test_routes))
    vertex.submit(submission(test_routes))
    assert len(fake.jobs) == 1


def test_parameters_are_checked_against_the_pipelines_inputs(
    vertex: VertexBackend, fake: FakeVertex, test_routes: LoadedRoutes, caplog: pytest.LogCaptureFixture
) -> None:
    from events.errors import PermanentError

    echo = test_routes.catalog["echo"]
    with pytest.raises(PermanentError, match=r"BadRequest \(HTTP 400\)"):
        vertex.submit(Submission("k#1", "survey-landed", echo, {"message": "hi", "bogus": 1}))
    assert fake.jobs == {}
    (logged,) = [record for record in caplog.records if record.getMessage() == "Vertex refused"]
    assert "not found in the pipeline job input definitions" in logged.fields["message"]  # type: ignore[attr-defined]


def test_the_engine_is_vertex_once_its_location_answers(vertex: VertexBackend, fake: FakeVertex) -> None:
    """Vertex is managed and has no release: asking it lists one job, so that the location and
    the credentials are known to work (a cold start and `doctor` ask once)."""
    assert vertex.engine() == Engine("vertex")
    assert vertex.engine().label == "vertex"


def test_an_engine_that_does_not_answer_raises_as_every_call_does(
    vertex: VertexBackend, fake: FakeVertex
) -> None:
    fake.fail_next("get", "drop")
    with pytest.raises(TransientError):
        vertex.engine()
    asked = len(fake.authorizations)
    with pytest.raises(TransientError):
        vertex.engine()  # a failure is kept a while: no request before every submit
    assert len(fake.authorizations) == asked
    vertex._engine.clock = lambda: time.monotonic() + ASK_AGAIN_SECONDS
    assert vertex.engine() == Engine("vertex"), "then it is asked again"


def test_an_aborted_create_is_retried_and_only_an_existing_job_is_adopted(
    vertex: VertexBackend, fake: FakeVertex, test_routes: LoadedRoutes
) -> None:
    """409 is ALREADY_EXISTS or ABORTED alike over REST: an ABORTED create made no job, so it is
    retried, not adopted as if the run existed; a second create of the same key is adopted."""
    fake.fail_next("create", "aborted")
    with pytest.raises(TransientError, match="conflict, no job"):
        vertex.submit(submission(test_routes))
    assert fake.jobs == {}
    first = vertex.submit(submission(test_routes))
    assert vertex.submit(submission(test_routes)) == first, "ALREADY_EXISTS: the same job"
    assert len(fake.jobs) == 1


def test_cancelling_a_job_that_has_ended_leaves_its_end(
    vertex: VertexBackend, fake: FakeVertex, test_routes: LoadedRoutes
) -> None:
    from events.errors import PermanentError

    name = vertex.submit(submission(test_routes))
    fake.finish(name.rsplit("/", 1)[-1], "PIPELINE_STATE_SUCCEEDED")
    with pytest.raises(PermanentError, match=r"FAILED_PRECONDITION|BadRequest"):
        vertex.cancel(name)
    assert vertex.status(name).state is RunState.SUCCEEDED
