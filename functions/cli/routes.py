"""`kfp-trigger routes …` and `simulate`: check routes.yaml exactly as the function loads it,
print its schema and reference, and show what an event would start, touching nothing."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from events.errors import BadEvent, RoutesError
from functions.cli import common
from functions.cli.common import settings_options


@click.group()
def routes() -> None:
    """Work with routes.yaml."""


@routes.command("check")
@click.argument("path", required=False, envvar="KFP_TRIGGER_ROUTES", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print {valid, problems, routes, pipelines}")
def routes_check(path: str | None, as_json: bool) -> None:
    """Validate PATH (default: $KFP_TRIGGER_ROUTES or routes.yaml) exactly as the function does.

    Compiles every pipeline and checks each route's parameters against it. Lists every problem
    with its place in the file; exits 1 if there is any.
    """
    from pipelines import catalog as routes_catalog

    target = Path(path or "routes.yaml")
    image = common.settings().notify_image  # versions as the function computes them
    with tempfile.TemporaryDirectory() as scratch:
        try:
            loaded = routes_catalog.load(target, Path(scratch), image)
        except RoutesError as exc:
            if as_json:
                common.emit({"valid": False, "problems": exc.problems})
            else:
                click.echo(f"{target}: {len(exc.problems)} problem(s)", err=True)
                for problem in exc.problems:
                    click.echo(f"  {problem}", err=True)
            sys.exit(1)
    versions = {name: pipeline.version_name for name, pipeline in loaded.catalog.items()}
    if as_json:
        common.emit(
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
    from pipelines import catalog as routes_catalog

    settings = common.settings(routes, state_dir, landing_dir)
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
                loaded = routes_catalog.load(settings.routes, Path(scratch), settings.notify_image)
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
        common.emit(report)
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
