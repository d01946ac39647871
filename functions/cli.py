"""`kfp-trigger`: check routes, simulate events, run the embedded stack, inspect runs.

Options mirror the `KFP_TRIGGER_*` environment variables the deployed function reads, so the
CLI and the function always see the same configuration.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from events.errors import BadEvent, KfpTriggerError, RoutesError
from functions import logs
from functions.ledger import Ledger
from functions.settings import Settings, SettingsError

if TYPE_CHECKING:  # the services pull in every adapter: commands import them when they run
    from functions.bootstrap import Services

EXAMPLES = """
\b
Quick start:
  kfp-trigger demo                          land survey data, watch one run end to end
  kfp-trigger routes check routes.yaml      validate a routes file (exit 1 on errors)
  kfp-trigger simulate event.json --json    which routes would fire, touching nothing
  kfp-trigger dev                           serve both targets, watch ./landing, tick schedules
  kfp-trigger runs --state FAILED --json    runs recorded in the ledger
  kfp-trigger status                        runs by route and state, queue, quarantine, claims
  kfp-trigger explain EVENT_ID|RUN_KEY      every decision for one event or run
  kfp-trigger reconcile                     finish runs whose completion notice was lost
  kfp-trigger rerun RUN_KEY                 run it again on purpose (a new run key)
  kfp-trigger pause / resume                hold every submission in the queue / start them
  kfp-trigger deploy plan --project P --region R   Terraform for everything routes.yaml needs
