"""The CLI as a new user meets it (issue 35): every problem of routes.yaml at once, each at its
line, in routes.yaml's words with the fix where one is known."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT, env_for, kfp_trigger

pytestmark = pytest.mark.slow  # CLI commands in subprocesses

TEN_MISTAKES = """version: 1
pipelines:
  csat-retrain: {source: pipelines/echo.py:echo_pipeline}
  sleepy: {source: pipelines/echo.py:sleepy_pipeline}
routes:
  - name: retrain
    when: {storage: {bucket: acme-landing, object: "in/{tenant}/{file}"}}
    run: {pipeline: csat-retrian, run_key: "{tenant}{file}"}
  - name: nap
    when: {storage: {bucket: acme-landing, objcet: "naps/{n}", min_size: -1}}
    run: {pipeline: sleepy, params: {seconds: fast}}
  - name: nightly
    when: {schedule: {job: nightly, cron: "0 31 2 *", timezone: Europe/Berlinn}}
    run: {pipeline: csat-retrain}
  - name: tables
    when: {storage: {bucket: Bad_Bucket}}
    run: {pipeline: csat-retrain, params: {bogus: 1}}
    limits: {max_active: 0}
"""


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(kfp_trigger(*args), capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_routes_check_reports_ten_mistakes_across_four_routes_each_at_its_line(tmp_path: Path) -> None:
    """One route's pipeline is missing; the others' problems are all still found, literal
    parameters included (checked against the compiled pipeline's types), each said as
    routes.yaml says it, with the nearest valid name or an example of the expected form."""
    (tmp_path / "pipelines").mkdir()
    shutil.copy(ROOT / "tests" / "support" / "echo_pipeline.py", tmp_path / "pipelines" / "echo.py")
    (tmp_path / "routes.yaml").write_text(TEN_MISTAKES)
    done = cli("routes", "check", "routes.yaml", cwd=tmp_path, env=env_for(tmp_path))
    assert done.returncode == 1
    lines = [line.strip() for line in done.stderr.splitlines() if line.startswith("  routes.yaml:")]
    assert done.stderr.startswith("routes.yaml: 10 problem(s)"), done.stderr
    expected = [  # (line:column, what is said at its start)
        (
            "8:21",
            "routes[retrain].run.pipeline: no pipeline named 'csat-retrian'; did you mean 'csat-retrain'?",
        ),
        ("8:44", "routes[retrain].run.run_key: {tenant} and {file} must be separated by literal text"),
        ("10:74", "routes[nap].when.storage.min_size: must be at least 0 (got -1)"),
        ("10:52", "routes[nap].when.storage.objcet: unknown field 'objcet'; did you mean 'object'?"),
        ("13:43", "routes[nightly].when.schedule.cron: '0 31 2 *' is not a cron expression: five fields"),
        ("13:65", "routes[nightly].when.schedule.timezone: unknown time zone 'Europe/Berlinn'"),
        ("18:26", "routes[tables].limits.max_active: must be at least 1 (got 0)"),
        ("16:30", "routes[tables].when.storage.bucket: 'Bad_Bucket' cannot be a bucket's name"),
        ("11:47", "routes[nap].run.params.seconds: 'fast' is not a number, which the pipeline's input takes"),
        ("17:51", "routes[tables].run.params.bogus: pipeline 'csat-retrain' has no such parameter"),
    ]
    assert len(lines) == len(expected), lines
    for line, (place, start) in zip(lines, expected, strict=True):
        assert line.startswith(f"routes.yaml:{place}: {start}"), (line, start)


def test_a_misspelt_variable_is_named_with_the_setting_it_resembles(tmp_path: Path) -> None:
    env = env_for(tmp_path) | {"KFP_TRIGGER_PAUSD": "true"}
    example = str(ROOT / "deploy" / "routes.example.yaml")
    warned = cli("routes", "check", example, cwd=tmp_path, env=env)
    status = cli("status", "--routes", example, cwd=tmp_path, env=env)
    said = "KFP_TRIGGER_PAUSD is not a kfp-trigger setting; did you mean KFP_TRIGGER_PAUSED?"
    assert said in status.stderr
    doctor = cli("doctor", "--routes", example, cwd=tmp_path, env=env)
    assert doctor.returncode == 1
    assert "FAIL  settings" in doctor.stdout
    assert said in doctor.stdout
    assert warned.returncode == 0  # checking routes reads no settings but the routes


def test_a_malformed_setting_is_one_sentence_with_the_expected_form_not_a_usage_screen(
    tmp_path: Path,
) -> None:
    env = env_for(tmp_path) | {"KFP_TRIGGER_RESULTS": "pubsub://nope"}
    done = cli("status", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "Usage:" not in done.stderr
    assert done.stderr.strip() == (
        "Error: configuration: KFP_TRIGGER_RESULTS: expected jsonl:///path/to/file.jsonl or "
        "pubsub://projects/PROJECT/topics/TOPIC; got 'pubsub://nope'"
    )


def test_routes_test_names_a_missing_route_and_every_case_file_problem_at_its_line(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "deploy" / "route-tests" / "events", tmp_path / "cases" / "events")
    (tmp_path / "cases" / "typo.yaml").write_text(
        "- name: a misspelt route\n"
        "  event: events/survey-part.json\n"
        "  routes:\n"
        "    survey-responses-landd: {skip: does not match}\n"
    )
    example = str(ROOT / "deploy" / "routes.example.yaml")
    ran = cli("routes", "test", "cases", "--routes", example, cwd=tmp_path, env=env_for(tmp_path))
    assert ran.returncode == 1
    said = "(routes.yaml has no route 'survey-responses-landd'; did you mean 'survey-responses-landed'?)"
    assert said in ran.stdout
    (tmp_path / "cases" / "broken-a.yaml").write_text("- {name: a, event: e.json}\n")
    (tmp_path / "cases" / "broken-b.yaml").write_text("- {name: b, event: e.json, ignore: x, extra: 1}\n")
    broken = cli("routes", "test", "cases", "--routes", example, cwd=tmp_path, env=env_for(tmp_path))
    assert broken.returncode == 2
    assert broken.stderr.splitlines() == [
        "cases/broken-a.yaml:1:3: [0]: give exactly one of routes, ignore, quarantine",
        "cases/broken-b.yaml:1:46: [0].extra: unknown field 'extra'",
    ]


def test_simulate_refuses_what_is_not_an_event(tmp_path: Path) -> None:
    example = str(ROOT / "deploy" / "routes.example.yaml")
    done = cli("simulate", example, "--routes", example, cwd=tmp_path, env=env_for(tmp_path))
    assert done.returncode == 1
    assert "is not a CloudEvent" in done.stderr
    assert "event None None" not in done.stdout


def test_send_posts_an_object_a_message_and_a_tick_to_dev(tmp_path: Path) -> None:
    """No hand-built base64 CloudEvents: `send` builds each as the platform delivers it."""
    from tests.support import free_port, server

    example = str(ROOT / "deploy" / "routes.example.yaml")
    env = env_for(tmp_path, routes=ROOT / "deploy" / "routes.example.yaml")
    port = free_port()
    with server(kfp_trigger("dev", "--port", str(port)), env, port, tmp_path / "dev.log") as url:
        sent = [
            cli(
                "send",
                "object",
                "acme-survey-landing/responses/tenant-a/2026-12-07/_SUCCESS",
                "--url",
                url,
                cwd=tmp_path,
                env=env,
            ),
            cli(
                "send",
                "message",
                "product-events",
                "--data",
                '{"event_id": "e-9", "type": "survey.closed", "tenant": "tenant-b"}',
                "--attribute",
                "producer=survey-service",
                "--routes",
                example,
                "--url",
                url,
                cwd=tmp_path,
                env=env,
            ),
            cli(
                "send",
                "tick",
                "survey-nightly-retrain",
                "--at",
                "2026-12-07T02:00:05Z",
                "--url",
                url,
                cwd=tmp_path,
                env=env,
            ),
        ]
    for done, route in zip(
        sent, ("survey-responses-landed", "survey-closed", "nightly-retrain"), strict=True
    ):
        assert done.returncode == 0, done.stderr
        assert f"run {route} " in done.stdout, done.stdout
    nowhere = cli("send", "tick", "x", "--url", "http://127.0.0.1:9", cwd=tmp_path, env=env)
    assert nowhere.returncode == 1
    assert "no stack answers at http://127.0.0.1:9" in nowhere.stderr


RELOADED = """version: 1
pipelines:
  echo: {source: pipelines/echo.py:echo_pipeline}
routes:
  - name: first
    when: {storage: {bucket: first-bucket}}
    run: {pipeline: echo}
"""


def test_dev_serves_an_edited_routes_yaml_and_keeps_the_old_one_when_the_new_does_not_load(
    tmp_path: Path,
) -> None:
    import time

    from tests.support import free_port, server

    (tmp_path / "pipelines").mkdir()
    shutil.copy(ROOT / "tests" / "support" / "echo_pipeline.py", tmp_path / "pipelines" / "echo.py")
    routes = tmp_path / "routes.yaml"
    routes.write_text(RELOADED)
    env = env_for(tmp_path, routes=routes)
    port = free_port()

    def send(bucket: str) -> str:
        return cli("send", "object", f"{bucket}/a.csv", "--url", url, cwd=tmp_path, env=env).stdout

    def eventually(bucket: str, said: str) -> None:
        deadline = time.monotonic() + 60
        while said not in (answer := send(bucket)):
            assert time.monotonic() < deadline, answer
            time.sleep(1)

    with server(kfp_trigger("dev", "--port", str(port)), env, port, tmp_path / "dev.log") as url:
        assert "no route listens to storage 'second-bucket'" in send("second-bucket")
        routes.write_text(RELOADED.replace("first", "second"))
        eventually("second-bucket", "run second ")
        routes.write_text(RELOADED.replace("pipeline: echo", "pipeline: ech0"))
        deadline = time.monotonic() + 30
        while "does not load" not in (tmp_path / "dev.log").read_text():
            assert time.monotonic() < deadline, "a routes.yaml that does not load is said"
            time.sleep(0.5)
        assert "run second " in send("second-bucket"), "the routes it had are still served"
    assert "no pipeline named 'ech0'; did you mean 'echo'?" in (tmp_path / "dev.log").read_text()


def test_a_rerun_beside_dev_ends_as_promptly_as_an_event_s_run(tmp_path: Path) -> None:
    """A command run beside `dev` sends its runs' notices to the stack `dev` announces in the
    state dir: the rerun ends in seconds, not at a reconcile pass a minute later."""
    import json
    import time

    from tests.support import free_port, server

    (tmp_path / "pipelines").mkdir()
    shutil.copy(ROOT / "tests" / "support" / "echo_pipeline.py", tmp_path / "pipelines" / "echo.py")
    (tmp_path / "routes.yaml").write_text(RELOADED)
    env = env_for(tmp_path, routes=tmp_path / "routes.yaml")
    port = free_port()

    def ended(run_key: str, within: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < within:
            runs = json.loads(cli("runs", "--json", cwd=tmp_path, env=env).stdout)
            if any(run["run_key"] == run_key and run["state"] == "SUCCEEDED" for run in runs):
                return time.monotonic() - started
            time.sleep(0.5)
        raise AssertionError(f"{run_key} did not end within {within} s")

    with server(kfp_trigger("dev", "--port", str(port)), env, port, tmp_path / "dev.log") as url:
        sent = cli("send", "object", "first-bucket/a.csv", "--url", url, "--json", cwd=tmp_path, env=env)
        (decision,) = json.loads(sent.stdout)["answer"]["decisions"]
        ended(decision["run_key"], 60)
        again = json.loads(cli("rerun", decision["run_key"], "--json", cwd=tmp_path, env=env).stdout)
        assert ended(again["run_key"], 30) < 30


def test_reconcile_lists_the_runs_it_left_as_they_are_and_why(tmp_path: Path) -> None:
    import json
    import os
    import time

    from functions.adapters.sqlite.ledger import SqliteLedger
    from functions.service.records import NewRun

    (tmp_path / "pipelines").mkdir()
    shutil.copy(ROOT / "tests" / "support" / "echo_pipeline.py", tmp_path / "pipelines" / "echo.py")
    (tmp_path / "routes.yaml").write_text(RELOADED)
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    for number in range(3):
        key = f"first/first-bucket/{number}.csv#1"
        ledger.claim(
            NewRun(key, "first", "echo", "v1", "local", {}, f"e-{number}"), now=time.time(), lease=60
        )
        ledger.mark_submitted(key, 1, f"local-{number}", now=time.time())
        runner = tmp_path / "runs" / f"local-{number}"  # a runner that is alive: this test
        runner.mkdir(parents=True)
        (runner / "pid").write_text(str(os.getpid()))
        (runner / "request.json").write_text("{}")
    env = env_for(tmp_path, routes=tmp_path / "routes.yaml")
    text = cli("reconcile", cwd=tmp_path, env=env)
    assert "left 3 run(s) as they are:" in text.stdout, text.stdout + text.stderr
    assert (
        "first/first-bucket/0.csv#1 SUBMITTED: submitted less than 60 s ago: left to its notice"
        in text.stdout
    )
    later = env | {"KFP_TRIGGER_RECONCILE_GRACE_SECONDS": "0"}
    left = json.loads(cli("reconcile", "--json", cwd=tmp_path, env=later).stdout)["left"]
    assert [(run["run_key"], run["reason"]) for run in left] == [
        (f"first/first-bucket/{number}.csv#1", "not ended: its engine reports it running")
        for number in range(3)
    ]


def test_replaying_the_quarantine_counts_each_event_once(tmp_path: Path) -> None:
    """Four events quarantined, replayed twice while routes.yaml still has no route for them:
    the overview still counts four."""
    import json

    from functions import bootstrap
    from functions.service import intake
    from functions.settings import Settings
    from tests.support import ROUTES, call, storage_event

    settings = Settings(routes=ROUTES, state_dir=tmp_path, landing_dir=tmp_path / "landing", auth="none")
    services = bootstrap.build(settings)
    for number in range(4):
        headers, body = storage_event("forgotten-bucket", f"{number}.csv", event_id=f"lost-{number}")
        assert call(intake.handle, services, headers, body).body["outcome"] == "quarantined"
    env = env_for(tmp_path)
    for _ in range(2):
        assert cli("replay", "--quarantine", cwd=tmp_path, env=env).returncode == 0
    status = json.loads(cli("status", "--json", cwd=tmp_path, env=env).stdout)
    assert status["quarantined"] == 4, status


def test_status_lists_every_route_with_what_it_listens_to_its_next_tick_and_latest_decision(
    tmp_path: Path,
) -> None:
    """After one event, the routes that never fired are there too, waiting on what they say."""
    import json

    from functions import bootstrap
    from functions.service import intake
    from functions.settings import Settings
    from tests.support import call, storage_event

    example = ROOT / "deploy" / "routes.example.yaml"
    settings = Settings(routes=example, state_dir=tmp_path, landing_dir=tmp_path / "landing", auth="none")
    services = bootstrap.build(settings)
    headers, body = storage_event("acme-survey-landing", "responses/t1/2026-12-07/part-0.csv")
    call(intake.handle, services, headers, body)
    env = env_for(tmp_path, routes=example)
    report = json.loads(cli("status", "--json", cwd=tmp_path, env=env).stdout)
    lines = {line["route"]: line for line in report["routes"]}
    assert list(lines) == [
        "survey-responses-landed",
        "survey-closed",
        "survey-table-loaded",
        "nightly-retrain",
    ]
    assert lines["survey-closed"]["listens"] == "pubsub product-events"
    assert lines["survey-closed"]["last_decision"] is None
    assert lines["nightly-retrain"]["next_tick"].endswith(":00:00Z")
    assert lines["survey-responses-landed"]["last_decision"]["outcome"] == "skipped"
    text = cli("status", cwd=tmp_path, env=env).stdout
    assert (
        "  survey-table-loaded: bigquery acme-analytics.surveys.responses_{tenant}\n    last: no decision yet"
        in text
    )


FAILING = """version: 1
pipelines:
  echo: {source: pipelines/echo.py:echo_pipeline}
routes:
  - name: boom
    when: {storage: {bucket: boom-bucket}}
    run: {pipeline: echo, params: {fail: true}}
"""


def test_a_failed_run_says_what_its_task_raised_and_where_its_log_is(tmp_path: Path) -> None:
    """`explain` and the run's page: the exception the task raised (kfp.local itself says only
    which task failed) and the runner's log file; the published result says the reason only."""
    import json
    import time

    from functions import bootstrap
    from functions.service import intake
    from functions.settings import Settings
    from tests.support import call, storage_event

    (tmp_path / "pipelines").mkdir()
    shutil.copy(ROOT / "tests" / "support" / "echo_pipeline.py", tmp_path / "pipelines" / "echo.py")
    (tmp_path / "routes.yaml").write_text(FAILING)
    settings = Settings(routes=tmp_path / "routes.yaml", state_dir=tmp_path, auth="none")
    answer = call(intake.handle, bootstrap.build(settings), *storage_event("boom-bucket", "a.csv"))
    (decision,) = answer.body["decisions"]
    env = env_for(tmp_path, routes=tmp_path / "routes.yaml", KFP_TRIGGER_RECONCILE_GRACE_SECONDS="0")
    deadline = time.monotonic() + 90
    while "FAILED" not in (explained := cli("explain", decision["run_key"], cwd=tmp_path, env=env).stdout):
        assert time.monotonic() < deadline, explained
        cli("reconcile", cwd=tmp_path, env=env)
        time.sleep(1)
    assert "It raised RuntimeError: asked to fail" in explained
    log = next(line for line in explained.splitlines() if line.strip().startswith("log: ")).split("log: ", 1)[
        1
    ]
    assert log.endswith("runner.log")
    assert "RuntimeError: asked to fail" in Path(log).read_text()
    (result,) = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert "runner.log" not in json.dumps(result), "no local path reaches the product"
    assert "asked to fail" in result["data"]["error"]["message"]


