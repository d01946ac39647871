"""One delivery or one reconcile pass in a process of its own, configured from the environment
like the deployed function; the crash tests set KFP_TRIGGER_CRASH_AT to make it die midway.

    python -m tests.crash_child deliver HEADERS_JSON BODY
    python -m tests.crash_child reconcile
"""

from __future__ import annotations

import json
import sys

from events.envelope import parse_http
from functions import bootstrap, completion, dispatch


def main(argv: list[str]) -> None:
    services = bootstrap.services()
    if argv[0] == "deliver":
        headers, body = json.loads(argv[1]), argv[2].encode()
        answer = dispatch.handle(services, *parse_http(headers, body), body)
        print(json.dumps({"status": answer.status, "body": answer.body}, default=str))
    else:
        print(json.dumps({"done": completion.reconcile(services)}))


if __name__ == "__main__":
    main(sys.argv[1:])
