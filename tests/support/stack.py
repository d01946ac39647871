"""The service as deployed, on this machine: both targets under functions-framework, results and
completion notices on Pub/Sub topics of the emulator, and `relay` standing in for Eventarc's
trigger on the completions topic."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from functions.cli.devstack.relay import ensure_subscription, relay
from tests.conftest import PROJECT
from tests.support import env_for, free_port, functions_framework, server


@contextmanager
def deployed(state: Path, routes: Path, **environment: str) -> Iterator[dict[str, str]]:
    """Yield the targets' URLs, the results subscription and the topics; needs the Pub/Sub
    emulator (PUBSUB_EMULATOR_HOST). `environment` adds or overrides KFP_TRIGGER_* variables."""
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    name = uuid.uuid4().hex[:8]
    topics = {kind: f"projects/{PROJECT}/topics/{kind}-{name}" for kind in ("results", "completions")}
    for topic in topics.values():
        PublisherClient().create_topic(name=topic)
    results = f"projects/{PROJECT}/subscriptions/results-{name}"
    with SubscriberClient() as subscriber:
        subscriber.create_subscription(name=results, topic=topics["results"])
    completions = f"projects/{PROJECT}/subscriptions/completions-{name}"
    ensure_subscription(topics["completions"], completions)
    env = env_for(
        state,
        routes=routes,
        KFP_TRIGGER_RESULTS=f"pubsub://{topics['results']}",
        KFP_TRIGGER_COMPLETION_TOPIC=f"pubsub://{topics['completions']}",
        **environment,
    )
    stop = threading.Event()
    with ExitStack() as stack:
        urls = {}
        for target in ("handle_event", "handle_completion"):
            port = free_port()
            command = functions_framework(target, port)
            urls[target] = stack.enter_context(server(command, env, port, state / f"{target}.log"))
        eventarc = threading.Thread(
            target=relay,
            args=(topics["completions"], completions, urls["handle_completion"], stop),
            daemon=True,
        )
        eventarc.start()
        try:
            yield {
                "events_url": urls["handle_event"],
                "completion_url": urls["handle_completion"],
                "results": results,
                "completions_topic": topics["completions"],
            }
        finally:
            stop.set()
            eventarc.join(timeout=10)
