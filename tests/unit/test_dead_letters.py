"""Dead letters sent on by the reconcile pass (functions/service/dead_letters.py): each reaches
the use case its own subscription would have, and is acknowledged only once accounted for."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from events.errors import TransientError
from functions.adapters.pubsub_dead_letters import letter_of
from functions.service import dead_letters, reconcile
from functions.service.ports import DeadLetter, Services
from tests.support import DATA
from tests.support.fakes import RecordingBackend

PRODUCT = "kfp-trigger-product-product-events"
TICKS = "kfp-trigger-schedules"
DELIVERIES = {
    PRODUCT: "/projects/acme-analytics/topics/product-events",
    TICKS: "/projects/acme-analytics/topics/kfp-trigger-schedules",
    "kfp-trigger-completions": "/projects/acme-analytics/topics/kfp-trigger-completions",
}


class Box:
    """A dead-letter subscription in memory: what was pulled, acknowledged, handed back."""

    def __init__(self, *letters: DeadLetter) -> None:
        self.held = list(letters)
        self.acked: list[str] = []
        self.returned: list[str] = []

    def pull(self, limit: int) -> list[DeadLetter]:
        return [held for held in self.held if held.message_id not in self.acked][:limit]

    def settle(self, letter: DeadLetter, done: bool) -> None:
        (self.acked if done else self.returned).append(letter.message_id)


def letter(source: str, golden: str, message_id: str = "dl-1") -> DeadLetter:
    """A golden message, dead-lettered from `source` after 100 attempts."""
    message = json.loads((DATA / "pubsub" / golden).read_text())["data"]["message"]
    body = {"message": message, "subscription": f"projects/acme-analytics/subscriptions/{source}"}
    return DeadLetter(handle=message_id, message_id=message_id, source=source, attempts=100, body=body)


@pytest.fixture
def boxed(services: Services) -> Services:
    settings = services.settings.replace(
        deliveries=DELIVERIES,
        completion_topic="pubsub://projects/acme-analytics/topics/kfp-trigger-completions",
    )
    return replace(services, settings=settings)


SURVEY_CLOSED = "survey-closed/projects/acme-analytics/topics/product-events#evt-42"


def test_a_dead_letter_starts_the_run_its_delivery_would_have(
    boxed: Services, backend: RecordingBackend
) -> None:
    box = Box(letter(PRODUCT, "product-survey-closed.json"))
    report = dead_letters.redeliver(replace(boxed, dead_letters=box))
    assert (report.done, box.acked, box.returned) == (1, ["dl-1"], [])
    assert [s.run_key for s in backend.submitted] == [SURVEY_CLOSED]


def test_a_dead_letter_already_delivered_is_a_duplicate_not_a_second_run(
    boxed: Services, backend: RecordingBackend
) -> None:
    """Its delivery may have been handled while its answer was lost: the same deduplication."""
    closed = "product-survey-closed.json"
    box = Box(letter(PRODUCT, closed), letter(PRODUCT, closed, "dl-2"))
    dead_letters.redeliver(replace(boxed, dead_letters=box))
    assert box.acked == ["dl-1", "dl-2"]
    assert len(backend.submitted) == 1


def test_a_letter_from_a_subscription_not_delivered_here_is_quarantined(boxed: Services) -> None:
    box = Box(letter("somebody-elses-subscription", "product-survey-closed.json"))
    dead_letters.redeliver(replace(boxed, dead_letters=box))
    assert box.acked == ["dl-1"]
    (record,) = boxed.quarantine.published  # type: ignore[attr-defined]
    assert "does not deliver" in record["reason"]
    assert record["target"] == "dead_letters"


def test_while_a_dependency_is_down_the_letters_wait_for_the_next_pass(
    boxed: Services, backend: RecordingBackend
) -> None:
    backend.fail_with = TransientError("engine down")
    box = Box(*(letter(PRODUCT, "product-survey-closed.json", f"dl-{n}") for n in range(3)))
    report = dead_letters.redeliver(replace(boxed, dead_letters=box))
    assert (report.done, box.acked, box.returned) == (0, [], ["dl-0", "dl-1", "dl-2"])
    assert "next pass" in report.skipped[0]["reason"]
    backend.fail_with = None
    report = dead_letters.redeliver(replace(boxed, dead_letters=box))
    assert report.done == 3
    assert len(backend.submitted) == 1


def test_a_completion_notice_reaches_handle_completion(boxed: Services) -> None:
    notice = letter("kfp-trigger-completions", "product-survey-closed.json")
    box = Box(notice)
    dead_letters.redeliver(replace(boxed, dead_letters=box))
    (record,) = boxed.quarantine.published  # type: ignore[attr-defined]
    assert record["target"] == "handle_completion"  # read as a notice, and no notice: quarantined
    assert box.acked == ["dl-1"]


def test_each_reconcile_pass_sends_dead_letters_on(boxed: Services, backend: RecordingBackend) -> None:
    box = Box(letter(PRODUCT, "product-survey-closed.json"))
    reconcile.reconcile(replace(boxed, dead_letters=box))
    assert box.acked == ["dl-1"]
    assert len(backend.submitted) == 1


def test_a_tick_keeps_the_slot_of_its_first_publication() -> None:
    """Dead-lettering publishes the message again, hours later; a tick's slot is read from its
    publish time, so the letter carries the original's (CloudPubSubDeadLetterSourceTopicPublishTime)."""
    received = SimpleNamespace(
        ack_id="ack-1",
        message=SimpleNamespace(
            message_id="555",
            data=b"",
            ordering_key="",
            publish_time=datetime(2026, 11, 26, 18, 0, tzinfo=UTC),
            attributes={
                "scheduler_job": "survey-nightly-retrain",
                "CloudPubSubDeadLetterSourceSubscription": TICKS,
                "CloudPubSubDeadLetterSourceSubscriptionProject": "acme-analytics",
                "CloudPubSubDeadLetterSourceDeliveryCount": "100",
                "CloudPubSubDeadLetterSourceTopicPublishTime": "2026-11-26T02:00:04.120Z",
            },
        ),
    )
    found = letter_of(received)
    assert (found.source, found.attempts, found.handle) == (TICKS, 100, "ack-1")
    assert found.body["message"] == {
        "messageId": "555",
        "publishTime": "2026-11-26T02:00:04.120Z",
        "attributes": {"scheduler_job": "survey-nightly-retrain"},
    }
    assert found.body["subscription"] == f"projects/acme-analytics/subscriptions/{TICKS}"


def test_a_dead_letter_tick_runs_its_own_slot(boxed: Services, backend: RecordingBackend) -> None:
    tick = letter(TICKS, "scheduler-tick.json")
    body = {**tick.body, "message": {**tick.body["message"], "data": base64.b64encode(b"{}").decode()}}
    box = Box(replace(tick, body=body))
    dead_letters.redeliver(replace(boxed, dead_letters=box))
    slot = "nightly-retrain/survey-nightly-retrain@2026-11-26T02:00:00Z"  # 03:00 Berlin, not 18:00 UTC
    assert [s.run_key for s in backend.submitted] == [slot]


def test_a_pass_sends_on_batch_after_batch_while_each_is_accounted_for(boxed: Services) -> None:
    """After a long outage there are thousands: a pass takes batches until none is left."""
    box = Box(*(letter(PRODUCT, "product-survey-closed.json", f"dl-{n}") for n in range(250)))
    report = dead_letters.redeliver(replace(boxed, dead_letters=box))
    assert (report.done, len(box.acked), box.returned) == (250, 250, [])
