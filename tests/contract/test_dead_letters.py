"""The dead-letter subscription on the Pub/Sub emulator: what Pub/Sub moves there after a push
subscription's last attempt, read back as the push body that subscription posted
(functions/adapters/pubsub_dead_letters.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from events.push import from_push
from functions.adapters.pubsub_dead_letters import PubsubDeadLetters
from functions.service.ports import DeadLetter
from tests.support import serving
from tests.support.pubsub import push_subscription, topic_with_subscription


class Refusing:
    """A push endpoint that answers 503 to everything, keeping what it was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.bodies.append(json.loads(request.get_data()))
        return Response("down", 503)(environ, start_response)


@pytest.fixture
def refused(pubsub_emulator: str) -> Iterator[tuple[Refusing, PubsubDeadLetters, str, str]]:
    """A message published on a topic whose push subscription is always refused, until it is a
    dead letter: (the endpoint, the dead-letter box, the source subscription, the topic)."""
    endpoint = Refusing()
    topic, _ = topic_with_subscription("product")
    dead_letter, held = topic_with_subscription("dead-letter")
    with serving(endpoint) as url:
        source = push_subscription(topic, f"{url}/{topic}", dead_letter)
        yield endpoint, PubsubDeadLetters(held), source, topic


def first_letter(box: PubsubDeadLetters) -> DeadLetter:
    deadline = time.monotonic() + 90
    while not (letters := box.pull(10)):
        assert time.monotonic() < deadline, "nothing was dead-lettered"
        time.sleep(1)
    (letter,) = letters
    return letter


def test_a_dead_letter_is_the_push_its_subscription_posted(refused: tuple[Any, ...]) -> None:
    from google.cloud.pubsub_v1 import PublisherClient

    endpoint, box, source, topic = refused
    PublisherClient().publish(topic, b'{"event_id": "e-1"}', producer="survey-service").result(timeout=30)
    letter = first_letter(box)
    assert letter.source == source.rsplit("/", 1)[-1]
    assert letter.attempts >= 5
    posted = endpoint.bodies[0]
    assert letter.body["subscription"] == posted["subscription"] == source
    path = f"/{topic}"
    again, first = from_push(letter.body, path), from_push(posted, path)
    assert again[1]["message"]["data"] == first[1]["message"]["data"]  # type: ignore[index]
    assert again[1]["message"]["attributes"] == {"producer": "survey-service"}  # type: ignore[index]
    assert again[0]["time"] == first[0]["time"], "the first publication's time, not the dead-lettering's"


def test_a_letter_handed_back_comes_again_and_an_acknowledged_one_does_not(refused: tuple[Any, ...]) -> None:
    from google.cloud.pubsub_v1 import PublisherClient

    _, box, _, topic = refused
    PublisherClient().publish(topic, b"{}", producer="survey-service").result(timeout=30)
    letter = first_letter(box)
    box.settle(letter, done=False)
    again = first_letter(box)
    assert again.message_id == letter.message_id
    box.settle(again, done=True)
    time.sleep(2)
    assert box.pull(10) == []
