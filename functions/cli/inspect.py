"""Read-only commands on the ledger: `status`, `runs`, `explain`."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import click

from functions.cli import common
from functions.cli.common import settings_options
from functions.service.ports import Ledger
from functions.service.records import LEDGER_STATES, JoinState, JoinStatus, RunRecord
from pipelines.backend import RunState


@click.command()
@settings_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="print {paused, runs, queued, quarantined, open_joins, oldest_open_claim}",
)
def status(routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool) -> None:
    """How the service stands: runs by route and state, the queue, quarantined events, the
    oldest open claim (a claim past its lease means a delivery died mid-way; `reconcile`
    resolves it), and whether submissions are paused."""
    from functions.service.limits import PAUSED
    from functions.service.records import Outcome, iso

    settings = common.settings(routes, state_dir, landing_dir)
    ledger = common.ledger(settings)
    summary = ledger.summary()
    by_route: dict[str, dict[str, int]] = {}
    for (route, state), count in sorted(summary.items()):
        by_route.setdefault(route, {})[state.value] = count
    claims = ledger.runs(state=RunState.CLAIMED)
    oldest = min(claims, key=lambda run: run.created_at, default=None)
    now = time.time()
    report: dict[str, object] = {
        "paused": settings.paused or ledger.flag(PAUSED),
        "runs": by_route,
        "queued": sum(count for (_, state), count in summary.items() if state is RunState.QUEUED),
        "quarantined": ledger.count_decisions(Outcome.QUARANTINED),
        "open_joins": len(ledger.joins(status=JoinStatus.OPEN)),
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
        common.emit(report)
        return
    click.echo(f"submissions: {'PAUSED (kfp-trigger resume)' if report['paused'] else 'running'}")
    states = [state.value for state in LEDGER_STATES]
    width = max([len("route"), *(len(route) for route in by_route)])
    click.echo(f"{'route':<{width}}  " + " ".join(f"{state:>9}" for state in states))
    for route, counts in by_route.items():
        click.echo(f"{route:<{width}}  " + " ".join(f"{counts.get(state, 0):>9}" for state in states))
    if not by_route:
        click.echo("(no runs yet)")
    click.echo(
        f"queued: {report['queued']}   quarantined events: {report['quarantined']}"
        f"   open joins: {report['open_joins']}"
    )
    if oldest is None:
        click.echo("open claims: none")
    else:
        late = " PAST ITS LEASE: run `kfp-trigger reconcile`" if oldest.lease_until <= now else ""
        click.echo(f"oldest open claim: {oldest.run_key} ({now - oldest.created_at:.0f} s){late}")


@click.command()
@settings_options
@click.option("--route", help="only this route")
@click.option(
    "--state",
    type=click.Choice([state.value for state in LEDGER_STATES]),
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

    from functions.service.records import iso

    records = common.ledger(common.settings(routes, state_dir, landing_dir)).runs(
        route=route, state=RunState(state) if state else None
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
        common.emit(rows)
        return
    if not rows:
        click.echo("no runs")
    for row in rows:
        click.echo(f"{row['state']:<10} {row['route']:<28} {row['run_key']}  {row['run_id'] or '-'}")


@click.command()
@click.argument("identifier")
@settings_options
@click.option("--json", "as_json", is_flag=True)
def explain(
    identifier: str, routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool
) -> None:
    """Show every decision for an event id, event key, run key or join key, and the runs it led to.

    A join's windows are told by their state (waiting on which parts until when, complete, or
    expired missing which), with every part's event; a run cancelled by a newer one names it
    (`superseded by …`), and the chain is followed."""
    from functions.service.records import iso

    settings = common.settings(routes, state_dir, landing_dir)
    ledger = common.ledger(settings)
    trail = ledger.trail(identifier)
    windows = _windows(ledger, identifier, {step.route for step in trail})
    for part in (part for window in windows for part in window.parts.values()):
        trail += [step for step in ledger.trail(part.event_id) if step not in trail]
    # A run key leads to its events; show everything those events caused (other routes too).
    for event_id in sorted({step.event_id for step in trail if step.event_id} - {identifier}):
        trail += [step for step in ledger.trail(event_id) if step not in trail]
    trail.sort(key=lambda step: step.at)
    run_keys = {step.run_key for step in trail if step.run_key} | (
        {identifier} if ledger.get(identifier) else set()
    )
    related = _with_supersede_chain(ledger, run_keys)
    if not trail and not related:
        raise click.ClickException(f"nothing recorded for {identifier!r}")
    names = _join_names(settings.routes)
    if as_json:
        common.emit(
            {
                "decisions": [asdict(step) for step in trail],
                "runs": [asdict(run) for run in related],
                "joins": [_window_json(window, names.get(window.route)) for window in windows],
            }
        )
        return
    for window in windows:
        click.echo(f"{window.route}: {_story(window, names.get(window.route))}")
        for name, part in sorted(window.parts.items()):
            click.echo(f"    part {name}: event {part.event_id} key={part.event_key} at {iso(part.at)}")
    for step in trail:
        click.echo(f"{iso(step.at)}  {step.outcome:<11} {step.route or '-':<28} {step.reason}")
        click.echo(f"{'':26}event {step.event_id} key={step.event_key or '-'} run_key={step.run_key or '-'}")
    for run in related:
        published = run.published_at is not None
        click.echo(f"run {run.run_key}: {run.state} ({run.run_id or 'not submitted'}), published={published}")
        if by := run.details.get("superseded_by") or _cancelled_by(ledger, run):
            click.echo(f"    superseded by {by}")
        click.echo(f"    metrics={json.dumps(run.details.get('metrics', {}), sort_keys=True)}")
        if run.trace:  # Cloud Trace (or your collector) shows the event, the submit and the result
            click.echo(f"    traceparent {run.trace}")


def _windows(ledger: Ledger, identifier: str, routes: set[str]) -> list[JoinState]:
    """The join windows `identifier` names: as their key, or as the event id of one of their parts
    (looked up in the windows of the routes its decisions name)."""
    found = ledger.joins(key=identifier)
    for route in sorted(routes):
        found += [
            window
            for window in ledger.joins(route=route)
            if window not in found and identifier in {part.event_id for part in window.parts.values()}
        ]
    return found


def _with_supersede_chain(ledger: Ledger, run_keys: set[str]) -> list[RunRecord]:
    """The runs with these keys, and every run that superseded one of them, recursively."""
    found: dict[str, RunRecord] = {}
    pending = sorted(run_keys)
    while pending:
        run = ledger.get(pending.pop(0))
        if run is None or run.run_key in found:
            continue
        found[run.run_key] = run
        if by := run.details.get("superseded_by") or _cancelled_by(ledger, run):
            pending.append(str(by))
    return sorted(found.values(), key=lambda run: (run.created_at, run.run_key))


def _cancelled_by(ledger: Ledger, run: RunRecord) -> str | None:
    """The newer run that asked the engine to cancel `run`, while the engine has not ended it."""
    from functions.service.supersede import SCOPE

    holders = ledger.holders(SCOPE + run.run_key)
    return holders[0] if holders else None


def _join_names(routes: object) -> dict[str, tuple[str, ...]]:
    """Each join route's part names, from routes.yaml; empty if it cannot be read (explain still
    shows what the ledger holds)."""
    from pathlib import Path

    from events.errors import KfpTriggerError
    from events.routes import load_routes

    try:
        config = load_routes(Path(str(routes)).read_text())
    except (OSError, KfpTriggerError):
        return {}
    return {rule.name: rule.join.names for rule in config.rules if rule.join}


def _story(window: JoinState, names: tuple[str, ...] | None) -> str:
    from functions.service.joins import describe

    if names is None:  # the route is gone from routes.yaml: tell what arrived
        return f"join {window.key!r} {window.status}: parts {', '.join(sorted(window.parts))} arrived"
    return describe(names, window)


def _window_json(window: JoinState, names: tuple[str, ...] | None) -> dict[str, object]:
    from functions.service.records import iso

    return {
        "route": window.route,
        "key": window.key,
        "status": window.status,
        "opened": iso(window.opened),
        "expires": iso(window.expires),
        "missing": window.missing(names) if names is not None else None,
        "story": _story(window, names),
        "parts": {
            name: {"event_id": part.event_id, "event_key": part.event_key, "at": iso(part.at)}
            for name, part in sorted(window.parts.items())
        },
    }


@click.group()
def results() -> None:
    """The result CloudEvents the product receives."""


@results.command("schema")
def results_schema() -> None:
    """Print the JSON Schema of a result's data (committed as deploy/schemas/run-finished.v2.schema.json)."""
    from functions.service.results import result_schema

    click.echo(json.dumps(result_schema(), indent=2, ensure_ascii=False))


@click.group()
def alerts() -> None:
    """The alert CloudEvents operators receive (failed runs, expired joins, missing data, bursts
    of quarantined events)."""


@alerts.command("schema")
def alerts_schema() -> None:
    """Print the JSON Schema of an alert's data (committed as deploy/schemas/alert.v1.schema.json)."""
    from functions.service.alerts import alert_schema

    click.echo(json.dumps(alert_schema(), indent=2, ensure_ascii=False))
