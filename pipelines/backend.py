"""The `Backend` port: submit a compiled pipeline, read a run's status, find a run by its key.

Adapters: `local` (kfp.local in a subprocess per run, pipelines/local/), `kfp` (a KFP cluster,
pipelines/kfp/), `vertex` (Vertex AI Pipelines, pipelines/vertex.py). Every
submission carries its run key, so a response lost after a successful submit is recovered with
`find(run_key)` instead of a second submit. Adapters convert their own exceptions to
`TransientError` / `PermanentError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # a cold start imports it only when a backend is asked what it is
    from pipelines.engines import Engine


class RunState(StrEnum):
    """The one state enum of a run, from its claim in the ledger to the engine's last word.

    QUEUED, CLAIMED and SUBMITTED are the ledger's (before and at submission); PENDING and RUNNING
    are the engine's while it runs; the last four are terminal, and absorbing in the ledger.
    """

    QUEUED = "QUEUED"
    CLAIMED = "CLAIMED"
    SUBMITTED = "SUBMITTED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    SKIPPED = "SKIPPED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @classmethod
    def parse(cls, word: str) -> RunState:
        """The state an engine's word stands for: KFP v2beta1 `RuntimeState`, Vertex
        `PipelineState` (with or without its `PIPELINE_STATE_` prefix), or an exit handler's
        `PipelineTaskFinalStatus.state`. Unknown words are PENDING: not an end."""
        return ENGINE_WORDS.get(word.strip().upper().removeprefix("PIPELINE_STATE_"), cls.PENDING)


TERMINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED, RunState.SKIPPED})

# Every engine's words, in one table. CANCELING/CANCELLING can still end SUCCEEDED or FAILED and
# PAUSED resumes, so they are not ends. Sources: KFP backend/api/v2beta1/run.proto (RuntimeState);
# Vertex aiplatform/v1/pipeline_state.proto (PipelineState; CANCELLED); KFP's exit handler reports
# the MLMD execution state (COMPLETE, FAILED, CANCELED). shared/research/kfp.md §1.4, §3 and §5.
ENGINE_WORDS: Mapping[str, RunState] = {
    "RUNTIME_STATE_UNSPECIFIED": RunState.PENDING,
    "UNSPECIFIED": RunState.PENDING,
    "QUEUED": RunState.PENDING,
    "PENDING": RunState.PENDING,
    "RUNNING": RunState.RUNNING,
    "CANCELING": RunState.RUNNING,
    "CANCELLING": RunState.RUNNING,
    "PAUSED": RunState.RUNNING,
    "SUCCEEDED": RunState.SUCCEEDED,
    "COMPLETE": RunState.SUCCEEDED,
    "SKIPPED": RunState.SKIPPED,
    "FAILED": RunState.FAILED,
    "CANCELED": RunState.CANCELED,
    "CANCELLED": RunState.CANCELED,
}


@dataclass(frozen=True, slots=True)
class CompiledPipeline:
    """A catalog entry: one compiled package and what it declares."""

    name: str
    version: str  # sha256 of the canonical compiled spec
    package: Path
    backend: str
    pipeline_root: str | None
    inputs: Mapping[str, str]  # parameter name → KFP parameterType
    required: frozenset[str] = frozenset()
    template_uri: str | None = None  # the Artifact Registry URL it was read from
    features: frozenset[str] = frozenset()  # what its IR uses that engines must support (engines.FEATURES)
    schema_version: str = "2.1.0"  # its IR's schemaVersion

    @property
    def version_name(self) -> str:
        return f"{self.name}-{self.version[:12]}"


@dataclass(frozen=True, slots=True)
class Submission:
    run_key: str
    route: str
    pipeline: CompiledPipeline
    params: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class RunStatus:
    run_id: str
    state: RunState
    started_at: str | None = None
    finished_at: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)  # output name → URI
    error: str | None = None
    artifact_root: str | None = None  # gs://… under which the run's artifacts are written, if known
    log: str | None = None  # where the engine keeps the run's log: a file, a console page


class Backend(Protocol):
    def submit(self, submission: Submission) -> str:
        """Start a run and return its id at once. Idempotent per run key where the engine allows."""
        ...

    def status(self, run_id: str) -> RunStatus: ...

    def find(self, run_key: str) -> str | None:
        """The id of a run already started for `run_key`, if any."""
        ...

    def cancel(self, run_id: str) -> None: ...

    def engine(self) -> Engine:
        """The engine and its version, asked once and remembered (a KFP server's healthz)."""
        ...
