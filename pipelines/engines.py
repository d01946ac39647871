"""Which engine runs a pipeline, which version it is, and whether it can run what a pipeline needs.

An engine is named by its backend and reports its version: a KFP API server its `tag_name` (the
healthz answer), kfp.local the installed KFP SDK; Vertex AI Pipelines is managed and has none.
A compiled pipeline's IR says which features it uses (`features`); `FEATURES` is the one table
of which release of each engine runs each, with its source. `refusal` says why an engine cannot run a
pipeline, before it is submitted: the service records that reason instead of starting a run
that the cluster would fail at 3 a.m.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

UNKNOWN = ""  # the engine did not say (a KFP server built without TAG_NAME answers "unknown")
SCHEMA_VERSION = "2.1.0"  # the only IR schema a KFP 2 backend accepts (template/v2_template.go, PR #9183)


@dataclass(frozen=True, slots=True)
class Engine:
    """An engine as it describes itself: `kind` (the backend: local, kfp, vertex) and `version`."""

    kind: str
    version: str = UNKNOWN

    @property
    def label(self) -> str:
        """How runs and results name it: `kfp 2.14.0`, `vertex`, `local (kfp 2.17.3)`."""
        if self.kind == "local":
            return f"local (kfp {self.version})" if self.version else "local"
        return f"{self.kind} {self.version}".strip()


ASK_AGAIN_SECONDS = 60.0  # an engine that did not answer is not asked again sooner


class Asked:
    """An engine's answer about itself, asked once and kept. A failure is kept for
    ASK_AGAIN_SECONDS and raised again meanwhile, so that an engine that does not answer costs
    one timeout a minute, not one per event; callers asking at once share one ask."""

    def __init__(self, ask: Callable[[], Engine], clock: Callable[[], float] = time.monotonic) -> None:
        self._ask = ask
        self.clock = clock
        self._engine: Engine | None = None
        self._failed: tuple[float, Exception] | None = None
        self._asking = threading.Lock()

    def __call__(self) -> Engine:
        with self._asking:
            if self._engine is not None:
                return self._engine
            if self._failed is not None and self.clock() - self._failed[0] < ASK_AGAIN_SECONDS:
                raise self._failed[1].with_traceback(None)
            try:
                self._engine = self._ask()
            except Exception as exc:
                self._failed = (self.clock(), exc)
                raise
            return self._engine


@dataclass(frozen=True, slots=True)
class Feature:
    """A pipeline feature an engine must be new enough to run."""

    name: str
    what: str  # for people: what in the pipeline uses it
    minimum: Mapping[str, str]  # engine kind → its first release that runs it (kfp: the API
    # server's; local: the KFP SDK's, whose kfp.local runs the pipeline); kinds not named run it
    source: str  # where that is said


FINAL_STATUS = Feature(
    name="final-status",
    what="an exit handler whose task reads dsl.PipelineTaskFinalStatus (notify: true adds one)",
    minimum={"kfp": "2.14.0", "local": "2.17.0"},
    source="KFP backend: kubeflow/pipelines PR #11953 (CHANGELOG 2.14.0, the release after 2.5.0); 2.5.0 "
    'answers "task final status not supported yet" (backend/src/v2/compiler/argocompiler/dag.go at '
    "2.5.0). kfp.local: ExitHandler raised NotImplementedError in 2.15 (#12931), runs from 2.17.0 (#13331)",
)
FEATURES: Mapping[str, Feature] = {feature.name: feature for feature in (FINAL_STATUS,)}


def features(spec: Mapping[str, Any]) -> frozenset[str]:
    """The names of the `FEATURES` a compiled pipeline spec (its IR) uses."""
    used: set[str] = set()
    for task in _tasks(spec):
        parameters = task.get("inputs", {}).get("parameters", {})
        if any(isinstance(p, Mapping) and "taskFinalStatus" in p for p in parameters.values()):
            used.add(FINAL_STATUS.name)
    return frozenset(used)


def _tasks(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    dags = [spec.get("root", {}).get("dag", {})]
    dags += [component.get("dag", {}) for component in spec.get("components", {}).values()]
    for dag in dags:
        yield from (task for task in dag.get("tasks", {}).values() if isinstance(task, Mapping))


def release(version: str) -> tuple[int, ...] | None:
    """A KFP release tag as numbers (`2.14.0`, `v2.5.0`, `2.15.0-rc.1` → its release), or None."""
    found = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", version.strip())
    return tuple(int(part) for part in found.groups()) if found else None


def refusal(engine: Engine, used: frozenset[str], schema_version: str = SCHEMA_VERSION) -> str | None:
    """Why `engine` cannot run a pipeline with these features and IR schema version, or None.

    Engines are held to the releases `FEATURES` names for their kind: KFP servers and kfp.local;
    Vertex is managed and runs every released feature. An engine that did not report its
    release is not refused (`doctor` warns of it)."""
    if engine.kind == "kfp" and schema_version != SCHEMA_VERSION:
        return f"KFP accepts only IR schema {SCHEMA_VERSION}; the pipeline is {schema_version}"
    have = release(engine.version)
    if have is None:
        return None
    for name in sorted(used):
        feature = FEATURES[name]
        needed = feature.minimum.get(engine.kind)
        if needed is not None and have < (release(needed) or ()):
            product = "KFP" if engine.kind == "kfp" else "kfp.local"
            return (
                f"{product} {engine.version} cannot run {feature.what}: it needs {product} {needed} or later"
            )
    return None
