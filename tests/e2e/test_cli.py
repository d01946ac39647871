"""The CLI as a user runs it: a separate process, its exit code and its output."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from events.errors import RoutesError
from events.routes import load_routes
from functions import bootstrap
from functions.service import intake
from functions.settings import Settings
from tests.support import DATA, ROOT, ROUTES, call, env_for, kfp_trigger, storage_event
from tests.unit.test_routes import BROKEN

pytestmark = pytest.mark.slow  # servers and CLI commands in subprocesses


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(kfp_trigger(*args), capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_routes_check_accepts_the_example() -> None:
    result = run("routes", "check", "deploy/routes.example.yaml")
    assert result.returncode == 0, result.stderr
    assert "OK — 4 route(s), 1 pipeline(s)" in result.stdout


def test_routes_test_passes_the_example_cases_and_a_changed_expectation_fails_with_a_diff(
    tmp_path: Path,
) -> None:
    """Issue 20: the example routes ship with their cases; a case that changes fails readably."""
    example = ("--routes", "deploy/routes.example.yaml")
    result = run("routes", "test", "deploy/route-tests", *example)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("8 passed, 0 failed")
    cases = (ROOT / "deploy" / "route-tests" / "survey.yaml").read_text()
    changed = tmp_path / "survey.yaml"
    changed.write_text(cases.replace("tenant: tenant_b", "tenant: tenant_c"))
    (tmp_path / "events").symlink_to(ROOT / "deploy" / "route-tests" / "events")
    result = run("routes", "test", str(changed), *example)
    assert result.returncode == 1
    assert f"FAIL {changed}: a BigQuery load into a tenant's table retrains that tenant" in result.stdout
    assert "-        tenant: tenant_c\n     +        tenant: tenant_b" in result.stdout
    assert result.stdout.rstrip().endswith("7 passed, 1 failed")
    report = json.loads(run("routes", "test", str(changed), *example, "--json").stdout)
    assert (report["passed"], report["failed"]) == (7, 1)
    (failed,) = [case for case in report["cases"] if not case["passed"]]
    assert failed["actual"]["routes"]["survey-table-loaded"] == {"run": {"params": {"tenant": "tenant_b"}}}
    changed.write_text("- {name: no expectation, event: events/survey-success.json}\n")
    result = run("routes", "test", str(changed), *example)
    assert result.returncode == 2
    assert "give exactly one of routes, ignore, quarantine" in result.stderr


def _problems(text: str) -> list[str]:
    with pytest.raises(RoutesError) as raised:
        load_routes(text)
    return raised.value.problems


def test_routes_check_lists_every_problem(tmp_path: Path) -> None:
    from pipelines import catalog as routes_catalog

    broken = tmp_path / "routes.yaml"
    broken.write_text(BROKEN)
    with pytest.raises(RoutesError) as loader:  # what the function loads: routes and pipelines
        routes_catalog.load(broken, tmp_path / "packages")
    assert set(loader.value.problems) > set(_problems(BROKEN)), "a pipeline's needs are checked too"
    result = run("routes", "check", str(broken))
    assert result.returncode == 1
    assert f"{len(loader.value.problems)} problem(s)" in result.stderr
    assert "routes[nightly].when.schedule.timezone: unknown time zone 'Mars/Olympus'" in result.stderr
    assert f"{broken}:" in result.stderr.splitlines()[1], "each problem starts with file:line:column"
    as_json = json.loads(run("routes", "check", str(broken), "--json").stdout)
    assert as_json["valid"] is False
    told = [f"{problem['path']}: {problem['message']}" for problem in as_json["problems"]]
    assert told == loader.value.problems, "the CLI runs the function's validator"
    assert all(problem["file"] == str(broken) and problem["line"] > 0 for problem in as_json["problems"])


def test_simulate_prints_the_decision_and_touches_nothing(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    result = run("simulate", str(DATA / "storage" / "survey-success.json"), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["event"] == {
        "type": "google.cloud.storage.object.v1.finalized",
        "source": "//storage.googleapis.com/projects/_/buckets/acme-survey-landing",
        "id": "6031255652220627",
        "key": "acme-survey-landing/responses/tenant-a/2026-11-26/_SUCCESS#1795700000000001",
    }
    assert report["outcome"] == "routed"
    (decision,) = report["decisions"]
    assert decision == {
        "route": "survey-responses-landed",
        "matched": True,
        "verdict": "run",
        "reason": "",
        "pipeline": "echo",
        "run_key": f"survey-responses-landed/{report['event']['key']}",
        "params": {"message": "tenant-a 2026-11-26"},
    }
    assert report["ledger"] is None, "no ledger in the state dir: none is created"
    assert report["unchecked"] == [
        "no ledger here: duplicates, the generation mark, the pause and the limits' places"
    ]
    assert list(tmp_path.iterdir()) == [], "simulate writes nothing"


def test_simulate_explains_a_skip_in_words(tmp_path: Path) -> None:
    result = run("simulate", str(DATA / "storage" / "survey-part.json"), env=env_for(tmp_path))
    assert result.returncode == 0
    assert (
        "SKIP      survey-responses-landed: object name 'responses/tenant-a/2026-11-26/part-0000.csv'"
        in result.stdout
    )


SIMULATED_ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: fresh-files
    when: {storage: {bucket: files}}
    run: {pipeline: echo, run_key: "{route}/{object.name}"}
    limits: {max_age: 1h, max_active: 1}
"""


