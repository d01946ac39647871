"""A local Kubeflow Pipelines API server (v2beta1) for contract tests of the `kfp` backend.

It serves the endpoints `kfp.Client` calls, checks every request body and query against the
`kfp_server_api` models (unknown or mistyped fields, at any depth, answer 400 the way the real
server's JSON unmarshalling does), enforces the server's name uniqueness (experiments per
namespace, pipelines per namespace, versions per pipeline → 409), and injects faults:
`version` is the release healthz reports (`tag_name`); `fail_next(method, path_prefix, kind)` with
kind "503" (nothing happens), "invalid" (a 400 whose message quotes the request body, as a
refusal of a run's parameters does), "lost" (the write
happens, then the caller gets a 504, as when a proxy times out), "timeout" (the write happens,
the answer comes `slow_seconds` late) or "empty" (a list answers nothing, as when another
instance creates the item just after). `states[run_id]` sets what a run reports. It records
every request in `requests`.

Where the real server behaves in a way the client must meet, the fake does too, each with its
source in kubeflow/pipelines (backend/src/apiserver/…): filters are URL-decoded a second time
(`parseAPIFilter`) and may only name the resource's fields (`APIToModelFieldMap`); lists are
paged (`list.go`); a multi-user cluster (`multi_user=True`) keeps experiments per namespace and
refuses an empty one, a single-user one ignores it (`ReplaceNamespace`); `:terminate` moves a
run to CANCELING (`run_store.go`), and its end is FAILED (`end`); versions keep their pipeline
spec; errors come in grpc-gateway's JSON shape (`{code, message, details}`). With `tokens`, it
stands behind an authenticating proxy, as AI Platform Pipelines' public endpoint does (Google's
inverse proxy admits a request with a valid Google access token only: "Connecting to Kubeflow
Pipelines on Google Cloud using the SDK", googlecloudplatform.github.io/kubeflow-gke-docs/…/
authentication-sdk): any other bearer token, an expired one too, is answered 401.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

import kfp_server_api
from werkzeug.wrappers import Request, Response

PREFIX = "/apis/v2beta1"
PRIMITIVES = {"str": str, "bool": bool, "int": int, "float": (int, float), "object": object, "datetime": str}


def check(value: Any, type_name: str, where: str) -> None:
    """Raise ValueError if `value` does not fit the kfp_server_api type `type_name`."""
    if value is None:
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list")
        for i, item in enumerate(value):
            check(item, type_name[5:-1], f"{where}[{i}]")
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object")
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            check(item, inner, f"{where}.{key}")
        return
    if type_name in PRIMITIVES:
        if not isinstance(value, PRIMITIVES[type_name]) or (
            type_name != "bool" and isinstance(value, bool) and type_name != "object"
        ):
            raise ValueError(f"{where}: expected {type_name}")
        return
    model = getattr(kfp_server_api, type_name)
    if not model.openapi_types:  # an enum: its name, or (protojson accepts it) its number
        names = [v for k, v in vars(model).items() if k.isupper()]
        number_ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names)
        if value not in names and not number_ok:
            raise ValueError(f"{where}: {value!r} is not a {type_name}")
        return
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a {type_name} object")
    # protojson accepts a field's proto name and its lowerCamelCase JSON name alike.
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    by_json |= {_camel(json_name): attr for json_name, attr in list(by_json.items())}
    for key, item in value.items():
        if key not in by_json:
            raise ValueError(f"{where}: unknown field {key!r} for {type_name}")
        check(item, model.openapi_types[by_json[key]], f"{where}.{key}")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class FakeKfp:
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    slow_seconds: float = 3.0
    multi_user: bool = False  # a multi-user (Kubeflow profiles) cluster: experiments live in namespaces
    version: str = "2.14.0"  # the release healthz reports as tag_name ("unknown": built without TAG_NAME)
    faults: list[tuple[str, str, str]] = field(default_factory=list)
    tokens: set[str] | None = None  # behind an authenticating proxy: the bearer tokens it admits
    unavailable: bool = False  # down: every request is answered as the fault "503" is, until back
    # a run's task details, as the server reports them: the v2 driver leaves a run's own `error`
    # empty (backend/src/v2/driver/resolve.go), so a failed task is what says why
    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, method: str, path_prefix: str, kind: str) -> None:
        self.faults.append((method, path_prefix, kind))

    def _fault(self, method: str, path: str) -> str | None:
        for fault in self.faults:
            if fault[0] == method and path.startswith(PREFIX + fault[1]):
                self.faults.remove(fault)
                return fault[2]
        return None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            with self.lock:
                response = self.handle(request)
        finally:
            request.close()  # closes uploaded files
        if response.headers.get("X-Fake-Delay"):  # a slow answer, without holding up other callers
            time.sleep(float(response.headers["X-Fake-Delay"]))
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        method, path = request.method, request.path
        self.requests.append((method, path))
        self.authorizations.append(request.headers.get("Authorization", ""))
        if self.tokens is not None and self.authorizations[-1].removeprefix("Bearer ") not in self.tokens:
            return Response("Unauthorized", 401)  # the proxy's answer: the server never sees it
        fault = "503" if self.unavailable else self._fault(method, path)
        if fault == "empty":  # a list that misses what exists (another instance just created it)
            return _json({"total_size": 0})
        if fault == "503":
            return _error(14, "unavailable", 503)
        if fault == "invalid":  # a refusal that quotes what it was sent, parameter values and all
            return _error(3, f"Invalid input error: {request.get_data(as_text=True)[:2000]}", 400)
        try:
            response = self.route(method, path.removeprefix(PREFIX), request)
        except ValueError as exc:
            return _error(3, f"Invalid input error: {exc}", 400)
        if fault == "lost":
            return Response("upstream request timeout", 504)  # a proxy's answer, not the server's
        if fault == "timeout":  # done, but the answer comes after the caller stopped waiting
            response.headers["X-Fake-Delay"] = str(self.slow_seconds)
        return response

    def route(self, method: str, path: str, request: Request) -> Response:
        parts = path.strip("/").split("/")
        match (method, parts):
            case ("GET", ["healthz"]):  # the server's own handler: backend/src/apiserver/main.go
                told = {"commit_sha": "unknown", "tag_name": self.version, "multi_user": self.multi_user}
                return _json({**told, "pipeline_store": "database"})
            case ("GET", ["experiments"]):
                namespace = self._namespace(request.args.get("namespace", ""))
                listed = [e for e in self.experiments.values() if e.get("namespace", "") == namespace]
                return _page("experiments", _filtered(listed, request, "experiments"), request)
            case ("POST", ["experiments"]):
                body = _body(request, "V2beta1Experiment")
                body["namespace"] = self._namespace(body.get("namespace", ""))
                if any(
                    (e["display_name"], e.get("namespace", "")) == (body["display_name"], body["namespace"])
                    for e in self.experiments.values()
                ):
                    return _conflict(f"The name {body['display_name']} already exists")
                experiment = {
                    **body,
                    "experiment_id": str(uuid.uuid4()),
                    "created_at": now(),
                    "storage_state": "AVAILABLE",
                }
                self.experiments[experiment["experiment_id"]] = experiment
                return _json(experiment)
            case ("GET", ["pipelines"]):
                return _page("pipelines", _filtered(self.pipelines.values(), request, "pipelines"), request)
            case ("POST", ["pipelines", "upload"]):
                name = request.args["name"]
                spec = _package(request)
                if any(p["display_name"] == name for p in self.pipelines.values()):
                    return _conflict(f"Pipeline with name {name} already exists")
                pipeline = {
                    "pipeline_id": str(uuid.uuid4()),
                    "display_name": name,
                    "name": name,
                    "created_at": now(),
                }
                self.pipelines[pipeline["pipeline_id"]] = pipeline
                self._add_version(pipeline["pipeline_id"], name, spec)
                return _json(pipeline)
            case ("POST", ["pipelines", "upload_version"]):
                name, pipeline_id = request.args["name"], request.args["pipelineid"]
                spec = _package(request)
                if pipeline_id not in self.pipelines:
                    return _error(5, "pipeline not found", 404)
                if any(v["pipeline_id"] == pipeline_id and v["name"] == name for v in self.versions.values()):
                    return _conflict(f"Pipeline version with name {name} already exists")
                return _json(self._add_version(pipeline_id, name, spec))
            case ("GET", ["pipelines", pipeline_id, "versions", version_id]):
                version = self.versions.get(version_id)
                if version is None or version["pipeline_id"] != pipeline_id:
                    return _error(5, f"pipeline version {version_id} not found", 404)
                return _json(version)
            case ("GET", ["pipelines", pipeline_id, "versions"]):
                versions = [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id]
                return _page("pipeline_versions", _filtered(versions, request, "versions"), request)
            case ("POST", ["runs"]):
                body = _body(request, "V2beta1Run")
                if not body.get("experiment_id") or body["experiment_id"] not in self.experiments:
                    raise ValueError("experiment_id names no experiment")
                reference = body.get("pipeline_version_reference") or {}
                if reference.get("pipeline_version_id") not in self.versions and "pipeline_spec" not in body:
                    raise ValueError("the run names no pipeline version and has no pipeline_spec")
                run = {
                    **body,
                    "run_id": str(uuid.uuid4()),
                    "created_at": now(),
                    "state": "PENDING",
                    "storage_state": "AVAILABLE",
                }
                self.runs[run["run_id"]] = run
                return _json(run)
            case ("POST", ["runs", action]) if action.endswith(":terminate"):
                return self._terminate(action.removesuffix(":terminate"))
            case ("GET", ["runs", run_id]):
                if run_id not in self.runs:
                    return _error(5, "run not found", 404)
                run = dict(self.runs[run_id])
                run["state"] = self.states.get(run_id, run["state"])
                if run_id in self.tasks:  # RunDetails.task_details (api/v2beta1/run.proto)
                    run["run_details"] = {"task_details": self.tasks[run_id]}
                return _json(run)
            case ("GET", ["runs"]):
                runs = [
                    r
                    for r in self.runs.values()
                    if r["experiment_id"] == request.args.get("experiment_id", r["experiment_id"])
                ]
                return _page("runs", _filtered(runs, request, "runs"), request)
        return _error(12, f"no such endpoint: {method} {path}", 404)

    def _namespace(self, namespace: str) -> str:
        """What the server makes of a request's namespace (resource_manager.go ReplaceNamespace):
        ignored on a single-user cluster, required on a multi-user one (experiment_server.go
        canAccessExperiment: "An experiment cannot have an empty namespace in multi-user mode")."""
        if not self.multi_user:
            return ""
        if not namespace:
            raise ValueError("An experiment cannot have an empty namespace in multi-user mode")
        return namespace

    def end(self, run_id: str, state: str) -> None:
        """The run's workflow ends: `state` as the server would report it, except that a run its
        terminate stopped (CANCELING, ending CANCELED) is stored FAILED: TerminateWorkflow gives
        the workflow a zero deadline (resource/resource_manager.go), the CANCELING the server
        reports holds only until the workflow is final (resource_manager.go
        ReportWorkflowResource, common/util/workflow.go), and then the workflow's Failed phase is
        stored; nothing sets CANCELED for a v2 run. One that finished first keeps its end."""
        stopped = self.states.get(run_id) == "CANCELING" and state == "CANCELED"
        self.states[run_id] = "FAILED" if stopped else state

    def _terminate(self, run_id: str) -> Response:
        """POST /runs/{id}:terminate (run.proto TerminateRun): a run not yet ended is CANCELING
        (storage/run_store.go TerminateRun); its workflow's end makes it FAILED (`end`)."""
        if run_id not in self.runs:
            return _error(5, f"Failed to terminate run {run_id}: run not found", 404)
        state = self.states.get(run_id, self.runs[run_id]["state"])
        if state not in ("PAUSED", "PENDING", "RUNNING", "RUNTIME_STATE_UNSPECIFIED"):
            return _error(3, f"Failed to terminate a run {run_id}. Row not found", 400)
        self.states[run_id] = "CANCELING"
        return _json({})

    def _add_version(self, pipeline_id: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": str(uuid.uuid4()),
            "display_name": name,
            "name": name,
            "created_at": now(),
            "pipeline_spec": spec,
        }
        self.versions[version["pipeline_version_id"]] = version
        return version


