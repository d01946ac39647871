"""run.canary (issue 37): a share of run keys, chosen by a hash of the key, runs another pipeline;
a key always gets the same one (a re-run too), each run records the version it ran, and a canary
that cannot take the route's params is refused when routes load."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from events.errors import RoutesError
from events.router import Router
from events.rules import pipeline_of
from functions.service import actions, intake
from functions.service.ports import Services
from pipelines.catalog import LoadedRoutes, load
from tests.support import call, storage_event

ROUTES = """
pipelines:
  stable: {source: tests.support.echo_pipeline:echo_pipeline}
  next: {source: tests.support.echo_pipeline:sleepy_pipeline}
routes:
  - name: landed
    when: {storage: {bucket: landing}}
    run: {pipeline: stable, canary: {pipeline: next, percent: 10}}
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedRoutes:
    folder = tmp_path_factory.mktemp("canary")
    (folder / "routes.yaml").write_text(ROUTES)
    return load(folder / "routes.yaml", folder / "packages")


def test_a_tenth_of_the_run_keys_go_to_the_canary_each_always_the_same_way(loaded: LoadedRoutes) -> None:
    (rule,) = loaded.rules
    chosen = [pipeline_of(rule, f"landed/landing/object-{number}#1") for number in range(2000)]
    assert 160 <= chosen.count("next") <= 240  # 10% of 2,000, as a hash spreads them
    assert chosen == [pipeline_of(rule, f"landed/landing/object-{number}#1") for number in range(2000)]


def test_each_run_records_the_version_it_ran_and_a_rerun_keeps_it(
    services: Services, loaded: LoadedRoutes
) -> None:
    routed = replace(services, router=Router(loaded.rules), catalog=loaded.catalog)
    for number in range(40):
        call(intake.handle, routed, *storage_event("landing", f"object-{number}", event_id=f"e-{number}"))
    runs = routed.store.runs(route="landed")
    versions = {run.run_key: run.version for run in runs}
    (rule,) = loaded.rules
    for run in runs:
        assert run.version == loaded.catalog[pipeline_of(rule, run.run_key)].version
    assert {loaded.catalog["next"].version, loaded.catalog["stable"].version} == set(versions.values())
    canary = next(key for key, version in versions.items() if version == loaded.catalog["next"].version)
    new_key, _, _ = actions.rerun(routed, canary)
    rerun = routed.store.get(new_key)
    assert rerun is not None
    assert rerun.version == loaded.catalog["next"].version, "a canary key's re-run stays on the canary"


@pytest.mark.parametrize(
    ("canary", "problem"),
    [
        ("{pipeline: nxt, percent: 10}", "routes[landed].run.canary.pipeline: no pipeline named 'nxt'"),
        ("{pipeline: next, percent: 100}", "routes[landed].run.canary.percent: "),
        (
            "{pipeline: next, percent: 5}",
            "routes[landed].run.params.message: pipeline 'next' has no such parameter",
        ),
    ],
)
def test_a_canary_that_cannot_run_the_route_is_refused(tmp_path: Path, canary: str, problem: str) -> None:
    text = ROUTES.replace("{pipeline: next, percent: 10}", canary).replace(
        "run: {pipeline: stable,", 'run: {pipeline: stable, params: {message: "{object.name}"},'
    )
    (tmp_path / "routes.yaml").write_text(text)
    with pytest.raises(RoutesError) as caught:
        load(tmp_path / "routes.yaml", tmp_path / "packages")
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
