"""The pipeline inputs kfp-trigger fills itself when a pipeline declares them, and filling them.

Routes never set these: the catalog accepts a pipeline that requires them without a route
giving them, and every backend fills them the same way (`filled`).
"""

from __future__ import annotations

from pipelines.backend import Submission

RUN_KEY_PARAMETER = "run_key"  # STRING: the run's idempotency key (the exit step reports it)
BATCH_OBJECTS_PARAMETER = "batch_objects"  # LIST of gs:// URIs of the batch (manifest or window)
BATCH_BYTES_PARAMETER = "batch_bytes"  # NUMBER_INTEGER: a manifest batch's total size
BATCH_MANIFEST_PARAMETER = "batch_manifest"  # STRING: the gs:// URI of the batch's manifest
COMPLETION_TOPIC_PARAMETER = "completion_topic"  # where a notified pipeline's exit step publishes
JOIN_PARTS_PARAMETER = "join_parts"  # STRUCT: a join run's parts, name → {event_id, event_key, fields}
FILLED = frozenset(
    {
        RUN_KEY_PARAMETER,
        BATCH_OBJECTS_PARAMETER,
        BATCH_BYTES_PARAMETER,
        BATCH_MANIFEST_PARAMETER,
        COMPLETION_TOPIC_PARAMETER,
        JOIN_PARTS_PARAMETER,
    }
)


def filled(submission: Submission, completion_topic: str) -> dict[str, object]:
    """The parameters the engine gets: the run's, with the run key and the completion topic added
    for a pipeline that declares those inputs (a `notify: true` pipeline declares both). The
    ledger records a batch's objects, size and manifest with every batch run, for its result and
    its reruns; the pipeline gets those it declares."""
    inputs = submission.pipeline.inputs
    params = {k: v for k, v in submission.params.items() if k in inputs or k not in FILLED}
    if RUN_KEY_PARAMETER in inputs:
        params[RUN_KEY_PARAMETER] = submission.run_key
    if COMPLETION_TOPIC_PARAMETER in inputs:
        params[COMPLETION_TOPIC_PARAMETER] = completion_topic
    return params
