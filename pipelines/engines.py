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
    unsupported: frozenset[str] = frozenset()  # engine kinds no release of which runs it


KFP_CHANGELOG = "kubeflow/pipelines CHANGELOG.md"
KUBERNETES_ONLY = frozenset({"vertex"})
VERTEX_STORAGE = (
    "Vertex AI Pipelines has no Kubernetes resources: data is on Cloud Storage "
    "(cloud.google.com/vertex-ai/docs/pipelines/migrate-kfp, Storage)"
)
FINAL_STATUS = Feature(
    name="final-status",
    what="an exit handler whose task reads dsl.PipelineTaskFinalStatus (notify: true adds one)",
    minimum={"kfp": "2.14.0", "local": "2.17.0"},
    source="KFP backend: kubeflow/pipelines PR #11953 (CHANGELOG 2.14.0, the release after 2.5.0); 2.5.0 "
    'answers "task final status not supported yet" (backend/src/v2/compiler/argocompiler/dag.go at '
    "2.5.0). kfp.local: ExitHandler raised NotImplementedError in 2.15 (#12931), runs from 2.17.0 (#13331)",
)
TABLE = (
    FINAL_STATUS,
    Feature(
        "conditions",
        "dsl.If / dsl.Elif / dsl.Else (a task's triggerPolicy.condition)",
        {"kfp": "2.0.0"},
        "backend/src/v2/compiler/argocompiler/dag.go at 2.0.0 compiles triggerPolicy.condition",
    ),
    Feature(
        "one-of",
        "dsl.OneOf over the branches of a condition (a DAG output's valueFromOneof)",
        {"kfp": "2.4.0"},
        "backend/src/v2/driver/driver.go resolves ValueFromOneof from 2.4.0 (absent in 2.3.0)",
    ),
    Feature(
        "parallelism",
        "dsl.ParallelFor(..., parallelism=N) (iteratorPolicy.parallelismLimit)",
        {"kfp": "2.4.0"},
        f"PR #10798 ({KFP_CHANGELOG} 2.4.0); argocompiler/dag.go sets the loop's Parallelism from 2.4.0; "
        "earlier releases run every iteration at once",
    ),
    Feature(
        "collected",
        "dsl.Collected: a ParallelFor's outputs gathered into a list",
        {"kfp": "2.14.0"},
        f"PR #11725 'enable dsl.Collected for parameters & artifacts' ({KFP_CHANGELOG} 2.14.0)",
    ),
    Feature(
        "retry",
        "a task's set_retry (retryPolicy)",
        {"kfp": "2.5.0"},
        "argocompiler/container.go sets the task's RetryStrategy from 2.5.0 (absent in 2.4.0); "
        f"PR #11673 fixed execution-level retry ({KFP_CHANGELOG} 2.5.0)",
    ),
    Feature(
        "retry-sub-pipeline",
        "set_retry on a pipeline used as a task (a nested DAG's retryPolicy)",
        {"kfp": "2.14.0"},
        f"PR #11908 'implement retryStrategy for nested pipelines' ({KFP_CHANGELOG} 2.14.0)",
    ),
    Feature(
        "importer",
        "dsl.importer",
        {"kfp": "2.0.0"},
        "backend/src/v2/compiler/argocompiler (argo.go, dag.go) compiles importer tasks at 2.0.0",
    ),
    Feature(
        "importer-to-workspace",
        "dsl.importer(download_to_workspace=True)",
        {"kfp": "2.15.0"},
        f"PR #12353 ({KFP_CHANGELOG} 2.15.0); argocompiler/importer.go reads DownloadToWorkspace from 2.15.0",
    ),
    Feature(
        "caching-options",
        "set_caching_options(enable_caching=False) on a task",
        {"kfp": "2.0.0"},
        "pipeline_spec.proto CachingOptions.enable_cache, read by the 2.0.0 driver",
    ),
    Feature(
        "workspace",
        "dsl.PipelineConfig(workspace=...) (a PVC shared by the run's tasks)",
        {"kfp": "2.14.0"},
        f"PR #11982 'update Argo Workflow Compiler to create workspace PVCs' ({KFP_CHANGELOG} 2.14.0); "
        + VERTEX_STORAGE,
        unsupported=KUBERNETES_ONLY,
    ),
    Feature(
        "kubernetes",
        "kfp-kubernetes settings (secrets, volumes, node selectors … in platforms.kubernetes)",
        {},
        f"kubernetes_platform/ (kfp-kubernetes: Kubernetes-specific features); {VERTEX_STORAGE}",
        unsupported=KUBERNETES_ONLY,
    ),
)
FEATURES: Mapping[str, Feature] = {feature.name: feature for feature in TABLE}


