"""HTTP in and out for the function targets: method, size cap, envelope, error mapping.

Every answer is a small JSON body that never echoes the request (functions-framework's own 400
page for CloudEvent functions echoes every header, Authorization included; these targets use the
HTTP signature and parse CloudEvents themselves so that page is never produced). Unexpected
errors are logged with their traceback and answered 500 without detail, so the platform retries.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import flask

from events.envelope import EnvelopeError, parse_http
from events.errors import TransientError

if TYPE_CHECKING:
    from functions.answer import Answer
    from functions.bootstrap import Services

    Service = Callable[[Services, Mapping[str, str], object, bytes], Answer]

log = logging.getLogger("kfp_trigger.http")

RETRY_AFTER_SECONDS = "10"


def reply(
    status: int, body: Mapping[str, object], headers: Mapping[str, str] | None = None
) -> flask.Response:
    return flask.Response(
        json.dumps(body, sort_keys=True, default=str),
        status,
        headers=dict(headers or {}),
        mimetype="application/json",
    )


def serve(request: flask.Request, service: Service, target: str) -> flask.Response:
    """Run `service` on one request and turn its answer into the HTTP response."""
    from functions.answer import quarantine
    from functions.bootstrap import services as current

    if request.method != "POST":
        return reply(405, {"error": "only POST is accepted"}, {"Allow": "POST"})
    try:
        services = current()
        cap = services.settings.max_body_bytes
        body = request.stream.read(cap + 1)
        headers = {key.lower(): value for key, value in request.headers.items()}
        if len(body) > cap:
            ce_headers = {k: v for k, v in headers.items() if k.startswith("ce-")}
            answer = quarantine(services, f"body larger than {cap} bytes", ce_headers, b"", target)
            return reply(answer.status, answer.body)
        try:
            attributes, data = parse_http(headers, body)
        except EnvelopeError as exc:
            log.warning("%s rejected a request: %s", target, exc.message)
            return reply(exc.status, {"error": exc.message})
        answer = service(services, attributes, data, body)
    except TransientError as exc:
        log.warning("%s asks for a retry after a transient failure: %s", target, exc)
        return reply(503, {"error": "temporarily unavailable; retry"}, {"Retry-After": RETRY_AFTER_SECONDS})
    except Exception:
        log.exception("unexpected failure in %s", target)
        return reply(500, {"error": "internal error"})
    retry = {"Retry-After": RETRY_AFTER_SECONDS} if answer.status >= 400 else {}
    return reply(answer.status, answer.body, retry)
