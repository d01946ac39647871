"""Named crash points on the main path, for the crash tests (research/reliability.md §5).

The use cases call `services.crash(point)` at each; in production the hook does nothing
(`ports.never_crash`). The crash tests inject a hook that kills the process with SIGKILL at one
point (`sigkill_at`): no cleanup, no answer, no log line, like an instance the platform took
away; the model test and the reliability bench inject one that raises instead.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

AFTER_CLAIM = "after-claim"  # the claim is won, nothing submitted yet
AFTER_SUBMIT = "after-submit"  # the backend has the run, the ledger does not know its id
AFTER_RECORD = "after-record"  # the ledger says SUBMITTED, the delivery is not answered
AFTER_TERMINAL = "after-terminal"  # the ledger says the run ended, no result published
AFTER_PUBLISH = "after-publish"  # the result is published, the ledger does not know it
DISPATCH_POINTS = (AFTER_CLAIM, AFTER_SUBMIT, AFTER_RECORD)
COMPLETION_POINTS = (AFTER_TERMINAL, AFTER_PUBLISH)
POINTS = DISPATCH_POINTS + COMPLETION_POINTS


def sigkill_at(chosen: str) -> Callable[[str], None]:
    """A crash hook that kills this process the moment it reaches `chosen`."""
    if chosen not in POINTS:
        raise ValueError(f"no crash point {chosen!r}; the points are {', '.join(POINTS)}")

    def reached(point: str) -> None:
        if point == chosen:
            os.kill(os.getpid(), signal.SIGKILL)

    return reached
