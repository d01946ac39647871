"""Join routes (issue 16 item 1): one run per correlation key and window, whatever the order, the
repeats and the timing of the parts; expiry recorded by reconcile. On the memory ledger; the same
sequences run through the real server on SQLite and the Firestore emulator in
tests/e2e/test_joins_served.py."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import pytest

from events.errors import RoutesError
from events.router import Router
from events.routes import load_routes
from functions.service import completion, intake
from functions.service.ports import Services
from pipelines.backend import RunState
from pipelines.catalog import LoadedRoutes, load
from tests.conftest import Clock
from tests.support import Reply, call, message_event, storage_event, table_event
from tests.support.fakes import RecordingBackend, RecordingSink

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: survey-ready
    when:
      join:
        key: "{tenant}/{survey}"
        within: 24h
        on_expire: alert
        parts:
          closed:
            pubsub: {topic: product-events, data: {type: survey.closed}}
            key: "{data.tenant}/{data.survey_id}"
          files:
            storage: {bucket: acme-surveys, object: "{tenant}/{survey}/_SUCCESS"}
          table:
            bigquery: {table: "acme-analytics.survey_{tenant}.responses_{survey}"}
    run:
      pipeline: echo
      params: {message: "{parts.files.tenant}/{parts.closed.data.survey_id} via {parts.table.job.id}"}
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedRoutes:
    folder = tmp_path_factory.mktemp("joins")
    (folder / "routes.yaml").write_text(ROUTES)
    return load(folder / "routes.yaml", folder / "packages")


@pytest.fixture
def joined(services: Services, loaded: LoadedRoutes) -> Services:
    return replace(services, router=Router(loaded.rules), catalog=loaded.catalog, alerts=(RecordingSink(),))


Part = Callable[[str], tuple[dict[str, str], bytes]]  # event id → delivery


def closed(tenant: str = "acme", survey: str = "s1") -> Part:
    data = {"type": "survey.closed", "tenant": tenant, "survey_id": survey}
    return lambda event_id: message_event("product-events", data, event_id)


def files(tenant: str = "acme", survey: str = "s1") -> Part:
    return lambda event_id: storage_event("acme-surveys", f"{tenant}/{survey}/_SUCCESS", event_id=event_id)


def table(tenant: str = "acme", survey: str = "s1") -> Part:
    return lambda event_id: table_event(
        f"acme-analytics.survey_{tenant}.responses_{survey}", f"load_{event_id}", event_id
    )


def deliver(services: Services, part: Part, event_id: str) -> Reply:
    answer = call(intake.handle, services, *part(event_id))
    assert answer.status == 200, answer.body
    return answer


def outcome(answer: Reply) -> str:
    (decision,) = answer.body["decisions"]
    return str(decision["outcome"])


def test_the_run_starts_with_the_last_part_whatever_the_order(
    joined: Services, backend: RecordingBackend
) -> None:
    for number, order in enumerate(itertools.permutations((closed, files, table))):
        survey = f"s{number}"
        outcomes = [
            outcome(deliver(joined, part(survey=survey), f"{survey}-{i}")) for i, part in enumerate(order)
        ]
        assert outcomes == ["queued", "queued", "run"], order
    assert len(backend.submitted) == 6
    first = backend.submitted[0]
    assert first.params["message"] == "acme/s0 via load_s0-2"
    assert set(first.params["join_parts"]) == {"closed", "files", "table"}  # type: ignore[arg-type]


def test_repeats_and_late_parts_start_nothing_more(joined: Services, backend: RecordingBackend) -> None:
    assert outcome(deliver(joined, closed(), "c-1")) == "queued"
    repeat = deliver(joined, closed(), "c-2")
    assert outcome(repeat) == "duplicate"
    assert "arrived already (event c-1)" in repeat.body["decisions"][0]["reason"]
    deliver(joined, files(), "f-1")
    assert outcome(deliver(joined, table(), "t-1")) == "run"
    assert outcome(deliver(joined, table(), "t-1")) == "duplicate", "a redelivery of the last part"
    assert outcome(deliver(joined, files(), "f-2")) == "duplicate", "a part again after the run started"
    assert len(backend.submitted) == 1
    backend.states["fake-1"] = RunState.SUCCEEDED
    completion.reconcile(joined)
    (result,) = joined.results.published  # type: ignore[attr-defined]
    assert result["data"]["parts"] == {
        "closed": {"event_id": "c-1", "event_key": "projects/local/topics/product-events#c-1"},
        "files": {"event_id": "f-1", "event_key": "acme-surveys/acme/s1/_SUCCESS#1"},
        "table": {"event_id": "t-1", "event_key": result["data"]["parts"]["table"]["event_key"]},
    }, "the first arrival of each part, not the repeats"


def test_a_window_that_closes_with_parts_missing_is_recorded_expired(
    joined: Services, backend: RecordingBackend, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    waiting = deliver(joined, closed(), "c-1")
    assert "waiting on `files`, `table`, expires" in waiting.body["decisions"][0]["reason"]
    clock.now += 24 * 3600 + joined.settings.join_grace_seconds + 1
    report = completion.reconcile(joined)
    assert report.done == 1
    (expired,) = [d for d in joined.decisions.trail("c-1") if d.event_type == "join.expired"]
    assert "expired at" in expired.reason
    assert expired.reason.endswith("missing `files`, `table`")
    assert "join expired (alert)" in caplog.text, "on_expire: alert logs the line the alert counts"
    (sink,) = joined.alerts
    assert isinstance(sink, RecordingSink)
    (alert,) = [document["data"] for document in sink.published]
    assert (alert["kind"], alert["explain"]) == ("join.expired", "kfp-trigger explain acme/s1")  # type: ignore[index]
    assert completion.reconcile(joined).done == 0, "recorded once"
    deliver(joined, files(), "f-1")
    deliver(joined, table(), "t-1")
    assert backend.submitted == [], "the late parts opened a window of their own, still missing `closed`"


def test_two_keys_interleaved_run_once_each_with_their_own_fields(
    joined: Services, backend: RecordingBackend
) -> None:
    for part, tenant, event_id in [
        (closed, "acme", "1"),
        (closed, "globex", "2"),
        (files, "globex", "3"),
        (files, "acme", "4"),
        (table, "acme", "5"),
        (table, "globex", "6"),
    ]:
        deliver(joined, part(tenant=tenant), event_id)
    assert [s.params["message"] for s in backend.submitted] == ["acme/s1 via load_5", "globex/s1 via load_6"]


def join_route(parts: str, params: str = "{}") -> str:
    return f"""
