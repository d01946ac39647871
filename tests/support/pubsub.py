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
