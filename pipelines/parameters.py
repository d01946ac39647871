"""The pipeline inputs kfp-trigger fills itself when a pipeline declares them, and filling them.

Routes never set these: the catalog accepts a pipeline that requires them without a route
giving them, and every backend fills them the same way (`filled`).
"""

from __future__ import annotations

from pipelines.backend import Submission

RUN_KEY_PARAMETER = "run_key"  # STRING: the run's idempotency key (the exit step reports it)
BATCH_OBJECTS_PARAMETER = "batch_objects"  # LIST of gs:// URIs of a manifest's batch
BATCH_BYTES_PARAMETER = "batch_bytes"  # NUMBER_INTEGER: their total size
COMPLETION_TOPIC_PARAMETER = "completion_topic"  # where a notified pipeline's exit step publishes
FILLED = frozenset(
    {RUN_KEY_PARAMETER, BATCH_OBJECTS_PARAMETER, BATCH_BYTES_PARAMETER, COMPLETION_TOPIC_PARAMETER}
)


def filled(submission: Submission, completion_topic: str) -> dict[str, object]:
    """The run's parameters with the run key and the completion topic added, for a pipeline that
    declares those inputs (a `notify: true` pipeline declares both)."""
    params = dict(submission.params)
    inputs = submission.pipeline.inputs
    if RUN_KEY_PARAMETER in inputs:
        params[RUN_KEY_PARAMETER] = submission.run_key
    if COMPLETION_TOPIC_PARAMETER in inputs:
        params[COMPLETION_TOPIC_PARAMETER] = completion_topic
    return params