def test_backfill_streams_its_decisions_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """Each decision is printed as it is made, piped too; Ctrl-C stops between two objects: the
    one in hand is finished (nothing left CLAIMED), and what was not sent is said."""
    import signal

    from functions.bootstrap import ledger_from

    (tmp_path / "pipelines").mkdir()
    shutil.copy(ROOT / "tests" / "support" / "echo_pipeline.py", tmp_path / "pipelines" / "echo.py")
    (tmp_path / "routes.yaml").write_text(RELOADED)
    bucket = tmp_path / "landing" / "first-bucket"
    bucket.mkdir(parents=True)
    for number in range(400):
        (bucket / f"part-{number:04}.csv").write_text("x")
    env = env_for(
        tmp_path, routes=tmp_path / "routes.yaml", KFP_TRIGGER_PAUSED="true"
    )  # runs wait in the queue
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            kfp_trigger("backfill", "--route", "first", "--since", "1d"),
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert process.stdout is not None
    first = process.stdout.readline()  # before the command ends: streamed
    assert first.startswith("queued"), first
    process.send_signal(signal.SIGINT)
    # the rest from the same buffered reader: readline may have buffered more lines than it gave
    # (communicate() would read past them from the raw pipe)
    with process.stdout:
        out = process.stdout.read()
    process.wait(timeout=120)
    err = errors.read_text()
    assert process.returncode == 130, err
    assert "interrupted: those above were sent, the rest of the span was not" in err
    printed = 1 + sum(line.startswith("queued") for line in out.splitlines())
    assert printed < 400, "stopped before the end"
    ledger = ledger_from(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    runs = ledger.runs(limit=1000)
    assert len(runs) == printed, "each one printed was sent, and only those"
    assert {run.state.value for run in runs} == {"QUEUED"}, "nothing left CLAIMED"


def test_demo_cut_short_leaves_no_runner_behind(tmp_path: Path) -> None:
    """Ctrl-C while the demo's run runs: the run is cancelled, its runner is gone, and it says so."""
    import os
    import signal
    import time

    state = tmp_path / "demo"
    process = subprocess.Popen(
        kfp_trigger("demo", "--state-dir", str(state), "--landing-dir", str(tmp_path / "landing")),
        cwd=tmp_path,
        env=env_for(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (pids := list((state / "runs").glob("*/pid"))):
        assert time.monotonic() < deadline, "no run started"
        assert process.poll() is None, "the demo ended before its run started"
        time.sleep(0.2)
    runner = int(pids[0].read_text())
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    assert "its runner" in out, out
    assert "is gone" in out, out
    deadline = time.monotonic() + 30
    while True:
        try:
            os.kill(runner, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{runner}/status").read_text().split("State:")[1].split()[0] == "Z":
            break  # a zombie of init's: gone
        assert time.monotonic() < deadline, "the runner still runs"
        time.sleep(0.2)
