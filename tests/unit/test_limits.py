"""Cost bounds from routes.yaml, enforced in the ledger: active runs, rate, daily cap, pause,
coalescing windows, event age and the generation high-water mark."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from events.router import Router
from functions.service import actions, completion, intake, limits, passes
from functions.service.ports import Services
from pipelines.backend import RunState, Submission
from pipelines.catalog import LoadedRoutes, load
from tests.conftest import Clock
from tests.support import Reply, binary, call, completion_event, storage_event
from tests.support.fakes import RecordingBackend

ROUTES = """
version: 1
limits: {daily_submissions: 60}
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: two-at-a-time
    when: {storage: {bucket: busy-bucket}}
    run: {pipeline: echo}
    limits: {max_active: 2}
  - name: five-an-hour
    when: {storage: {bucket: rated-bucket}}
    run: {pipeline: echo}
    limits: {rate: {runs: 5, per: 1h}}
  - name: batched
    when: {storage: {bucket: batch-bucket, object: "{batch}/{part}"}}
    run: {pipeline: echo, run_key: "{route}/{batch}", params: {message: "{batch}"}}
    limits: {coalesce: 10m}
  - name: fresh-only
    when: {storage: {bucket: fresh-bucket}}
    run: {pipeline: echo}
    limits: {max_age: 1h}
  - name: per-tenant
    when: {storage: {bucket: tenant-bucket, object: "{tenant}/{file}"}}
    run: {pipeline: echo, params: {message: "{tenant}"}}
    limits: {concurrency: {key: "{tenant}", max_active: 1}}
  - name: latest-only
    when: {storage: {bucket: latest-bucket, object: "{tenant}/{file}"}}
    run: {pipeline: echo}
    limits: {concurrency: {key: "{tenant}", on_newer: skip}}
  - name: newest-wins
    when: {storage: {bucket: newest-bucket, object: "{tenant}/{file}"}}
    run: {pipeline: echo, params: {message: "{tenant}/{file}"}}
    limits: {concurrency: {key: "{tenant}", on_newer: supersede}}
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedRoutes:
    folder = tmp_path_factory.mktemp("limits")
    (folder / "routes.yaml").write_text(ROUTES)
    return load(folder / "routes.yaml", folder / "packages")


class ActiveCounting(RecordingBackend):
    """Remembers how many runs were active when each one was submitted."""

    def __init__(self) -> None:
        super().__init__()
        self.active_at_submit: list[int] = []

    def submit(self, submission: Submission) -> str:
        self.active_at_submit.append(sum(not state.terminal for state in self.states.values()) + 1)
        return super().submit(submission)


@pytest.fixture
def engine() -> ActiveCounting:
    return ActiveCounting()


@pytest.fixture
def limited(services: Services, loaded: LoadedRoutes, engine: ActiveCounting) -> Services:
    """The `services` fixture on the routes above."""
    return replace(
        services,
        router=Router(loaded.rules),
        catalog=loaded.catalog,
        backends={"local": engine},
        limits=loaded.config.limits,
    )


def deliver(services: Services, headers: dict[str, str], body: bytes) -> Reply:
    return call(intake.handle, services, headers, body)


def end_every_running_run(services: Services, engine: RecordingBackend) -> None:
    """The engine finishes its active runs; their completion notices arrive."""
    for number, submission in enumerate(engine.submitted, start=1):
        if engine.states[f"fake-{number}"] is RunState.RUNNING:
            engine.states[f"fake-{number}"] = RunState.SUCCEEDED
            headers, body = completion_event(submission.run_key, "SUCCEEDED", message_id=f"n-{number}")
            assert call(completion.handle, services, headers, body).status == 200


