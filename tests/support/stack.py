"""The service as deployed, on this machine: the targets under functions-framework, and the
Pub/Sub emulator pushing to them as deploy/terraform/deliveries.tf makes it push (the completions
topic to handle_completion, Cloud Storage's notifications topic to handle_event, each with a
dead-letter policy), results on a topic of their own, and dead letters held for the reconciler."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.conftest import PROJECT
from tests.support import env_for, free_port, functions_framework, server
from tests.support.pubsub import push_subscription, topic_with_subscription

TARGETS = ("handle_event", "handle_completion", "reconcile")


@contextmanager
def deployed(state: Path, routes: Path, **environment: str) -> Iterator[dict[str, str]]:
    """Yield the targets' URLs, the results and dead-letter subscriptions and the topics; needs
    the Pub/Sub emulator (PUBSUB_EMULATOR_HOST). `environment` adds or overrides KFP_TRIGGER_*
    variables."""
    from google.cloud.pubsub_v1 import PublisherClient

    name = uuid.uuid4().hex[:8]
    topics = {kind: f"projects/{PROJECT}/topics/{kind}-{name}" for kind in ("completions", "storage-events")}
    for topic in topics.values():
        PublisherClient().create_topic(name=topic)
    results_topic, results = topic_with_subscription("results")
    dead_letter, held = topic_with_subscription("dead-letter")
    ports = {target: free_port() for target in TARGETS}
    urls = {target: f"http://127.0.0.1:{port}" for target, port in ports.items()}
    pushed = {  # what each push subscription carries: (topic, target, push path)
        "completions": (topics["completions"], "handle_completion", f"/{topics['completions']}"),
        "storage-events": (topics["storage-events"], "handle_event", "/notifications/storage"),
    }
    deliveries = {}
    for topic, target, path in pushed.values():
        subscription = push_subscription(topic, urls[target] + path, dead_letter)
        deliveries[subscription.rsplit("/", 1)[-1]] = path
    env = env_for(
        state,
        routes=routes,
        KFP_TRIGGER_RESULTS=f"pubsub://{results_topic}",
        KFP_TRIGGER_COMPLETION_TOPIC=f"pubsub://{topics['completions']}",
        KFP_TRIGGER_DEAD_LETTERS=held,
        KFP_TRIGGER_DELIVERIES=json.dumps(deliveries),
        **environment,
    )
    with ExitStack() as stack:
        for target, port in ports.items():
            command = functions_framework(target, port)
            stack.enter_context(server(command, env, port, state / f"{target}.log"))
        yield {
            "events_url": urls["handle_event"],
            "completion_url": urls["handle_completion"],
            "reconcile_url": urls["reconcile"],
            "results": results,
            "dead_letters": held,
            "completions_topic": topics["completions"],
            "storage_topic": topics["storage-events"],
        }
