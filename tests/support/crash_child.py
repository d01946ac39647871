"""One delivery or one reconcile pass in a process of its own, configured from the environment
like the deployed function; with `--crash-at POINT` it kills itself with SIGKILL at that point.

    python -m tests.support.crash_child [--crash-at POINT] deliver HEADERS_JSON BODY
    python -m tests.support.crash_child [--crash-at POINT] reconcile
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

from functions import bootstrap
from functions.service import completion, crashpoints, intake
from tests.support import call


def main(argv: list[str]) -> None:
    services = bootstrap.services()
    if argv[0] == "--crash-at":
        services = replace(services, crash=crashpoints.sigkill_at(argv[1]))
        argv = argv[2:]
    if argv[0] == "deliver":
        headers, body = json.loads(argv[1]), argv[2].encode()
        answer = call(intake.handle, services, headers, body)
        print(json.dumps({"status": answer.status, "body": answer.body}, default=str))
    else:
        print(json.dumps({"done": completion.reconcile(services).done}))


if __name__ == "__main__":
    main(sys.argv[1:])
