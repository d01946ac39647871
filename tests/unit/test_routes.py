"""routes.yaml: the example is valid; a broken file reports every problem with its path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.errors import RoutesError
from events.params import parse_template
from events.patterns import compile_pattern
from events.routes import load_routes
from pipelines import catalog as routes_catalog
from tests.support import ROOT

BROKEN = """
version: 1
pipelines:
  train:
    source: pipelines.examples.survey:survey_retrain
  Bad_Name:
    package: x.yaml
    source: a:b
routes:
  - name: landed
    when:
      storage: {bucket: landing, object: "responses/{Tenant}/x"}
    run: {pipeline: train, params: {responses_uri: "gs://{object.bucket}/{nope}"}}
  - name: landed
    when: {pubsub: {topic: tpc}, schedule: {job: j, cron: "0 3 * * *"}}
    run: {pipeline: missing}
  - name: nightly
    when: {schedule: {job: j, cron: "not a cron", timezone: Mars/Olympus}}
    run: {pipeline: train, run_key: "{route}/{object.name}"}
  - when: {bigquery: {table: "proj.dataset"}}
    run: {pipeline: train, unknown_field: 1}
"""


def test_example_routes_load_and_type_check(tmp_path: Path) -> None:
    loaded = routes_catalog.load(ROOT / "deploy" / "routes.example.yaml", tmp_path)
    assert {rule.source for rule in loaded.rules} == {"storage", "pubsub", "bigquery", "schedule"}
    assert loaded.rules[0].param_types["responses_uri"] == "STRING"


def test_every_problem_is_reported_with_its_path() -> None:
    with pytest.raises(RoutesError) as caught:
        load_routes(BROKEN)
    problems = caught.value.problems
    expected = [
        "pipelines[Bad_Name]: name must match",
        "pipelines[Bad_Name]: give exactly one of 'source'",
        "routes[landed].when.storage.object: capture {Tenant} must be a lower-case identifier",
        "routes[1].name: another route has the name 'landed'",  # named by position: located
        "routes[1].run.pipeline: no pipeline named 'missing'",
        "routes[1].when: give exactly one of storage, pubsub, bigquery, schedule",
        "routes[nightly].when.schedule.cron: 'not a cron' is not a cron expression: five fields, minute "
        'hour day-of-month month day-of-week, e.g. "0 3 * * *" (03:00 every day)',
        "routes[nightly].when.schedule.timezone: unknown time zone 'Mars/Olympus'",
        "routes[nightly].run.run_key: unknown field {object.name} for a schedule route",
        "routes[3].name: is required",
        "routes[3].run.unknown_field: unknown field 'unknown_field'",
    ]
    for text in expected:
        assert any(problem.startswith(text) for problem in problems), (text, problems)


def test_params_are_checked_against_the_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        """
pipelines:
  train: {source: "pipelines.examples.survey:survey_retrain"}
routes:
  - name: landed
    when: {storage: {bucket: landing}}
    run: {pipeline: train, params: {epoch: 3}}
"""
    )
    with pytest.raises(RoutesError) as caught:
        routes_catalog.load(path, tmp_path / "packages")
    assert any("run.params.epoch: pipeline 'train' has no such parameter" in p for p in caught.value.problems)
    assert any("needs parameter 'responses_uri'" in p for p in caught.value.problems)


def test_a_pipeline_that_does_not_build_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("pipelines:\n  p: {source: 'no_such_module:pipeline'}\nroutes: []\n")
    with pytest.raises(RoutesError, match=r"pipelines\[p\]\.source: cannot build: ModuleNotFoundError"):
        routes_catalog.load(path, tmp_path / "packages")


LIMITS = """
limits: {daily_submissions: 0}
pipelines:
  train: {source: "pipelines.examples.survey:survey_retrain"}
