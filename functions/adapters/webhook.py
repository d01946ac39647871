"""`WebhookSink`: alerts to a chat webhook (a Slack incoming webhook, or anything that takes
Slack's `{"text": …}`), one POST per alert.

The URL is a secret (whoever has it can post to the channel): it comes from
KFP_TRIGGER_ALERT_WEBHOOK, mounted from Secret Manager, and is never logged. A 5xx, a 429 or no
answer is transient (the alert is sent again); any other refusal means the webhook will not take
it (a revoked URL): logged, and the alert stays on the alerts topic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import requests

from events.errors import TransientError
from functions.logs import fields

log = logging.getLogger("kfp_trigger.webhook")


def mrkdwn(value: object) -> str:
    """Text as Slack shows it literally: `&`, `<` and `>` escaped, so that event text cannot
    mention `<!channel>`, a user or a link (api.slack.com/reference/surfaces/formatting#escaping)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class WebhookSink:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._url = url
        self.timeout = timeout

    def publish(self, document: Mapping[str, object]) -> None:
        data = document.get("data")
        alert = data if isinstance(data, Mapping) else {}
        kind, summary, explain = (mrkdwn(alert.get(name, "")) for name in ("kind", "summary", "explain"))
        text = f"kfp-trigger {kind}: {summary}\n→ {explain}"
        try:
            answer = requests.post(self._url, json={"text": text}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TransientError(f"alert webhook unreachable: {type(exc).__name__}") from exc
        if answer.status_code == 429 or answer.status_code >= 500:
            raise TransientError(f"alert webhook answered {answer.status_code}")
        if answer.status_code >= 300:
            log.error("alert webhook refused the alert", extra=fields(status=answer.status_code))
