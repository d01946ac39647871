"""Deliveries that ran out of attempts, sent on again by every reconcile pass.

A push subscription gives a message 100 attempts, 10 to 600 s apart (about 16 hours), then moves
it to the dead-letter topic (deploy/terraform/deliveries.tf), whose subscription keeps it 31
days and is alerted on. Each pass takes what it holds and hands each letter to the use case its
own subscription would have reached (`settings.deliveries`: subscription → push path; the
completions topic's path is handle_completion's, every other handle_event's), through the same
deduplication as a delivery. So no outage shorter than 31 days loses an event, and once the
outage ends nobody has to act.

A letter is acknowledged once it is accounted for: a run, a recorded skip, or a quarantine
record (a letter from a subscription this deployment does not deliver, or one no push path
reads, is quarantined). One that asks to be retried (the ledger or engine still down) is handed
back and ends the pass's redelivery: the rest wait for the next pass rather than each waiting
out the same outage. Batches follow one another while every letter is accounted for, for at
most BUDGET_SECONDS of a pass.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping

from events.errors import TransientError
from events.push import PushError, from_push
from functions.logs import fields, labelled
from functions.service import completion, intake
from functions.service.passes import Pass
from functions.service.ports import DeadLetter, DeadLetters, Services
from functions.service.quarantine import quarantine
from functions.service.records import Handled, Outcome

log = logging.getLogger("kfp_trigger.dead_letters")

BATCH = 100  # letters pulled at once
BUDGET_SECONDS = 240.0  # of the reconcile function's 540 s: the rest of the pass must still run
TARGET = "dead_letters"

UseCase = Callable[[Services, Mapping[str, str], object, bytes], Handled]


def redeliver(services: Services, budget_seconds: float = BUDGET_SECONDS) -> Pass:
    """Send dead letters on, a batch at a time, while every letter of a batch is accounted for
    and the budget lasts: how many were, and which were handed back, why."""
    report = Pass()
    box = services.dead_letters
    until = time.monotonic() + budget_seconds
    while box is not None and time.monotonic() < until:
        letters = box.pull(BATCH)
        if not letters or not _batch(services, box, letters, report):
            break
    return report


def _batch(services: Services, box: DeadLetters, letters: list[DeadLetter], report: Pass) -> bool:
    """Deliver one batch; whether every letter of it was accounted for."""
    for index, letter in enumerate(letters):
        with labelled(event_id=letter.message_id):
            waits = _deliver(services, letter)
        box.settle(letter, done=waits is None)
        if waits is None:
            report.done += 1
            continue
        why, outage = waits
        report.skipped.append({"dead_letter": letter.message_id, "reason": f"{why} (next pass)"})
        if outage:  # the others would wait out the same outage, one by one
            for rest in letters[index + 1 :]:
                box.settle(rest, done=False)
            return False
    return len(report.skipped) == 0


def _deliver(services: Services, letter: DeadLetter) -> tuple[str, bool] | None:
    """Hand one letter to its use case: None once it is accounted for, else why it waits and
    whether what it waits for (a dependency down) holds the others too."""
    body = json.dumps(letter.body, sort_keys=True).encode()
    path = services.settings.deliveries.get(letter.source)
    kept = {"id": letter.message_id}
    if path is None:
        reason = f"dead letter from {letter.source[:100]!r}, a subscription this deployment does not deliver"
        quarantine(services, reason, kept, body, TARGET)
        return None
    try:
        attributes, data = from_push(letter.body, path)
    except PushError as exc:
        quarantine(services, f"dead letter from {letter.source}: {exc}", kept, body, TARGET)
        return None
    log.info("dead letter sent on", extra=fields(source=letter.source, attempts=letter.attempts))
    try:
        handled = _use_case(services, path)(services, attributes, data, body)
    except TransientError as exc:
        return str(exc), True
    except Exception as exc:  # isolation: one letter's bug must not hold the others
        log.exception("dead letter failed", extra=fields(source=letter.source))
        return f"unexpected {type(exc).__name__}", False
    if Outcome.RETRY in handled.outcomes:
        return "a dependency asked for a retry", True
    if Outcome.BUSY in handled.outcomes:
        return "another delivery of it holds its claim", False
    return None


def _use_case(services: Services, path: str) -> UseCase:
    completions = services.settings.completion_topic.removeprefix("pubsub://")
    return completion.handle if completions and path == f"/{completions}" else intake.handle
