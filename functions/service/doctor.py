"""What can be known before the first event: whether each engine answers, which version it is,
and whether it can run the pipelines routed to it (`pipelines.engines`).

`engine_findings` asks each backend in use once (a KFP server's healthz, one Vertex list call)
and holds every pipeline against its engine. `kfp-trigger doctor` prints these beside its other
checks; every cold start logs the ones that are not ok, once (`at_cold_start`), and a pipeline
its engine cannot run has its events fail fast with the reason (`runs.start_claimed`), never a run
that fails on the cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from functions.logs import fields
from pipelines import engines
from pipelines.backend import Backend, CompiledPipeline

log = logging.getLogger("kfp_trigger.doctor")

Status = Literal["ok", "warn", "fail"]

ENGINE_FIXES = {
    "kfp": "check KFP_TRIGGER_KFP_HOST, KFP_TRIGGER_KFP_NAMESPACE and the credentials (docs/deploy.md); "
    "`curl $KFP_TRIGGER_KFP_HOST/apis/v2beta1/healthz` from where the function runs",
    "vertex": "check KFP_TRIGGER_VERTEX_PROJECT and KFP_TRIGGER_VERTEX_LOCATION, that the Vertex AI API "
    "is enabled, and that the function's identity has roles/aiplatform.user",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's answer: what was checked, ok / warn / fail, what was found, and the fix."""

    check: str
    status: Status
    detail: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "detail": self.detail, "fix": self.fix}


def engine_findings(
    backends: Mapping[str, Backend], catalog: Mapping[str, CompiledPipeline]
) -> list[Finding]:
    """Each engine the catalog's pipelines use, asked once, and each pipeline against it."""
    found: list[Finding] = []
    for kind in sorted({pipeline.backend for pipeline in catalog.values()}):
        backend = backends.get(kind)
        if backend is None:
            continue  # bootstrap refused to build it already (a setting is missing)
        try:
            engine = backend.engine()
        except Exception as exc:  # whatever stops it answering (credentials too) is the finding
            found.append(
                Finding(f"engine {kind}", "fail", f"does not answer: {exc}", ENGINE_FIXES.get(kind, ""))
            )
            continue
        found.append(_engine(engine))
        for key, pipeline in sorted(catalog.items()):
            if pipeline.backend == kind:
                found.append(_pipeline(key, pipeline, engine))
    return found


def _engine(engine: engines.Engine) -> Finding:
    if engine.kind == "kfp" and engines.release(engine.version) is None:
        return Finding(
            "engine kfp",
            "warn",
            f"answers, but does not say its release (tag_name {engine.version or 'unknown'}): "
            "what each pipeline needs cannot be checked",
            "read the release from the cluster's ml-pipeline image tag; KFP servers built with "
            "TAG_NAME report it",
        )
    return Finding(f"engine {engine.kind}", "ok", f"answers: {engine.label}")


def _pipeline(key: str, pipeline: CompiledPipeline, engine: engines.Engine) -> Finding:
    check = f"pipeline {key} on {engine.kind}"
    reason = engines.refusal(engine, pipeline.features, pipeline.schema_version)
    if reason is not None:
        blocking = engines.blocking(engine, pipeline.features)
        if blocking is not None and engine.kind in blocking.unsupported:
            fix = f"run the pipeline on KFP (backend: kfp), or leave {blocking.name} out of it"
        else:
            fix = "upgrade the cluster to the release named, or run the pipeline on Vertex (backend: vertex)"
        source = f" (source: {blocking.source})" if blocking is not None else ""
        fix += f"; until then its events fail fast with this reason, and no run starts{source}"
        return Finding(check, "fail", reason, fix)
    used = ", ".join(sorted(pipeline.features)) or "no versioned features"
    return Finding(check, "ok", f"{engine.label} can run it ({used})")


def at_cold_start(backends: Mapping[str, Backend], catalog: Mapping[str, CompiledPipeline]) -> None:
    """Log, once per instance, each engine finding that is not ok (never per event)."""
    for finding in engine_findings(backends, catalog):
        if finding.status != "ok":
            level = logging.ERROR if finding.status == "fail" else logging.WARNING
            log.log(
                level,
                f"{finding.check}: {finding.detail}",
                extra=fields(check=finding.check, status=finding.status, fix=finding.fix),
            )