def test_simulate_with_the_ledger_decides_as_the_service_would_now(tmp_path: Path) -> None:
    """Issue 14 item 9: simulate said RUN for an old event, an older generation and a run key
    already recorded; the service would skip or dedupe."""
    from datetime import UTC, datetime

    from functions.adapters.sqlite.ledger import SqliteLedger
    from functions.service.limits import PAUSED, active_scope
    from functions.service.records import NewRun

    (tmp_path / "routes.yaml").write_text(SIMULATED_ROUTES)
    env = env_for(tmp_path, tmp_path / "routes.yaml")

    def simulate(name: str, generation: int = 5, age: float = 0, *flags: str) -> dict[str, object]:
        sent = datetime.fromtimestamp(time.time() - age, UTC).isoformat()
        event = {
            "specversion": "1.0",
            "id": f"e-{name}-{generation}",
            "type": "google.cloud.storage.object.v1.finalized",
            "source": "//storage.googleapis.com/projects/_/buckets/files",
            "time": sent,
            "datacontenttype": "application/json",
            "data": {"bucket": "files", "name": name, "generation": str(generation), "size": "3"},
        }
        (tmp_path / "event.json").write_text(json.dumps(event))
        result = run("simulate", str(tmp_path / "event.json"), "--json", *flags, env=env)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        (decision,) = report["decisions"]
        return {
            "verdict": decision["verdict"],
            "reason": decision["reason"],
            "unchecked": report["unchecked"],
        }

    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    assert simulate("new.csv") == {"verdict": "run", "reason": "", "unchecked": []}
    assert str(simulate("old.csv", age=7200)["reason"]).endswith("s old, older than max_age 3600 s")
    ledger.raise_mark("files/seen.csv", 9, time.time())
    assert simulate("seen.csv", generation=5)["reason"] == (
        "generation 5 is older than generation 9, seen already"
    )
    done = NewRun("fresh-files/done.csv", "fresh-files", "echo-pipeline", "v", "local", {}, "e-1")
    ledger.mark_submitted(done.run_key, ledger.claim(done, time.time(), 60).attempt, "r-1", time.time())
    assert simulate("done.csv") == {
        "verdict": "duplicate",
        "reason": "run key already SUBMITTED",
        "unchecked": [],
    }
    ledger.hold(active_scope("fresh-files"), 1, done.run_key, time.time())
    assert simulate("busy.csv")["reason"] == "max_active 1 reached"
    ledger.set_flag(PAUSED, True)
    assert simulate("paused.csv") == {
        "verdict": "queued",
        "reason": "submissions are paused",
        "unchecked": [],
    }
    without = simulate("done.csv", 5, 0, "--no-ledger")
    assert (without["verdict"], len(without["unchecked"])) == ("run", 1), "routing and event checks only"
    assert [d.event_id for d in ledger.trail("e-new.csv-5")] == [], "simulate records nothing"


