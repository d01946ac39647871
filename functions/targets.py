"""The Cloud Functions targets, the HTTP glue they share, and the one table of answers.

Each target is thin: authenticate, cap and parse the request, call one use case, and turn what
it did into ack (2xx) or retry (non-2xx) by `STATUS`. Every answer is a small JSON body that
never echoes the request (functions-framework's own 400 page for CloudEvent functions echoes
every header, Authorization included; these targets use the HTTP signature and parse CloudEvents
themselves so that page is never produced). Unexpected errors are logged with their traceback
and answered 500 without detail, so the platform retries.

The use cases are imported on the first request, not at import, so a cold start pays only for
functions-framework itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import flask
import functions_framework

from events.errors import TransientError
from functions.logs import fields, trace_of
from functions.logs import request as request_context
from functions.service.records import NO_RIDERS, Handled, KeptEvent, Outcome, Riders

if TYPE_CHECKING:
    from functions.service.ports import Services

    UseCase = Callable[[Services, Mapping[str, str], object, bytes], Handled]

log = logging.getLogger("kfp_trigger.http")

RETRY_AFTER_SECONDS = "10"
KEPT_BYTES = 4096  # of an oversized body, in its quarantine record
MEASURED_BYTES = 64 * 1024 * 1024  # an oversized body is read this far to record its size and hash

# The one table of answers: how each outcome is answered (the most severe in a response wins).
# Platform deliveries are retried on every non-2xx, so everything is acknowledged but a claim
# another delivery holds (429: if it dies, this redelivery takes over) and a dependency that
# failed (503). Requests that are not CloudEvents, and callers refused, are answered before
# any outcome (400/415, 401/403).
STATUS: Mapping[Outcome, int] = {
    Outcome.RUN: 200,
    Outcome.DUPLICATE: 200,
    Outcome.SKIPPED: 200,
    Outcome.IGNORED: 200,
    Outcome.QUARANTINED: 200,
    Outcome.FAILED: 200,
    Outcome.COMPLETED: 200,
    Outcome.QUEUED: 200,
    Outcome.BUSY: 429,
    Outcome.RETRY: 503,
}


@functions_framework.http
def handle_event(request: flask.Request) -> flask.Response:
    """Inbound events (Pub/Sub pushes: messages, schedule ticks, Cloud Storage notifications, audit-log
    entries; or Eventarc CloudEvents) → at most one run each."""
    from functions.service import intake

    return serve(request, intake.handle, "handle_event")


@functions_framework.http
def handle_completion(request: flask.Request) -> flask.Response:
    """Completion notices (Pub/Sub) → terminal state → published result."""
    from functions.service import completion

    return serve(request, completion.handle, "handle_completion")


@functions_framework.http
def reconcile(request: flask.Request) -> flask.Response:
    """Cloud Scheduler → start missed schedule slots (catch_up), finish runs whose completion
    notice was lost, re-publish results, expire join windows, start what the queue allows."""
    from functions.service import reconcile as use_case

    return guarded(request, "reconcile", use_case.reconcile_pass)


@functions_framework.http
def status_page(request: flask.Request) -> flask.Response:
    """The read-only status page (GET): overview, routes, an event's or run's story, search."""
    from functions.statuspage import HEADERS, render

    def work(services: Services) -> flask.Response:
        page = render(services, request.path, request.args.to_dict())
        return flask.Response(page.html, page.status, headers=HEADERS, mimetype="text/html")

    return _guarded(request, "status_page", work, methods=("GET", "HEAD"))


def status_of(handled: Handled) -> int:
    """The HTTP status for what a use case did: that of its most severe outcome."""
    return max((STATUS[outcome] for outcome in handled.outcomes), default=200)


def reply(
    status: int, body: Mapping[str, object], headers: Mapping[str, str] | None = None
) -> flask.Response:
    return flask.Response(
        json.dumps(body, sort_keys=True, default=str),
        status,
        headers=dict(headers or {}),
        mimetype="application/json",
    )


def serve(request: flask.Request, use_case: UseCase, target: str) -> flask.Response:
    """A CloudEvent target: authenticate, cap, parse, and run `use_case` on the event."""
    from events.envelope import EnvelopeError, parse_http

    def work(services: Services) -> flask.Response:
        cap = services.settings.max_body_bytes
        body = request.stream.read(cap + 1)
        headers = {key.lower(): value for key, value in request.headers.items()}
        if len(body) > cap:
            return answer(_oversized(services, request, headers, body, target))
        try:
            attributes, data = parse_http(headers, body, request.path)
        except EnvelopeError as exc:
            log.warning("request rejected", extra=fields(status=exc.status, reason=exc.message))
            return reply(exc.status, {"error": exc.message})
        return answer(use_case(services, attributes, data, body))

    return _guarded(request, target, work)


def _oversized(
    services: Services, request: flask.Request, headers: Mapping[str, str], head: bytes, target: str
) -> Handled:
    """Quarantine a body over the cap: its attributes (`peek`), its first KEPT_BYTES, and the
    size and sha256 of all of it (read on, up to MEASURED_BYTES), so it can be told apart."""
    import hashlib

    from events.envelope import peek
    from functions.service.quarantine import quarantine

    digest, size = hashlib.sha256(head), len(head)
    while size <= MEASURED_BYTES and (chunk := request.stream.read(64 * 1024)):
        digest.update(chunk)
        size += len(chunk)
    reason = f"body larger than {services.settings.max_body_bytes} bytes"
    services.telemetry.event("unknown", "", Outcome.QUARANTINED)
    whole = (size, digest.hexdigest() if size <= MEASURED_BYTES else "")
    attributes = peek(headers, head)
    event_id = attributes.get("id", "")[:1024]
    # An event, though too large to keep whole: counted among the quarantined ones, and `replay`
    # names it as too large.
    kept = Riders(kept=KeptEvent(event_id, services.clock(), attributes, "", reason))
    also = kept if target == "handle_event" and event_id else NO_RIDERS
    return quarantine(services, reason, attributes, head[:KEPT_BYTES], target, whole=whole, also=also)


def guarded(request: flask.Request, target: str, use_case: Callable[[Services], Handled]) -> flask.Response:
    """A target that reads nothing of the request but who sent it (the reconciler)."""
    return _guarded(request, target, lambda services: answer(use_case(services)))


def answer(handled: Handled) -> flask.Response:
    status = status_of(handled)
    retry = {"Retry-After": RETRY_AFTER_SECONDS} if status in (429, 503) else {}
    return reply(status, handled.body, retry)


def _guarded(
    request: flask.Request,
    target: str,
    work: Callable[[Services], flask.Response],
    methods: tuple[str, ...] = ("POST",),
) -> flask.Response:
    """Method, authentication and error mapping shared by every target."""
    if request.method not in methods:
        allowed = ", ".join(methods)
        return reply(405, {"error": f"only {allowed} accepted"}, {"Allow": allowed})
    trace = trace_of(request.headers.get("traceparent"), request.headers.get("X-Cloud-Trace-Context"))
    with request_context(target, trace):
        return _answered(request, target, work)


def _answered(
    request: flask.Request, target: str, work: Callable[[Services], flask.Response]
) -> flask.Response:
    from functions.bootstrap import services as current
    from functions.service.ports import AuthError

    try:
        services = current()
        with services.telemetry.request(target, dict(request.headers.items())):
            if services.verifier is not None:
                services.verifier.verify(request.headers.get("Authorization", ""), target)
            return work(services)
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