"""


def _settings(routes: str | None, state_dir: str | None, landing_dir: str | None) -> Settings:
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    changes: dict[str, Any] = {}
    for name, value in (("routes", routes), ("state_dir", state_dir), ("landing_dir", landing_dir)):
        if value is not None:
            changes[name] = Path(value)
    return replace(settings, **changes)


def settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--routes/--state-dir/--landing-dir, each defaulting to its KFP_TRIGGER_* variable."""
    options = [
        click.option(
            "--routes", "routes", envvar="KFP_TRIGGER_ROUTES", help="routes file  [default: routes.yaml]"
        ),
        click.option(
            "--state-dir",
            envvar="KFP_TRIGGER_STATE_DIR",
            help="ledger, results, runs  [default: .kfp-trigger]",
        ),
        click.option(
            "--landing-dir",
            envvar="KFP_TRIGGER_LANDING_DIR",
            help="local stand-in for buckets  [default: landing]",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _services(routes: str | None, state_dir: str | None, landing_dir: str | None) -> Services:
    """The service as the function would build it, for a command (no server, so no auth)."""
    from functions import bootstrap

    settings = replace(_settings(routes, state_dir, landing_dir), auth="none")
    try:
        return bootstrap.build(settings)
    except (RoutesError, SettingsError) as exc:
        raise click.ClickException(str(exc)) from exc


def _emit(data: object) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@click.group(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Start Kubeflow Pipelines runs from Google Cloud events, exactly once per event.

    Events (a Cloud Storage object landed, a Pub/Sub message from the product, a BigQuery job
    wrote a table, a Cloud Scheduler tick) are matched against routes.yaml; each match starts
    one pipeline run, and each run's end is published as a result CloudEvent.
    """


@main.group()
def routes() -> None:
    """Work with routes.yaml."""


@routes.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print {valid, problems, routes, pipelines}")
def routes_check(path: str | None, as_json: bool) -> None:
    """Validate PATH (default: $KFP_TRIGGER_ROUTES or routes.yaml) exactly as the function does.

    Compiles every pipeline and checks each route's parameters against it. Lists every problem
    with its place in the file; exits 1 if there is any.
    """
    from functions import config

    target = Path(path or os.environ.get("KFP_TRIGGER_ROUTES", "routes.yaml"))
    with tempfile.TemporaryDirectory() as scratch:
        try:
            loaded = config.load(target, Path(scratch))
        except RoutesError as exc:
            if as_json:
                _emit({"valid": False, "problems": exc.problems})
            else:
                click.echo(f"{target}: {len(exc.problems)} problem(s)", err=True)
                for problem in exc.problems:
                    click.echo(f"  {problem}", err=True)
            sys.exit(1)
    versions = {name: pipeline.version_name for name, pipeline in loaded.catalog.items()}
    if as_json:
        _emit(
            {"valid": True, "problems": [], "routes": [r.name for r in loaded.rules], "pipelines": versions}
        )
        return
    click.echo(f"{target}: OK — {len(loaded.rules)} route(s), {len(loaded.catalog)} pipeline(s)")
    for name, version in versions.items():
        click.echo(f"  pipeline {name}: {version}")


@routes.command("schema")
def routes_schema() -> None:
    """Print the JSON Schema of routes.yaml, for editors.

    \b
    With the YAML language server (VS Code, Neovim, …), start routes.yaml with:
      # yaml-language-server: $schema=deploy/routes.schema.json
    """
    from events.routes import json_schema

    click.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))


@routes.command("reference")
def routes_reference() -> None:
    """Print the routes.yaml reference (Markdown), generated from the schema."""
    from functions.reference import render

    click.echo(render(), nl=False)


@main.command()
@click.argument("event_file", type=click.Path(exists=True, dir_okay=False))
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def simulate(
    event_file: str, routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool
) -> None:
    """Show what EVENT_FILE (a structured-mode CloudEvent JSON) would start. Touches nothing.

    \b
    JSON output:
      {"event": {"type", "source", "id", "key"},
       "outcome": "routed" | "ignored" | "unrouted" | "bad-event",
       "decisions": [{"route", "matched", "reason", "pipeline", "run_key", "params"}]}
    """
    from events.decoders import decode
    from events.envelope import EnvelopeError, parse_http
    from events.model import Ignored
    from events.router import Router, RunRequest
    from functions import config

    settings = _settings(routes, state_dir, landing_dir)
    body = Path(event_file).read_bytes()
    report: dict[str, Any] = {"event": {}, "outcome": "", "decisions": []}
    try:
        attributes, data = parse_http({"content-type": "application/cloudevents+json"}, body)
        report["event"] = {k: attributes.get(k) for k in ("type", "source", "id")}
        decoded = decode(attributes, data)
    except (EnvelopeError, BadEvent) as exc:
        report |= {"outcome": "bad-event", "reason": getattr(exc, "reason", None) or str(exc)}
        decoded = None
    if isinstance(decoded, Ignored):
        report |= {"outcome": "ignored", "reason": decoded.reason}
    elif decoded is not None:
        report["event"]["key"] = decoded.key
        with tempfile.TemporaryDirectory() as scratch:
            try:
                loaded = config.load(settings.routes, Path(scratch))
            except RoutesError as exc:
                raise click.ClickException(str(exc)) from exc
        routing = Router(loaded.rules).route(decoded)
        report["outcome"] = "routed" if routing.routed else "unrouted"
        if not routing.routed:
            report["reason"] = f"no route listens to {decoded.kind} {decoded.index!r}"
        for decision in routing.decisions:
            entry: dict[str, Any] = dict.fromkeys(("reason", "pipeline", "run_key", "params"))
            entry |= {"route": decision.route, "matched": isinstance(decision, RunRequest)}
            if isinstance(decision, RunRequest):
                entry |= {
                    "pipeline": decision.pipeline,
                    "run_key": decision.run_key,
                    "params": dict(decision.params),
                }
            else:
                entry["reason"] = decision.reason
            report["decisions"].append(entry)
    if as_json:
        _emit(report)
        return
    event = report["event"]
    click.echo(f"event {event.get('type')} {event.get('id')}  key={event.get('key', '-')}")
    click.echo(f"outcome: {report['outcome']}" + (f" ({report['reason']})" if report.get("reason") else ""))
    for decision in report["decisions"]:
        if decision["matched"]:
            click.echo(f"  RUN  {decision['route']} → {decision['pipeline']}  run_key={decision['run_key']}")
            click.echo(f"       params={json.dumps(decision['params'], sort_keys=True)}")
        else:
            click.echo(f"  skip {decision['route']}: {decision['reason']}")


@main.command()
@settings_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, envvar="PORT", type=int)
def dev(routes: str | None, state_dir: str | None, landing_dir: str | None, host: str, port: int) -> None:
    """Run the embedded stack until Ctrl-C.

    \b
    Serves POST /handle_event and POST /handle_completion (functions-framework apps), turns
    new files in LANDING/<bucket>/<object name> into storage finalized events, fires each
    schedule route's cron, and completes runs whose completion notice was missed.
    """
    from functions import bootstrap, completion
    from functions.dev import DevServer, every, post, start_background, tick_schedules, watch_landing

    settings = _settings(routes, state_dir, landing_dir)
    server = DevServer(host, port)
    completion_url = f"{server.url}/handle_completion"
    if not settings.completion_topic:  # no Pub/Sub: runs post their notice straight to the target
        settings = replace(settings, completion_url=completion_url)
    if "KFP_TRIGGER_AUTH" not in os.environ:
        settings = replace(
            settings, auth="none"
        )  # a local server: say KFP_TRIGGER_AUTH=google-oidc to test auth
    if "KFP_TRIGGER_LOG_FORMAT" not in os.environ:
        settings = replace(settings, log_format="text")  # a terminal
    os.environ.update(settings.to_env())
    try:
        services = bootstrap.services()
    except (RoutesError, SettingsError) as exc:
        raise click.ClickException(str(exc)) from exc
    stop = threading.Event()
    events_url = f"{server.url}/handle_event"
    start_background("watcher", lambda: watch_landing(settings.landing_dir, events_url, stop))
    send = partial(post, events_url)
    start_background("ticker", lambda: tick_schedules(services.router.rules, send, stop))
    start_background("reconciler", lambda: every(5.0, lambda: completion.reconcile(services), stop))
    if settings.completion_topic:  # notices go through Pub/Sub: relay them as Eventarc would
        from functions.relay import ensure_subscription, relay

        topic = settings.completion_topic.removeprefix("pubsub://")
        subscription = topic.replace("/topics/", "/subscriptions/") + "-kfp-trigger-dev"
        ensure_subscription(topic, subscription)
        start_background("relay", lambda: relay(topic, subscription, completion_url, stop))
    click.echo(f"kfp-trigger dev on {server.url}; landing folder {settings.landing_dir}; Ctrl-C to stop")
    try:
        server.start()
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.stop()


@main.command()
@settings_options
@click.option("--timeout", default=240.0, show_default=True, help="seconds to wait for the run")
def demo(routes: str | None, state_dir: str | None, landing_dir: str | None, timeout: float) -> None:
    """Run the trigger loop once on the embedded default and show each step.

    Uses deploy/routes.example.yaml and a fresh .kfp-trigger/demo unless told otherwise.
    Exits 0 only if the run SUCCEEDED and its result was published.
    """
    from functions.demo import run_demo

    root = Path(__file__).resolve().parent.parent
    settings = replace(
        _settings(None, None, None),
        routes=Path(routes) if routes else root / "deploy" / "routes.example.yaml",
        state_dir=Path(state_dir) if state_dir else Path(".kfp-trigger/demo"),
        landing_dir=Path(landing_dir) if landing_dir else Path(".kfp-trigger/demo/landing"),
        auth="none",
    )
    logs.configure("text", logging.WARNING)
    sys.exit(run_demo(settings, click.echo, timeout))


@main.command()
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print {finished}")
def reconcile(routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool) -> None:
    """Finish runs whose completion notice was lost, and re-publish unpublished results.

    The same work as the `reconcile` function target (which Cloud Scheduler calls). Runs
    submitted less than KFP_TRIGGER_RECONCILE_GRACE_SECONDS ago are left alone. Safe to run
    while the service runs, and concurrently with itself.
    """
    from functions import completion

    finished = completion.reconcile(_services(routes, state_dir, landing_dir))
    if as_json:
        _emit({"finished": finished})
    else:
        click.echo(f"finished or re-published {finished} run(s)")


@main.command()
@click.argument("run_key")
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print {run_key, outcome, ...}")
def rerun(
    run_key: str, routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool
) -> None:
    """Start a fresh run of RUN_KEY on purpose, although it already ran.

    Deduplication would refuse the same run key, so the new run gets a key derived from the
    old one, RUN_KEY~rerun-N (the first N not taken). It runs the route's current pipeline
    version with the recorded parameters, and its result is published like any other.
    Exit status 1 if the run could not be started (the reason is printed).
    """
    from events.errors import PermanentError
    from functions import dispatch
    from functions.ledger import Outcome

    services = _services(routes, state_dir, landing_dir)
    try:
        new_key, outcome, detail = dispatch.rerun(services, run_key)
    except PermanentError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        _emit({"run_key": new_key, "rerun_of": run_key, "outcome": outcome, **detail})
    elif outcome is Outcome.RUN:
        click.echo(f"started {new_key} as {detail['run_id']}")
    if outcome is not Outcome.RUN:
        raise click.ClickException(f"{new_key}: {outcome}: {detail.get('reason', detail)}")


@main.command()
@settings_options
@click.option(
    "--json", "as_json", is_flag=True, help="print {paused, runs, queued, quarantined, oldest_open_claim}"
)
def status(routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool) -> None:
    """How the service stands: runs by route and state, the queue, quarantined events, the
    oldest open claim (a claim past its lease means a delivery died mid-way; `reconcile`
    resolves it), and whether submissions are paused."""
    from functions.ledger import Outcome, State
    from functions.limits import PAUSED
    from functions.results import iso

    settings = _settings(routes, state_dir, landing_dir)
    ledger = _ledger(settings)
    summary = ledger.summary()
    by_route: dict[str, dict[str, int]] = {}
    for (route, state), count in sorted(summary.items()):
        by_route.setdefault(route, {})[state.value] = count
    claims = ledger.runs(state=State.CLAIMED)
    oldest = min(claims, key=lambda run: run.created_at, default=None)
    now = time.time()
    report: dict[str, object] = {
        "paused": settings.paused or ledger.flag(PAUSED),
        "runs": by_route,
        "queued": sum(count for (_, state), count in summary.items() if state is State.QUEUED),
        "quarantined": ledger.count_decisions(Outcome.QUARANTINED),
        "oldest_open_claim": None
        if oldest is None
        else {
            "run_key": oldest.run_key,
            "route": oldest.route,
            "since": iso(oldest.created_at),
            "age_seconds": round(now - oldest.created_at, 1),
            "past_lease": oldest.lease_until <= now,
        },
    }
    if as_json:
        _emit(report)
        return
    click.echo(f"submissions: {'PAUSED (kfp-trigger resume)' if report['paused'] else 'running'}")
    states = [state.value for state in State]
    width = max([len("route"), *(len(route) for route in by_route)])
    click.echo(f"{'route':<{width}}  " + " ".join(f"{state:>9}" for state in states))
    for route, counts in by_route.items():
        click.echo(f"{route:<{width}}  " + " ".join(f"{counts.get(state, 0):>9}" for state in states))
    if not by_route:
        click.echo("(no runs yet)")
    click.echo(f"queued: {report['queued']}   quarantined events: {report['quarantined']}")
    if oldest is None:
        click.echo("open claims: none")
    else:
        late = " PAST ITS LEASE: run `kfp-trigger reconcile`" if oldest.lease_until <= now else ""
        click.echo(f"oldest open claim: {oldest.run_key} ({now - oldest.created_at:.0f} s){late}")


@main.command()
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print {paused}")
def pause(routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool) -> None:
    """Hold every submission: events are still recorded, and runs wait in the queue.

    The switch lives in the ledger, so it holds for every instance at once. Runs already
    started go on. `kfp-trigger resume` starts what waited. (KFP_TRIGGER_PAUSED=true holds
    submissions too, for the instances that have it set.)
    """
    from functions.limits import PAUSED

    _ledger(_settings(routes, state_dir, landing_dir)).set_flag(PAUSED, True)
    if as_json:
        _emit({"paused": True})
    else:
        click.echo("paused: submissions wait in the queue")


@main.command()
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print {paused, started}")
def resume(routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool) -> None:
    """Lift the pause and start the queued runs that the limits allow now."""
    from functions import dispatch
    from functions.limits import PAUSED

    services = _services(routes, state_dir, landing_dir)
    services.ledger.set_flag(PAUSED, False)
    started = dispatch.start_queued(services)
    if as_json:
        _emit({"paused": services.settings.paused, "started": started})
    else:
        click.echo(f"resumed: started {started} queued run(s)")
        if services.settings.paused:
            click.echo("KFP_TRIGGER_PAUSED=true is still set here: this process still holds submissions")


def _ledger(settings: Settings) -> Ledger:
    from functions.adapters import ledger_from, path_of

    url = settings.ledger_url
    if url.startswith("sqlite:") and not path_of(url).exists():
        raise click.ClickException(f"no ledger at {path_of(url)} (set --state-dir or KFP_TRIGGER_LEDGER)")
    return ledger_from(url)


@main.command()
@settings_options
@click.option("--route", help="only this route")
@click.option(
    "--state",
    type=click.Choice(["QUEUED", "CLAIMED", "SUBMITTED", "SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"]),
)
@click.option("--json", "as_json", is_flag=True, help="print a JSON list")
def runs(
    routes: str | None,
    state_dir: str | None,
    landing_dir: str | None,
    route: str | None,
    state: str | None,
    as_json: bool,
) -> None:
    """List the runs in the ledger, oldest first."""
    from functions.ledger import State
    from functions.results import iso

    records = _ledger(_settings(routes, state_dir, landing_dir)).runs(
        route=route, state=State(state) if state else None
    )
    rows = [
        {
            "run_key": r.run_key,
            "route": r.route,
            "pipeline": r.pipeline,
            "version": r.version,
            "state": r.state,
            "run_id": r.run_id,
            "event_id": r.event_id,
            "created_at": iso(r.created_at),
            "finished_at": iso(r.finished_at),
            "published": r.published_at is not None,
            "metrics": r.details.get("metrics", {}),
        }
        for r in records
    ]
    if as_json:
        _emit(rows)
        return
    if not rows:
        click.echo("no runs")
    for row in rows:
        click.echo(f"{row['state']:<10} {row['route']:<28} {row['run_key']}  {row['run_id'] or '-'}")


@main.command()
@click.argument("identifier")
@settings_options
@click.option("--json", "as_json", is_flag=True)
def explain(
    identifier: str, routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool
) -> None:
    """Show every decision for an event id, event key or run key, and the runs it led to."""
    from functions.results import iso

    ledger = _ledger(_settings(routes, state_dir, landing_dir))
    trail = ledger.trail(identifier)
    # A run key leads to its events; show everything those events caused (other routes too).
    for event_id in sorted({step.event_id for step in trail if step.event_id} - {identifier}):
        trail += [step for step in ledger.trail(event_id) if step not in trail]
    trail.sort(key=lambda step: step.at)
    run_keys = sorted(
        {step.run_key for step in trail if step.run_key} | ({identifier} if ledger.get(identifier) else set())
    )
    related = [ledger.get(key) for key in run_keys]
    if not trail and not any(related):
        raise click.ClickException(f"nothing recorded for {identifier!r}")
    if as_json:
        _emit(
            {"decisions": [asdict(step) for step in trail], "runs": [asdict(run) for run in related if run]}
        )
        return
    for step in trail:
        click.echo(f"{iso(step.at)}  {step.outcome:<11} {step.route or '-':<28} {step.reason}")
        click.echo(f"{'':26}event {step.event_id} key={step.event_key or '-'} run_key={step.run_key or '-'}")
    for run in related:
        if run:
            published = run.published_at is not None
            click.echo(
                f"run {run.run_key}: {run.state} ({run.run_id or 'not submitted'}), published={published}"
            )
            click.echo(f"    metrics={json.dumps(run.details.get('metrics', {}), sort_keys=True)}")


@main.group()
def deploy() -> None:
    """Deploy to Google Cloud what routes.yaml needs."""


@deploy.command("plan")
@click.option(
    "--routes", "routes_path", default="routes.yaml", show_default=True, type=click.Path(dir_okay=False)
)
@click.option("--project", required=True, help="the Google Cloud project to deploy into")
@click.option("--region", required=True, help="where the functions, triggers and jobs run, e.g. europe-west1")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["terraform", "gcloud"]),
    default="terraform",
    show_default=True,
    help="terraform: one main.tf (google provider); gcloud: an idempotent bash script",
)
@click.option("--out", type=click.Path(dir_okay=False), help="write to this file instead of stdout")
def deploy_plan(routes_path: str, project: str, region: str, output_format: str, out: str | None) -> None:
    """Render every resource the routes need: topics and subscriptions (with dead letters),
    the three functions, Eventarc triggers, Scheduler jobs, Firestore, service accounts with
    least-privilege roles, Workload Identity Federation for the AWS product, and alerts.

    \b
    Terraform (apply from the checkout that holds routes.yaml and main.py):
      kfp-trigger deploy plan --project acme-analytics --region europe-west1 --out deploy/terraform/main.tf
      terraform -chdir=deploy/terraform init && terraform -chdir=deploy/terraform apply -var source_dir=../..
    \b
    gcloud (run from the checkout; safe to run again):
      kfp-trigger deploy plan --project acme-analytics --region europe-west1 --format gcloud > deploy.sh
      bash deploy.sh
    """
    from events.routes import load_routes
    from functions.plan import PlanError, build_plan, render_gcloud, render_terraform

    try:
        config = load_routes(Path(routes_path).read_text(encoding="utf-8"))
        plan = build_plan(config, project, region)
    except OSError as exc:
        raise click.ClickException(f"{routes_path}: cannot read ({exc.strerror})") from exc
    except (RoutesError, PlanError) as exc:
        raise click.ClickException(str(exc)) from exc
    text = render_terraform(plan) if output_format == "terraform" else render_gcloud(plan)
    if out is None:
        click.echo(text, nl=False)
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}: {len(plan.resources)} resources", err=True)


@main.group()
def pipelines() -> None:
    """Work with the pipeline catalog."""


@pipelines.command("compile")
@settings_options
@click.option(
    "--out", type=click.Path(file_okay=False), help="folder for the packages  [default: STATE/packages]"
)
def pipelines_compile(
    routes: str | None, state_dir: str | None, landing_dir: str | None, out: str | None
) -> None:
    """Compile every pipeline in the routes file to <name>-<hash12>.yaml."""
    from functions import config

    settings = _settings(routes, state_dir, landing_dir)
    target = Path(out) if out else settings.packages_dir
    try:
        loaded = config.load(settings.routes, target)
    except RoutesError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, pipeline in loaded.catalog.items():
        click.echo(f"{name}: {pipeline.package}  (sha256 {pipeline.version})")


@pipelines.command("push")
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print [{pipeline, version, pipeline_id, version_id}]")
def pipelines_push(routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool) -> None:
    """Upload the current version of every `backend: kfp` pipeline to the cluster.

    Each version is named <pipeline>-<sha12> and uploaded once: a version already on the
    cluster is found, not duplicated. The cluster is KFP_TRIGGER_KFP_HOST (and _NAMESPACE,
    _CLIENT_ID or _TOKEN).
    """
    from functions import config
    from functions.adapters import kfp_backend

    settings = _settings(routes, state_dir, landing_dir)
    try:
        loaded = config.load(settings.routes, settings.packages_dir)
    except RoutesError as exc:
        raise click.ClickException(str(exc)) from exc
    on_cluster = [pipeline for pipeline in loaded.catalog.values() if pipeline.backend == "kfp"]
    if not on_cluster:
        if as_json:
            _emit([])
        else:
            click.echo("no pipeline has backend: kfp; nothing to push")
        return
    try:
        backend = kfp_backend(settings)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    pushed = []
    for pipeline in on_cluster:
        try:
            pipeline_id, version_id = backend.version(pipeline)
        except KfpTriggerError as exc:
            raise click.ClickException(f"{pipeline.name}: {exc}") from exc
        pushed.append(
            {
                "pipeline": pipeline.name,
                "version": pipeline.version_name,
                "pipeline_id": pipeline_id,
                "version_id": version_id,
            }
        )
    if as_json:
        _emit(pushed)
        return
    for row in pushed:
        click.echo(f"{row['version']}: pipeline {row['pipeline_id']}, version {row['version_id']}")
