"""The `Backend` port: submit a compiled pipeline, read a run's status, find a run by its key.

Adapters: `local` (kfp.local in a subprocess per run, pipelines/local.py), `kfp` (a KFP cluster,
pipelines/kfp_backend.py), `vertex` (Vertex AI Pipelines, pipelines/vertex_backend.py). Every
submission carries its run key, so a response lost after a successful submit is recovered with
`find(run_key)` instead of a second submit. Adapters convert their own exceptions to
`TransientError` / `PermanentError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class RunState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    SKIPPED = "SKIPPED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED, RunState.SKIPPED})


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


class Backend(Protocol):
    def submit(self, submission: Submission) -> str:
        """Start a run and return its id at once. Idempotent per run key where the engine allows."""
        ...

    def status(self, run_id: str) -> RunStatus: ...

    def find(self, run_key: str) -> str | None:
        """The id of a run already started for `run_key`, if any."""
        ...

    def cancel(self, run_id: str) -> None: ...
