"""A local Vertex AI `pipelineJobs` REST API (v1) for contract tests of the `vertex` backend.

Create, get, list (with label filters) and cancel, with the service's rules: request bodies are
parsed strictly into the real `aiplatform_v1.PipelineJob` message (unknown fields answer 400
INVALID_ARGUMENT), the `pipelineJobId` must match `[a-z][a-z0-9-]{0,127}`, label keys and values are
at most 63 lower-case letters, digits, `_` or `-`, and a reused id answers 409 ALREADY_EXISTS; a
`templateUri` must be an Artifact Registry template URI. `fail_next("create", "503")` answers
UNAVAILABLE once ("429": RESOURCE_EXHAUSTED; "aborted": 409 ABORTED, no job created; "drop": the
connection breaks with no answer, also
for "get"); parameters are checked against the spec's inputs; `states[job_id]` sets what a job
reports; `finish(...)` ends a job with its
times, error and task details (its metrics artifacts).
"""

from __future__ import annotations

import json
import re
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

JOB_ID = re.compile(r"^[a-z][a-z0-9-]{0,127}$")
LABEL = re.compile(r"^[a-z0-9_-]{0,63}$")
TEMPLATE_URI = re.compile(r"^https://[\w-]+-kfp\.pkg\.dev/[^/]+/[^/]+/[^/]+/[^/]+$")
ENDED = {f"PIPELINE_STATE_{state}" for state in ("SUCCEEDED", "FAILED", "CANCELLED")}
JOBS = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+)/pipelineJobs(?:/([^/:]+))?(:cancel)?$")


def _parameter_problem(job: Any) -> str | None:
    """The service checks the run's parameters against the spec's root inputs: an undeclared
    parameter, or a required one missing, fails the create (INVALID_ARGUMENT)."""
    spec = dict(job.pipeline_spec)
    declared = dict(dict(dict(spec.get("root", {})).get("inputDefinitions", {})).get("parameters", {}))
    given = set(job.runtime_config.parameter_values)
    for name in sorted(given - set(declared)):
        return f"The pipeline parameter {name} is not found in the pipeline job input definitions."
    for name, definition in sorted(declared.items()):
        info = dict(definition)
        if name not in given and "defaultValue" not in info and not info.get("isOptional"):
            return f"The pipeline parameter {name} is required but was not given."
    return None


def _error(code: int, status: str, message: str) -> Response:
    body = {"error": {"code": code, "message": message, "status": status}}
    return Response(json.dumps(body), code, mimetype="application/json")


