"""What kfp-trigger relies on, checked on the user's own engine: a run starts, carries its run key,
is found by any run key a route can produce, reports a state, and can be cancelled."""

from __future__ import annotations

import uuid

from pipelines.backend import Backend, CompiledPipeline, RunState, Submission


def test_a_run_is_found_by_its_key_and_reports_a_state(
    engine: tuple[str, Backend], echo: CompiledPipeline
) -> None:
    kind, backend = engine
    key = f"live/{uuid.uuid4().hex[:8]}/a+b 100%.csv#1"  # + and % are legal in object names
    run_id = backend.submit(Submission(key, "live-check", echo, {"message": "live"}))
    assert backend.find(key) == run_id, f"{kind}: the run is found by its key"
    assert backend.find(key + "-other") is None
    assert backend.status(run_id).state in set(RunState)
    backend.cancel(run_id)
    assert backend.status(run_id).state in (
        RunState.PENDING,
        RunState.RUNNING,
        RunState.CANCELED,
        RunState.FAILED,
    )
