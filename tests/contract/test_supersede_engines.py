"""limits.concurrency on_newer: supersede on both cluster engines (the KFP API fake and the Vertex
fake, served over HTTP): the older run of a key is cancelled on the engine exactly once however
many newer events arrive, ends CANCELED with `superseded_by` when the engine reports it, the
newest run starts then and succeeds, and the other tenant's run is never touched."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials

from events.router import Router
from functions.service import completion, intake
from functions.service.ports import Services
from pipelines.backend import Backend, RunState
from pipelines.catalog import load
from pipelines.kfp.backend import KfpBackend
from pipelines.vertex import VertexBackend
from tests.support import call, serving, storage_event
from tests.support.fakes import RecordingSink
from tests.support.kfp_fake import FakeKfp
from tests.support.vertex_fake import FakeVertex

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: newest-wins
    when: {storage: {bucket: surveys, object: "{tenant}/{file}"}}
    run: {pipeline: echo, params: {message: "{tenant}"}}
    limits: {concurrency: {key: "{tenant}", on_newer: supersede}}
"""


@dataclass
class Engine:
    """One cluster fake, as the test drives it (run ids in the backend's terms)."""

    name: str  # the backend's name in routes.yaml
    backend: Backend
    runs: Callable[[], list[str]]  # in the order they were created
    cancels: Callable[[], list[str]]  # the runs the engine was asked to cancel, in order
    end: Callable[[str, RunState], None]  # the engine reports the run ended so


KFP_WORDS = {RunState.CANCELED: "CANCELED", RunState.SUCCEEDED: "SUCCEEDED"}
VERTEX_WORDS = {RunState.CANCELED: "PIPELINE_STATE_CANCELLED", RunState.SUCCEEDED: "PIPELINE_STATE_SUCCEEDED"}


@contextmanager
def kfp_engine() -> Iterator[Engine]:
    fake = FakeKfp()
    with serving(fake) as url:
        yield Engine(
            "kfp",
            KfpBackend.for_host(url, "kubeflow"),
            lambda: list(fake.runs),
            lambda: [
                path.rsplit("/", 1)[-1].removesuffix(":terminate")
                for _, path in fake.requests
                if path.endswith(":terminate")
            ],
            lambda run_id, state: fake.end(run_id, KFP_WORDS[state]),
        )


@contextmanager
def vertex_engine() -> Iterator[Engine]:
    fake = FakeVertex()
    with serving(fake) as url:
        backend = VertexBackend(
            "acme-analytics",
            "europe-west1",
            "gs://acme-pipelines/root",
            service_account="runner@acme-analytics.iam.gserviceaccount.com",
            endpoint=url,
            credentials=AnonymousCredentials(),
        )
        yield Engine(
            "vertex",
            backend,
            lambda: [job["name"] for job in fake.jobs.values()],
            lambda: [fake.jobs[job_id]["name"] for job_id in fake.cancels],
            lambda run_id, state: fake.finish(run_id.rsplit("/", 1)[-1], VERTEX_WORDS[state]),
        )