routes:
  - name: on-message
    when: {pubsub: {topic: tpc}}
    run: {pipeline: train}
    limits: {coalesce: 10m, max_active: 0, rate: {runs: 2, per: "a while"}}
  - name: per-object
    when: {storage: {bucket: landing}}
    run: {pipeline: train}
    limits: {coalesce: 90s, max_age: 2d}
"""


def test_limits_are_validated_with_their_paths() -> None:
    with pytest.raises(RoutesError) as caught:
        load_routes(LIMITS)
    for text in (
        "limits.daily_submissions: must be at least 1",
        "routes[on-message].limits.max_active: must be at least 1",
        "routes[on-message].limits.rate.per: expected a duration, seconds as a number or 90s, 10m, 2h, 1d",
        "routes[per-object].limits.coalesce: set run.run_key to the batch's key",
    ):
        assert any(problem.startswith(text) for problem in caught.value.problems), (
            text,
            caught.value.problems,
        )
    fixed = (
        LIMITS.replace("max_active: 0", "max_active: 1").replace('"a while"', "1h").replace(": 0}", ": 9}")
    )
    with pytest.raises(RoutesError) as caught:
        load_routes(fixed)
    assert (
        caught.value.problems[0]
        == "routes[on-message].limits.coalesce: only storage routes can coalesce their events"
    )


def test_durations_and_a_coalescing_pipeline_needs_batch_objects(tmp_path: Path) -> None:
    text = LIMITS.replace("max_active: 0", "max_active: 1").replace('"a while"', "1h").replace(": 0}", ": 9}")
    text = text.replace("coalesce: 10m, ", "").replace(
        "run: {pipeline: train}\n    limits: {coalesce: 90s",
        ("run: {pipeline: train, run_key: '{route}/{object.bucket}'}\n    limits: {coalesce: 90s"),
    )
    rules = {rule.name: rule for rule in load_routes(text).rules}
    assert rules["on-message"].limits.rate is not None
    assert rules["on-message"].limits.rate.per == 3600
    assert (rules["per-object"].limits.coalesce, rules["per-object"].limits.max_age) == (90, 172800)
    path = tmp_path / "routes.yaml"
    path.write_text(text.replace("params: {}", ""))
    with pytest.raises(RoutesError) as caught:
        routes_catalog.load(path, tmp_path / "packages")
    assert "routes[per-object].limits.coalesce: pipeline 'train' needs a list parameter 'batch_objects'" in (
        "\n".join(caught.value.problems)
    )


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(RoutesError, match="not valid YAML at line 3"):
        load_routes("routes:\n  - [unclosed\n")


@pytest.mark.parametrize(
    ("pattern", "value", "captures"),
    [
        ("responses/{tenant}/{date}/_SUCCESS", "responses/a/2026/_SUCCESS", {"tenant": "a", "date": "2026"}),
        ("responses/{tenant}/{date}/_SUCCESS", "responses/a/b/c/_SUCCESS", None),
        ("exports/*.csv", "exports/x.csv", {}),
        ("exports/*.csv", "exports/sub/x.csv", None),
        ("archive/**", "archive/a/b/c", {}),
        ("a.b+c", "a.b+c", {}),
        ("a.b+c", "aXbbc", None),
    ],
)
def test_patterns(pattern: str, value: str, captures: dict[str, str] | None) -> None:
    assert compile_pattern(pattern).match(value) == captures


def test_patterns_match_in_linear_time() -> None:
    """Issue 14: a 1 KB object name took 88 s of backtracking to refuse; RE2 refuses it at once.

    Whoever may upload to a watched bucket chooses the name, so the pattern engine must not
    backtrack. The name below is the one from the issue; under Python's `re` this test hangs.
    """
    pattern = compile_pattern("responses/{tenant}-{region}-{date}-*.csv")
    assert pattern.match("responses/" + "-" * 1024 + "x") is None
    assert pattern.match("responses/acme-eu-20261101-part1.csv") == {
        "tenant": "acme",
        "region": "eu",
        "date": "20261101",
    }
    # Where a name is ambiguous RE2 splits it as `re` did (greedy, leftmost-first).
    ambiguous = "responses/acme-eu-2026-11-01-part1.csv"
    assert pattern.match(ambiguous) == re.fullmatch(pattern.regex.pattern, ambiguous).groupdict()


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        ("responses/{tenant}/*.csv", "responses/{}/x.csv"),  # runs on re
        ("responses/{tenant}-{region}-*.csv", "responses/a-{}-x.csv"),  # runs on RE2
    ],
)
def test_a_lone_surrogate_matches_nothing_on_either_engine(pattern: str, name: str) -> None:
    compiled = compile_pattern(pattern)
    assert compiled.match(name.format("\u00e9")) is not None
    assert compiled.match(name.format("\ud800")) is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["{a}", "{b}", "{c}", "*", "**", "-", "/", ".", "x"]), max_size=7),
    st.text(alphabet="-/.xy", max_size=14),
)
def test_either_engine_matches_as_re_would(tokens: list[str], name: str) -> None:
    """Patterns that run on RE2 capture exactly what `re` would (names short enough for `re`)."""
    text = "".join(tokens)
    try:
        pattern = compile_pattern(text)
    except ValueError:  # a capture used twice
        return
    expected = re.fullmatch(pattern.regex.pattern, name)
    assert pattern.match(name) == (None if expected is None else expected.groupdict())


def test_template_braces() -> None:
    template = parse_template("{{literal}} {field}")
    assert template.parts[0] == "{literal} "
    with pytest.raises(ValueError, match="brace"):
        parse_template("{unclosed")


NEVER = """
pipelines:
  p: {source: "m:f"}