@dataclass
class FakeVertex:
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    creates: int = 0
    cancels: list[str] = field(default_factory=list)  # job ids, in the order cancels came
    authorizations: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def finish(
        self,
        job_id: str,
        state: str,
        metrics: dict[str, dict[str, object]] | None = None,
        error: str = "",
    ) -> None:
        """End a job as Vertex reports it: `state`, `startTime`/`endTime`, an `error` (google.rpc
        Status) when it failed, and `jobDetail.taskDetails` with each task's output artifacts;
        `metrics` maps a task name to the metadata of its `system.Metrics` output (aiplatform v1
        REST reference: PipelineJob, PipelineJobDetail, PipelineTaskDetail, Artifact)."""
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        job = self.jobs[job_id]
        root = job.get("runtimeConfig", {}).get("gcsOutputDirectory", "gs://root")
        tasks = [
            {
                "taskId": str(number),
                "taskName": task,
                "state": "SUCCEEDED",
                "outputs": {
                    "metrics": {
                        "artifacts": [
                            {
                                "name": f"{job['name']}/artifacts/{task}-metrics",
                                "uri": f"{root}/{job_id}/{task}/metrics",
                                "schemaTitle": "system.Metrics",
                                "schemaVersion": "0.0.1",
                                "metadata": {"display_name": "metrics", **values},
                            }
                        ]
                    }
                },
            }
            for number, (task, values) in enumerate((metrics or {}).items(), start=1)
        ]
        job |= {"startTime": job["createTime"], "endTime": now, "jobDetail": {"taskDetails": tasks}}
        if error:
            job["error"] = {"code": 9, "message": error}
        self.states[job_id] = state

    def fail_next(self, action: str, kind: str) -> None:
        self.faults.append(f"{action}:{kind}")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        action = "create" if request.method == "POST" and ":" not in request.path else "get"
        if f"{action}:drop" in self.faults:  # the connection breaks: no answer at all
            self.faults.remove(f"{action}:drop")
            environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            return []
        with self.lock:
            response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        self.authorizations.append(request.headers.get("Authorization", ""))
        match = JOBS.match(request.path)
        if match is None:
            return _error(404, "NOT_FOUND", f"no such method {request.path}")
        parent, job_id, cancel = match.groups()
        if request.method == "POST" and job_id is None:
            return self.create(request, parent)
        if request.method == "GET" and job_id is None:
            return self.list(request)
        if job_id not in self.jobs:
            return _error(404, "NOT_FOUND", f"PipelineJob {job_id} does not exist")
        if request.method == "POST" and cancel:
            self.cancels.append(job_id)
            state = self.states.get(job_id, "PIPELINE_STATE_PENDING")
            if state in ENDED:  # a finished job keeps its end ("whether the pipeline completed despite
                # cancellation", aiplatform_v1 PipelineService.CancelPipelineJob)
                return _error(400, "FAILED_PRECONDITION", f"PipelineJob {job_id} is in state {state}")
            self.states[job_id] = "PIPELINE_STATE_CANCELLING"
            return Response("{}", 200, mimetype="application/json")
        job = {**self.jobs[job_id], "state": self.states.get(job_id, "PIPELINE_STATE_PENDING")}
        return Response(json.dumps(job), 200, mimetype="application/json")

    def list(self, request: Request) -> Response:
        """pipelineJobs.list with the filters kfp-trigger would use: `labels.K="V"` joined by AND."""
        wanted = dict(re.findall(r'labels\.([a-z0-9_-]+)\s*=\s*"([^"]*)"', request.args.get("filter", "")))
        jobs = [
            {**job, "state": self.states.get(job_id, "PIPELINE_STATE_PENDING")}
            for job_id, job in sorted(self.jobs.items())
            if all(job.get("labels", {}).get(key) == value for key, value in wanted.items())
        ]
        return Response(json.dumps({"pipelineJobs": jobs}), 200, mimetype="application/json")

    def create(self, request: Request, parent: str) -> Response:
        from google.cloud.aiplatform_v1 import types

        self.creates += 1
        # ABORTED is 409, as ALREADY_EXISTS is (google.rpc.Code's HTTP mapping,
        # cloud.google.com/apis/design/errors#handling_errors): a conflict, no job created.
        faults = (
            ("503", (503, "UNAVAILABLE")),
            ("429", (429, "RESOURCE_EXHAUSTED")),
            ("aborted", (409, "ABORTED")),
        )
        for kind, answer in faults:
            if f"create:{kind}" in self.faults:
                self.faults.remove(f"create:{kind}")
                return _error(*answer, "The service is currently unavailable or over quota.")
        job_id = request.args.get("pipelineJobId", "")
        if not JOB_ID.match(job_id):
            return _error(400, "INVALID_ARGUMENT", "pipelineJobId must match [a-z][a-z0-9-]{0,127}")
        try:
            job = types.PipelineJob.from_json(request.get_data(as_text=True), ignore_unknown_fields=False)
        except Exception as exc:
            return _error(400, "INVALID_ARGUMENT", f"Invalid JSON payload: {type(exc).__name__}")
        if len(job.display_name) > 128:
            return _error(400, "INVALID_ARGUMENT", "displayName is longer than 128 characters")
        if not all(LABEL.match(key) and key and LABEL.match(value) for key, value in job.labels.items()):
            return _error(400, "INVALID_ARGUMENT", "labels must be lower-case letters, digits, _ or -")
        if job.template_uri and not TEMPLATE_URI.match(job.template_uri):
            return _error(400, "INVALID_ARGUMENT", "templateUri must be a Vertex template registry URI")
        if problem := _parameter_problem(job):
            return _error(400, "INVALID_ARGUMENT", problem)
        if job_id in self.jobs:
            return _error(409, "ALREADY_EXISTS", "Pipeline job with the specified ID already exists.")
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        body = json.loads(request.get_data(as_text=True))
        self.jobs[job_id] = {
            **body,
            "name": f"{parent}/pipelineJobs/{job_id}",
            "createTime": now,
            "updateTime": now,
        }
        return Response(json.dumps(self.jobs[job_id]), 200, mimetype="application/json")
