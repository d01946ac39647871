"""The Cloud Functions targets. Each is thin: hand the request to `serve` with one service.

The service modules are imported on the first request, not at import, so a cold start pays
only for functions-framework itself.
"""

from __future__ import annotations

import flask
import functions_framework

from functions.http import guarded, serve


@functions_framework.http
def handle_event(request: flask.Request) -> flask.Response:
    """Inbound events (Eventarc: Cloud Storage, Pub/Sub, BigQuery audit logs) → at most one run each."""
    from functions import dispatch

    return serve(request, dispatch.handle, "handle_event")


@functions_framework.http
def handle_completion(request: flask.Request) -> flask.Response:
    """Completion notices (Pub/Sub) → terminal state → published result."""
    from functions import completion

    return serve(request, completion.handle, "handle_completion")


@functions_framework.http
def reconcile(request: flask.Request) -> flask.Response:
    """Cloud Scheduler → finish runs whose completion notice was lost; re-publish results."""
    from functions import completion
    from functions.answer import Answer

    return guarded(
        request, "reconcile", lambda services: Answer(200, {"finished": completion.reconcile(services)})
    )