def test_max_active_two_holds_fifty_events_to_two_runs_at_a_time_and_runs_them_all(
    limited: Services, engine: ActiveCounting
) -> None:
    answers = [
        deliver(limited, *storage_event("busy-bucket", f"o-{n}.csv", event_id=f"e-{n}")) for n in range(50)
    ]
    assert all(answer.status == 200 for answer in answers), "queued events are acknowledged"
    assert [a.body["decisions"][0]["outcome"] for a in answers].count("queued") == 48
    assert len(engine.submitted) == 2
    for _ in range(30):
        end_every_running_run(limited, engine)
    assert len(engine.submitted) == 50
    assert max(engine.active_at_submit) == 2
    assert {r.state for r in limited.store.runs(route="two-at-a-time")} == {RunState.SUCCEEDED}


def test_a_rate_limit_queues_the_excess_until_the_next_window(
    limited: Services, engine: ActiveCounting, clock: Clock
) -> None:
    for n in range(8):
        deliver(limited, *storage_event("rated-bucket", f"o-{n}.csv", event_id=f"e-{n}"))
    assert len(engine.submitted) == 5
    assert completion.reconcile(limited).done == 0, "still the same hour"
    clock.now += 3600
    assert completion.reconcile(limited).done == 3
    assert len(engine.submitted) == 8


def test_the_daily_cap_counts_every_route_together(
    limited: Services, engine: ActiveCounting, clock: Clock
) -> None:
    for n in range(50):
        deliver(limited, *storage_event("fresh-bucket", f"o-{n}.csv", event_id=f"e-{n}"))
    for n in range(20):
        deliver(limited, *storage_event("busy-bucket", f"o-{n}.csv", event_id=f"b-{n}"))
    assert len(engine.submitted) == 52, "50 + max_active 2"
    for _ in range(10):
        end_every_running_run(limited, engine)
    assert len(engine.submitted) == 60
    queued = limited.store.runs(state=RunState.QUEUED)
    assert len(queued) == 10
    assert "daily_submissions 60 reached" in {run.details["queued"] for run in queued}
    clock.now += 86400
    for _ in range(10):  # the reconciler (Cloud Scheduler) starts them the next day
        completion.reconcile(limited)
        end_every_running_run(limited, engine)
    assert len(engine.submitted) == 70


def test_paused_submissions_are_all_held_and_all_run_after_resume(
    limited: Services, engine: ActiveCounting
) -> None:
    limited.quotas.set_flag(limits.PAUSED, True)
    for n in range(20):
        answer = deliver(limited, *storage_event("fresh-bucket", f"p-{n}.csv", event_id=f"e-{n}"))
        assert answer.body["decisions"][0] == {
            "route": "fresh-only",
            "outcome": "queued",
            "run_key": f"fresh-only/fresh-bucket/p-{n}.csv#1",
            "reason": "submissions are paused",
        }
    assert engine.submitted == []
    assert completion.reconcile(limited).done == 0, "the reconciler does not start them either"
    limited.quotas.set_flag(limits.PAUSED, False)
    assert passes.start_queued(limited).done == 20
    assert len(engine.submitted) == 20


def test_five_thousand_objects_in_one_window_are_one_run_listing_them_all(
    limited: Services, engine: ActiveCounting, clock: Clock
) -> None:
    clock.now = 1_800_000_000.0  # 10-minute windows start at multiples of 600 s
    for n in range(5000):
        headers, body = storage_event("batch-bucket", f"b-7/part-{n:05}.csv", event_id=f"e-{n}")
        answer = deliver(limited, headers, body)
        assert answer.body["decisions"][0]["outcome"] == "queued"
        clock.now += 0.1  # 500 s of arrivals, inside the window
    deliver(limited, *storage_event("batch-bucket", "b-7/part-00042.csv", event_id="again"))  # a duplicate
    assert engine.submitted == []
    assert completion.reconcile(limited).done == 0, "the window is still open"
    clock.now += 150
    assert completion.reconcile(limited).done == 1
    (run,) = engine.submitted
    objects = run.params["batch_objects"]
    assert isinstance(objects, list)
    assert len(objects) == 5000
    assert objects[0] == "gs://batch-bucket/b-7/part-00000.csv"
    assert run.params["message"] == "b-7"
    assert run.run_key == "batched/b-7@2027-01-15T08:00:00.000Z"


