"""Filter comparators (issue 20): golden cases per comparator, as routes.yaml writes them, through
the schema, the loader and the router; and the filters `routes check` refuses as never holding."""

from __future__ import annotations

import json

import pytest
import yaml

from events.errors import RoutesError
from events.filters import ABSENT, compile_filter
from events.router import Router, RunRequest, Skip
from events.routes import load_routes
from tests.unit.test_router import message_event, object_event

# (filter as written in YAML, value or ABSENT, holds?) for data fields (JSON values)
DATA_GOLDENS = [
    # equality: JSON equality, so true is not 1 and "1" is not 1
    ("closed", "closed", True),
    ("closed", "Closed", False),
    ("'1'", 1, False),
    ("'1'", "1", True),
    ("true", True, True),
    ("true", 1, False),
    ("1", True, False),
    ("closed", ABSENT, False),
    # any of
    ("[eu, us]", "us", True),
    ("[eu, us]", "asia", False),
    ("[eu, {prefix: us-}]", "us-east1", True),
    ("[]", "eu", False),
    # prefix and suffix: text only
    ("{prefix: acme-}", "acme-corp", True),
    ("{prefix: acme-}", "acme", False),
    ("{prefix: ''}", "", True),
    ("{prefix: '1'}", 12, False),
    ("{suffix: .csv}", "a/b.csv", True),
    ("{suffix: .csv}", "a/b.csv.tmp", False),
    ("{prefix: a, suffix: z}", "abcz", True),
    ("{prefix: a, suffix: z}", "az", True),
    ("{prefix: ab, suffix: bc}", "abc", True),
    ("{prefix: ab, suffix: z}", "abc", False),
    # numeric ranges: JSON numbers only, bounds inclusive or not, int and float compared exactly
    ("{gte: 0.5, lt: 1}", 0.5, True),
    ("{gte: 0.5, lt: 1}", 1, False),
    ("{gte: 0.5, lt: 1}", 0.999, True),
    ("{gt: 0.5}", 0.5, False),
    ("{lte: 10}", 10, True),
    ("{lte: 10}", -1e300, True),
    ("{gt: 9007199254740992}", 9007199254740993, True),
    ("{gte: 0}", "5", False),
    ("{gte: 0}", True, False),
    ("{gte: 0}", None, False),
    ("{gte: 0}", ABSENT, False),
    # exists
    ("{exists: true}", None, True),
    ("{exists: true}", ABSENT, False),
    ("{exists: false}", ABSENT, True),
    ("{exists: false}", "", False),
    # not: holds for an absent field too, unless exists says otherwise
    ("{not: [draft, deleted]}", "open", True),
    ("{not: [draft, deleted]}", "draft", False),
    ("{not: [draft, deleted]}", ABSENT, True),
    ("{not: [draft, deleted], exists: true}", ABSENT, False),
    ("{not: {prefix: test-}}", "test-1", False),
    ("{not: {gte: 5}}", 4, True),
    ("{not: {not: closed}}", "closed", True),
]

# attributes and object names are text: a range reads decimal text as a number
TEXT_GOLDENS = [
    ("{gte: 2}", "2", True),
    ("{gte: 2}", "10", True),
    ("{gte: 2}", "1.5", False),
    ("{gt: 0}", "1e3", True),
    ("{gt: 0}", "-0.5", False),
    ("{gt: 0}", "nan", False),
    ("{gt: 0}", "inf", False),
    ("{gt: 0}", "1_000", False),
    ("{gt: 0}", " 5", False),
    ("{gt: 0}", "9" * 65, False),  # longer than any number a producer means: not read
    ("{prefix: v2., gte: 2}", "v2.1", False),  # "v2.1" is text, not a number
    ("survey-service", "survey-service", True),
]


@pytest.mark.parametrize(("written", "value", "holds"), DATA_GOLDENS, ids=lambda x: repr(x)[:40])
def test_data_filter_golden(written: str, value: object, holds: bool) -> None:
    assert compile_filter(yaml.safe_load(written)).holds(value) is holds


@pytest.mark.parametrize(("written", "value", "holds"), TEXT_GOLDENS, ids=lambda x: repr(x)[:40])
def test_text_filter_golden(written: str, value: object, holds: bool) -> None:
    assert compile_filter(yaml.safe_load(written), text=True).holds(value) is holds


ROUTES = """
pipelines:
  p: {source: "m:f"}
routes:
  - name: big-scores
    when:
      pubsub:
        topic: events
        attributes: {producer: {prefix: survey-}, schema_version: {gte: 2}}
        data: {score: {gte: 0.5, lt: 1}, status: {not: [draft, deleted]}, tenant: {exists: true}}
    run: {pipeline: p, params: {tenant: "{data.tenant}"}}
  - name: finished-files
    when:
      storage:
        bucket: landing
        object: "in/**"
        name: [{suffix: .csv}, {suffix: .parquet, not: {prefix: in/tmp/}}]
    run: {pipeline: p}
"""


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(load_routes(ROUTES).rules)


GOOD = {"score": 0.7, "status": "open", "tenant": "acme"}
ATTRIBUTES = {"producer": "survey-service", "schema_version": "3"}


def test_a_message_meeting_every_filter_runs(router: Router) -> None:
    (decision,) = router.route(message_event(GOOD, ATTRIBUTES)).decisions
    assert isinstance(decision, RunRequest)
    assert decision.params == {"tenant": "acme"}


