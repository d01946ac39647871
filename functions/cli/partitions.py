"""`kfp-trigger partitions ROUTE`: each partition of a route and where it stands."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from functions.cli import common
from functions.cli.common import settings_options

if TYPE_CHECKING:
    from events.rules import Rule
    from functions.service.partitions import Partitions

NEEDS_A_LOOK = ("failed", "stale", "waiting", "queued")  # listed under the matrix, with why


@click.command()
@click.argument("route")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 366), help="the span, to today")
@settings_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="print {route, counts, days, rows, partitions: [{partition, state, detail, run_key}]}",
)
def partitions(
    route: str,
    days: int,
    routes: str | None,
    state_dir: str | None,
    landing_dir: str | None,
    as_json: bool,
) -> None:
    """Each partition of ROUTE (routes.yaml's `partition:` names them, e.g. "{tenant}/{date}")
    and where it stands: succeeded, failed, running, queued, waiting (a join window on which
    parts, a settle batch until when), stale (newer data arrived after its run), skipped.

    \b
    Partitions that end in a day (…/2026-12-01 or …/20261201) are shown as a matrix, one row
    per leading part and one column per day of the last --days days, where a day with nothing
    is missing (.); the partitions that need a look follow with why. The status page shows the
    same at /partitions?route=ROUTE. `kfp-trigger backfill --route ROUTE --reprocess failed`
    runs the failed ones again.
    """
    from functions.service.partitions import partitions as use_case

    settings = common.settings(routes, state_dir, landing_dir)
    rule = partitioned(common.route_rules(settings), route)
    found = use_case(common.ledger(settings), rule, time.time(), days)
    if as_json:
        common.emit(found.as_json())
        return
    echo_matrix(found)


def partitioned(rules: tuple[Rule, ...], route: str) -> Rule:
    """The route, if it names its partitions."""
    rule = next((rule for rule in rules if rule.name == route), None)
    if rule is None:
        raise click.ClickException(f"no route {route!r} in routes.yaml")
    if rule.partition is None:
        raise click.ClickException(
            f'route {route!r} names no partition: add `partition: "{{tenant}}/{{date}}"` (a template '
            "of its events' fields) to it in routes.yaml; runs started from then on are shown"
        )
    return rule


def echo_matrix(found: Partitions) -> None:
    """The matrix (or the list) and the partitions that need a look, as the command prints them."""
    from functions.service.partitions import MARKS

    counts = ", ".join(f"{count} {state}" for state, count in sorted(found.counts().items()))
    click.echo(f"route {found.route}: {counts or 'no partitions yet'}")
    if found.matrix:
        legend = "  ".join(f"{mark} {state}" for state, mark in MARKS.items())
        width = max(len(row) for row in found.rows) if found.rows else 0
        click.echo(f"{'':<{width}}  {found.days[0]} … {found.days[-1]}   ({legend})")
        for row in found.rows:
            marks = "".join(MARKS.get(found.cell(row, day).state, "?") for day in found.days)
            click.echo(f"{row:<{width}}  {marks}")
    shown = [cell for cell in found.every_cell() if not found.matrix or cell.state in NEEDS_A_LOOK]
    for cell in shown:
        detail = f"  {cell.detail}" if cell.detail else ""
        click.echo(f"{cell.state:<10} {cell.partition}  {cell.run_key or '-'}{detail}")