def test_an_object_after_its_window_started_gets_a_batch_of_its_own(
    limited: Services, engine: ActiveCounting, clock: Clock
) -> None:
    clock.now = 1_800_000_000.0
    deliver(limited, *storage_event("batch-bucket", "b-1/a.csv", event_id="a"))
    clock.now += 600
    completion.reconcile(limited)
    clock.now -= 1  # a late redelivery stamped inside the closed window
    answer = deliver(limited, *storage_event("batch-bucket", "b-1/b.csv", event_id="b"))
    assert answer.body["decisions"][0]["batch"].endswith("+batch-bucket/b-1/b.csv#1")
    clock.now += 2
    completion.reconcile(limited)
    assert [s.params["batch_objects"] for s in engine.submitted] == [
        ["gs://batch-bucket/b-1/a.csv"],
        ["gs://batch-bucket/b-1/b.csv"],
    ]


def test_events_older_than_max_age_are_skipped_and_recorded(limited: Services, clock: Clock) -> None:
    attributes = {
        "specversion": "1.0",
        "id": "old-1",
        "type": "google.cloud.storage.object.v1.finalized",
        "source": "//storage.googleapis.com/projects/_/buckets/fresh-bucket",
        "time": datetime.fromtimestamp(clock.now - 7200, UTC).isoformat(),
    }
    headers, body = binary(attributes, {"bucket": "fresh-bucket", "name": "late.csv", "generation": "3"})
    answer = deliver(limited, headers, body)
    assert answer.body["decisions"][0]["outcome"] == "skipped"
    assert answer.body["decisions"][0]["reason"] == "event is 7200 s old, older than max_age 3600 s"
    (decision,) = limited.decisions.trail("old-1")
    assert decision.reason.startswith("event is 7200 s old")


def test_an_older_generation_after_a_newer_one_is_skipped(limited: Services, engine: ActiveCounting) -> None:
    for generation, event_id in ((2, "g2"), (1, "g1"), (2, "g2-again")):
        deliver(limited, *storage_event("fresh-bucket", "same.csv", generation=generation, event_id=event_id))
    assert [s.run_key for s in engine.submitted] == ["fresh-only/fresh-bucket/same.csv#2"]
    (skipped,) = limited.decisions.trail("g1")
    assert skipped.reason == "generation 1 is older than generation 2, seen already"


def test_an_object_joins_one_batch_ever_however_late_it_is_redelivered(
    limited: Services, engine: ActiveCounting, clock: Clock
) -> None:
    """Issue 14 item 1: a late redelivery of an object in a started batch opened another batch."""
    clock.now = 1_800_000_000.0
    deliver(limited, *storage_event("batch-bucket", "b-1/a.csv", event_id="a"))
    clock.now += 600
    assert completion.reconcile(limited).done == 1
    for delay in (-1, 5, 3600):  # inside the closed window, the next one, an hour later
        clock.now += delay
        answer = deliver(limited, *storage_event("batch-bucket", "b-1/a.csv", event_id="a"))
        (decision,) = answer.body["decisions"]
        assert (answer.status, decision["outcome"]) == (200, "duplicate")
        assert decision["batch"] == "batched/b-1@2027-01-15T08:00:00.000Z"
    clock.now += 3600
    completion.reconcile(limited)
    assert len(engine.submitted) == 1, "no second run lists it"
    (duplicate, *_) = [d for d in limited.decisions.trail("a") if d.outcome == "duplicate"]
    assert duplicate.reason == "already in batch batched/b-1@2027-01-15T08:00:00.000Z"
    deliver(limited, *storage_event("batch-bucket", "b-1/a.csv", generation=2, event_id="a2"))
    clock.now += 600
    completion.reconcile(limited)
    assert [s.params["batch_objects"] for s in engine.submitted] == [
        ["gs://batch-bucket/b-1/a.csv"],
        ["gs://batch-bucket/b-1/a.csv"],
    ], "a new generation is new data: it joins a new batch"