@pytest.mark.parametrize(
    ("data", "attributes", "reason"),
    [
        ({**GOOD, "score": 1}, ATTRIBUTES, """data field 'score' (1) does not meet {"gte": 0.5, "lt": 1}"""),
        ({**GOOD, "status": "draft"}, ATTRIBUTES, """data field 'status' ("draft") does not meet {"not": """),
        ({"score": 0.7}, ATTRIBUTES, "data field 'tenant' (absent) does not meet"),  # absent passes not
        (GOOD, {**ATTRIBUTES, "producer": "billing"}, """attribute 'producer' ("billing") does not meet"""),
        (GOOD, {"producer": "survey-x"}, "attribute 'schema_version' (absent) does not meet"),
        (GOOD, {**ATTRIBUTES, "schema_version": "1"}, """attribute 'schema_version' ("1") does not meet"""),
    ],
)
def test_a_message_missing_a_filter_is_skipped_saying_which(
    router: Router, data: dict[str, object], attributes: dict[str, str], reason: str
) -> None:
    (decision,) = router.route(message_event(data, attributes)).decisions
    assert isinstance(decision, Skip)
    assert reason in decision.reason


@pytest.mark.parametrize(
    ("name", "runs"),
    [("in/a.csv", True), ("in/a.parquet", True), ("in/tmp/a.parquet", False), ("in/a.json", False)],
)
def test_object_name_filter(router: Router, name: str, runs: bool) -> None:
    (decision,) = router.route(object_event(name)).decisions
    assert isinstance(decision, RunRequest) is runs
    if not runs:
        assert f"object name {name!r} does not meet" in decision.reason


def test_a_hostile_value_is_bounded_in_the_reason(router: Router) -> None:
    (decision,) = router.route(message_event({**GOOD, "status": "draft" * 10_000}, ATTRIBUTES)).decisions
    assert isinstance(decision, RunRequest)
    (decision,) = router.route(message_event({**GOOD, "score": ["x"] * 10_000}, ATTRIBUTES)).decisions
    assert isinstance(decision, Skip)
    assert len(decision.reason) < 300


def problems(when: str) -> list[str]:
    text = f"""
pipelines:
  p: {{source: "m:f"}}
routes:
  - name: r
    when: {when}
    run: {{pipeline: p}}
"""
    with pytest.raises(RoutesError) as raised:
        load_routes(text)
    return raised.value.problems


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (
            "{pubsub: {topic: events, data: {n: {gt: 5, lt: 3}}}}",
            'routes[r].when.pubsub.data.n: the range {"gt": 5, "lt": 3} holds no number: '
            "the route can never match",
        ),
        (
            "{pubsub: {topic: events, data: {n: {gt: 3, lte: 3}}}}",
            'routes[r].when.pubsub.data.n: the range {"gt": 3, "lte": 3} holds no number: '
            "the route can never match",
        ),
        (
            "{pubsub: {topic: events, data: {n: {exists: false, prefix: a}}}}",
            "routes[r].when.pubsub.data.n: "
            '{"prefix": "a", "exists": false} requires the field absent and compares its value: '
            "the route can never match",
        ),
        (
            "{pubsub: {topic: events, data: {n: {prefix: a, gte: 1}}}}",
            'routes[r].when.pubsub.data.n: {"prefix": "a", "gte": 1} asks one JSON value to be text and a '
            "number: the route can never match",
        ),
        (
            "{pubsub: {topic: events, attributes: {version: 2}}}",
            "routes[r].when.pubsub.attributes.version: 2 can never equal text "
            '(attributes and names are text): quote it, "2"',
        ),
        (
            "{storage: {bucket: landing, name: [true]}}",
            "routes[r].when.storage.name: true can never equal text (attributes and names are text): "
            'quote it, "true"',
        ),
        (
            "{pubsub: {topic: events, data: {n: {}}}}",
            "routes[r].when.pubsub.data.n: give at least one of "
            "prefix, suffix, gt, gte, lt, lte, exists, not",
        ),
        (
            "{pubsub: {topic: events, data: {n: {prefx: a}}}}",
            "routes[r].when.pubsub.data.n.prefx: unknown field 'prefx'; did you mean 'prefix'?",
        ),
        (
            "{pubsub: {topic: events, data: {n: [1, {gte: x}]}}}",
            "routes[r].when.pubsub.data.n[1].gte: expected a number",
        ),
    ],
)
def test_routes_check_refuses_a_filter_that_can_never_hold(when: str, expected: str) -> None:
    assert problems(when) == [expected]


def test_a_filter_that_can_hold_through_one_option_is_accepted() -> None:
    text = ROUTES.replace("{gte: 0.5, lt: 1}", "[{gt: 2, lt: 1}, {gte: 0.5}]")
    assert load_routes(text).rules


def test_filters_round_trip_through_the_model_as_written() -> None:
    """What the schema validated compiles to the filter the YAML wrote (`not` by its alias)."""
    rule = next(r for r in load_routes(ROUTES).rules if r.name == "big-scores")
    assert rule.data["status"].text == json.dumps({"not": ["draft", "deleted"]}, separators=(", ", ": "))
    assert not rule.data["status"].holds("deleted")
