"""The `DeadLetters` port on Pub/Sub: the dead-letter topic's subscription (the module's
PREFIX-dead-letter-hold), pulled by the reconciler.

Pub/Sub moves a message that ran out of delivery attempts to the dead-letter topic with its
data and attributes, adding `CloudPubSubDeadLetterSource*` attributes: the source subscription,
its project, the delivery count and the original publish time
(cloud.google.com/pubsub/docs/handling-failures; the gcloud emulator adds the same four, observed
in tests/contract/test_dead_letters.py). Each letter is rebuilt as the push body its own
subscription posted, with the original publish time (a schedule tick's slot is read from it).
"""

from __future__ import annotations

import base64
from typing import Any

from events.errors import TransientError
from functions.service.ports import DeadLetter

SOURCE = "CloudPubSubDeadLetterSource"  # the prefix of the attributes Pub/Sub adds
PULL_TIMEOUT_SECONDS = 10.0


def letter_of(received: Any) -> DeadLetter:
    """A pulled `ReceivedMessage` → the dead letter, its push body as its subscription posted it."""
    message = received.message
    attributes = dict(message.attributes)
    added = {key: attributes.pop(key) for key in list(attributes) if key.startswith(SOURCE)}
    source = added.get(f"{SOURCE}Subscription", "").rsplit("/", 1)[-1]
    project = added.get(f"{SOURCE}SubscriptionProject", "")
    published = added.get(f"{SOURCE}TopicPublishTime") or message.publish_time.isoformat()
    pushed: dict[str, Any] = {"messageId": message.message_id, "publishTime": published}
    pushed |= {"attributes": attributes} if attributes else {}
    pushed |= {"data": base64.b64encode(message.data).decode()} if message.data else {}
    pushed |= {"orderingKey": message.ordering_key} if message.ordering_key else {}
    count = added.get(f"{SOURCE}DeliveryCount", "")
    return DeadLetter(
        handle=received.ack_id,
        message_id=message.message_id,
        source=source,
        attempts=int(count) if count.isdigit() else 0,
        body={"message": pushed, "subscription": f"projects/{project}/subscriptions/{source}"},
    )


class PubsubDeadLetters:
    def __init__(self, subscription: str) -> None:
        """`subscription` is `projects/P/subscriptions/S`. Honours PUBSUB_EMULATOR_HOST."""
        self.subscription = subscription
        self._subscriber: Any = None

    def _client(self) -> Any:
        if self._subscriber is None:
            from google.cloud.pubsub_v1 import SubscriberClient

            self._subscriber = SubscriberClient()
        return self._subscriber

    def pull(self, limit: int) -> list[DeadLetter]:
        try:
            response = self._client().pull(
                subscription=self.subscription, max_messages=limit, timeout=PULL_TIMEOUT_SECONDS
            )
        except Exception as exc:
            if type(exc).__name__ == "DeadlineExceeded":  # nothing held: an empty pull may time out
                return []
            raise TransientError(f"reading {self.subscription} failed: {type(exc).__name__}") from exc
        return [letter_of(received) for received in response.received_messages]

    def settle(self, letter: DeadLetter, done: bool) -> None:
        subscriber = self._client()
        try:
            if done:
                subscriber.acknowledge(subscription=self.subscription, ack_ids=[letter.handle])
            else:
                subscriber.modify_ack_deadline(
                    subscription=self.subscription, ack_ids=[letter.handle], ack_deadline_seconds=0
                )
        except Exception as exc:  # unacknowledged, it comes back: handled again, deduplicated
            raise TransientError(f"settling a dead letter failed: {type(exc).__name__}") from exc
