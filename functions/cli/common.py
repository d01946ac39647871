"""What every `kfp-trigger` command shares: its settings, the services, the ledger, JSON output.

Commands get their settings from `bootstrap` (the one reader of the environment), with the
`--routes/--state-dir/--landing-dir` options (each defaulting to its `KFP_TRIGGER_*` variable,
click `envvar=`) on top, so the CLI always sees what the deployed function sees.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from events.errors import RoutesError
from functions.settings import Settings, SettingsError

if TYPE_CHECKING:  # the services pull in every adapter: commands import them when they run
    from events.rules import Rule
    from functions.service.ledger import Ledger
    from functions.service.ports import Services


def settings(
    routes: str | None = None,
    state_dir: str | None = None,
    landing_dir: str | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> Settings:
    """This process's settings, with the command's options on top."""
    from functions import bootstrap

    given = {"routes": routes, "state_dir": state_dir, "landing_dir": landing_dir}
    overrides |= {name: Path(value) for name, value in given.items() if value is not None}
    try:
        found = bootstrap.settings(defaults, **overrides)
    except SettingsError as exc:  # the environment's mistake, not the command line's: no usage screen
        raise click.ClickException(f"configuration: {exc}") from exc
    for unknown in bootstrap.unknown_settings():
        click.echo(f"warning: {unknown}", err=True)
    return beside_dev(found)


def beside_dev(settings: Settings) -> Settings:
    """With a `dev` stack serving this state dir, the runs a command starts send their notices
    to it (as the stack's own runs do), so they end within seconds, not at a reconcile pass."""
    from functions.cli.devstack.server import announced

    if settings.completion_url or settings.completion_topic:
        return settings
    url = announced(settings.state_dir)
    return settings.replace(completion_url=f"{url}/handle_completion") if url else settings


def settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--routes/--state-dir/--landing-dir, each defaulting to its KFP_TRIGGER_* variable."""
    options = [
        click.option(
            "--routes", "routes", envvar="KFP_TRIGGER_ROUTES", help="routes file  [default: routes.yaml]"
        ),
        click.option(
            "--state-dir",
            envvar="KFP_TRIGGER_STATE_DIR",
            help="ledger, results, runs  [default: .kfp-trigger]",
        ),
        click.option(
            "--landing-dir",
            envvar="KFP_TRIGGER_LANDING_DIR",
            help="local stand-in for buckets  [default: landing]",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build(settings: Settings) -> Services:
    """The services as the function would build them from `settings`."""
    from functions import bootstrap

    try:
        return bootstrap.build(settings)
    except (RoutesError, SettingsError) as exc:
        raise click.ClickException(str(exc)) from exc


def services(routes: str | None, state_dir: str | None, landing_dir: str | None) -> Services:
    """The service as the function would build it, for a command (no server, so no auth)."""
    return build(settings(routes, state_dir, landing_dir, auth="none"))


def ledger(settings: Settings, read_only: bool = False) -> Ledger:
    """The ledger the settings name (it must exist already); `read_only`: opened to be read
    only, so that the command cannot change it (a SQLite file stays byte for byte as it was)."""
    from functions.bootstrap import ledger_from, path_of, reader_from

    url = settings.ledger_url
    if url.startswith("sqlite:") and not path_of(url).exists():
        raise click.ClickException(f"no ledger at {path_of(url)} (set --state-dir or KFP_TRIGGER_LEDGER)")
    return reader_from(url) if read_only else ledger_from(url, settings.retention_days)


def route_rules(settings: Settings) -> tuple[Rule, ...]:
    """routes.yaml's routes (their pipelines not built); none (with a warning) if it cannot be
    read, so that a command that only reads the ledger still answers."""
    from events.routes import load_routes

    try:
        return load_routes(settings.routes.read_text(encoding="utf-8")).rules
    except (OSError, RoutesError) as exc:
        click.echo(f"warning: {settings.routes}: {exc}; every route's runs are counted together", err=True)
        return ()


def emit(data: object) -> None:
    """Print `data` as JSON, for scripts (`--json`)."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def moment(context: click.Context, parameter: click.Parameter, value: str | None) -> datetime | None:
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
