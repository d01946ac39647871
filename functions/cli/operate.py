"""Operating commands: `reconcile`, `rerun`, `cancel`, `pause`, `resume`, `prune`, `backfill`,
`replay` — each the same use case the functions run, on the settings' ledger and backends."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from functions.cli import common
from functions.cli.common import settings_options

if TYPE_CHECKING:
    from functions.settings import Settings


@click.command()
@settings_options
@click.option("--json", "as_json", is_flag=True, help="print {finished, skipped: [{run_key, reason}]}")
def reconcile(routes: str | None, state_dir: str | None, landing_dir: str | None, as_json: bool) -> None:
    """Finish runs whose completion notice was lost, re-publish unpublished results, and start
    the queued runs that may start; also start schedule slots missed within a route's
    `catch_up`, record join windows that expired, and alert data a route `expect`s that did not
    come (and bursts of quarantined events).

    The same work as the `reconcile` function target (which Cloud Scheduler calls). Runs
    submitted less than KFP_TRIGGER_RECONCILE_GRACE_SECONDS ago are left alone. A run that
    cannot be acted on is skipped and listed with the reason; one whose engine does not know it
    (404) or whose route or backend was removed from routes.yaml is recorded FAILED after 3
    passes. Safe to run while the service runs, and concurrently with itself.
    """
    from functions.service import reconcile as use_case

    report = use_case.reconcile(common.services(routes, state_dir, landing_dir))
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


def _moment(context: click.Context, parameter: click.Parameter, value: str | None) -> datetime | None:
    """--since/--until: an RFC 3339 time (2026-11-30T06:00:00Z, a date), or a duration ago (7d, 36h)."""
    from events.schema_types import seconds

    if value is None:
        return None
    ago = seconds(value)
    if isinstance(ago, float):
        return datetime.now(UTC) - timedelta(seconds=ago)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is neither a time like 2026-11-30T06:00:00Z nor a duration like 7d"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command()
@click.option("--route", "route", required=True, help="the route to backfill (a storage or schedule route)")
@click.option(
    "--since", callback=_moment, help="from this time (RFC 3339) or this long ago (7d)  [default: 1d]"
)
@click.option("--until", callback=_moment, help="up to this time, or this long ago  [default: now]")
@click.option("--dry-run", is_flag=True, help="list what would start, writing nothing")
@settings_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="print {route, dry_run, candidates, outcomes: {outcome: n}, "
    "decisions: [{what, event_id, outcome, run_key, reason}]}",
)
def backfill(
    route: str,
    since: datetime | None,
    until: datetime | None,
    dry_run: bool,
    routes: str | None,
    state_dir: str | None,
    landing_dir: str | None,
    as_json: bool,
) -> None:
    """Send what ROUTE missed through the normal intake: every object its bucket holds that it
    matches (written in [--since, --until)), or every cron slot in that span.

    \b
    Each is the event Eventarc or Cloud Scheduler would have delivered (an object's real
    generation, so its run key is the live one) and meets the same deduplication, limits and
    decisions: what already ran is a duplicate, and a second pass starts nothing. Only ROUTE
    sees them, not the other routes on the bucket. --dry-run lists exactly what a real pass
    would do (run, queued, duplicate, skip …), writing nothing. Exit 1 if the route cannot be
    backfilled (Pub/Sub and BigQuery routes: messages and jobs cannot be listed).
    """
    import tempfile
    import time
    from pathlib import Path

    from events.errors import PermanentError
    from functions.service import backfill as use_case
    from functions.service import preview

    until = until or datetime.now(UTC)
    since = since or until - timedelta(days=1)
    if since >= until:
        raise click.BadParameter(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    settings = common.settings(routes, state_dir, landing_dir, auth="none")
    with tempfile.TemporaryDirectory() as scratch:
        reader = None
        if dry_run:  # the service is built in a scratch folder; the preview only reads the ledger
            ledger = common.ledger(settings) if _has_ledger(settings) else None
            settings = settings.model_copy(
                update={"state_dir": Path(scratch), "landing_dir": settings.landing_dir}
            )
        services = common.build(settings)
        if dry_run:
            reader = preview.Reader(
                time.time(),
                ledger=ledger,
                objects=services.objects,
                secrets=services.secrets,
                global_limits=services.limits,
                paused_setting=settings.paused,
            )
        try:
            rule = use_case.backfillable(services, route)
            progress = _Progress(f"backfilling {route}", shown=not as_json and sys.stderr.isatty())
            report = use_case.backfill(services, rule, since, until, dry_run=reader, step=progress.step)
            progress.done()
        except PermanentError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        common.emit(report.as_json())
        return
    for decision in report.decisions:
        detail = decision.get("reason") or decision.get("run_key", "")
        click.echo(f"{decision['outcome']:<11} {decision['what']}  {detail}")
    counts = (
        ", ".join(f"{count} {outcome}" for outcome, count in sorted(report.outcomes.items())) or "nothing"
    )
    verb = "would be" if dry_run else "were"
    click.echo(
        f"{report.candidates} candidate(s) in [{since.isoformat()}, {until.isoformat()}); {verb}: {counts}"
    )


def _has_ledger(settings: Settings) -> bool:
    from functions.bootstrap import path_of

    url = settings.ledger_url
    return not url.startswith("sqlite:") or path_of(url).exists()


class _Progress:
    """A count on stderr while a listing of unknown length goes on (a terminal only)."""

    def __init__(self, label: str, shown: bool) -> None:
        self.label, self.shown, self.count = label, shown, 0

    def step(self, _: object) -> None:
        self.count += 1
        if self.shown and self.count % 25 == 0:
            click.echo(f"\r{self.label}: {self.count:,} candidates", nl=False, err=True)

    def done(self) -> None:
        if self.shown and self.count >= 25:
            click.echo(f"\r{self.label}: {self.count:,} candidates", err=True)


@click.command()
@click.argument("event_ids", nargs=-1)
@click.option(
    "--quarantine",
    "from_quarantine",
    is_flag=True,
    help="replay the quarantined events (see --since, --reason)",
)
@click.option(
    "--since",
    callback=_moment,
    help="with --quarantine: quarantined since (RFC 3339, or 7d ago)  [default: 1d]",
)
@click.option("--reason", default="", help="with --quarantine: only those whose reason contains this text")
@settings_options
@click.option(
    "--json", "as_json", is_flag=True, help="print a list of {event_id, was, outcome, decisions | reason}"
)
def replay(
    event_ids: tuple[str, ...],
    from_quarantine: bool,
    since: datetime | None,
    reason: str,
    routes: str | None,
    state_dir: str | None,
    landing_dir: str | None,
    as_json: bool,
) -> None:
    """Send kept events through the intake again: EVENT_IDS, or --quarantine's.

    \b
    For after a routes.yaml fix: every event delivered to handle_event is kept in the ledger
    (within KFP_TRIGGER_RETENTION_DAYS) with its attributes and data. A replay meets the same
    deduplication as a delivery: a quarantined event that a route now takes starts its run
    once; replayed again, it is a duplicate. Exit 1 if an event is not kept (never delivered
    here, past retention, or too large to keep).
    """
    from events.errors import PermanentError
    from functions.service import replay as use_case

    if bool(event_ids) == from_quarantine:
        raise click.UsageError("give EVENT_IDS or --quarantine (not both)")
    services = common.services(routes, state_dir, landing_dir)
    if from_quarantine:
        start = since or datetime.now(UTC) - timedelta(days=1)
        event_ids = tuple(use_case.quarantined(services, start.timestamp(), reason))
    answers, missing = [], []
    for event_id in event_ids:
        try:
            answers.append(use_case.replay(services, event_id))
        except PermanentError as exc:
            missing.append(str(exc))
    if as_json:
        common.emit(answers)
    else:
        for answer in answers:
            decisions = answer.get("decisions")
            told = decisions if isinstance(decisions, list) else [answer]
            for decision in told:
                detail = decision.get("run_key") or decision.get("reason", "")
                route = decision.get("route", "")
                click.echo(f"{answer['event_id']}: {decision.get('outcome')} {route} {detail}".rstrip())
        if not event_ids:
            click.echo("no quarantined events to replay")
    if missing:
        raise click.ClickException("; ".join(missing))