# The filter keys the server accepts per resource (APIToModelFieldMap in
# backend/src/apiserver/model/{run,experiment,pipeline,pipeline_version}.go); others answer 400.
FILTER_KEYS = {
    "runs": {
        *("run_id", "id", "display_name", "name", "created_at", "finished_at", "description"),
        *("scheduled_at", "storage_state", "status", "namespace", "experiment_id", "state"),
        *("state_history", "runtime_details", "recurring_run_id"),
    },
    "experiments": {
        *("id", "experiment_id", "name", "display_name", "created_at", "last_run_created_at"),
        *("description", "namespace", "storage_state"),
    },
    "pipelines": {"id", "pipeline_id", "name", "display_name", "created_at", "description", "namespace"},
    "versions": {
        *("id", "pipeline_version_id", "name", "display_name", "created_at", "status", "description"),
        "pipeline_spec",
    },
}


def query_unescape(text: str) -> str:
    """Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; a bad escape is an error."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        raise ValueError(f"failed to parse valid filter from {text!r}: invalid URL escape")
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise ValueError(f"failed to parse valid filter from {text!r}: not UTF-8") from exc


def _filtered(items: Any, request: Request, resource: str) -> list[dict[str, Any]]:
    """Apply a v2beta1 filter's EQUALS and GREATER_THAN predicates (what kfp-trigger sends), after
    decoding it the way the server does: the gateway decoded the query string (werkzeug did, here),
    then `parseAPIFilter` decodes the filter once more (list_request_util.go)."""
    raw = request.args.get("filter")
    result = list(items)
    if not raw:
        return result
    try:
        document = json.loads(query_unescape(raw))
    except json.JSONDecodeError as exc:
        raise ValueError(f"failed to parse valid filter from {raw!r}: {exc}") from exc
    check(document, "V2beta1Filter", "filter")
    for predicate in document.get("predicates", []):
        key, operation = predicate["key"], str(predicate["operation"])
        if key not in FILTER_KEYS[resource]:
            raise ValueError(f"no support for filtering on unrecognized field {key!r}")
        value = predicate.get("string_value", predicate.get("stringValue"))
        if operation in ("EQUALS", "1"):
            result = [item for item in result if item.get(key) == value]
        elif operation in ("GREATER_THAN", "3"):
            bound = predicate.get("timestamp_value", predicate.get("timestampValue", ""))
            result = [item for item in result if item.get(key, "") > bound]
        else:
            raise ValueError(f"the fake does not implement filter operation {operation}")
    return result


def _page(key: str, items: list[dict[str, Any]], request: Request) -> Response:
    """One page of a list, as the server pages (list/list.go): `page_size` 0 means 20, more than
    200 means 200, negative is refused; `next_page_token` is set while more items remain."""
    size = int(request.args.get("page_size") or 0)
    if size < 0:
        raise ValueError(f"The page size should be greater than 0. Got {size}")
    size = min(size or 20, 200)
    start = int(base64.b64decode(request.args.get("page_token") or "MA==").decode())
    page: dict[str, Any] = {key: items[start : start + size], "total_size": len(items)}
    if start + size < len(items):
        page["next_page_token"] = base64.b64encode(str(start + size).encode()).decode()
    return _json(page)


def _body(request: Request, model: str) -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ValueError("the body is not a JSON object")
    check(body, model, model)
    return body


def _package(request: Request) -> dict[str, Any]:
    """The uploaded package's pipeline spec (the server keeps it on the version: pipeline_spec)."""
    upload = request.files.get("uploadfile")
    if upload is None:
        raise ValueError("multipart field 'uploadfile' is missing")
    import yaml

    spec: dict[str, Any] = next(doc for doc in yaml.safe_load_all(upload.read()) if doc is not None)
    if spec.get("schemaVersion") != "2.1.0":
        raise ValueError("KFP only supports schema version 2.1.0")
    return spec


def _conflict(message: str) -> Response:
    return _error(6, message, 409)


def _error(code: int, message: str, status: int) -> Response:
    """An error as the API server answers it: grpc-gateway v2's default handler writes the gRPC
    status as JSON (`{"code", "message", "details"}`; runtime.DefaultHTTPErrorHandler, errors.go),
    `code` the gRPC code (3 INVALID_ARGUMENT, 5 NOT_FOUND, 6 ALREADY_EXISTS, 14 UNAVAILABLE)."""
    return _json({"code": code, "message": message, "details": []}, status)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status, mimetype="application/json")
