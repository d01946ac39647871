"""Join expressions (issue 36): `require: any | {at_least: N}`, parts kept `latest`, and
`on_late: rerun | record` — through the intake, on the memory ledger. The state-machine test
(tests/unit/test_model_join_expressions.py) drives the same routes in every order, with faults."""

from __future__ import annotations

from dataclasses import replace

import pytest

from events.errors import RoutesError
from events.router import Router
from events.routes import load_routes
from functions.service import intake
from functions.service.ports import Services
from pipelines.catalog import LoadedRoutes, load
from tests.support import call, message_event, storage_event
from tests.support.fakes import RecordingBackend

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: latest
    when:
      join:
        key: "{k}"
        within: 1h
        on_late: rerun
        parts:
          a: {pubsub: {topic: latest-events}, key: "{data.k}"}
          b: {storage: {bucket: latest-bucket, object: "{k}/_SUCCESS"}, keep: latest}
    run: {pipeline: echo, run_key: "{route}/{key}", params: {message: "{parts.b.object.generation}"}}
  - name: first
    when:
      join:
        key: "{k}"
        within: 1h
        parts:
          a: {pubsub: {topic: first-events}, key: "{data.k}"}
          b: {storage: {bucket: first-bucket, object: "{k}/_SUCCESS"}}
    run: {pipeline: echo, run_key: "{route}/{key}", params: {message: "{parts.b.object.generation}"}}
  - name: quorum
    when:
      join:
        key: "{k}"
        within: 1h
        require: {at_least: 2}
        on_late: rerun
        parts:
          a: {pubsub: {topic: quorum-events}, key: "{data.k}"}
          b: {storage: {bucket: quorum-bucket, object: "{k}/_SUCCESS"}}
          c: {storage: {bucket: quorum-c-bucket, object: "{k}/_DONE"}}
    run:
      pipeline: echo
      run_key: "{route}/{key}"
      params: {message: {from: parts.b.object.generation, default: "none"}}
  - name: anyone
    when:
      join:
        key: "{k}"
        within: 1h
        require: any
        parts:
          a: {pubsub: {topic: anyone-events}, key: "{data.k}"}
          b: {storage: {bucket: anyone-bucket, object: "{k}/_SUCCESS"}}
    run: {pipeline: echo, run_key: "{route}/{key}"}
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedRoutes:
    folder = tmp_path_factory.mktemp("join-expressions")
    (folder / "routes.yaml").write_text(ROUTES)
    return load(folder / "routes.yaml", folder / "packages")


@pytest.fixture
def joined(services: Services, loaded: LoadedRoutes) -> Services:
    return replace(services, router=Router(loaded.rules), catalog=loaded.catalog)


def decided(services: Services, delivery: tuple[dict[str, str], bytes]) -> dict[str, object]:
    answer = call(intake.handle, services, *delivery)
    assert answer.status == 200, answer.body
    (decision,) = answer.body["decisions"]
    return dict(decision)


def upload(
    route: str, generation: int, event_id: str, name: str = "k1/_SUCCESS"
) -> tuple[dict[str, str], bytes]:
    return storage_event(f"{route}-bucket", name, generation=generation, event_id=event_id)


def test_a_part_kept_latest_gives_the_run_its_last_arrival_before_the_window_completed(
    joined: Services, backend: RecordingBackend
) -> None:
    for route in ("latest", "first"):
        assert decided(joined, upload(route, 1, f"{route}-b1"))["outcome"] == "queued"
        corrected = decided(joined, upload(route, 2, f"{route}-b2"))
        assert corrected["outcome"] == ("queued" if route == "latest" else "duplicate")
        assert (
            decided(joined, message_event(f"{route}-events", {"k": "k1"}, f"{route}-a1"))["outcome"] == "run"
        )
    assert [(s.run_key, s.params["message"]) for s in backend.submitted] == [
        ("latest/k1", "2"),
        ("first/k1", "1"),
    ]