def test_runs_and_explain_read_the_ledger(tmp_path: Path) -> None:
    from functions.adapters.sqlite.ledger import SqliteLedger
    from functions.service.records import DecisionRecord, NewRun, Outcome

    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    ledger.claim(NewRun("r/k#1", "r", "echo", "v1", "local", {"x": 1}, "ev-1"), now=1.0, lease=60)
    ledger.mark_submitted("r/k#1", 1, "local-abc", now=2.0)
    ledger.record(
        DecisionRecord(2.0, "ev-1", "k#1", "t", Outcome.RUN, "r", "submitted as local-abc", "r/k#1")
    )
    runs = json.loads(run("runs", "--json", "--state-dir", str(tmp_path)).stdout)
    assert [(r["run_key"], r["state"], r["run_id"], r["event_id"]) for r in runs] == [
        ("r/k#1", "SUBMITTED", "local-abc", "ev-1")
    ]
    ledger.claim(NewRun("r/k#2", "r", "echo", "v1", "local", {}, "ev-2"), now=3.0, lease=60)
    latest = run("runs", "--limit", "1", "--state-dir", str(tmp_path)).stdout
    assert latest.startswith("1970-01-01T00:00:03Z  CLAIMED    r "), "when, what, which route"
    assert "r/k#2" in latest, "the latest runs, by default"
    assert "r/k#1" not in latest
    first = json.loads(
        run("runs", "--limit", "1", "--oldest-first", "--json", "--state-dir", str(tmp_path)).stdout
    )
    assert [r["run_key"] for r in first] == ["r/k#1"]
    explained = run("explain", "ev-1", "--state-dir", str(tmp_path))
    assert explained.returncode == 0
    assert "submitted as local-abc" in explained.stdout
    assert "run r/k#1: SUBMITTED" in explained.stdout
    assert "    pipeline echo-v1 on local" in explained.stdout, "the version the run ran"
    ledger.record(
        DecisionRecord(2.0, "ev-1", "k#1", "t", Outcome.SKIPPED, "other-route", "does not match", "")
    )
    by_run_key = run("explain", "r/k#1", "--state-dir", str(tmp_path))
    assert "other-route" in by_run_key.stdout, "a run key's trail includes its event's other decisions"
    missing = run("explain", "nope", "--state-dir", str(tmp_path))
    assert missing.returncode == 1
    assert "nothing recorded for 'nope'" in missing.stderr


def test_help_teaches() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("demo", "routes", "simulate", "dev", "runs", "explain", "pipelines"):
        assert command in result.stdout
    assert "kfp-trigger demo" in result.stdout


