"""Commands that send events through the intake again: `backfill` (what a route missed: the
objects its bucket holds, or its cron slots) and `replay` (events kept in the ledger)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from functions.cli import common
from functions.cli.common import settings_options

if TYPE_CHECKING:
    from functions.service.backfill import Report
    from functions.service.ports import Services
    from functions.service.preview import Reader
    from functions.settings import Settings


@click.command()
@click.option("--route", "route", required=True, help="the route to backfill (a storage or schedule route)")
@click.option(
    "--since", callback=common.moment, help="from this time (RFC 3339) or this long ago (7d)  [default: 1d]"
)
@click.option("--until", callback=common.moment, help="up to this time, or this long ago  [default: now]")
@click.option(
    "--reprocess",
    type=click.Choice(["failed", "stale"]),
    help="instead: run again the route's partitions in this state since --since (RUN_KEY~rerun-N)",
)
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
    reprocess: str | None,
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
    backfilled (Pub/Sub and BigQuery routes: messages and jobs cannot be listed; a join route's
    storage and schedule parts are, its others are not).

    \b
    --reprocess failed|stale runs again exactly the partitions of ROUTE in that state (as
    `kfp-trigger partitions ROUTE --days N` shows them, N the days since --since): each one's
    latest run, as RUN_KEY~rerun-N. Try it with --dry-run first.
    """
    from events.errors import PermanentError

    until = until or datetime.now(UTC)
    since = since or until - timedelta(days=1)
    if since >= until:
        raise click.BadParameter(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    settings = common.settings(routes, state_dir, landing_dir, auth="none")
    shown = _Shown(as_json)
    with _backfilling(settings, dry_run and not reprocess) as (services, reader), _interruptible() as stop:
        try:
            if reprocess:
                report = _reprocess(services, settings, route, reprocess, since, dry_run, shown, stop)
            else:
                report = _backfill(services, route, since, until, reader, shown, stop)
            shown.done()
        except PermanentError as exc:
            raise click.ClickException(str(exc)) from exc
    _report(report, as_json, f"in [{since.isoformat()}, {until.isoformat()})")


def _backfill(
    services: Services,
    route: str,
    since: datetime,
    until: datetime,
    reader: Reader | None,
    shown: _Shown,
    stop: Callable[[], bool],
) -> Report:
    from functions.service import backfill as use_case

    rule = use_case.backfillable(services, route)
    _note_unlisted(use_case.unlisted_parts(rule), route)
    return use_case.backfill(services, rule, since, until, dry_run=reader, step=shown.step, stop=stop)


def _reprocess(
    services: Services,
    settings: Settings,
    route: str,
    state: str,
    since: datetime,
    dry_run: bool,
    shown: _Shown,
    stop: Callable[[], bool],
) -> Report:
    import math

    from functions.cli.partitions import partitioned
    from functions.service.partitions import reprocess

    rule = partitioned(services.router.rules, route)
    now = datetime.now(UTC)
    days = max(1, math.ceil((now - since).total_seconds() / 86400))
    return reprocess(
        services, rule, state, now.timestamp(), days, dry_run=dry_run, step=shown.step, stop=stop
    )


def _report(report: Report, as_json: bool, span: str) -> None:
    """What a backfill did, and exit 130 if it was interrupted."""
    if as_json:
        common.emit(report.as_json())
        return
    counts = (
        ", ".join(f"{count} {outcome}" for outcome, count in sorted(report.outcomes.items())) or "nothing"
    )
    verb = "would be" if report.dry_run else "were"
    click.echo(f"{report.candidates} candidate(s) {span}; {verb}: {counts}")
    if report.interrupted:
        click.echo(
            "interrupted: those above were sent, the rest of the span was not; the same command "
            "again sends it (what ran is a duplicate)",
            err=True,
        )
        raise SystemExit(130)


def _note_unlisted(parts: list[str], route: str) -> None:
    """Say which parts of a join route a backfill does not send (they cannot be listed)."""
    if parts:
        click.echo(
            f"note: part(s) {', '.join(parts)} of join route {route!r} cannot be listed; "
            "`kfp-trigger replay` sends their kept events again",
            err=True,
        )


@contextmanager
def _interruptible() -> Iterator[Callable[[], bool]]:
    """Ctrl-C asks a long command to stop between two items (it finishes the one in hand, so
    that it holds nothing); a second Ctrl-C aborts at once."""
    import signal

    asked: list[bool] = []

    def ask(signum: int, frame: object) -> None:
        if asked:
            raise KeyboardInterrupt
        asked.append(True)
        click.echo("\nstopping after the one in hand (Ctrl-C again to abort now)", err=True)

    previous = signal.signal(signal.SIGINT, ask)
    try:
        yield lambda: bool(asked)
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _backfilling(settings: Settings, dry_run: bool) -> Iterator[tuple[Services, Reader | None]]:
    """The services a backfill sends its events to, and with `dry_run` the reader its preview
    reads the real ledger through: the services are then built in a scratch folder, so that
    nothing the preview does is written where the real ledger is."""
    import tempfile
    import time
    from pathlib import Path

    from functions.service import preview

    if not dry_run:
        yield common.build(settings), None
        return
    ledger = common.ledger(settings) if _has_ledger(settings) else None
    with tempfile.TemporaryDirectory() as scratch:
        update = {"state_dir": Path(scratch), "landing_dir": settings.landing_dir}
        services = common.build(settings.model_copy(update=update))
        reader = preview.Reader(
            time.time(),
            ledger=ledger,
            objects=services.objects,
            secrets=services.secrets,
            global_limits=services.limits,
            paused_setting=settings.paused,
        )
        yield services, reader


def _has_ledger(settings: Settings) -> bool:
    from functions.bootstrap import path_of

    url = settings.ledger_url
    return not url.startswith("sqlite:") or path_of(url).exists()


class _Shown:
    """Each decision as it is made: a line on stdout (piped or not); with --json, a count on a
    terminal's stderr instead, the JSON at the end."""

    def __init__(self, as_json: bool) -> None:
        self.as_json, self.count = as_json, 0
        self.counting = as_json and sys.stderr.isatty()

    def step(self, decision: dict[str, object]) -> None:
        self.count += 1
        if not self.as_json:
            detail = decision.get("reason") or decision.get("run_key", "")
            click.echo(f"{decision['outcome']!s:<11} {decision['what']}  {detail}")
            sys.stdout.flush()
        elif self.counting and self.count % 25 == 0:
            click.echo(f"\rbackfilling: {self.count:,} candidates", nl=False, err=True)

    def done(self) -> None:
        if self.counting and self.count >= 25:
            click.echo(f"\rbackfilling: {self.count:,} candidates", err=True)


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
    callback=common.moment,
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
