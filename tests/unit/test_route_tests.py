"""Route tests (issue 20): the user's cases through decode and route, compared in their own shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from events.router import Router
from events.routes import load_routes
from functions.cli.route_tests import Case, CaseFileError, read_cases, run_case, same
from tests.support import DATA

ROUTES = """
pipelines:
  p: {source: "m:f", params: {epochs: 3}}
routes:
  - name: landed
    when: {storage: {bucket: acme-survey-landing, object: "responses/{tenant}/{date}/_SUCCESS"}}
    run: {pipeline: p, params: {tenant: "{tenant}", final: true}}
  - name: everything
    when: {storage: {bucket: acme-survey-landing}}
    run: {pipeline: p, run_key: "all/{object.name}"}
  - name: closed
    when: {pubsub: {topic: product-events}}
    run: {pipeline: p}
"""
SUCCESS = str(DATA / "storage" / "survey-success.json")


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(load_routes(ROUTES).rules)


def outcome(router: Router, **case: object) -> tuple[bool, str]:
    result = run_case(Case.model_validate({"name": "n", "event": SUCCESS, **case}), router, Path("/"), "f")
    return result.passed, result.diff()


def test_what_a_case_gives_is_compared_and_nothing_else(router: Router) -> None:
    expected = {
        "landed": {"run": {"params": {"tenant": "tenant-a", "final": True}}},
        "everything": {"run": {"run_key": "all/responses/tenant-a/2026-11-26/_SUCCESS"}},
    }
    assert outcome(router, routes=expected) == (True, "")


def test_a_route_not_listed_may_skip_but_not_run(router: Router) -> None:
    passed, diff = outcome(router, routes={"landed": {"run": {}}})
    assert not passed
    assert "+  everything:" in diff
    assert "+      run_key: all/responses/tenant-a/2026-11-26/_SUCCESS" in diff


def test_json_equality_true_is_not_1_and_an_absent_param_says_so(router: Router) -> None:
    passed, diff = outcome(
        router, routes={"landed": {"run": {"params": {"final": 1, "wave": 2}}}, "everything": {"run": {}}}
    )
    assert not passed
    assert "-        final: 1\n" in diff
    assert "+        final: true\n" in diff
    assert "+        wave: (absent)" in diff
    assert same({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not same(True, 1)
    assert not same({"a": 1}, {"a": 1, "b": 2})


def test_a_kind_of_decision_other_than_expected_is_shown_whole(router: Router) -> None:
    passed, diff = outcome(router, routes={"landed": {"skip": ""}, "everything": {"run": {}}})
    assert not passed
    assert "-    skip: ''" in diff
    assert (
        "+      run_key: landed/acme-survey-landing/responses/tenant-a/2026-11-26/_SUCCESS#1795700000000001"
        in diff
    )


def test_a_route_that_does_not_listen_there_is_named(router: Router) -> None:
    passed, diff = outcome(
        router, routes={"closed": {"skip": ""}, "landed": {"run": {}}, "everything": {"run": {}}}
    )
    assert not passed
    assert "+  closed: '(no decision: the route does not listen where this event comes from)'" in diff


def test_whole_event_outcomes(router: Router) -> None:
    deleted, unrouted = DATA / "storage" / "object-deleted.json", DATA / "storage" / "unrouted-bucket.json"
    assert outcome(router, event=str(deleted), ignore="object deleted")[0]
    assert outcome(router, event=str(unrouted), quarantine="no route listens to storage")[0]
    passed, diff = outcome(router, event=str(unrouted), ignore="object deleted")
    assert not passed
    assert "-ignore: object deleted\n+quarantine: no route listens to storage 'somebody-elses-bucket'" in diff
    inline = {
        "specversion": "1.0",
        "type": "google.cloud.storage.object.v1.finalized",
        "source": "x",
        "id": "1",
    }
    passed, diff = outcome(router, event=inline, quarantine="")
    assert passed, diff  # a finalized event without its data is a bad event: quarantined


def test_an_event_file_that_does_not_read_fails_its_case_saying_why(router: Router) -> None:
    passed, diff = outcome(router, event="missing.json", ignore="")
    assert not passed
    assert diff.startswith("the event 'missing.json' does not read")


def test_a_case_file_that_does_not_fit_names_each_problem(tmp_path: Path) -> None:
    (tmp_path / "cases.yaml").write_text(
        "- {name: a, event: e.json}\n- {name: b, event: e.json, routes: {r: {run: {}, skip: x}}, extra: 1}\n"
    )
    with pytest.raises(CaseFileError) as raised:
        read_cases(tmp_path / "cases.yaml")
    lines = str(raised.value).splitlines()
    file = tmp_path / "cases.yaml"
    assert lines == [
        f"{file}:1:3: [0]: give exactly one of routes, ignore, quarantine",
        f"{file}:2:37: [1].routes.r: give exactly one of run, skip, part",
        f"{file}:2:68: [1].extra: unknown field 'extra'",
    ], lines


def test_a_join_part_is_expected_by_its_name_and_key() -> None:
    joined = Router(
        load_routes(
            """
pipelines: {p: {source: "m:f"}}
routes:
  - name: j
    when:
      join:
        key: "{tenant}"
        within: 1h
        parts:
          files: {storage: {bucket: acme-survey-landing, object: "responses/{tenant}/{date}/_SUCCESS"}}
          closed: {pubsub: {topic: product-events}, key: "{data.tenant}"}
    run: {pipeline: p}
"""
        ).rules
    )
    arrived = {"routes": {"j": {"part": {"name": "files", "key": "tenant-a"}}}}
    case = Case.model_validate({"name": "n", "event": SUCCESS, **arrived})
    assert run_case(case, joined, Path("/"), "f").passed
    named_only = Case.model_validate(
        {"name": "n", "event": SUCCESS, "routes": {"j": {"part": {"name": "files"}}}}
    )
    assert run_case(named_only, joined, Path("/"), "f").passed
    wrong = Case.model_validate(
        {"name": "n", "event": SUCCESS, "routes": {"j": {"part": {"name": "closed"}}}}
    )
    result = run_case(wrong, joined, Path("/"), "f")
    assert not result.passed
    assert "-      name: closed\n+      name: files" in result.diff()