routes:
  - name: r
    when: WHEN
    run: {pipeline: p}
"""


@pytest.mark.parametrize(
    ("when", "problem"),
    [
        ("{storage: {bucket: gs://acme}}", "routes[r].when.storage.bucket: 'gs://acme' is not a bucket name"),
        ("{storage: {bucket: Acme-Landing}}", "'Acme-Landing' cannot be a bucket's name"),
        ("{storage: {bucket: acme-}}", "'acme-' cannot be a bucket's name"),
        ("{storage: {bucket: " + "a" * 64 + ".b}}", "cannot be a bucket's name"),
        ("{pubsub: {topic: ab}}", "routes[r].when.pubsub.topic: 'ab' cannot be a topic's name"),
        ("{pubsub: {topic: googly}}", "'googly' cannot be a topic's name"),
        ("{pubsub: {topic: 1topic}}", "'1topic' cannot be a topic's name"),
        ("{pubsub: {topic: projects/p/topics/a b}}", "'a b' cannot be a topic's name"),
        (
            "{bigquery: {table: p.my-data.t}}",
            "routes[r].when.bigquery.table: 'my-data' cannot be a dataset's name",
        ),
        (
            "{schedule: {job: j, cron: '0 0 31 4 *'}}",
            "routes[r].when.schedule.cron: '0 0 31 4 *' names no date",
        ),
        (
            "{storage: {bucket: landing, object: '/exports/{day}/*.csv'}}",
            "routes[r].when.storage.object: every name it matches has a backslash, a leading '/', or an "
            "empty, '.' or '..' folder, and such names are quarantined: the route can never match",
        ),
        ("{storage: {bucket: landing, object: 'exports//{day}.csv'}}", "the route can never match"),
        ("{storage: {bucket: landing, object: 'a/../{day}'}}", "the route can never match"),
        (
            "{storage: {bucket: landing, object: '{route}/x'}}",
            "routes[r].when.storage.object: the capture {route} has the name of the field {route}",
        ),
    ],
)
def test_a_route_that_could_never_match_is_refused(when: str, problem: str) -> None:
    with pytest.raises(RoutesError) as raised:
        load_routes(NEVER.replace("WHEN", when))
    (told,) = raised.value.problems
    assert problem in told


@pytest.mark.parametrize(
    "when",
    [
        "{storage: {bucket: my.bucket_name-1}}",
        "{pubsub: {topic: Product.Events~v1+x%20}}",
        "{pubsub: {topic: projects/other/topics/abc}}",
        "{bigquery: {table: 'p.{dataset}.t'}}",
        "{bigquery: {table: p.My_Data_1.t}}",
        "{storage: {bucket: landing, object: '**'}}",
        "{storage: {bucket: landing, object: 'exports/*/{day}.csv'}}",
        "{schedule: {job: j, cron: '0 0 29 2 *'}}",  # leap years come
    ],
)
def test_names_the_platforms_accept_pass(when: str) -> None:
    assert load_routes(NEVER.replace("WHEN", when)).rules


SETTLING = """
version: 1
pipelines:
  train: {source: p.py:p}
