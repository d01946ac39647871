"""Operating commands: `reconcile`, `rerun`, `pause`, `resume` — each the same use case the
functions run, on the settings' ledger and backends."""

from __future__ import annotations

import click

from functions.cli import common
from functions.cli.common import settings_options


@click.command()
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print {finished, skipped: [{run_key, reason}]}")
def reconcile(routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool) -> None:
    """Finish runs whose completion notice was lost, re-publish unpublished results, and start
    the queued runs that may start.

    The same work as the `reconcile` function target (which Cloud Scheduler calls). Runs
    submitted less than KFP_TRIGGER_RECONCILE_GRACE_SECONDS ago are left alone. A run that
    cannot be acted on (its status lookup fails, its route was removed) is skipped and listed
    with the reason; after 3 passes that fail the same way it is recorded FAILED. Safe to run
    while the service runs, and concurrently with itself.
    """
    from functions.service import completion

    report = completion.reconcile(common.services(routes, state_dir, landing_dir))
    if as_json:
        common.emit({"finished": report.done, "skipped": report.skipped})
        return
    click.echo(f"finished, re-published or started {report.done} run(s)")
    for skipped in report.skipped:
        click.echo(f"skipped {skipped['run_key']}: {skipped['reason']}")


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
    from functions.service import runs
    from functions.service.records import Outcome

    services = common.services(routes, state_dir, landing_dir)
    try:
        new_key, outcome, detail = runs.rerun(services, run_key)
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
    from functions.service import runs
    from functions.service.limits import PAUSED

    services = common.services(routes, state_dir, landing_dir)
    services.quotas.set_flag(PAUSED, False)
    report = runs.start_queued(services)
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
    from functions.service import runs

    services = common.services(routes, state_dir, landing_dir)
    try:
        state = runs.cancel(services, run_key)
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
