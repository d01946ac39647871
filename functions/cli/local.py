"""`kfp-trigger dev` and `demo`: the embedded stack on one machine (functions/cli/devstack/)."""

from __future__ import annotations

import logging
import sys
import threading

import click

from functions import logs
from functions.cli import common
from functions.cli.common import settings_options


@click.command()
@settings_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, envvar="PORT", type=int)
def dev(routes: str | None, state_dir: str | None, landing_dir: str | None, host: str, port: int) -> None:
    """Run the embedded stack until Ctrl-C.

    \b
    Serves POST /handle_event and POST /handle_completion (functions-framework apps) and the
    status page at / (open it in a browser), turns new files in LANDING/<bucket>/<object name>
    into storage finalized events, fires each schedule route's cron, and completes runs whose
    completion notice was missed. An edited routes.yaml is loaded and served at once (one that
    does not load is said, and the routes it had are kept). `kfp-trigger send` posts an event.
    """
    from functions import bootstrap
    from functions.cli.devstack.loops import name_what_goes_on, start_loops
    from functions.cli.devstack.server import DevServer, announce

    # A local server: KFP_TRIGGER_AUTH=google-oidc tests auth; the text log format is for a terminal.
    settings = common.settings(
        routes, state_dir, landing_dir, defaults={"auth": "none", "log_format": "text"}
    )
    server = DevServer(host, port)
    if not settings.completion_topic:  # no Pub/Sub: runs post their notice straight to the target
        settings = settings.replace(completion_url=f"{server.url}/handle_completion")
    services = common.build(settings)
    logs.configure(settings.log_format)
    bootstrap.install(services)  # the targets the server runs use these services
    stop = threading.Event()
    start_loops(settings, server.url, stop)
    click.echo(f"kfp-trigger dev on {server.url}; landing folder {settings.landing_dir}; Ctrl-C to stop")
    announcement = announce(settings.state_dir, server.url)
    try:
        server.start()
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.stop()
        announcement.unlink(missing_ok=True)
        name_what_goes_on()


@click.command()
@settings_options
@click.option("--timeout", default=240.0, show_default=True, help="seconds to wait for the run")
def demo(routes: str | None, state_dir: str | None, landing_dir: str | None, timeout: float) -> None:
    """Run the trigger loop once on the embedded default and show each step.

    Uses deploy/routes.example.yaml and a fresh .kfp-trigger/demo unless told otherwise.
    Exits 0 only if the run SUCCEEDED and its result was published.
    """
    from functions.cli.devstack.demo import run_demo
    from functions.cli.installed import bundled

    settings = common.settings(
        routes or str(bundled() / "routes.example.yaml"),
        state_dir or ".kfp-trigger/demo",
        landing_dir or ".kfp-trigger/demo/landing",
        auth="none",
    )
    logs.configure("text", logging.WARNING)
    sys.exit(run_demo(settings, click.echo, timeout))