def test_a_batch_run_lists_its_objects_in_its_result_and_its_rerun_keeps_them(
    limited: Services, engine: ActiveCounting, clock: Clock
) -> None:
    """Issue 14 item 2: the rerun had no batch_objects, and the result did not say what it covered."""
    clock.now = 1_800_000_000.0
    for name in ("b-2/x.csv", "b-2/y.csv"):
        deliver(limited, *storage_event("batch-bucket", name, event_id=name))
    clock.now += 600
    completion.reconcile(limited)
    (submitted,) = engine.submitted
    engine.states["fake-1"] = RunState.SUCCEEDED
    completion.reconcile(limited)
    objects = ["gs://batch-bucket/b-2/x.csv", "gs://batch-bucket/b-2/y.csv"]
    (result,) = limited.results.published  # type: ignore[attr-defined]
    assert (result["data"]["objects"], result["data"]["objects_total"]) == (objects, 2)
    new_key, outcome, _ = actions.rerun(limited, submitted.run_key)
    assert outcome == "run"
    assert engine.submitted[-1].run_key == new_key
    assert engine.submitted[-1].params["batch_objects"] == objects


def test_a_long_batch_result_lists_the_first_objects_and_names_the_manifest() -> None:
    from functions.service.records import RunRecord
    from functions.service.results import MAX_OBJECTS, result_event

    names = [f"gs://b/m/part-{n:05}.csv" for n in range(MAX_OBJECTS + 5)]
    run = RunRecord(
        "k",
        "r",
        "p",
        "v",
        "local",
        {"batch_objects": names, "batch_manifest": "gs://b/m/_M.json"},
        "e",
        state=RunState.SUCCEEDED,
        attempt=1,
        run_id="x",
        created_at=0.0,
        updated_at=0.0,
    )
    data = result_event(run)["data"]
    assert isinstance(data, dict)
    assert (len(data["objects"]), data["objects_total"]) == (MAX_OBJECTS, MAX_OBJECTS + 5)
    assert data["objects_manifest"] == "gs://b/m/_M.json"


def test_one_run_at_a_time_per_tenant_the_next_waits_and_other_tenants_run(
    limited: Services, engine: ActiveCounting
) -> None:
    """Issue 16 item 2 (queue): the limit is per key, not per route."""
    for number, tenant in enumerate(("acme", "acme", "globex", "acme")):
        headers, body = storage_event("tenant-bucket", f"{tenant}/part-{number}.csv", event_id=f"t-{number}")
        assert deliver(limited, headers, body).status == 200
    started = [s.params["message"] for s in engine.submitted]
    assert started == ["acme", "globex"], "acme's second and third wait; globex is not held back"
    (waiting, *_) = [d for d in limited.decisions.trail("t-1") if d.outcome == "queued"]
    assert waiting.reason == "concurrency.max_active 1 for key 'acme' reached"
    end_run(limited, engine, 2)  # globex ends: acme's next still waits
    assert [s.params["message"] for s in engine.submitted] == ["acme", "globex"]
    end_run(limited, engine, 1)  # acme's first ends: its second starts, the third waits
    assert [s.params["message"] for s in engine.submitted] == ["acme", "globex", "acme"]
    end_run(limited, engine, 3)
    assert [s.params["message"] for s in engine.submitted] == ["acme", "globex", "acme", "acme"]


def end_run(services: Services, engine: RecordingBackend, number: int) -> None:
    """The engine finishes its `number`th run; its completion notice arrives."""
    engine.states[f"fake-{number}"] = RunState.SUCCEEDED
    notice = completion_event(engine.submitted[number - 1].run_key, "SUCCEEDED", message_id=f"end-{number}")
    assert call(completion.handle, services, *notice).status == 200


