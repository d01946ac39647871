"""The completion notice: what a run says when it ends, on the completions topic.

`{"run_key", "state", "run_id", "job", "error"}` as JSON, with the run key also as a message
attribute (so subscribers can filter and deduplicate). The local runner sends it with
`Notice.encode()`; `handle_completion` reads it with `Notice.decode()`. The exit step of a
notified pipeline (`pipelines/notify.py`) runs in the pipeline's own container, where this
package is not installed, so it writes the same keys itself; `tests/contract/test_notify.py`
decodes what it publishes with `Notice.decode`. The state is the engine's word, read with
`RunState.parse`: a notice is a hint to look, never the authority (DESIGN.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from events import jsonvalues as jv

RUN_KEY_ATTRIBUTE = "run_key"


@dataclass(frozen=True, slots=True)
class Notice:
    run_key: str
    state: str  # the engine's word: SUCCEEDED, COMPLETE, FAILED, CANCELLED, …
    run_id: str = ""  # the run id the sender knows (the local runner's); the ledger's is authoritative
    job: str = ""  # the engine's job or workflow name (an exit handler's pipeline_job_resource_name)
    error: str | None = None

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, payload: Mapping[str, Any]) -> Notice:
        """A notice from its JSON object.

        Raises:
            BadEvent: `run_key` or `state` is missing or not text.
        """
        error = payload.get("error")
        return cls(
            run_key=jv.text(payload, "run_key", "notice"),
            state=jv.text(payload, "state", "notice"),
            run_id=jv.text(payload, "run_id", "notice", required=False),
            job=jv.text(payload, "job", "notice", required=False),
            error=error if isinstance(error, str) else None,
        )