@pytest.fixture(params=["kfp", "vertex"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    with (kfp_engine if request.param == "kfp" else vertex_engine)() as engine:
        yield engine


@pytest.fixture
def on_engine(services: Services, engine: Engine, tmp_path: Path) -> Services:
    (tmp_path / "routes.yaml").write_text(ROUTES)
    loaded = load(tmp_path / "routes.yaml", tmp_path / "packages")
    catalog = {name: replace(pipeline, backend=engine.name) for name, pipeline in loaded.catalog.items()}
    return replace(
        services, router=Router(loaded.rules), catalog=catalog, backends={engine.name: engine.backend}
    )


def deliver(services: Services, name: str) -> dict[str, object]:
    answer = call(intake.handle, services, *storage_event("surveys", name, event_id=name))
    assert answer.status == 200
    (decision,) = answer.body["decisions"]
    assert isinstance(decision, dict)
    return decision


def results(services: Services) -> dict[str, dict[str, object]]:
    assert isinstance(services.results, RecordingSink)
    return {str(r["subject"]): r["data"] for r in services.results.published}  # type: ignore[misc]


def test_the_newest_run_of_a_tenant_replaces_the_running_one_and_the_other_tenant_is_untouched(
    on_engine: Services, engine: Engine
) -> None:
    monday = deliver(on_engine, "acme/monday.csv")
    deliver(on_engine, "globex/monday.csv")
    tuesday = deliver(on_engine, "acme/tuesday.csv")
    wednesday = deliver(on_engine, "acme/wednesday.csv")
    acme_monday, globex_monday = engine.runs()
    assert engine.cancels() == [acme_monday], "one cancel, of acme's running run, for two newer events"
    assert (tuesday["outcome"], wednesday["outcome"]) == ("queued", "queued")

    completion.reconcile(on_engine)  # the engine is still cancelling: nothing moves
    assert len(engine.runs()) == 2
    engine.end(acme_monday, RunState.CANCELED)
    completion.reconcile(on_engine)

    ended = results(on_engine)
    assert ended[str(monday["run_key"])]["state"] == "CANCELED"
    assert ended[str(monday["run_key"])]["superseded_by"] == tuesday["run_key"]
    assert ended[str(tuesday["run_key"])]["state"] == "CANCELED", "tuesday never started"
    assert ended[str(tuesday["run_key"])]["superseded_by"] == wednesday["run_key"]
    *_, acme_wednesday = engine.runs()
    assert len(engine.runs()) == 3
    engine.end(acme_wednesday, RunState.SUCCEEDED)
    completion.reconcile(on_engine)
    assert results(on_engine)[str(wednesday["run_key"])]["state"] == "SUCCEEDED"
    assert engine.cancels() == [acme_monday], "globex was never touched"
    record = on_engine.store.get("newest-wins/surveys/globex/monday.csv#1")
    assert record is not None
    assert record.run_id == globex_monday
    assert not record.state.terminal


def test_an_operators_cancel_ends_canceled_whatever_the_engine_calls_the_end(
    on_engine: Services, engine: Engine
) -> None:
    """`kfp-trigger cancel` of a running run: KFP ends a terminated run FAILED, Vertex CANCELLED;
    both are recorded CANCELED, and a run that finished before the cancel landed stays SUCCEEDED."""
    from functions.service import actions

    stopped = deliver(on_engine, "acme/monday.csv")
    finished = deliver(on_engine, "globex/monday.csv")
    acme, globex = engine.runs()
    actions.cancel(on_engine, str(stopped["run_key"]))
    actions.cancel(on_engine, str(finished["run_key"]))
    engine.end(acme, RunState.CANCELED)
    engine.end(globex, RunState.SUCCEEDED)
    completion.reconcile(on_engine)
    ended = results(on_engine)
    assert (ended[str(stopped["run_key"])]["state"], ended[str(stopped["run_key"])]["superseded_by"]) == (
        "CANCELED",
        None,
    )
    assert ended[str(finished["run_key"])]["state"] == "SUCCEEDED", "it ran to its end first"


LOCAL_ROUTES = """
version: 1
pipelines:
  sleepy: {source: tests.support.echo_pipeline:sleepy_pipeline}
routes:
  - name: newest-wins
    when: {storage: {bucket: surveys, object: "{tenant}/{seconds}.csv"}}
    run: {pipeline: sleepy, params: {seconds: "{seconds}"}}
    limits: {concurrency: {key: "{tenant}", on_newer: supersede}}
"""


@pytest.mark.slow  # real kfp.local runs
def test_on_the_local_engine_the_long_run_is_killed_and_the_newer_one_succeeds(
    services: Services, tmp_path: Path
) -> None:
    from pipelines.local.backend import LocalBackend

    (tmp_path / "routes.yaml").write_text(LOCAL_ROUTES)
    loaded = load(tmp_path / "routes.yaml", tmp_path / "packages")
    local = LocalBackend(tmp_path / "runs")
    on_local = replace(
        services, router=Router(loaded.rules), catalog=loaded.catalog, backends={"local": local}
    )
    on_local = replace(on_local, clock=time.time)

    long_acme = deliver(on_local, "acme/600.csv")
    long_globex = deliver(on_local, "globex/600.csv")
    short_acme = deliver(on_local, "acme/1.csv")
    assert short_acme["outcome"] == "queued"

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and str(short_acme["run_key"]) not in results(on_local):
        completion.reconcile(on_local)
        time.sleep(0.5)
    ended = results(on_local)
    assert ended[str(long_acme["run_key"])]["state"] == "CANCELED"
    assert ended[str(long_acme["run_key"])]["superseded_by"] == short_acme["run_key"]
    assert ended[str(short_acme["run_key"])]["state"] == "SUCCEEDED"
    globex = on_local.store.get(str(long_globex["run_key"]))
    assert globex is not None
    assert globex.run_id is not None
    assert local.status(globex.run_id).state is RunState.RUNNING, "the other tenant's run goes on"
    local.cancel(globex.run_id)
    for run_id in (globex.run_id, str(on_local.store.get(str(long_acme["run_key"])).run_id)):  # type: ignore[union-attr]
        runner = int((tmp_path / "runs" / run_id / "pid").read_text())
        deadline = time.monotonic() + 30
        while _alive(runner):
            assert time.monotonic() < deadline, f"the runner of {run_id} still runs after its cancel"
            time.sleep(0.2)
        assert local.status(run_id).state is RunState.CANCELED


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
