"""The `vertex` backend: Vertex AI Pipelines through the GAPIC `PipelineServiceClient`.

The client is imported on first use (about 1.5 s; the full aiplatform SDK takes ~2.7 s and
probes buckets before each submit, so it is not used). Vertex has the idempotency key KFP
lacks: the `pipelineJobId`, derived here from the run key (lower-case, `[a-z][a-z0-9-]`,
hashed, under 128 characters). A second create for the same key answers ALREADY_EXISTS
(`Conflict`), and the existing job is adopted; a lost create response is recovered the same way
by `find`. Jobs carry labels for the route and the pipeline's content hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator
from typing import Any

import yaml

from events.errors import Gone, PermanentError, TransientError
from pipelines.backend import RunState, RunStatus, Submission
from pipelines.causes import cause
from pipelines.engines import Asked, Engine
from pipelines.parameters import filled

log = logging.getLogger("kfp_trigger.vertex")

JOB_ID_PREFIX = "kfpt-"
TIMEOUT_SECONDS = 60.0  # per API call (GAPIC `timeout=`); a hung endpoint is a transient failure
LABEL = re.compile(r"[^a-z0-9_-]")


def job_id(run_key: str) -> str:
    """A valid, stable `pipelineJobId` for a run key: `kfpt-` + 40 hex digits of its sha256."""
    return JOB_ID_PREFIX + hashlib.sha256(run_key.encode()).hexdigest()[:40]


def _refusal(action: str, exc: Any) -> str:
    """A refusal in one line of its own words (the action, its kind and HTTP status), never the
    message, which can quote what was sent (a parameter's value); the message is logged."""
    log.warning("Vertex refused", extra={"fields": {"action": action, "message": str(exc.message)[:2000]}})
    return f"Vertex {action}: {type(exc).__name__} (HTTP {exc.code})"


def console_page(job: str) -> str:
    """The Cloud console's page of a PipelineJob (`projects/P/locations/L/pipelineJobs/ID`)."""
    parts = job.split("/")
    if len(parts) != 6:
        return job
    project, location, job_id = parts[1], parts[3], parts[5]
    return f"https://console.cloud.google.com/vertex-ai/locations/{location}/pipelines/runs/{job_id}?project={project}"


def label(value: str) -> str:
    """A Vertex label value: at most 63 of lower-case letters, digits, `_` and `-`."""
    return LABEL.sub("-", value.lower())[:63]


@contextlib.contextmanager
def mapped(action: str) -> Iterator[None]:
    """Turn the client's errors into kfp-trigger's: 5xx, 429, retries given up, and every
    connection failure or timeout (the REST transport raises `requests`' own exceptions for
    those, unwrapped) are transient; other API errors are permanent."""
    import requests
    from google.api_core import exceptions

    try:
        yield
    except (exceptions.ServerError, exceptions.TooManyRequests, exceptions.RetryError) as exc:
        raise TransientError(f"Vertex {action}: {type(exc).__name__}") from exc
    except exceptions.NotFound as exc:
        raise Gone(_refusal(action, exc)) from exc
    except exceptions.GoogleAPICallError as exc:
        raise PermanentError(_refusal(action, exc)) from exc
    except (requests.RequestException, OSError) as exc:
        raise TransientError(f"Vertex {action}: {cause(exc)}") from exc


def metrics_and_outputs(job: Any) -> tuple[dict[str, float], dict[str, str]]:
    """A job's metrics and output artifacts, from what Vertex reports of each task.

    `PipelineJob.jobDetail.taskDetails[].outputs` maps each output to its artifacts
    (`PipelineTaskDetail.ArtifactList`); a `system.Metrics` artifact carries the logged values in
    its `metadata` (aiplatform v1 REST reference: PipelineJob, PipelineTaskDetail, Artifact).
    Metrics are the numeric metadata of every such artifact; outputs are `task/output` → URI.
    """
    metrics: dict[str, float] = {}
    outputs: dict[str, str] = {}
    for task in job.job_detail.task_details:
        for name, listed in task.outputs.items():
            for artifact in listed.artifacts:
                if artifact.uri:
                    outputs[f"{task.task_name}/{name}"] = artifact.uri
                if artifact.schema_title == "system.Metrics":
                    metrics |= {
                        key: float(value)
                        for key, value in dict(artifact.metadata).items()
                        if isinstance(value, int | float) and not isinstance(value, bool)
                    }
    return metrics, outputs


class VertexBackend:
    def __init__(
        self,
        project: str,
        location: str,
        pipeline_root: str,
        *,
        service_account: str = "",
        endpoint: str = "",
        credentials: Any = None,
        timeout: float = TIMEOUT_SECONDS,
        completion_topic: str = "",
    ) -> None:
        self.parent = f"projects/{project}/locations/{location}"
        self.pipeline_root = pipeline_root
        self.service_account = service_account
        self.endpoint = endpoint or f"{location}-aiplatform.googleapis.com"
        self.credentials = credentials
        self.timeout = timeout  # seconds, for every API call
        self.completion_topic = completion_topic  # where notified pipelines report their end
        self._client: Any = None
        self._engine = Asked(self._ask_engine)

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud.aiplatform_v1.services.pipeline_service import PipelineServiceClient

            self._client = PipelineServiceClient(
                transport="rest", client_options={"api_endpoint": self.endpoint}, credentials=self.credentials
            )
        return self._client

    def name_of(self, run_key: str) -> str:
        return f"{self.parent}/pipelineJobs/{job_id(run_key)}"

    def submit(self, submission: Submission) -> str:
        from google.api_core import exceptions
        from google.cloud.aiplatform_v1 import types

        spec = next(d for d in yaml.safe_load_all(submission.pipeline.package.read_text()) if d is not None)
        params = filled(submission, self.completion_topic)
        job = types.PipelineJob(
            display_name=submission.run_key[:128],
            pipeline_spec=spec,
            template_uri=submission.pipeline.template_uri or "",
            labels={
                "kfp-trigger-route": label(submission.route),
                "pipeline-hash": submission.pipeline.version[:12],
            },
            runtime_config=types.PipelineJob.RuntimeConfig(
                gcs_output_directory=submission.pipeline.pipeline_root or self.pipeline_root,
                parameter_values=params,
            ),
            service_account=self.service_account,
        )
        with mapped("create pipeline job"):
            try:
                self.client.create_pipeline_job(
                    parent=self.parent,
                    pipeline_job=job,
                    pipeline_job_id=job_id(submission.run_key),
                    timeout=self.timeout,
                )
            except exceptions.Conflict as exc:
                # 409 is ALREADY_EXISTS (this run key has its job: adopt it) or ABORTED (a
                # concurrent change: nothing was created), which REST answers alike
                # (cloud.google.com/apis/design/errors): the job decides which.
                if self.find(submission.run_key) is None:
                    raise TransientError(f"create pipeline job: {exc.code} conflict, no job: retry") from exc
        return self.name_of(submission.run_key)

    def find(self, run_key: str) -> str | None:
        from google.api_core import exceptions

        with mapped("get pipeline job"):
            try:
                job = self.client.get_pipeline_job(name=self.name_of(run_key), timeout=self.timeout)
                return str(job.name)
            except exceptions.NotFound:
                return None

    def status(self, run_id: str) -> RunStatus:
        with mapped("get pipeline job"):
            job = self.client.get_pipeline_job(name=run_id, timeout=self.timeout)
        metrics, outputs = metrics_and_outputs(job)
        return RunStatus(
            run_id=run_id,
            state=RunState.parse(job.state.name),
            started_at=job.start_time.isoformat() if job.start_time else None,
            finished_at=job.end_time.isoformat() if job.end_time else None,
            metrics=metrics,
            outputs=outputs,
            error=job.error.message or None,
            log=console_page(run_id),
        )

    def cancel(self, run_id: str) -> None:
        with mapped("cancel pipeline job"):
            self.client.cancel_pipeline_job(name=run_id, timeout=self.timeout)

    def engine(self) -> Engine:
        """Vertex AI Pipelines, managed: no version. Asking lists one job of the location, so
        that the location answers and the credentials work (raises as every call does)."""
        return self._engine()

    def _ask_engine(self) -> Engine:
        with mapped("list pipeline jobs"):
            self.client.list_pipeline_jobs(
                request={"parent": self.parent, "page_size": 1}, timeout=self.timeout
            )
        return Engine("vertex")
