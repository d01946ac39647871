"""One gate for every value, and planning that cannot throw: what routes check refuses and how
the router decides, for the classes of hostile input issue 34 names (through the real server:
tests/e2e/test_attacks_round_three.py)."""

from __future__ import annotations

import json

import pytest

from events.errors import RoutesError
from events.filters import compile_filter
from events.model import Envelope, ScheduleTick
from events.params import coerce
from events.router import Router, Skip
from events.routes import load_routes

PIPELINES = 'pipelines:\n  p: {source: "m:f"}\n'


def refused(routes: str) -> list[str]:
    with pytest.raises(RoutesError) as caught:
        load_routes(PIPELINES + routes)
    return caught.value.problems


def join(a: str, b: str) -> str:
    return f"""
routes:
  - name: both
    when:
      join:
        key: "{{event.id}}"
        within: 1h
        parts:
          a: {a}
          b: {b}
    run: {{pipeline: p}}
"""


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("{pubsub: {topic: events}}", "{pubsub: {topic: events}}"),
        ("{pubsub: {topic: events, attributes: {kind: x}}}", "{pubsub: {topic: events}}"),
        (
            "{pubsub: {topic: events, attributes: {kind: [x, y]}}}",
            "{pubsub: {topic: events, attributes: {kind: y}}}",
        ),
        (
            "{storage: {bucket: bucket-b, object: 'in/**'}}",
            "{storage: {bucket: bucket-b, object: 'in/x/{name}'}}",
        ),
        ("{schedule: {job: nightly, cron: '0 3 * * *'}}", "{schedule: {job: nightly, cron: '0 3 * * *'}}"),
    ],
)
def test_join_parts_one_event_could_meet_both_are_refused(a: str, b: str) -> None:
    (problem,) = refused(join(a, b))
    assert "one event could meet both 'a' and 'b'" in problem


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "{pubsub: {topic: events, attributes: {kind: x}}}",
            "{pubsub: {topic: events, attributes: {kind: y}}}",
        ),
        ("{pubsub: {topic: events, data: {type: a}}}", "{pubsub: {topic: events, data: {type: b}}}"),
        (
            "{pubsub: {topic: events, attributes: {k: {exists: true}}}}",
            "{pubsub: {topic: events, attributes: {k: {exists: false}}}}",
        ),
        ("{pubsub: {topic: events}}", "{pubsub: {topic: other}}"),
        (
            "{storage: {bucket: bucket-b, object: 'a/{n}.csv'}}",
            "{storage: {bucket: bucket-b, object: 'b/{n}.csv'}}",
        ),
        ("{storage: {bucket: bucket-b}}", "{storage: {bucket: bucket-c}}"),
    ],
)
def test_join_parts_kept_apart_load(a: str, b: str) -> None:
    assert load_routes(PIPELINES + join(a, b)).rules


SIGNED = "topic: product-events, signature: {secret: S, max_skew: 5m}"
READS = {
    "filter": ("attributes: {googclient_tier: gold}", ""),
    "template": ("", "params: {tier: '{attributes.googclient_tier}'}"),
    "field": ("", "params: {tier: {from: attributes.googclient_tier}}"),
}


def route(pubsub: str, run: str = "") -> str:
    return f"routes:\n  - name: r\n    when: {{pubsub: {{{pubsub}}}}}\n    run: {{pipeline: p, {run}}}\n"


@pytest.mark.parametrize("read", list(READS))
def test_a_signed_route_cannot_read_an_attribute_its_signature_does_not_cover(read: str) -> None:
    condition, run = READS[read]
    (problem,) = refused(route(", ".join(filter(None, [SIGNED, condition])), run))
    assert "reads the attribute 'googclient_tier', which the signature does not cover" in problem


def test_an_unsigned_route_may_read_any_attribute() -> None:
    assert load_routes(PIPELINES + route("topic: product-events, attributes: {googclient_tier: gold}")).rules


NOT_ASCII = [
    "\u0663",
    "\uff13",
    "\u0969\u0660",
    "\u00b2",
]  # Arabic-Indic, full-width, Devanagari, superscript


@pytest.mark.parametrize("digits", NOT_ASCII)
def test_a_range_on_an_attribute_reads_ascii_digits_only(digits: str) -> None:
    in_range = compile_filter({"gte": 2, "lt": 100}, text=True)
    assert not in_range.holds(digits)
    assert in_range.holds("30")


def test_an_integer_too_large_for_a_double_is_refused_not_raised() -> None:
    with pytest.raises(ValueError, match="finite number"):
        coerce(10**400, "NUMBER_DOUBLE")
    assert coerce(json.loads("1e308"), "NUMBER_DOUBLE") == 1e308


@pytest.mark.parametrize("published", ["0001-01-01T00:30:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_planning_is_total_a_time_outside_the_calendar_is_the_routes_skip(published: str) -> None:
    from datetime import datetime

    when = "{schedule: {job: nightly, cron: '0 3 * * *', timezone: Europe/Berlin}}"
    text = f"routes:\n  - name: n\n    when: {when}\n    run: {{pipeline: p}}\n"
    rules = load_routes(PIPELINES + text).rules
    moment = datetime.fromisoformat(published)
    tick = ScheduleTick(
        envelope=Envelope(id="t", type="x", source="s"),
        job="nightly",
        topic="projects/p/topics/kfp-trigger-schedules",
        message_id="t",
        publish_time=moment,
    )
    (decision,) = Router(rules).route(tick).decisions
    assert isinstance(decision, Skip)
    assert "could not be planned" in decision.reason
