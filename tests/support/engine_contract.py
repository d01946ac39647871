"""The backend contract kfp-trigger relies on, written once: `make test` runs it on the KFP and
Vertex fakes (tests/contract/test_engines.py), `make test-live` on the user's own engines
(tests/live/), so the fakes and the real servers answer the same checks."""

from __future__ import annotations

import uuid

from pipelines.backend import Backend, CompiledPipeline, RunState, Submission
from pipelines.engines import release

# Object names may hold any of these; run keys are built from them.
HOSTILE_NAMES = ["a+b.csv", "100%.csv", "%2B%zz.csv", "with space/x y.csv", "a#b@c~d.csv", "données/調査.csv"]


def runs_are_found_by_any_run_key(backend: Backend, pipeline: CompiledPipeline) -> None:
    """A run starts, carries its run key, and is found by it (and by nothing else) for every
    kind of run key; it reports a state."""
    prefix = f"contract/{uuid.uuid4().hex[:8]}"
    for name in [*HOSTILE_NAMES, "x" * 900]:
        key = f"{prefix}/{name}#1"
        run_id = backend.submit(Submission(key, "contract-check", pipeline, {"message": "contract"}))
        assert backend.find(key) == run_id, f"the run for {key!r} is found by its key"
        assert backend.find(key.replace("#1", "#2")) is None
        assert backend.status(run_id).state in set(RunState)


def a_run_can_be_cancelled(backend: Backend, pipeline: CompiledPipeline) -> None:
    """A run just started can be cancelled: the engine takes the request and reports the run
    cancelling (which is not an end yet: it may still end otherwise) or cancelled."""
    key = f"contract/{uuid.uuid4().hex[:8]}/cancel.csv#1"
    run_id = backend.submit(Submission(key, "contract-check", pipeline, {"message": "contract"}))
    backend.cancel(run_id)
    assert backend.status(run_id).state in (RunState.RUNNING, RunState.CANCELED)


def the_engine_says_what_it_is(backend: Backend, pipeline: CompiledPipeline) -> None:
    """The engine answers and names itself; a KFP server names its release, which is what the
    doctor and the cold-start check hold each pipeline against (pipelines/engines.py)."""
    engine = backend.engine()
    assert engine.kind in ("local", "kfp", "vertex"), engine
    if engine.kind == "kfp":
        assert release(engine.version) is not None, f"healthz tag_name {engine.version!r} is not a release"
    assert backend.engine() == engine, "asked once, remembered"


CHECKS = (runs_are_found_by_any_run_key, a_run_can_be_cancelled, the_engine_says_what_it_is)
