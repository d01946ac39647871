"""Operating commands: `reconcile`, `rerun`, `cancel`, `pause`, `resume`, `prune` — each the same
use case the functions run, on the settings' ledger and backends (`backfill` and `replay`, which
send events through the intake again, are in `resend`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from functions.cli import common
from functions.cli.common import settings_options

if TYPE_CHECKING:
    pass


@click.command()
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print {finished, skipped: [{run_key, reason}]}")
def reconcile(routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool) -> None:
    """Finish runs whose completion notice was lost, re-publish unpublished results, and start
    the queued runs that may start; also start schedule slots missed within a route's
    `catch_up`, record join windows that expired, and alert data a route `expect`s that did not
    come (and bursts of quarantined events).

    The same work as the `reconcile` function target (which Cloud Scheduler calls). Runs
    submitted less than KFP_TRIGGER_RECONCILE_GRACE_SECONDS ago are left alone. Every run left as
    it is (in flight, waiting on a limit) is listed with why. A run that
    cannot be acted on is skipped and listed with the reason; one whose engine does not know it
    (404) or whose route or backend was removed from routes.yaml is recorded FAILED after 3
    passes. Safe to run while the service runs, and concurrently with itself.
    """
    from functions.service import reconcile as use_case

    report = use_case.reconcile(common.services(routes, state_dir, landing_dir))
    if as_json:
        common.emit({"finished": report.done, "skipped": report.skipped, "left": report.left})
        return
    click.echo(f"finished, re-published or started {report.done} run(s)")
    for skipped in report.skipped:
        what = skipped.get("run_key") or f"dead letter {skipped.get('dead_letter')}"
        click.echo(f"skipped {what}: {skipped['reason']}")
    if report.left:
        click.echo(f"left {len(report.left)} run(s) as they are:")
    for left in report.left:
        click.echo(f"  {left['run_key']} {left['state']}: {left['reason']}")


@click.command()
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
    from functions.service import actions
    from functions.service.records import Outcome

    services = common.services(routes, state_dir, landing_dir)
    try:
        new_key, outcome, detail = actions.rerun(services, run_key)
    except PermanentError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        common.emit({"run_key": new_key, "rerun_of": run_key, "outcome": outcome, **detail})
    elif outcome is Outcome.RUN:
        click.echo(f"started {new_key} as {detail['run_id']}")
    if outcome is not Outcome.RUN:
        raise click.ClickException(f"{new_key}: {outcome}: {detail.get('reason', detail)}")


@click.command()
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print {paused}")
def pause(routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool) -> None:
    """Hold every submission: events are still recorded, and runs wait in the queue.

    The switch lives in the ledger, so it holds for every instance at once. Runs already
    started go on. `kfp-trigger resume` starts what waited. (KFP_TRIGGER_PAUSED=true holds
    submissions too, for the instances that have it set.)
    """
    from functions.service.limits import PAUSED

    common.ledger(common.settings(routes, state_dir, landing_dir)).set_flag(PAUSED, True)
    if as_json:
        common.emit({"paused": True})
    else:
        click.echo("paused: submissions wait in the queue")


@click.command()
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print {paused, started, skipped}")
def resume(routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool) -> None:
    """Lift the pause and start the queued runs that the limits allow now."""
    from functions.service import passes
    from functions.service.limits import PAUSED

    services = common.services(routes, state_dir, landing_dir)
    services.quotas.set_flag(PAUSED, False)
    report = passes.start_queued(services)
    if as_json:
        common.emit({"paused": services.settings.paused, "started": report.done, "skipped": report.skipped})
    else:
        click.echo(f"resumed: started {report.done} queued run(s)")
        for skipped in report.skipped:
            click.echo(f"skipped {skipped['run_key']}: {skipped['reason']}")
        if services.settings.paused:
            click.echo("KFP_TRIGGER_PAUSED=true is still set here: this process still holds submissions")


@click.command()
@click.argument("run_key")
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print {run_key, state}")
def cancel(
    run_key: str, routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool
) -> None:
    """Cancel RUN_KEY: a queued run ends CANCELED at once; a running one is cancelled on its
    engine, and recorded CANCELED when the engine reports it (its notice, or `reconcile`).
    Exit status 1 if there is nothing to cancel (the reason is printed)."""
    from events.errors import PermanentError
    from functions.service import actions

    services = common.services(routes, state_dir, landing_dir)
    try:
        state = actions.cancel(services, run_key)
    except PermanentError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        common.emit({"run_key": run_key, "state": state})
    elif state is state.CANCELED:
        click.echo(f"cancelled {run_key} (it was queued)")
    else:
        click.echo(
            f"cancel requested for {run_key}; `kfp-trigger runs` shows CANCELED once the engine ends it"
        )


MIN_RETENTION = 24 * 3600.0  # the platform redelivers for up to 24 h: dedupe must outlive that


def _duration(context: click.Context, parameter: click.Parameter, value: str) -> float:
    from events.schema_types import seconds

    parsed = seconds(value)
    if not isinstance(parsed, float):
        raise click.BadParameter(f"{value!r} is not a duration like 30d, 36h or 90m")
    if parsed < MIN_RETENTION:
        raise click.BadParameter(
            "at least 1d: a redelivery within the platform's 24 h must still find its run key"
        )
    return parsed


@click.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    callback=_duration,
    help="what to delete: older than this (30d, 36h; at least 1d)",
)
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print {before, pruned: {table: rows}}")
def prune(
    older_than: float, routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool
) -> None:
    """Delete what the SQLite ledger no longer needs, older than --older-than.

    \b
    Deleted: decisions; ended runs whose result is published (their run key no longer
    dedupes: keep more than any redelivery horizon, the platform's is 24 h); batch memberships
    of those runs; rate and daily limit places; generation marks not raised since.
    Kept: runs still queued, claimed or running, unpublished results, active places.
    Run it daily (cron, or a scheduler job). A Firestore ledger needs no pruning: its documents
    carry `expire_at` and the Terraform module's TTL policies delete them
    (KFP_TRIGGER_RETENTION_DAYS). The JSONL sinks rotate by themselves.
    """
    import time

    from functions.adapters.sqlite.ledger import SqliteLedger
    from functions.service.records import iso

    ledger = common.ledger(common.settings(routes, state_dir, landing_dir))
    if not isinstance(ledger, SqliteLedger):
        message = "a Firestore ledger expires by its TTL policies (KFP_TRIGGER_RETENTION_DAYS): nothing to do"
        if as_json:
            common.emit({"before": None, "pruned": {}, "note": message})
        else:
            click.echo(message)
        return
    before = time.time() - older_than
    pruned = ledger.prune(before)
    if as_json:
        common.emit({"before": iso(before), "pruned": pruned})
        return
    click.echo(f"pruned what is older than {iso(before)}:")
    for table, rows in pruned.items():
        click.echo(f"  {table:<14} {rows:>9,} row(s)")
