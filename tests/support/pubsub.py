"""Pub/Sub helpers for tests on the emulator: fresh topics with a subscription, and pulling."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.conftest import PROJECT


def topic_with_subscription(prefix: str, *, ordered: bool = False) -> tuple[str, str]:
    """A new topic and a pull subscription to it: (topic path, subscription path)."""
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    topic = f"projects/{PROJECT}/topics/{name}"
    subscription = f"projects/{PROJECT}/subscriptions/{name}"
    PublisherClient().create_topic(name=topic)
    with SubscriberClient() as subscriber:
        subscriber.create_subscription(
            request={"name": subscription, "topic": topic, "enable_message_ordering": ordered}
        )
    return topic, subscription


def pull(subscription: str, count: int, wait: float = 60) -> list[Any]:
    """Pull and ack until `count` messages arrived or `wait` seconds passed."""
    from google.cloud.pubsub_v1 import SubscriberClient

    received: list[Any] = []
    deadline = time.monotonic() + wait
    with SubscriberClient() as subscriber:
        while len(received) < count and time.monotonic() < deadline:
            response = subscriber.pull(subscription=subscription, max_messages=10, timeout=5)
            received += [m.message for m in response.received_messages]
            if response.received_messages:
                ack_ids = [m.ack_id for m in response.received_messages]
                subscriber.acknowledge(subscription=subscription, ack_ids=ack_ids)
    return received


def push_subscription(topic: str, endpoint: str, dead_letter: str, attempts: int = 5) -> str:
    """A push subscription of `topic` to `endpoint`, as deploy/terraform/deliveries.tf makes one:
    its dead letters go to `dead_letter` after `attempts` (5, the fewest Pub/Sub allows). The
    emulator sends no OIDC token; it retries a refused push at once and dead-letters as Pub/Sub
    does (observed: the four CloudPubSubDeadLetterSource* attributes, tests/contract/test_dead_letters.py)."""
    from google.cloud.pubsub_v1 import SubscriberClient
    from google.cloud.pubsub_v1.types import DeadLetterPolicy, PushConfig

    subscription = topic.replace("/topics/", "/subscriptions/") + "-push"
    with SubscriberClient() as subscriber:
        subscriber.create_subscription(
            request={
                "name": subscription,
                "topic": topic,
                "push_config": PushConfig(push_endpoint=endpoint),
                "dead_letter_policy": DeadLetterPolicy(
                    dead_letter_topic=dead_letter, max_delivery_attempts=attempts
                ),
                "ack_deadline_seconds": 60,
            }
        )
    return subscription


def held(subscription: str) -> int:
    """How many messages `subscription` holds now (pulled, then handed straight back)."""
    from google.cloud.pubsub_v1 import SubscriberClient

    with SubscriberClient() as subscriber:
        response = subscriber.pull(subscription=subscription, max_messages=100, timeout=5)
        ack_ids = [received.ack_id for received in response.received_messages]
        if ack_ids:
            subscriber.modify_ack_deadline(subscription=subscription, ack_ids=ack_ids, ack_deadline_seconds=0)
    return len(ack_ids)