def test_a_late_part_with_new_content_reruns_once_and_only_it(
    joined: Services, backend: RecordingBackend
) -> None:
    decided(joined, upload("latest", 1, "b1"))
    decided(joined, message_event("latest-events", {"k": "k1"}, "a1"))
    late = decided(joined, upload("latest", 3, "b3"))
    assert (late["outcome"], late["run_key"]) == ("run", "latest/k1~late-1")
    assert decided(joined, upload("latest", 3, "b3"))["outcome"] == "duplicate", "a redelivery"
    same = decided(joined, upload("latest", 3, "b3-again"))
    assert (same["outcome"], same["run_key"]) == ("duplicate", "latest/k1~late-1"), "the same content"
    assert decided(joined, upload("latest", 4, "b4"))["run_key"] == "latest/k1~late-2"
    assert [(s.run_key, s.params["message"]) for s in backend.submitted] == [
        ("latest/k1", "1"),
        ("latest/k1~late-1", "3"),
        ("latest/k1~late-2", "4"),
    ]
    (step, *_) = joined.decisions.trail("b3")
    assert step.reason.startswith("late part 'b' of join 'k1' (on_late: rerun): ")


def test_a_late_part_is_recorded_only_by_default(joined: Services, backend: RecordingBackend) -> None:
    decided(joined, upload("first", 1, "b1"))
    decided(joined, message_event("first-events", {"k": "k1"}, "a1"))
    late = decided(joined, upload("first", 2, "b2"))
    assert (late["outcome"], late["run_key"]) == ("duplicate", "first/k1")
    (step, *_) = joined.decisions.trail("b2")
    assert step.reason.startswith("late part 'b' of join 'k1' (on_late: record): ")
    assert len(backend.submitted) == 1


def test_at_least_two_of_three_runs_with_the_first_two_and_the_third_is_late(
    joined: Services, backend: RecordingBackend
) -> None:
    assert decided(joined, message_event("quorum-events", {"k": "k1"}, "a1"))["outcome"] == "queued"
    done = storage_event("quorum-c-bucket", "k1/_DONE", event_id="c1")
    assert decided(joined, done)["outcome"] == "run"
    assert decided(joined, upload("quorum", 1, "b1"))["run_key"] == "quorum/k1~late-1"
    assert [(s.run_key, s.params["message"]) for s in backend.submitted] == [
        ("quorum/k1", "none"),
        ("quorum/k1~late-1", "1"),
    ]
    parts = backend.submitted[1].params["join_parts"]
    assert sorted(parts) == ["a", "b", "c"], "the late run: the window's parts and the late one"  # type: ignore[arg-type]


def test_any_part_starts_the_run(joined: Services, backend: RecordingBackend) -> None:
    assert decided(joined, upload("anyone", 1, "b1"))["outcome"] == "run"
    assert decided(joined, message_event("anyone-events", {"k": "k1"}, "a1"))["outcome"] == "duplicate"
    assert [s.run_key for s in backend.submitted] == ["anyone/k1"]


def test_routes_check_says_what_a_join_that_completes_without_every_part_cannot_read() -> None:
    text = ROUTES.replace(
        'params: {message: {from: parts.b.object.generation, default: "none"}}',
        ('params: {message: "{parts.b.object.generation}"}'),
    ).replace("require: any", "require: {at_least: 3}")
    with pytest.raises(RoutesError) as caught:
        load_routes(text)
    assert caught.value.problems == [
        "routes[quorum].run.params.message: reads parts.b.object.generation, but with "
        "join.require a part may be missing: pass it as {from: parts.b.object.generation, default: …}",
        "routes[anyone].when.join.require.at_least: 3 is more than the join's 2 parts",
    ]


def test_a_part_quarantined_before_its_join_route_existed_is_replayed_into_its_window(
    joined: Services, backend: RecordingBackend
) -> None:
    from functions.service import replay

    without = replace(joined, router=Router(tuple(r for r in joined.router.rules if r.name != "latest")))
    quarantined = call(intake.handle, without, *message_event("latest-events", {"k": "k1"}, "a1"))
    assert quarantined.body["outcome"] == "quarantined"
    assert replay.replay(joined, "a1")["decisions"][0]["outcome"] == "queued"  # type: ignore[index]
    assert decided(joined, upload("latest", 1, "b1"))["outcome"] == "run"
    assert replay.replay(joined, "a1")["decisions"][0]["outcome"] == "duplicate"  # type: ignore[index]
    assert [s.run_key for s in backend.submitted] == ["latest/k1"]
