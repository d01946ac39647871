"""The targets the storm bench serves with functions-framework: kfp-trigger's own, as main.py
exports them, and a no-op CloudEvent function as the baseline of the scaling table.

With BENCH_WRITES_DIR set, every Firestore commit this process makes is logged to a file of its
own there, one line per document written (`time<TAB>document path`; `!path` for a commit that
failed), through the Firestore client's own commit call: the hot-document table counts writes
per document from these.

    functions-framework --source bench/storm_app.py --target handle_event
"""

from __future__ import annotations

import os
import time
from typing import Any

import functions_framework
from cloudevents.http import CloudEvent

from main import handle_completion, handle_event, reconcile  # noqa: F401 - served by functions-framework


def _log_writes(folder: str) -> None:
    from google.cloud.firestore_v1.services.firestore.client import FirestoreClient

    log = open(os.path.join(folder, f"writes-{os.getpid()}.tsv"), "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    commit = FirestoreClient.commit

    def logged(self: Any, request: Any = None, **kwargs: Any) -> Any:
        writes = request["writes"] if isinstance(request, dict) else request.writes
        names = [write.update.name or write.delete or write.transform.document for write in writes]
        try:
            answer = commit(self, request=request, **kwargs)
        except Exception:  # contention, a lock timeout: counted apart, as "!" lines
            log.write("".join(f"{time.time():.3f}\t!{name}\n" for name in names))
            raise
        log.write("".join(f"{time.time():.3f}\t{name}\n" for name in names))
        return answer

    FirestoreClient.commit = logged  # type: ignore[method-assign]


if os.environ.get("BENCH_WRITES_DIR"):
    _log_writes(os.environ["BENCH_WRITES_DIR"])


@functions_framework.cloud_event
def noop(event: CloudEvent) -> None:
    return None