def test_on_newer_skip_ends_the_newer_run_skipped_and_says_why(
    limited: Services, engine: ActiveCounting
) -> None:
    deliver(limited, *storage_event("latest-bucket", "acme/a.csv", event_id="first"))
    answer = deliver(limited, *storage_event("latest-bucket", "acme/b.csv", event_id="second"))
    (decision,) = answer.body["decisions"]
    assert (answer.status, decision["outcome"]) == (200, "skipped")
    assert decision["reason"] == "concurrency.max_active 1 for key 'acme' reached: on_newer skip"
    assert len(engine.submitted) == 1
    skipped = limited.store.get(decision["run_key"])
    assert skipped is not None
    assert skipped.state is RunState.SKIPPED
    (result,) = [r for r in limited.results.published if r["subject"] == decision["run_key"]]  # type: ignore[attr-defined]
    assert result["data"]["state"] == "SKIPPED"
    assert result["data"]["error"]["message"].endswith("on_newer skip")
    end_run(limited, engine, 1)
    deliver(limited, *storage_event("latest-bucket", "acme/c.csv", event_id="third"))
    assert len(engine.submitted) == 2, "once the key's run ended, the next one runs"


def result_of(services: Services, run_key: str) -> dict[str, object]:
    (result,) = [r for r in services.results.published if r["subject"] == run_key]  # type: ignore[attr-defined]
    data = result["data"]
    assert isinstance(data, dict)
    return data


def notice(services: Services, engine: RecordingBackend, number: int) -> None:
    """The completion notice of the engine's `number`th run arrives, in whatever state it is."""
    run_key = engine.submitted[number - 1].run_key
    headers, body = completion_event(run_key, engine.states[f"fake-{number}"], message_id=f"n-{number}")
    assert call(completion.handle, services, headers, body).status == 200


def test_on_newer_supersede_cancels_the_running_run_and_the_newer_starts_once_it_ended(
    limited: Services, engine: ActiveCounting
) -> None:
    """Issue 16 item 2 (supersede): the engine cancels the old run, its result says by whom, the
    newer one starts only after the engine reported the old one's end; other tenants untouched."""
    deliver(limited, *storage_event("newest-bucket", "acme/monday.csv", event_id="monday"))
    deliver(limited, *storage_event("newest-bucket", "globex/monday.csv", event_id="globex"))
    answer = deliver(limited, *storage_event("newest-bucket", "acme/tuesday.csv", event_id="tuesday"))
    (decision,) = answer.body["decisions"]
    assert decision["outcome"] == "queued"
    assert "on_newer supersede, waiting for newest-wins/newest-bucket/acme/monday.csv#1" in decision["reason"]
    assert engine.cancels == ["fake-1"], "one cancel, of acme's run only"
    assert len(engine.submitted) == 2, "the newer run waits for the engine to report the old one's end"

    notice(limited, engine, 1)
    old = result_of(limited, engine.submitted[0].run_key)
    assert (old["state"], old["superseded_by"]) == ("CANCELED", decision["run_key"])
    assert [s.params["message"] for s in engine.submitted] == [
        "acme/monday.csv",
        "globex/monday.csv",
        "acme/tuesday.csv",
    ]
    assert engine.states["fake-2"] is RunState.RUNNING, "globex's run is untouched"


def test_of_three_runs_of_a_key_only_the_newest_starts_after_the_running_one(
    limited: Services, engine: ActiveCounting
) -> None:
    """A newer event while an older one waits: the waiting one ends without starting, the running
    one is cancelled once, however many newer events arrive."""
    for day in ("monday", "tuesday", "wednesday"):
        deliver(limited, *storage_event("newest-bucket", f"acme/{day}.csv", event_id=day))
    tuesday = limited.store.get("newest-wins/newest-bucket/acme/tuesday.csv#1")
    assert tuesday is not None
    assert (tuesday.state, tuesday.details["superseded_by"]) == (
        RunState.CANCELED,
        "newest-wins/newest-bucket/acme/wednesday.csv#1",
    )
    assert engine.cancels == ["fake-1"]
    notice(limited, engine, 1)
    assert [s.params["message"] for s in engine.submitted] == ["acme/monday.csv", "acme/wednesday.csv"]
    assert (
        result_of(limited, tuesday.run_key)["superseded_by"]
        == "newest-wins/newest-bucket/acme/wednesday.csv#1"
    )


