"""Deliver a Pub/Sub subscription's messages to an HTTP target the way Eventarc does.

Each message becomes a binary-mode `google.cloud.pubsub.topic.v1.messagePublished` CloudEvent
(`ce-id` = message id, `ce-source` = the topic); a 2xx answer acks it, anything else nacks it so
Pub/Sub redelivers. This stands in for Eventarc on one machine (`kfp-trigger dev`, the tests);
in production an Eventarc trigger does this.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from events.eventarc import Delivery, message_published
from functions.logs import fields

log = logging.getLogger("kfp_trigger.relay")


def eventarc_delivery(topic: str, subscription: str, message: Any) -> Delivery:
    """The CloudEvent Eventarc would post for one pulled Pub/Sub message."""
    return message_published(
        topic,
        message.data,
        dict(message.attributes),
        message_id=message.message_id,
        published=message.publish_time,
        ordering_key=message.ordering_key,
        subscription=subscription,
    )


def ensure_subscription(topic: str, subscription: str) -> None:
    """Create the topic and a pull subscription to it, unless they exist."""
    from google.api_core import exceptions
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    with contextlib.suppress(exceptions.AlreadyExists):
        PublisherClient().create_topic(name=topic)
    with SubscriberClient() as subscriber, contextlib.suppress(exceptions.AlreadyExists):
        subscriber.create_subscription(name=subscription, topic=topic)


def relay(topic: str, subscription: str, url: str, stop: threading.Event) -> None:
    """Pull from `subscription` and post each message to `url` until `stop` is set."""
    import requests
    from google.api_core import exceptions
    from google.cloud.pubsub_v1 import SubscriberClient

    with SubscriberClient() as subscriber:
        while not stop.is_set():
            try:
                response = subscriber.pull(subscription=subscription, max_messages=10, timeout=2)
            except (exceptions.DeadlineExceeded, exceptions.ServiceUnavailable):
                continue
            for received in response.received_messages:
                headers, body = eventarc_delivery(topic, subscription, received.message)
                try:
                    status = requests.post(url, json=body, headers=headers, timeout=60).status_code
                except requests.RequestException:
                    status = 599
                if status < 300:
                    subscriber.acknowledge(subscription=subscription, ack_ids=[received.ack_id])
                else:
                    log.info("not acknowledged; Pub/Sub will redeliver", extra=fields(url=url, status=status))
                    subscriber.modify_ack_deadline(
                        subscription=subscription, ack_ids=[received.ack_id], ack_deadline_seconds=1
                    )