routes:
  - name: nightly
    when: {schedule: {job: nightly, cron: "0 3 * * *"}}
    run: {pipeline: train, run_key: "{route}"}
    limits: {settle: {quiet: 2m}}
  - name: per-object
    when: {storage: {bucket: b}}
    run: {pipeline: train}
    limits: {settle: {quiet: 2m}}
  - name: both
    when: {storage: {bucket: c}}
    run: {pipeline: train, run_key: "{route}"}
    limits: {coalesce: 10m, settle: {quiet: 2m}}
  - name: backwards
    when: {pubsub: {topic: t}}
    run: {pipeline: train, run_key: "{route}"}
    limits: {settle: {quiet: 2h, max_wait: 30m, max_items: 0}}
"""


def test_a_settle_window_is_checked_with_its_paths() -> None:
    with pytest.raises(RoutesError) as caught:
        load_routes(SETTLING)
    for text in (
        "routes[nightly].limits.settle: only storage routes and pubsub routes can settle their events",
        "routes[per-object].limits.settle: set run.run_key to the batch's key",
        "routes[both].limits: coalesce (fixed windows) or settle (quiet windows), not both",
        "routes[backwards].limits.settle.max_items: must be at least 1",
    ):
        assert any(problem.startswith(text) for problem in caught.value.problems), (
            text,
            caught.value.problems,
        )
    with pytest.raises(RoutesError) as caught:
        load_routes(SETTLING.replace("max_items: 0", "max_items: 5"))
    assert any(
        "routes[backwards].limits.settle: quiet (7200 s) is longer than max_wait (1800 s)" in problem
        for problem in caught.value.problems
    ), caught.value.problems


EXPECTS = """
pipelines:
  train: {source: "pipelines.examples.survey:survey_retrain"}
routes:
  - name: both
    when: {storage: {bucket: landing}}
    run: {pipeline: train}
    expect: {by: "06:00", succeeded_by: "07:00"}
  - name: per-arrival
    when: {storage: {bucket: landing}}
    run: {pipeline: train}
    expect: {by: "06:00", per: "{object.name}"}
  - name: unknown-field
    when: {storage: {bucket: landing, object: "{tenant}/x"}}
    run: {pipeline: train}
    expect: {succeeded_by: "7:00", per: "{tenat}"}
"""


def test_an_expectation_has_one_deadline_and_a_per_key_of_known_fields() -> None:
    with pytest.raises(RoutesError) as caught:
        load_routes(EXPECTS)
    problems = "\n".join(caught.value.problems)
    assert "routes[both].expect: give one of `by` (an event arrived) or `succeeded_by`" in problems
    assert "routes[per-arrival].expect: `per` goes with `succeeded_by`" in problems
    assert "routes[unknown-field].expect.succeeded_by: " in problems  # 7:00 is not HH:MM
    fixed = EXPECTS.replace('"7:00"', '"07:00"')
    with pytest.raises(RoutesError) as caught:
        load_routes(fixed)
    assert any(
        p.startswith("routes[unknown-field].expect.per: ") and "tenat" in p for p in caught.value.problems
    )
