"""Alerts: what an operator must hear about, sent once to every alert sink.

A failed run, a join window that expired with parts missing (`on_expire: alert`), data a route
expected that did not come (`expect`), a burst of quarantined events, a store that refuses the
functions (a bucket they may not read: a grant is missing). Each alert is a CloudEvent
(`dev.kfp-trigger.alert.v1`, its data an `Alert`, schema deploy/schemas/alert.v1.schema.json)
with the `explain` command to run, published to the alerts sink (a Pub/Sub topic in production,
JSONL locally) and to a chat webhook when one is set (`KFP_TRIGGER_ALERT_WEBHOOK`, Slack's
`{"text": …}`). Once: the id is derived from what the alert is about, and a ledger place per
sink and id (create-if-absent) is taken before sending and given back if the send fails, so
retries (the caller raises, the platform or the next pass tries again) send it where it is
missing, and only there.
"""

from __future__ import annotations

import hashlib
import logging
import shlex
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from events.errors import TransientError
from functions.logs import fields
from functions.service.ports import Services
from functions.service.records import iso

log = logging.getLogger("kfp_trigger.alerts")

ALERT_TYPE = "dev.kfp-trigger.alert.v1"
SOURCE_PREFIX = "//kfp-trigger/routes/"
SENT = "alert:"  # + sink number + ":" + alert id: the place that says it was sent there

Kind = Literal[
    "run.failed", "join.expired", "freshness.missed", "freshness.late", "quarantine.burst", "access.refused"
]


class Alert(BaseModel):
    """The data of a `dev.kfp-trigger.alert.v1` CloudEvent."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Kind = Field(description="what happened")
    route: str = Field(description="the route it is about ('' for the whole service)")
    subject: str = Field(description="the run key, join key, missed window or burst it is about")
    summary: str = Field(max_length=500, description="one line for people")
    explain: str = Field(description="the command that tells the whole story")


def alert_id(alert: Alert) -> str:
    return hashlib.sha256(f"{alert.kind}\n{alert.route}\n{alert.subject}".encode()).hexdigest()[:32]


def alert_event(alert: Alert, time: str) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": alert_id(alert),
        "type": ALERT_TYPE,
        "source": f"{SOURCE_PREFIX}{alert.route or '-'}",
        "subject": alert.subject,
        "time": time,
        "datacontenttype": "application/json",
        "data": alert.model_dump(mode="json"),
    }


def raise_alert(services: Services, alert: Alert) -> None:
    """Send `alert` to every alert sink it has not reached yet (and log it).

    Raises:
        TransientError: a sink could not take it; the caller's retry sends it there, only there.
    """
    log.error(
        f"alert: {alert.kind}", extra=fields(route=alert.route, subject=alert.subject, summary=alert.summary)
    )
    identity = alert_id(alert)
    event = alert_event(alert, iso(services.clock()) or "")
    failed: list[str] = []
    for number, sink in enumerate(services.alerts):
        place, sender = f"{SENT}{number}:{identity}", uuid.uuid4().hex
        if services.quotas.holders(place) or not services.quotas.hold(place, 1, sender, services.clock()):
            continue  # sent there already (or being sent)
        try:
            sink.publish(event)
        except TransientError as exc:
            services.quotas.let_go(place, sender)
            failed.append(str(exc))
    if failed:
        raise TransientError(f"alert {alert.kind} {alert.subject!r} not delivered: {'; '.join(failed)}")


def explain_command(subject: str) -> str:
    """The command that tells `subject`'s story, quoted for a shell: a subject is built from an
    event's values, and whoever pastes the command must run only `explain`."""
    return f"kfp-trigger explain {shlex.quote(subject)}"


def alert_schema() -> dict[str, object]:
    """The JSON Schema of an alert's data (deploy/schemas/alert.v1.schema.json)."""
    schema = Alert.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = ALERT_TYPE
    return schema


def refused(services: Services, route: str, subject: str, reason: str) -> None:
    """Alert that a store refused what `subject` (a run key, an event key) needed: the operator
    can grant what is missing; nothing else will. A sink that is down loses this one alert (it
    is logged): the event or run it is about is recorded either way."""
    alert = Alert(
        kind="access.refused",
        route=route,
        subject=subject,
        summary=f"{subject}: {reason}"[:500],
        explain=explain_command(subject),
    )
    try:
        raise_alert(services, alert)
    except TransientError:
        log.exception("alert not sent", extra=fields(route=route, subject=subject))