def features(spec: Mapping[str, Any], platform: Mapping[str, Any] | None = None) -> frozenset[str]:
    """The names of the `FEATURES` a compiled pipeline uses: its spec (the IR) and its platform
    spec (the package's second document, which kfp-kubernetes writes), if any."""
    components = spec.get("components", {})
    used: set[str] = set()
    for task in _tasks(spec):
        used |= _task_features(task, components.get(task.get("componentRef", {}).get("name", ""), {}))
    dags = [spec.get("root", {}).get("dag", {}), *(c.get("dag", {}) for c in components.values())]
    if any(
        "valueFromOneof" in p for dag in dags for p in dag.get("outputs", {}).get("parameters", {}).values()
    ):
        used.add("one-of")
    executors = spec.get("deploymentSpec", {}).get("executors", {}).values()
    importers = [executor["importer"] for executor in executors if "importer" in executor]
    used |= {"importer"} if importers else set()
    used |= {"importer-to-workspace"} if any(i.get("downloadToWorkspace") for i in importers) else set()
    kubernetes = (platform or {}).get("platforms", {}).get("kubernetes", {})
    used |= {"workspace"} if kubernetes.get("pipelineConfig", {}).get("workspace") else set()
    used |= {"kubernetes"} if kubernetes.get("deploymentSpec") else set()
    return frozenset(used)


def _task_features(task: Mapping[str, Any], component: Mapping[str, Any]) -> set[str]:
    used = set()
    parameters = task.get("inputs", {}).get("parameters", {})
    if any(isinstance(p, Mapping) and "taskFinalStatus" in p for p in parameters.values()):
        used.add(FINAL_STATUS.name)
    if task.get("triggerPolicy", {}).get("condition"):
        used.add("conditions")
    if task.get("iteratorPolicy", {}).get("parallelismLimit"):
        used.add("parallelism")
    looped = "parameterIterator" in task or "artifactIterator" in task
    if looped and component.get("dag", {}).get("outputs"):
        used.add("collected")
    if "retryPolicy" in task:
        used.add("retry-sub-pipeline" if "dag" in component else "retry")
    if "cachingOptions" in task and not task["cachingOptions"].get("enableCache"):  # proto3 omits false
        used.add("caching-options")
    return used


def _tasks(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    dags = [spec.get("root", {}).get("dag", {})]
    dags += [component.get("dag", {}) for component in spec.get("components", {}).values()]
    for dag in dags:
        yield from (task for task in dag.get("tasks", {}).values() if isinstance(task, Mapping))


def release(version: str) -> tuple[int, ...] | None:
    """A KFP release tag as numbers (`2.14.0`, `v2.5.0`, `2.15.0-rc.1` → its release), or None."""
    found = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", version.strip())
    return tuple(int(part) for part in found.groups()) if found else None


def blocking(engine: Engine, used: frozenset[str]) -> Feature | None:
    """The first of the features `used` that `engine` cannot run, if any: one its kind never
    runs, or one newer than its release (an engine that did not report its release is not
    held to one: `doctor` warns of it)."""
    have = release(engine.version)
    for name in sorted(used):
        feature = FEATURES[name]
        if engine.kind in feature.unsupported:
            return feature
        needed = feature.minimum.get(engine.kind)
        if have is not None and needed is not None and have < (release(needed) or ()):
            return feature
    return None


PRODUCTS = {"kfp": "KFP", "local": "kfp.local", "vertex": "Vertex AI Pipelines"}


def refusal(engine: Engine, used: frozenset[str], schema_version: str = SCHEMA_VERSION) -> str | None:
    """Why `engine` cannot run a pipeline with these features and IR schema version, or None.

    Engines are held to the releases `FEATURES` names for their kind (KFP servers, kfp.local)
    and to the kinds it says never run a feature (Vertex runs no kfp-kubernetes settings)."""
    if engine.kind == "kfp" and schema_version != SCHEMA_VERSION:
        return f"KFP accepts only IR schema {SCHEMA_VERSION}; the pipeline is {schema_version}"
    feature = blocking(engine, used)
    if feature is None:
        return None
    product = PRODUCTS.get(engine.kind, engine.kind)
    if engine.kind in feature.unsupported:
        return f"{product} cannot run {feature.what}: no release of it does"
    needed = feature.minimum[engine.kind]
    return f"{product} {engine.version} cannot run {feature.what}: it needs {product} {needed} or later"
