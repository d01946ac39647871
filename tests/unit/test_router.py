"""The router: pure, indexed, one decision per candidate route, hostile values kept literal."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.decoders import decode
from events.envelope import parse_http
from events.model import Envelope, Message, ObjectFinalized
from events.router import Router, RunRequest, Skip, schedule_slot
from events.routes import load_routes

ROUTES = """
pipelines:
  p: {source: "m:f"}
routes:
  - name: landed
    when: {storage: {bucket: landing, object: "in/{tenant}/_SUCCESS", min_size: 0}}
    run: {pipeline: p, params: {tenant: "{tenant}", uri: "gs://{object.bucket}/in/{tenant}/", n: 3}}
  - name: landed-audit
    when: {storage: {bucket: landing, object: "in/**"}}
    run: {pipeline: p, params: {name: {from: object.name}}, run_key: "audit/{object.name}"}
  - name: csv-only
    when: {storage: {bucket: landing, content_types: [text/csv], min_size: 100}}
    run: {pipeline: p}
  - name: closed
    when: {pubsub: {topic: events, attributes: {producer: [app, web]}, data: {type: closed, final: true}}}
    run: {pipeline: p, params: {survey: {from: data.survey.id}, wave: {from: data.wave, default: 1}}}
  - name: paused
    when: {storage: {bucket: landing, object: "paused/**"}}
    run: {pipeline: p, enabled: false}