def test_a_run_that_ends_before_its_cancel_lands_ends_as_the_engine_says(
    limited: Services, engine: ActiveCounting
) -> None:
    """Cancel against completion: the engine's word stands, and the newer run starts after it."""
    deliver(limited, *storage_event("newest-bucket", "acme/monday.csv", event_id="monday"))
    engine.states["fake-1"] = RunState.SUCCEEDED  # it ends on its own, its notice not yet in
    deliver(limited, *storage_event("newest-bucket", "acme/tuesday.csv", event_id="tuesday"))
    notice(limited, engine, 1)
    old = result_of(limited, engine.submitted[0].run_key)
    assert (old["state"], old["superseded_by"]) == ("SUCCEEDED", None)
    assert len(engine.submitted) == 2
    assert engine.states["fake-2"] is RunState.RUNNING


def test_a_place_kept_by_a_run_that_ended_is_given_back_when_it_is_needed(
    limited: Services, engine: ActiveCounting
) -> None:
    """A run's end and the return of its places are two writes: an instance can die between
    them (or the second write fail). The next run that finds the place full frees it."""
    deliver(limited, *storage_event("tenant-bucket", "acme/a.csv", event_id="first"))
    (first,) = engine.submitted
    assert limited.store.finish(first.run_key, RunState.SUCCEEDED, {}, limited.clock())  # no ended()
    assert limited.quotas.holders(limits.key_scope("per-tenant", "acme")) == [first.run_key]
    answer = deliver(limited, *storage_event("tenant-bucket", "acme/b.csv", event_id="second"))
    assert answer.body["decisions"][0]["outcome"] == "run"
    assert len(engine.submitted) == 2


def test_a_queued_run_that_its_engine_has_after_all_is_cancelled_there_not_forgotten(
    limited: Services, engine: ActiveCounting, clock: Clock
) -> None:
    """Found by the model test: a start whose submit went through but whose answer was lost goes
    back to the queue. Superseding it must cancel it on its engine and wait, not end it unseen
    (which left two runs of the key running)."""
    from events.errors import TransientError
    from functions.service import reconcile

    engine.fail_with = TransientError("backend unavailable")
    assert (
        deliver(limited, *storage_event("newest-bucket", "acme/monday.csv", event_id="monday")).status == 503
    )
    clock.now += limited.settings.claim_lease_seconds + 1
    engine.succeed_but_raise = TransientError("answer lost")
    reconcile.reconcile(limited)  # the stale claim is queued, taken, submitted: the answer is lost
    monday = limited.store.get("newest-wins/newest-bucket/acme/monday.csv#1")
    assert monday is not None
    assert (monday.state, engine.states["fake-1"]) == (RunState.QUEUED, RunState.RUNNING)

    answer = deliver(limited, *storage_event("newest-bucket", "acme/tuesday.csv", event_id="tuesday"))
    assert answer.body["decisions"][0]["outcome"] == "queued"
    assert engine.cancels == ["fake-1"], "cancelled on its engine"
    assert len(engine.submitted) == 1, "tuesday waits for the engine to report monday's end"
    reconcile.reconcile(limited)
    monday = limited.store.get("newest-wins/newest-bucket/acme/monday.csv#1")
    assert monday is not None
    assert (monday.state, monday.run_id, monday.details["superseded_by"]) == (
        RunState.CANCELED,
        "fake-1",
        "newest-wins/newest-bucket/acme/tuesday.csv#1",
    )
    assert [s.params["message"] for s in engine.submitted] == ["acme/monday.csv", "acme/tuesday.csv"]
