"""HTTP in and out for the function targets: method, authentication, size cap, envelope, errors.

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
from functions.answer import Answer
from functions.logs import fields, trace_of
from functions.logs import request as request_context

if TYPE_CHECKING:
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
    """A CloudEvent target: authenticate, cap, parse, and run `service` on the event."""

    def work(services: Services) -> Answer:
        from functions.answer import quarantine

        cap = services.settings.max_body_bytes
        body = request.stream.read(cap + 1)
        headers = {key.lower(): value for key, value in request.headers.items()}
        if len(body) > cap:
            ce_headers = {k: v for k, v in headers.items() if k.startswith("ce-")}
            return quarantine(services, f"body larger than {cap} bytes", ce_headers, b"", target)
        try:
            attributes, data = parse_http(headers, body)
        except EnvelopeError as exc:
            log.warning("request rejected", extra=fields(status=exc.status, reason=exc.message))
            return Answer(exc.status, {"error": exc.message})
        return service(services, attributes, data, body)

    return guarded(request, target, work)


def guarded(request: flask.Request, target: str, work: Callable[[Services], Answer]) -> flask.Response:
    """Method, authentication and error mapping shared by every target."""

    if request.method != "POST":
        return reply(405, {"error": "only POST is accepted"}, {"Allow": "POST"})
    trace = trace_of(request.headers.get("traceparent"), request.headers.get("X-Cloud-Trace-Context"))
    with request_context(target, trace):
        return _answered(request, work)


def _answered(request: flask.Request, work: Callable[[Services], Answer]) -> flask.Response:
    from functions.auth import AuthError
    from functions.bootstrap import services as current

    try:
        services = current()
        if services.verifier is not None:
            services.verifier.verify(request.headers.get("Authorization", ""))
        answer = work(services)
    except AuthError as exc:
        log.warning("caller refused", extra=fields(status=exc.status, reason=exc.reason))
        challenge = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return reply(exc.status, {"error": exc.reason}, challenge)
    except TransientError as exc:
        log.warning("transient failure: asking for a retry", extra=fields(error=str(exc)))
        return reply(503, {"error": "temporarily unavailable; retry"}, {"Retry-After": RETRY_AFTER_SECONDS})
    except Exception:
        log.exception("unexpected failure")
        return reply(500, {"error": "internal error"})
    retry = {"Retry-After": RETRY_AFTER_SECONDS} if answer.status in (429, 503) else {}
    return reply(answer.status, answer.body, retry)