"""


def object_event(
    name: str, bucket: str = "landing", size: int = 0, content_type: str | None = None
) -> ObjectFinalized:
    envelope = Envelope(
        id="1", type="finalized", source=f"//storage.googleapis.com/projects/_/buckets/{bucket}"
    )
    return ObjectFinalized(
        envelope=envelope,
        bucket=bucket,
        name=name,
        generation=7,
        metageneration=1,
        size=size,
        content_type=content_type,
    )


def message_event(payload: object, attributes: dict[str, str]) -> Message:
    raw = json.dumps(payload).encode()
    data = {
        "message": {
            "data": base64.b64encode(raw).decode(),
            "attributes": attributes,
            "messageId": "m",
            "publishTime": "2026-11-26T10:00:00Z",
        }
    }
    attrs = {
        "id": "m",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub.googleapis.com/projects/p/topics/events",
    }
    event = decode(attrs, data)
    assert isinstance(event, Message)
    return event


@pytest.fixture
def router() -> Router:
    return Router(load_routes(ROUTES).rules)


def test_one_event_can_start_several_routes(router: Router) -> None:
    routing = router.route(object_event("in/acme/_SUCCESS"))
    requests = {d.route: d for d in routing.decisions if isinstance(d, RunRequest)}
    assert set(requests) == {"landed", "landed-audit"}
    assert requests["landed"].params == {"tenant": "acme", "uri": "gs://landing/in/acme/", "n": 3}
    assert requests["landed"].run_key == "landed/landing/in/acme/_SUCCESS#7"
    assert requests["landed-audit"].run_key == "audit/in/acme/_SUCCESS"


def test_every_candidate_gets_a_decision_with_a_reason(router: Router) -> None:
    routing = router.route(object_event("in/acme/part-0.csv", size=10, content_type="text/plain"))
    reasons = {d.route: d.reason for d in routing.decisions if isinstance(d, Skip)}
    assert "does not match" in reasons["landed"]
    assert "content type 'text/plain' is not accepted" in reasons["csv-only"]
    assert "route is disabled" not in reasons.get("paused", "")


def test_min_size_and_disabled(router: Router) -> None:
    small = router.route(object_event("x.csv", size=10, content_type="text/csv"))
    assert any(isinstance(d, Skip) and "smaller than min_size 100" in d.reason for d in small.decisions)
    off = router.route(object_event("paused/x"))
    assert Skip("paused", "route is disabled (run.enabled: false)") in off.decisions


def test_events_are_compared_only_with_routes_of_their_own_bucket() -> None:
    other = "\n".join(
        f"  - name: other-{n}\n    when: {{storage: {{bucket: bucket-{n}}}}}\n    run: {{pipeline: p}}"
        for n in range(500)
    )
    router = Router(load_routes(ROUTES + other).rules)
    assert len(router.candidates(object_event("in/a/_SUCCESS"))) == 4
    assert not router.route(object_event("x", bucket="nobody")).routed


def test_message_conditions(router: Router) -> None:
    good = message_event({"type": "closed", "final": True, "survey": {"id": "s-1"}}, {"producer": "web"})
    (decision,) = router.route(good).decisions
    assert isinstance(decision, RunRequest)
    assert decision.params == {"survey": "s-1", "wave": 1}
    wrong_attribute = message_event({"type": "closed", "final": True}, {"producer": "cron"})
    assert "attribute 'producer'" in router.route(wrong_attribute).decisions[0].reason
    one_is_not_true = message_event(
        {"type": "closed", "final": 1, "survey": {"id": "s"}}, {"producer": "app"}
    )
    assert "data field 'final'" in router.route(one_is_not_true).decisions[0].reason
    missing = message_event({"type": "closed", "final": True}, {"producer": "app"})
    assert "no field 'data.survey.id'" in router.route(missing).decisions[0].reason


INERT = ["{0.__class__}", "{{7*7}}", "${jndi:ldap:x}", "$(id)", "{tenant}", "%s%n"]


@pytest.mark.parametrize("hostile", INERT)
def test_event_values_are_never_interpreted(router: Router, hostile: str) -> None:
    event = message_event({"type": "closed", "final": True, "survey": {"id": hostile}}, {"producer": "app"})
    (decision,) = router.route(event).decisions
    assert isinstance(decision, RunRequest)
    assert decision.params["survey"] == hostile


@pytest.mark.parametrize(
    ("hostile", "problem"),
    [
        ("a\nb", "control characters"),
        ("x\u0000y", "control characters"),
        ("\u202egpj.exe", "bidirectional"),
        ("../../other-tenant/x", "'..' folder"),
        ("x" * 2000, "longer than 1024 bytes"),
        (["ok", {"deep": "a\rb"}], "control characters"),
        ({"bad\nkey": 1}, "control characters"),
    ],
)
def test_a_whole_field_passes_the_rules_for_names(router: Router, hostile: object, problem: str) -> None:
    """`{from: data.survey.id}` gates the value as a template does, every text in it."""
    event = message_event({"type": "closed", "final": True, "survey": {"id": hostile}}, {"producer": "app"})
    (decision,) = router.route(event).decisions
    assert isinstance(decision, Skip), decision
    assert "parameter 'survey'" in decision.reason
    assert problem in decision.reason


def test_raw_takes_a_field_as_the_event_carries_it() -> None:
    raw = ROUTES.replace("survey: {from: data.survey.id}", "survey: {from: data.survey.id, raw: true}")
    event = message_event({"type": "closed", "final": True, "survey": {"id": "a\nb"}}, {"producer": "app"})
    (decision,) = Router(load_routes(raw).rules).route(event).decisions
    assert isinstance(decision, RunRequest)
    assert decision.params["survey"] == "a\nb"


@pytest.mark.parametrize(
    ("published", "slot"),
    [
        ("2026-11-26T02:00:00+00:00", "2026-11-26T02:00:00Z"),  # exactly on the slot
        ("2026-11-26T02:00:04+00:00", "2026-11-26T02:00:00Z"),
        ("2026-11-26T02:59:59+00:00", "2026-11-26T02:00:00Z"),  # a late retry of the same slot
        ("2026-07-01T01:00:03+00:00", "2026-07-01T01:00:00Z"),  # summer time: 03:00 Berlin = 01:00Z
    ],
)
def test_schedule_slot(published: str, slot: str) -> None:
    moment = datetime.fromisoformat(published).astimezone(UTC)
    assert schedule_slot("0 3 * * *", "Europe/Berlin", moment) == slot


@pytest.mark.parametrize(
    "text", ["²", "٣", "--7", "+7", " 7", "7 ", "1_000", "0x10", "07", "99999999999999999999"]
)
def test_integer_parameters_take_only_json_integers(text: str) -> None:
    from events.params import coerce

    with pytest.raises(ValueError, match="expected an integer"):
        coerce(text, "NUMBER_INTEGER")


@pytest.mark.parametrize("text", ["nan", "inf", "1_0", " 1", "1.", ".5", "1e999", "²"])
def test_number_parameters_take_only_finite_json_numbers(text: str) -> None:
    from events.params import coerce

    with pytest.raises(ValueError, match="expected a finite number"):
        coerce(text, "NUMBER_DOUBLE")


def test_json_numbers_are_taken() -> None:
    from events.params import coerce

    assert (coerce("-7", "NUMBER_INTEGER"), coerce(7, "NUMBER_INTEGER")) == (-7, 7)
    assert (coerce("1e3", "NUMBER_DOUBLE"), coerce("-0.5", "NUMBER_DOUBLE"), coerce(2, "NUMBER_DOUBLE")) == (
        1000.0,
        -0.5,
        2.0,
    )


KEY_TEMPLATES = ["closed/{a}/{b}", "{a}-{b}-{c}", "{a}/{b}@{c}", "x{a}y{b}z", "{a}%{b}", "{a}é{b}"]
VALUE = st.text(alphabet=st.sampled_from("a/-@%éyz"), max_size=3)  # few letters: collisions are likely


@settings(max_examples=1000, deadline=None)
@given(
    template=st.sampled_from(KEY_TEMPLATES),
    one=st.tuples(VALUE, VALUE, VALUE),
    other=st.tuples(VALUE, VALUE, VALUE),
)
def test_distinct_events_never_share_a_run_key(
    template: str, one: tuple[str, ...], other: tuple[str, ...]
) -> None:
    """`tenant=acme/eu, survey=s1` and `tenant=acme, survey=eu/s1` must not meet in one key."""
    from hypothesis import assume

    from events.params import parse_template, render_key

    parsed = parse_template(template)
    used = [name for name in "abc" if "{" + name + "}" in template]
    first = dict(zip(used, one, strict=False))
    second = dict(zip(used, other, strict=False))
    assume(first != second)
    try:
        keys = render_key(parsed, first, None), render_key(parsed, second, None)
    except ValueError:
        assume(False)  # a value no name may hold: the route skips it, no key is made
    assert keys[0] != keys[1], (template, first, second)


def test_the_issues_example_gives_two_keys_and_defaults_read_as_before() -> None:
    from events.params import parse_template, render_key

    template = parse_template("closed/{tenant}/{survey}")
    first = render_key(template, {"tenant": "acme/eu", "survey": "s1"}, None)
    second = render_key(template, {"tenant": "acme", "survey": "eu/s1"}, None)
    assert (first, second) == ("closed/acme%2Feu/s1", "closed/acme/eu/s1")
    default = parse_template("{route}/{event.key}")
    assert render_key(default, {"route": "r", "event.key": "b/n.csv#1"}, None) == "r/b/n.csv#1"


def test_a_run_key_with_adjacent_fields_is_refused_at_load() -> None:
    from events.errors import RoutesError
    from events.routes import load_routes

    text = """
