"""Read-only commands on the ledger: `status`, `runs`, `explain`."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from functions.cli import common
from functions.cli.common import settings_options
from functions.service.records import LEDGER_STATES, RunRecord, iso
from pipelines.backend import RunState

if TYPE_CHECKING:
    from functions.service.route_lines import RouteLine
    from functions.settings import Settings


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
    from functions.service import overview

    settings = common.settings(routes, state_dir, landing_dir)
    now = time.time()
    report = overview.status(common.ledger(settings), common.route_rules(settings), settings.paused, now)
    if as_json:
        common.emit(report.as_json(now))
        return
    click.echo(f"submissions: {'PAUSED (kfp-trigger resume)' if report.paused else 'running'}")
    states = [state.value for state in LEDGER_STATES]
    width = max([len("route"), *(len(route) for route in report.runs)])
    click.echo(f"{'route':<{width}}  " + " ".join(f"{state:>9}" for state in states))
    for route, counts in report.runs.items():
        click.echo(f"{route:<{width}}  " + " ".join(f"{counts.get(state, 0):>9}" for state in states))
    if not report.runs:
        click.echo("(no runs yet)")
    totals = f"queued: {report.queued}   quarantined events: {report.quarantined}"
    click.echo(f"{totals}   open joins: {report.open_joins}")
    oldest = report.oldest_claim
    if oldest is None:
        click.echo("open claims: none")
    else:
        late = " PAST ITS LEASE: run `kfp-trigger reconcile`" if oldest.lease_until <= now else ""
        click.echo(f"oldest open claim: {oldest.run_key} ({now - oldest.created_at:.0f} s){late}")
    _print_routes(report.routes)


def _print_routes(lines: list[RouteLine]) -> None:
    """Every route: what it listens to, its next tick, its latest decision (or none yet)."""
    if lines:
        click.echo("routes:")
    for line in lines:
        click.echo(
            f"  {line.name}: {line.listens}" + (f"; next tick {line.next_tick}" if line.next_tick else "")
        )
        last = line.last
        said = (
            "no decision yet"
            if last is None
            else f"{iso(last.at)} {last.outcome.value} {last.reason}".rstrip()
        )
        click.echo(f"    last: {said}")


@click.command()
@settings_options
@click.option("--route", help="only this route")
@click.option(
    "--state",
    type=click.Choice([state.value for state in LEDGER_STATES]),
)
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="list at most this many (the ledger reads no more)",
)
@click.option("--oldest-first", is_flag=True, help="list the oldest runs first (default: the newest)")
@click.option(
    "--wait",
    type=click.FloatRange(0, 3600),
    default=0,
    help="wait up to this many seconds for a run to match; exit 1 if none did",
)
@click.option("--json", "as_json", is_flag=True, help="print a JSON list")
def runs(
    routes: str | None,
    state_dir: str | None,
    landing_dir: str | None,
    route: str | None,
    state: str | None,
    limit: int,
    oldest_first: bool,
    wait: float,
    as_json: bool,
) -> None:
    """List the runs in the ledger, newest first: the latest --limit of them.

    \b
      kfp-trigger runs --limit 20                       the 20 latest runs
      kfp-trigger runs --state QUEUED --oldest-first    the queue, in the order it starts
      kfp-trigger runs --route nightly --json           for scripts
      kfp-trigger runs --state SUCCEEDED --wait 120     once a run has succeeded (exit 1: none did)
    """
    from functions.service.records import iso

    query = {"route": route, "state": RunState(state) if state else None, "limit": limit}
    records = _runs(
        common.settings(routes, state_dir, landing_dir), query | {"newest_first": not oldest_first}, wait
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
    elif not rows:
        click.echo("no runs")
    for row in [] if as_json else rows:
        created = f"{str(row['created_at'])[:19]}Z"  # to the second
        click.echo(
            f"{created}  {row['state']:<10} {row['route']:<28} {row['run_key']}  {row['run_id'] or '-'}"
        )
    if wait and not rows:
        raise click.ClickException(f"no run matched within {wait:g} s")


def _runs(settings: Settings, query: dict[str, Any], wait: float) -> list[RunRecord]:
    """The runs `query` selects; with `wait`, once one does (the ledger itself may not exist yet:
    `dev` makes it), or none after `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            records = common.ledger(settings).runs(**query)
        except click.ClickException:
            if time.monotonic() >= deadline:
                raise
            records = []
        if records or time.monotonic() >= deadline:
            return records
        time.sleep(0.5)


@click.command()
@click.argument("identifier")
@settings_options
@click.option("--json", "as_json", is_flag=True)
def explain(
    identifier: str, routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool
) -> None:
    """Show every decision for an event id, event key, run key or join key, and the runs it led to;
    or, for an object (`bucket/name` or `gs://bucket/name`, any generation) or the start of a run
    key, those of its latest events.

    A join's windows are told by their state (waiting on which parts until when, complete, or
    expired missing which), with every part's event; a run cancelled by a newer one names it
    (`superseded by …`), and the chain is followed."""
    from functions.service import overview
    from functions.service.records import iso

    settings = common.settings(routes, state_dir, landing_dir)
    ledger = common.ledger(settings)
    told = overview.about(ledger, identifier, _join_names(settings.routes))
    if told is None:
        raise click.ClickException(f"nothing recorded for {identifier!r}")
    if as_json:
        common.emit(told.as_json())
        return
    for window in told.windows:
        click.echo(f"{window.state.route}: {window.story}")
        for name, part in sorted(window.state.parts.items()):
            click.echo(f"    part {name}: event {part.event_id} key={part.event_key} at {iso(part.at)}")
    for step in told.decisions:
        click.echo(f"{iso(step.at)}  {step.outcome:<11} {step.route or '-':<28} {step.reason}")
        click.echo(f"{'':26}event {step.event_id} key={step.event_key or '-'} run_key={step.run_key or '-'}")
    for run in told.runs:
        published = run.published_at is not None
        click.echo(f"run {run.run_key}: {run.state} ({run.run_id or 'not submitted'}), published={published}")
        click.echo(f"    pipeline {run.pipeline}-{run.version[:12]} on {run.backend}")  # the version it ran
        if by := overview.superseded_by(ledger, run):
            click.echo(f"    superseded by {by}")
        click.echo(f"    metrics={json.dumps(run.details.get('metrics', {}), sort_keys=True)}")
        for detail in ("queued", "error", "log"):  # why it waits; a failed run's cause, and its log
            if run.details.get(detail):
                click.echo(f"    {detail}: {run.details[detail]}")
        if run.trace:  # Cloud Trace (or your collector) shows the event, the submit and the result
            click.echo(f"    traceparent {run.trace}")


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
