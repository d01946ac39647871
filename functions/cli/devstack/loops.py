"""The loops `kfp-trigger dev` runs beside its server, each in a thread of its own: the landing
watcher, the schedule ticker, the reconciler, the routes.yaml reloader and, with a completion
topic, the relay of its notices. Each asks for the current services as it goes: routes.yaml may
have been reloaded."""

from __future__ import annotations

import threading
from functools import partial

import click

from functions import bootstrap
from functions.settings import Settings


def start_loops(settings: Settings, url: str, stop: threading.Event) -> None:
    """Start every loop of the stack served at `url`, until `stop`."""
    from functions.cli.devstack.reload import reloader, watch_routes
    from functions.cli.devstack.server import every, post, start_background
    from functions.cli.devstack.ticks import tick_schedules
    from functions.cli.devstack.watcher import routed_buckets, watch_landing
    from functions.service import reconcile

    events_url, current = f"{url}/handle_event", bootstrap.services
    buckets = set(routed_buckets(current().router.rules))  # updated in place when routes.yaml changes
    start_background("watcher", lambda: watch_landing(settings.landing_dir, events_url, stop, buckets))
    send, topic = partial(post, events_url), settings.schedules_topic
    start_background(
        "ticker", lambda: tick_schedules(lambda: current().router.rules, send, stop, topic=topic)
    )
    start_background("reconciler", lambda: every(5.0, lambda: reconcile.reconcile(current()), stop))
    start_background("reloader", lambda: watch_routes(settings.routes, reloader(settings, buckets), stop))
    if settings.completion_topic:  # notices go through Pub/Sub: relay them to the target
        from functions.cli.devstack.relay import ensure_subscription, relay

        completions = settings.completion_topic.removeprefix("pubsub://")
        subscription = completions.replace("/topics/", "/subscriptions/") + "-kfp-trigger-dev"
        ensure_subscription(completions, subscription)
        target = f"{url}/handle_completion"
        start_background("relay", lambda: relay(completions, subscription, target, stop))


def name_what_goes_on() -> None:
    """Runs whose detached runners go on after the stack stopped, named, with how to stop one."""
    going_on = [run for run in bootstrap.services().store.unfinished() if run.run_id]
    for run in going_on:  # they finish and record their end in the ledger
        click.echo(f"still running in its own process: {run.run_key} ({run.run_id})", err=True)
    if going_on:
        click.echo("they finish and record their end; kfp-trigger cancel RUN_KEY stops one", err=True)