pipelines: {echo: {source: "m:f"}}
routes:
  - name: adjacent
    when: {storage: {bucket: a-bucket, object: "{a}/{b}"}}
    run: {pipeline: echo, run_key: "{a}{b}"}
"""
    with pytest.raises(RoutesError, match="must be separated by literal text"):
        load_routes(text)


@pytest.mark.parametrize(("raw", "runs"), [(False, False), (True, True)])
def test_raw_values_are_an_explicit_choice_of_the_route(raw: bool, runs: bool) -> None:
    from events.eventarc import message_published
    from events.routes import load_routes

    text = f"""
pipelines: {{echo: {{source: "m:f"}}}}
routes:
  - name: notes
    when: {{pubsub: {{topic: notes}}}}
    run: {{pipeline: echo, params: {{message: "note: {{data.text}}"}}, raw_values: {str(raw).lower()}}}
"""
    router = Router(load_routes(text).rules)
    headers, data = message_published("projects/p/topics/notes", b'{"text": "../free text\\nwith a newline"}')
    event = decode(*parse_http(headers, json.dumps(data).encode()))
    (decision,) = router.route(event).decisions
    assert isinstance(decision, RunRequest) is runs, decision
    if runs:
        assert decision.params["message"] == "note: ../free text\nwith a newline"


def test_a_refused_run_key_is_named_as_the_run_key_not_the_last_parameter() -> None:
    """Found re-running issue 14 through the server: a 1,023-byte name made the run key too
    long, and the skip blamed the route's last parameter."""
    text = """
pipelines: {echo: {source: "m:f"}}
routes:
  - name: long
    when: {storage: {bucket: landing, object: "responses/**"}}
    run: {pipeline: echo, params: {bucket: "{object.bucket}"}}
"""
    router = Router(load_routes(text).rules)
    (decision,) = router.route(object_event("responses/" + "-" * 1009 + ".csv")).decisions
    assert isinstance(decision, Skip)
    assert decision.reason == "the run key: the value of {event.key} is longer than 1024 bytes"
    (decision,) = router.route(object_event("responses/\u202ex.csv")).decisions
    assert isinstance(decision, Skip)
    assert decision.reason.startswith("the run key:")