def test_pipelines_compile_writes_content_addressed_packages(tmp_path: Path) -> None:
    result = run("pipelines", "compile", "--routes", "deploy/routes.example.yaml", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (package,) = tmp_path.glob("survey-retrain-*.yaml")
    assert f"survey-retrain: {package}" in result.stdout


def test_reconcile_finishes_a_run_whose_notice_was_lost(tmp_path: Path) -> None:
    """A real local run whose completion notice went nowhere: `kfp-trigger reconcile` ends it."""
    settings = Settings(routes=ROUTES, state_dir=tmp_path, landing_dir=tmp_path / "landing", auth="none")
    services = bootstrap.build(settings)  # no completion URL or topic: the notice is lost
    headers, body = storage_event("some-bucket", "folder/lost.csv")
    assert call(intake.handle, services, headers, body).status == 200
    env = {**env_for(tmp_path), "KFP_TRIGGER_RECONCILE_GRACE_SECONDS": "0"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        result = json.loads(run("reconcile", "--json", env=env).stdout)
        if result["finished"]:
            break
        time.sleep(1)
    assert result == {"finished": 1, "skipped": [], "left": []}
    assert json.loads(run("reconcile", "--json", env=env).stdout) == {
        "finished": 0,
        "skipped": [],
        "left": [],
    }
    (line,) = (tmp_path / "results.jsonl").read_text().splitlines()
    assert json.loads(line)["data"]["state"] == "SUCCEEDED"


def test_rerun_starts_a_fresh_run_under_a_derived_key(tmp_path: Path) -> None:
    """Deduplication refuses the event again, `rerun` does not: each call is one more run."""
    settings = Settings(routes=ROUTES, state_dir=tmp_path, landing_dir=tmp_path / "landing", auth="none")
    services = bootstrap.build(settings)
    headers, body = storage_event("some-bucket", "folder/again.csv")
    assert call(intake.handle, services, headers, body).status == 200
    key = "some-bucket-folder/some-bucket/folder/again.csv#1"
    first = run("rerun", key, "--json", env=env_for(tmp_path))
    assert first.returncode == 0, first.stderr
    started = json.loads(first.stdout)
    assert (started["run_key"], started["rerun_of"], started["outcome"]) == (f"{key}~rerun-1", key, "run")
    second = run("rerun", key, env=env_for(tmp_path))
    assert second.stdout.startswith(f"started {key}~rerun-2 as local-")
    assert call(intake.handle, services, headers, body).body["decisions"][0]["outcome"] == ("duplicate")
    records = {record.run_key: record for record in services.store.runs()}
    assert set(records) == {key, f"{key}~rerun-1", f"{key}~rerun-2"}
    assert records[f"{key}~rerun-2"].params == records[key].params
    assert len(list((tmp_path / "runs").iterdir())) == 3
    missing = run("rerun", "no/such#key", env=env_for(tmp_path))
    assert (missing.returncode, missing.stderr.strip()) == (1, "Error: no run 'no/such#key' in the ledger")


def test_pause_holds_submissions_and_resume_starts_them(tmp_path: Path) -> None:
    settings = Settings(routes=ROUTES, state_dir=tmp_path, landing_dir=tmp_path / "landing", auth="none")
    services = bootstrap.build(settings)
    services.store.get("create the ledger file")
    assert json.loads(run("pause", "--json", env=env_for(tmp_path)).stdout) == {"paused": True}
    for name in ("held-1.csv", "held-2.csv"):
        headers, body = storage_event("some-bucket", f"folder/{name}")
        answer = call(intake.handle, services, headers, body)
        assert answer.body["decisions"][0]["reason"] == "submissions are paused"
    queued = json.loads(run("runs", "--state", "QUEUED", "--json", env=env_for(tmp_path)).stdout)
    assert len(queued) == 2
    assert not (tmp_path / "runs").exists()
    cancelled = run("cancel", queued[0]["run_key"], "--json", env=env_for(tmp_path))
    assert json.loads(cancelled.stdout) == {"run_key": queued[0]["run_key"], "state": "CANCELED"}
    again = run("cancel", queued[0]["run_key"], env=env_for(tmp_path))
    assert (again.returncode, "has ended already: CANCELED" in again.stderr) == (1, True)
    resumed = run("resume", "--json", env=env_for(tmp_path))
    assert json.loads(resumed.stdout) == {"paused": False, "started": 1, "skipped": []}, resumed.stderr
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_pipelines_push_uploads_each_version_once(tmp_path: Path) -> None:
    from tests.support import serving
    from tests.support.kfp_fake import FakeKfp

    routes = tmp_path / "routes.yaml"
    routes.write_text(
        ROUTES.read_text().replace(
            "source: tests.support.echo_pipeline:echo_pipeline",
            "source: tests.support.echo_pipeline:echo_pipeline\n    backend: kfp",
        )
    )
    fake = FakeKfp()
    with serving(fake) as url:
        env = env_for(tmp_path, routes=routes, KFP_TRIGGER_KFP_HOST=url)
        first = run("pipelines", "push", "--json", env=env)
        again = run("pipelines", "push", "--json", env=env)
    assert first.returncode == 0, first.stderr
    (pushed,) = json.loads(first.stdout)
    assert pushed["version"].startswith("echo-")
    assert json.loads(again.stdout) == [pushed], "the second push finds the same version"
    assert [v["name"] for v in fake.versions.values()].count(pushed["version"]) == 1


def test_routes_check_warns_of_a_bucket_crowded_with_re2_patterns(tmp_path: Path) -> None:
    """Issue 14 item 5: 10,000 hostile-shaped routes on one bucket cost every event 0.7 s."""
    routes = [
        "version: 1",
        "pipelines:",
        "  echo: {source: tests.support.echo_pipeline:echo_pipeline}",
        "routes:",
    ]
    for number in range(101):  # `*` then `-` then `*` with no separator between: RE2
        routes.append(f"  - name: r{number}")
        routes.append(f'    when: {{storage: {{bucket: crowded, object: "p{number}/*-*.csv"}}}}')
        routes.append("    run: {pipeline: echo}")
    (tmp_path / "routes.yaml").write_text("\n".join(routes) + "\n")
    result = run("routes", "check", str(tmp_path / "routes.yaml"), "--json", env=env_for(tmp_path))
    assert result.returncode == 0, result.stdout
    (warning,) = json.loads(result.stdout)["warnings"]
    assert warning.startswith("crowded: 101 routes match names with RE2")


def test_backfill_dry_run_lists_what_the_real_pass_does_and_a_second_pass_starts_nothing(
    tmp_path: Path,
) -> None:
    """Issue 17 item 1, as an operator runs it on the embedded default (the landing folder):
    submissions paused, so the runs it starts wait in the queue instead of running here."""
    landing = tmp_path / "landing" / "some-bucket" / "folder"
    landing.mkdir(parents=True)
    for number in range(3):
        (landing / f"missed-{number}.csv").write_text("a\n")
    env = env_for(tmp_path, KFP_TRIGGER_PAUSED="true")
    args = ("backfill", "--route", "some-bucket-folder", "--since", "1h", "--json")
    dry = run(*args, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    would = json.loads(dry.stdout)
    assert (would["dry_run"], would["candidates"], would["outcomes"]) == (True, 3, {"queued": 3})
    assert not (tmp_path / "ledger.sqlite3").exists(), "a dry run writes nothing"
    real = json.loads(run(*args, env=env).stdout)
    assert real["outcomes"] == {"queued": 3}
    assert [d["what"] for d in real["decisions"]] == [d["what"] for d in would["decisions"]]
    again = json.loads(run(*args, env=env).stdout)
    assert again["outcomes"] == {"duplicate": 3}
    text = run("backfill", "--route", "some-bucket-folder", "--since", "1h", "--dry-run", env=env).stdout
    assert "3 candidate(s) in [" in text
    assert "would be: 3 duplicate" in text
    refused = run("backfill", "--route", "survey-closed", env=env)
    assert refused.returncode == 1
    assert "cannot be listed" in refused.stderr


def test_replay_runs_a_quarantined_event_once_after_routes_yaml_is_fixed(tmp_path: Path) -> None:
    """Issue 17 item 2, as an operator does it: the event came before its route existed."""
    settings = Settings(routes=ROUTES, state_dir=tmp_path, landing_dir=tmp_path / "landing", auth="none")
    services = bootstrap.build(settings)
    headers, body = storage_event("forgotten-bucket", "data.csv", event_id="lost-1")
    assert call(intake.handle, services, headers, body).body["outcome"] == "quarantined"
    fixed = tmp_path / "routes.yaml"
    fixed.write_text(
        ROUTES.read_text()
        + "  - name: forgotten\n    when: {storage: {bucket: forgotten-bucket}}\n    run: {pipeline: echo}\n"
    )
    env = env_for(tmp_path, fixed, KFP_TRIGGER_PAUSED="true")  # the run waits in the queue here
    replayed = run("replay", "--quarantine", "--reason", "no route listens", "--json", env=env)
    assert replayed.returncode == 0, replayed.stderr
    (first,) = json.loads(replayed.stdout)
    assert first["event_id"] == "lost-1"
    assert first["decisions"][0]["outcome"] == "queued"
    again = run("replay", "lost-1", env=env)
    assert again.stdout.startswith("lost-1: duplicate forgotten forgotten/forgotten-bucket/data.csv#1")
    assert run("replay", "--quarantine", env=env).stdout == "no quarantined events to replay\n"
    missing = run("replay", "never-seen", env=env)
    assert missing.returncode == 1
    assert "not kept" in missing.stderr


def test_doctor_passes_on_the_embedded_default_and_fails_naming_what_to_fix(tmp_path: Path) -> None:
    """Issue 21: the command as a user runs it (the checks themselves: tests/contract/test_doctor.py)."""
    state = str(tmp_path / "state")
    result = run("doctor", "--routes", "deploy/routes.example.yaml", "--state-dir", state)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "7 ok, 0 warning(s), 0 failed"
    report = json.loads(
        run("doctor", "--routes", "deploy/routes.example.yaml", "--state-dir", state, "--json").stdout
    )
    assert report["ok"] is True
    missing = run("doctor", "--routes", str(tmp_path / "nowhere.yaml"), "--state-dir", state)
    assert missing.returncode == 1
    assert "FAIL  routes" in missing.stdout
    assert "fix: kfp-trigger routes check" in missing.stdout
