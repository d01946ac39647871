"""KFP API errors as kfp-trigger's: what is transient (retry), gone (404) or refused for good,
each said in one line of kfp-trigger's own words (a refusal's body goes to the log only)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from events.errors import Gone, PermanentError, TransientError
from pipelines.causes import cause

log = logging.getLogger("kfp_trigger.kfp")


@contextmanager
def mapped(action: str) -> Iterator[None]:
    """Turn the client's errors into kfp-trigger's: retry on 5xx/429/connection, else permanent."""
    import kfp_server_api
    import urllib3

    try:
        yield
    except kfp_server_api.ApiException as exc:
        # No status (0 or None): no answer came, as when TLS fails (kfp_server_api/rest.py turns
        # urllib3's SSLError into ApiException(status=0)): a connection problem, not a refusal.
        if not exc.status:  # no answer at all: say why
            raise TransientError(f"KFP {action}: no answer: {cause(exc)}") from exc
        if exc.status >= 500 or exc.status == 429:
            raise TransientError(f"KFP {action}: HTTP {exc.status}") from exc
        reason = refusal(action, exc.status, exc.body)
        if exc.status == 404:
            raise Gone(reason) from exc
        raise PermanentError(reason) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise TransientError(f"KFP {action}: {cause(exc)}") from exc


# google.rpc.Code, which the API server's gRPC gateway puts in every error body as `code`.
GRPC_CODES = dict(
    enumerate(
        [
            "OK",
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        ]
    )
)


def refusal(action: str, status: int, body: object) -> str:
    """A refusal in one line of its own words: the action, the HTTP status and the gRPC code.
    Never the body, which quotes what was sent (a run's parameter values; a pipeline spec); it
    goes to the log, for the operator, and stays out of runs' results and the ledger."""
    try:
        code = json.loads(body).get("code") if isinstance(body, str | bytes) else None
    except (ValueError, AttributeError):
        code = None
    name = GRPC_CODES.get(code) if isinstance(code, int) else None
    log.warning(
        "KFP refused", extra={"fields": {"action": action, "status": status, "body": str(body)[:2000]}}
    )
    return f"KFP {action}: HTTP {status}{f' {name}' if name else ''}"
