"""Named crash points on the main path, for the crash tests (research/reliability.md §5).

With `KFP_TRIGGER_CRASH_AT=<point>` in its environment a process kills itself with SIGKILL the
moment it reaches that point: no cleanup, no answer, no log line, like an instance the platform
took away. The crash tests run the handler in a subprocess with the variable set, then redeliver
and reconcile, and check that nothing was lost and nothing ran twice. Unset (as in production)
a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "KFP_TRIGGER_CRASH_AT"

AFTER_CLAIM = "after-claim"  # the claim is won, nothing submitted yet
AFTER_SUBMIT = "after-submit"  # the backend has the run, the ledger does not know its id
AFTER_RECORD = "after-record"  # the ledger says SUBMITTED, the delivery is not answered
AFTER_TERMINAL = "after-terminal"  # the ledger says the run ended, no result published
AFTER_PUBLISH = "after-publish"  # the result is published, the ledger does not know it
DISPATCH_POINTS = (AFTER_CLAIM, AFTER_SUBMIT, AFTER_RECORD)
COMPLETION_POINTS = (AFTER_TERMINAL, AFTER_PUBLISH)
POINTS = DISPATCH_POINTS + COMPLETION_POINTS


def reached(point: str) -> None:
    if os.environ.get(VARIABLE) == point:
        os.kill(os.getpid(), signal.SIGKILL)
