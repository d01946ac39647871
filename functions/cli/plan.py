"""`kfp-trigger routes plan OLD NEW`: what a change to routes.yaml would have done to the events
the ledger kept, per route, writing nothing."""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from functions.cli import common

if TYPE_CHECKING:
    from functions.service.plan import Plan, RouteChanges, Routes

SHOWN = {"gained": "+", "lost": "-", "changed": "~"}


@click.command("plan")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--since",
    callback=common.moment,
    default="7d",
    show_default=True,
    help="the events kept from this time (RFC 3339) or this long ago (7d)",
)
@click.option(
    "--state-dir", envvar="KFP_TRIGGER_STATE_DIR", help="where the ledger is  [default: .kfp-trigger]"
)
@click.option("--exit-code", is_flag=True, help="exit 1 when any route's runs would differ (for CI)")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="print {since, events, unreadable, differs, routes: [{route, old, new, gained, lost, changed, "
    "examples}], not_compared}",
)
def plan(
    old: Path, new: Path, since: datetime, state_dir: str | None, exit_code: bool, as_json: bool
) -> None:
    """What changing the routes from OLD to NEW would have done to the events kept in the ledger
    since --since: per route, the events it would gain (start a run for, or take as a join's
    part), lose, or act on differently (run key, parameters, pipeline version), with examples.
    The ledger is opened read-only; nothing is written or started.

    \b
    OLD and NEW are routes files, each beside its own pipelines: for a pull request, check the
    base out beside the change (git worktree add ../base main), then
      kfp-trigger routes plan ../base/routes.yaml routes.yaml --since 7d --exit-code
    Exit 2 when a file does not load; with --exit-code, 1 when some route's runs would differ.
    """
    from functions.service.plan import plan as use_case

    settings = common.settings(new.as_posix(), state_dir, auth="none")
    sides = _loaded(old, settings.notify_image), _loaded(new, settings.notify_image)
    ledger = common.ledger(settings, read_only=True)
    start = since.timestamp()
    progress = _progress if sys.stderr.isatty() and not as_json else None
    found = use_case(ledger.kept_since(start), *sides, start, settings.schedules_topic, progress)
    if as_json:
        common.emit(found.as_json())
    else:
        _print(found, old, new)
    if exit_code and found.differs:
        sys.exit(1)


def _loaded(path: Path, notify_image: str) -> Routes:
    from events.errors import RoutesError
    from events.router import Router
    from functions.service.plan import Routes
    from pipelines import catalog

    with tempfile.TemporaryDirectory() as scratch:
        try:
            loaded = catalog.load(path, Path(scratch), notify_image)
        except RoutesError as exc:
            click.echo(f"{path}: {len(exc.problems)} problem(s) (kfp-trigger routes check {path})", err=True)
            for problem in exc.problems:
                click.echo(f"  {problem}", err=True)
            sys.exit(2)
    return Routes(Router(loaded.rules), loaded.catalog)


def _progress(read: int) -> None:
    click.echo(f"  {read:,} events read…", err=True)


def _print(found: Plan, old: Path, new: Path) -> None:
    from functions.service.plan import NOT_COMPARED

    start = datetime.fromtimestamp(found.since).astimezone().isoformat(timespec="seconds")
    unreadable = f" ({found.unreadable} could not be read again)" if found.unreadable else ""
    click.echo(f"{found.events:,} kept events since {start}{unreadable}: {old} → {new}")
    differing = [route for route in sorted(found.routes.values(), key=lambda r: r.route) if route.differs]
    same = len(found.routes) - len(differing)
    if not differing:
        click.echo(f"no route's runs would differ ({same} route(s) acted on these events alike)")
    for route in differing:
        _print_route(route)
    if differing and same:
        click.echo(f"{same} other route(s) alike")
    click.echo(f"not compared: {NOT_COMPARED}")


def _print_route(route: RouteChanges) -> None:
    counts = "  ".join(
        f"{SHOWN[kind]}{getattr(route, kind)} {kind}" for kind in SHOWN if getattr(route, kind)
    )
    click.echo(f"route {route.route}: {route.old:,} → {route.new:,} events  {counts}")
    for kind, examples in route.examples.items():
        for example in examples:
            click.echo(f"  {SHOWN[kind]} {example['event_id']}  {_told(kind, example)}")


def _told(kind: str, example: dict[str, object]) -> str:
    """One example, in a line: what the route would do under NEW, or did under OLD, or what moved."""
    if kind == "changed":
        old, new, fields = example["old"], example["new"], example["fields"]
        assert isinstance(old, dict)
        assert isinstance(new, dict)
        assert isinstance(fields, list)
        return "; ".join(f"{field}: {_at(old, field)!r} → {_at(new, field)!r}" for field in fields)
    action = example["new" if kind == "gained" else "old"]
    assert isinstance(action, dict)
    if "part" in action:
        return f"part {action['part']} of join {action['key']}"
    return f"run {action['run_key']}"


def _at(action: dict[str, object], field: str) -> object:
    name, _, key = field.partition(".")
    value = action.get(name)
    return value.get(key) if key and isinstance(value, dict) else value