version: 1
pipelines: {{echo: {{source: tests.support.echo_pipeline:echo_pipeline}}}}
routes:
  - name: j
    when: {{join: {{key: "{{tenant}}", within: 1h, parts: {parts}}}}}
    run: {{pipeline: echo, params: {params}}}
"""


def test_routes_check_names_a_part_that_cannot_produce_the_key_or_a_field_the_run_reads() -> None:
    """Issue 16 item 3: every part must be able to produce the key's fields."""
    storage = '{storage: {bucket: bkt, object: "{tenant}/x"}}'
    load_routes(join_route(f'{{a: {{pubsub: {{topic: tpc}}, key: "{{data.tenant}}"}}, b: {storage}}}'))
    with pytest.raises(RoutesError) as raised:
        load_routes(
            join_route(
                f"{{a: {{pubsub: {{topic: tpc}}}}, b: {storage}}}",
                '{message: "{parts.b.nope}", other: "{parts.c.x}", fine: "{parts.a.data.x}"}',
            )
        )
    assert raised.value.problems == [
        "routes[j].when.join.key (for part 'a'): unknown field {tenant} for a pubsub route",
        "routes[j].run.params.message: unknown field {parts.b.nope} for a join route "
        "(route, key, join.opened, parts.<name>.<field>)",
        "routes[j].run.params.other: unknown field {parts.c.x} for a join route "
        "(route, key, join.opened, parts.<name>.<field>)",
    ]


def test_simulate_says_which_part_an_event_fills_and_what_it_would_do(joined: Services) -> None:
    """Issue 16 item 3: the preview reads the window, writes nothing."""
    from events.decoders import decode
    from events.envelope import parse_http
    from events.model import TriggerEvent
    from functions.service.preview import Reader, preview

    def simulate(part: Part, event_id: str) -> dict[str, object]:
        event = decode(*parse_http(*part(event_id)))
        assert isinstance(event, TriggerEvent)
        reader = Reader(joined.clock(), ledger=joined.store)  # type: ignore[arg-type]
        (verdict,) = preview(
            event, joined.router.route(event), joined.router, joined.catalog, reader
        ).decisions
        return verdict

    first = simulate(closed(), "c-1")
    assert (first["part"], first["key"], first["verdict"]) == ("closed", "acme/s1", "join part")
    assert "waiting on `files`, `table`" in str(first["reason"])
    assert joined.store.joins() == [], "simulate writes nothing"  # type: ignore[attr-defined]
    deliver(joined, closed(), "c-1")
    deliver(joined, files(), "f-1")
    assert simulate(closed(), "c-2")["verdict"] == "duplicate"
    last = simulate(table(), "t-1")
    assert last["verdict"] == "run"
    assert "the last one needed" in str(last["reason"])


def test_the_guides_worked_example_is_a_valid_join_route() -> None:
    from pathlib import Path

    guide = (Path(__file__).parents[2] / "docs" / "routes.md").read_text()
    section = guide.split("## Joins", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    text = "version: 1\npipelines: {retrain: {source: tests.support.echo_pipeline:echo_pipeline}}\n" + example
    (rule,) = load_routes(text).rules
    assert rule.join is not None
    assert rule.join.names == ("closed", "files", "table")
    assert (rule.join.within, rule.join.on_expire) == (24 * 3600, "alert")
