"""The error hierarchy every package shares. Permanent vs transient decides ack vs retry.

    KfpTriggerError
     ├── PermanentError   retrying cannot help: answer 2xx and record why (quarantine, FAILED run)
     │    ├── BadEvent     an event that cannot be decoded or does not fit its declared type
     │    ├── RoutesError  routes.yaml does not validate; carries every problem found
     │    ├── Gone         what a recorded run needs is no more: the engine does not know the run
     │                     (404), or its route or backend was removed from routes.yaml
     │    └── Refused      a store refuses for good: a record too large for the ledger, an object
     │                     the service's identity may not read
     └── TransientError   a dependency is unavailable: answer non-2xx so the platform retries

Errors carry identifiers (route, event id, field path), never raw payloads.
"""

from __future__ import annotations


class KfpTriggerError(Exception):
    """Base of every error kfp-trigger raises on purpose."""


class PermanentError(KfpTriggerError):
    """The input is wrong; the same input will fail the same way."""


class TransientError(KfpTriggerError):
    """A dependency failed in a way that may pass on retry."""


class Gone(PermanentError):
    """A recorded run cannot be acted on, ever: the engine answers that it does not know it, or
    routes.yaml no longer has its route or backend. (A refused credential is not this: it is a
    PermanentError that a fixed configuration cures.)"""


class BadEvent(PermanentError):
    """An event that cannot be decoded; `reason` says why in words safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RoutesError(PermanentError):
    """routes.yaml is invalid. `problems` lists every error as `path: message`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) in routes:\n" + "\n".join(problems))
        self.problems = problems


class Refused(PermanentError):
    """A store refuses what was asked, and asking again gets the same answer: the ledger will not
    take a record (Firestore INVALID_ARGUMENT: too large, malformed), or Cloud Storage will not
    let this identity read a bucket (403) or has no such bucket. A changed input or a grant
    cures it; a retry does not. `reason` says which, in words safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
