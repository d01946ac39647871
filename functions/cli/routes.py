"""`kfp-trigger routes …` and `simulate`: check routes.yaml exactly as the function loads it,
print its schema and reference, and show what an event would start, touching nothing."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from events.errors import BadEvent, RoutesError
from events.rules import Rule, listeners
from functions.cli import common
from functions.cli.common import settings_options


@click.group()
def routes() -> None:
    """Work with routes.yaml."""


@routes.command("check")
@click.argument("path", required=False, envvar="KFP_TRIGGER_ROUTES", type=click.Path(dir_okay=False))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="print {valid, problems: [{file, line, column, path, message}], warnings, routes, pipelines}",
)
def routes_check(path: str | None, as_json: bool) -> None:
    """Validate PATH (default: $KFP_TRIGGER_ROUTES or routes.yaml) exactly as the function does.

    Compiles every pipeline and checks each route's parameters against it. Lists every problem
    as FILE:LINE:COLUMN: PATH: MESSAGE (what editors and CI annotations read); exits 1 if there is
    any.
    """
    from events.locate import locate, tree
    from pipelines import catalog as routes_catalog

    target = Path(path or "routes.yaml")
    image = common.settings().notify_image  # versions as the function computes them
    with tempfile.TemporaryDirectory() as scratch:
        try:
            loaded = routes_catalog.load(target, Path(scratch), image)
        except RoutesError as exc:
            try:
                root = tree(target.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                root = None
            found = [locate(root, problem) for problem in exc.problems]
            if as_json:
                common.emit({"valid": False, "problems": [each.as_json(str(target)) for each in found]})
            else:
                click.echo(f"{target}: {len(found)} problem(s)", err=True)
                for each in found:
                    click.echo(f"  {each.text(str(target))}", err=True)
            sys.exit(1)
    versions = {name: pipeline.version_name for name, pipeline in loaded.catalog.items()}
    warnings = crowded(listeners(loaded.rules))
    if as_json:
        routes = [r.name for r in loaded.rules]
        common.emit(
            {"valid": True, "problems": [], "warnings": warnings, "routes": routes, "pipelines": versions}
        )
        return
    click.echo(f"{target}: OK — {len(loaded.rules)} route(s), {len(loaded.catalog)} pipeline(s)")
    for name, version in versions.items():
        click.echo(f"  pipeline {name}: {version}")
    for warning in warnings:
        click.echo(f"  warning: {warning}", err=True)


CROWDED = 100  # RE2 patterns on one bucket or table before `routes check` warns


def crowded(rules: Sequence[Rule]) -> list[str]:
    """Buckets (or tables' projects) whose events are matched against many RE2 patterns: each
    is linear in the name, but every event pays for all of them (events/patterns.py)."""
    import re

    counts: dict[str, int] = {}
    for rule in rules:
        if rule.pattern is not None and not isinstance(rule.pattern.regex, re.Pattern):
            where = rule.index or f"every {rule.source} event"
            counts[where] = counts.get(where, 0) + 1
    return [
        f"{index}: {count} routes match names with RE2 (patterns whose wildcards are not each followed "
        "by a separator); every event there is matched against all of them: prefer fewer routes with "
        "captures, or patterns that fit Python's re"
        for index, count in sorted(counts.items())
        if count > CROWDED
    ]


@routes.command("test")
@click.argument("cases", required=False, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--routes",
    "routes_path",
    envvar="KFP_TRIGGER_ROUTES",
    default="routes.yaml",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the routes file the cases test  [env: KFP_TRIGGER_ROUTES]",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="print {passed, failed, cases: [{case, file, passed, expected, actual, diff}]}",
)
def routes_test(cases: Path | None, routes_path: Path, as_json: bool) -> None:
    """Run the route tests in CASES (a YAML file, or a folder of them; default: route-tests/
    beside the routes file) through the service's own decode and route code.

    \b
    A case is an event and what must come of it:
      - name: a day's responses are complete
        event: events/survey-success.json   # a structured CloudEvent, relative to the case file
        routes:
          survey-responses-landed:
            run: {run_key: "…", params: {tenant: tenant-a}}   # only what is given is compared
          nightly-retrain: {skip: "does not match"}          # the reason contains this text
      - name: a deleted object is ignored
        event: events/object-deleted.json
        ignore: object deleted                               # or quarantine: TEXT
    A route the case does not list may skip but not run. A failing case prints the expectation
    against what happened as a diff. Exits 1 when a case fails, 2 when the routes or a case
    file are invalid. Duplicates, limits and signatures are not routing: see `simulate`.
    """
    from events.router import Router
    from functions.cli.route_tests import CaseFileError, run_all
    from pipelines import catalog as routes_catalog

    where = cases if cases is not None else routes_path.parent / "route-tests"
    if not where.exists():
        raise click.UsageError(f"no route tests at {where}: give CASES, a case file or a folder of them")
    with tempfile.TemporaryDirectory() as scratch:
        try:
            loaded = routes_catalog.load(routes_path, Path(scratch), common.settings().notify_image)
        except RoutesError as exc:
            click.echo(f"{routes_path}: {exc} (kfp-trigger routes check says where)", err=True)
            sys.exit(2)
    try:
        outcomes = list(run_all(where, Router(loaded.rules), common.settings().schedules_topic))
    except CaseFileError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    failed = [outcome for outcome in outcomes if not outcome.passed]
    if as_json:
        common.emit(
            {
                "passed": len(outcomes) - len(failed),
                "failed": len(failed),
                "cases": [o.as_json() for o in outcomes],
            }
        )
    else:
        for outcome in outcomes:
            click.echo(f"{'ok  ' if outcome.passed else 'FAIL'} {outcome.file}: {outcome.case}")
            if not outcome.passed:
                click.echo("\n".join(f"     {line}" for line in outcome.diff().splitlines()))
        summary = f"{len(outcomes) - len(failed)} passed, {len(failed)} failed"
        click.echo(summary if outcomes else f"no cases in {where}")
    if failed or not outcomes:
        sys.exit(1)


@routes.command("schema")
def routes_schema() -> None:
    """Print the JSON Schema of routes.yaml, for editors.

    \b
    With the YAML language server (VS Code, Neovim, …), start routes.yaml with:
      # yaml-language-server: $schema=deploy/routes.schema.json
    """
    from events.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))


@routes.command("reference")
def routes_reference() -> None:
    """Print the routes.yaml reference (Markdown), generated from the schema."""
    from functions.cli.reference import render

    click.echo(render(), nl=False)


@click.command()
@click.argument("event_file", type=click.Path(exists=True, dir_okay=False))
@settings_options
@click.option(
    "--ledger/--no-ledger",
    "use_ledger",
    default=None,
    help="read the ledger for duplicates, generations, the pause and limits  [default: when it exists]",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def simulate(
    event_file: str,
    routes: str | None,
    state_dir: str | None,
    landing_dir: str | None,
    use_ledger: bool | None,
    as_json: bool,
) -> None:
    """Show what the service would decide for EVENT_FILE (a structured-mode CloudEvent JSON)
    now. Writes nothing.

    The same decoding, routing and checks as the service: the producer's signature, the
    object's generation, the route's max_age, a manifest's batch (read from the object store),
    coalescing windows; and, read from the ledger (KFP_TRIGGER_LEDGER or the state dir's, used
    when it exists): a run key already recorded, the pause, and each limit's places. Checks it
    could not make are listed under "not checked".

    \b
    Verdicts: run, queued (a limit or the pause), join (a coalescing batch), duplicate, busy,
    skip, retry (the platform would redeliver); the whole event may be quarantined instead.
    \b
    JSON output:
      {"event": {"type", "source", "id", "key"},
       "outcome": "routed" | "ignored" | "unrouted" | "bad-event" | "quarantined", "reason",
       "ledger": URL or null, "unchecked": [what it could not check],
       "decisions": [{"route", "matched", "verdict", "reason", "pipeline", "run_key", "params"}]}
    """
    from events.decoders import decode
    from events.envelope import EnvelopeError, parse_http
    from events.model import Ignored

    settings = common.settings(routes, state_dir, landing_dir)
    body = Path(event_file).read_bytes()
    report: dict[str, Any] = {"event": {}, "outcome": "", "ledger": None, "unchecked": [], "decisions": []}
    try:
        attributes, data = parse_http({"content-type": "application/cloudevents+json"}, body)
    except EnvelopeError as exc:  # not an event at all (routes.yaml given by mistake?): say so
        raise click.ClickException(
            f"{event_file} is not a CloudEvent: {exc.message}. Give a structured-mode CloudEvent "
            'as JSON ({"specversion": "1.0", "type", "source", "id", "data"}), '
            "e.g. one of route-tests/events/"
        ) from exc
    try:
        report["event"] = {k: attributes.get(k) for k in ("type", "source", "id")}
        decoded = decode(attributes, data, settings.schedules_topic)
    except BadEvent as exc:
        report |= {"outcome": "bad-event", "reason": getattr(exc, "reason", None) or str(exc)}
        decoded = None
    if isinstance(decoded, Ignored):
        report |= {"outcome": "ignored", "reason": decoded.reason}
    elif decoded is not None:
        report["event"]["key"] = decoded.key
        _decide(report, decoded, settings, use_ledger)
    if as_json:
        common.emit(report)
    else:
        _print_simulated(report)


def _print_simulated(report: dict[str, Any]) -> None:
    """`simulate`'s report as lines: the event, the outcome, a verdict per route."""
    event = report["event"]
    click.echo(f"event {event.get('type')} {event.get('id')}  key={event.get('key', '-')}")
    click.echo(f"outcome: {report['outcome']}" + (f" ({report['reason']})" if report.get("reason") else ""))
    for decision in report["decisions"]:
        verdict = str(decision["verdict"]).upper()
        if decision["matched"]:
            target = f" → {decision['pipeline']}" if decision.get("pipeline") else ""
            click.echo(f"  {verdict:<9} {decision['route']}{target}  run_key={decision['run_key']}")
            if decision["reason"]:
                click.echo(f"            {decision['reason']}")
            click.echo(f"            params={json.dumps(decision['params'], sort_keys=True)}")
        else:
            click.echo(f"  {verdict:<9} {decision['route']}: {decision['reason']}")
    click.echo(f"ledger: {report['ledger'] or 'none (routing and event checks only)'}")
    for unchecked in report["unchecked"]:
        click.echo(f"not checked: {unchecked}")


def _decide(report: dict[str, Any], event: Any, settings: Any, use_ledger: bool | None) -> None:
    """Route `event` and preview the service's decisions into `report` (simulate's JSON shape)."""
    import time

    from events.router import Router
    from functions import bootstrap
    from functions.service import preview
    from pipelines import catalog as routes_catalog

    with tempfile.TemporaryDirectory() as scratch:
        try:
            loaded = routes_catalog.load(settings.routes, Path(scratch), settings.notify_image)
        except RoutesError as exc:
            raise click.ClickException(str(exc)) from exc
    router = Router(loaded.rules)
    routing = router.route(event)
    report["outcome"] = "routed" if routing.routed else "unrouted"
    if not routing.routed:
        report["reason"] = f"no route listens to {event.kind} {event.index!r}"
        return
    url = settings.ledger_url
    exists = not url.startswith("sqlite:") or bootstrap.path_of(url).exists()
    ledger = None
    if exists if use_ledger is None else use_ledger:
        try:
            ledger = common.ledger(settings)
        except click.ClickException:
            raise
        except Exception as exc:  # credentials, a malformed URL…: say so, and route without it
            report["unchecked"].append(f"the ledger at {url}: {type(exc).__name__}: {exc}"[:300])
    report["ledger"] = url if ledger is not None else None
    secrets = bootstrap.signature_secrets(loaded.rules)
    reader = preview.Reader(
        now=time.time(),
        ledger=ledger,
        objects=bootstrap.objects_from(settings),
        secrets=secrets,
        global_limits=loaded.config.limits,
        paused_setting=settings.paused,
    )
    found = preview.preview(event, routing, router, loaded.catalog, reader)
    report["unchecked"] += found.unchecked
    if found.refused:
        report |= {"outcome": "quarantined", "reason": found.refused}
        return
    for decision in found.decisions:
        entry: dict[str, Any] = dict.fromkeys(("reason", "pipeline", "run_key", "params"))
        entry |= {"matched": decision["verdict"] != "skip" or bool(decision["run_key"])} | decision
        report["decisions"].append(entry)
