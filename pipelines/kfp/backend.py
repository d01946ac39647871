"""The `kfp` backend: Kubeflow Pipelines on a cluster (AI Platform Pipelines on GKE, or any
KFP ≥ 2.0 API server), through `kfp.Client`.

- One experiment per route (`kfp-trigger-<route>`), get-or-create; the server's unique-name 409
  from a concurrent creator is answered by reading the experiment it made.
- Pipeline versions are content-addressed: version `<pipeline>-<hash12>` is uploaded once
  (409 → it exists: look it up) and every run is created from that version reference.
- A run's display name is its run key (and the run key is a parameter when the pipeline declares
  one), so `find(run_key)` recovers a run whose create response was lost: KFP has no
  idempotency key, so the caller looks before it creates again.
- Run states are read with `RunState.parse` (`wait_for_run_completion` never ends on CANCELED).
- `kfp_server_api` / urllib3 errors become `TransientError` (5xx, 429, connection) or
  `PermanentError` (other 4xx).
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from pipelines.backend import CompiledPipeline, RunState, RunStatus, Submission
from pipelines.engines import Asked, Engine
from pipelines.kfp.errors import mapped
from pipelines.parameters import filled

T = TypeVar("T")
EXPERIMENT_PREFIX = "kfp-trigger-"
FIND_WINDOW = timedelta(days=7)  # created_at bound on lookups by run key
TIMEOUT = (10.0, 60.0)  # (connect, read) seconds for every KFP API request


def with_timeout(client: Any, timeout: tuple[float, float]) -> Any:
    """Give every request of this `kfp.Client` a (connect, read) timeout.

    kfp.Client passes no timeout, and the generated REST client then waits forever: a hung API
    server would hold the event until the platform kills the function. The generated client
    takes `_request_timeout` per request; this supplies it on the client's own REST object.
    """
    rest = client._run_api.api_client.rest_client
    request = rest.request

    def timed(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return request(*args, _request_timeout=_request_timeout or timeout, **kwargs)

    rest.request = timed
    return client


def renewing(client: Any, renew: Callable[[], str]) -> Any:
    """Send a request the server answers 401 once more, with a token `renew` just fetched.

    A token google-auth still counts valid can be refused (revoked, or this machine's clock ahead
    of the server's); one retry with a fresh token tells that apart from credentials that are
    wrong, which a second 401 then reports (permanent, `mapped`).
    """
    import kfp_server_api

    rest = client._run_api.api_client.rest_client
    request = rest.request

    def renewed(
        method: str, url: str, *args: Any, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        try:
            return request(method, url, *args, headers=headers, **kwargs)
        except kfp_server_api.ApiException as exc:
            if exc.status != 401:
                raise
            kept = {name: value for name, value in (headers or {}).items() if name.lower() != "authorization"}
            headers = kept | {"authorization": f"Bearer {renew()}"}  # the generated client's own key
            return request(method, url, *args, headers=headers, **kwargs)

    rest.request = renewed
    return client


def quiet_client() -> type[Any]:
    """`kfp.Client` that makes no request and touches no file of its own.

    kfp.Client's constructor reads `~/.config/kfp/context.json` (namespace, cookies, headers of
    whoever last used kfp on the machine) and, unless that names a namespace, probes `/healthz`
    to guess one: up to 5 attempts 5 s apart, each with no timeout, before any timeout of ours
    can apply; `set_user_namespace` writes that file back (kfp/client/client.py `__init__`,
    `_load_context_setting_or_default`, `get_kfp_healthz`, `set_user_namespace`). kfp-trigger
    names the namespace itself: here the context starts empty, the probe answers nothing, the
    namespace is kept in memory, and the first request the client makes is one of ours. It
    never takes kfp.Client's inverse-proxy branch, whose token is never refreshed.
    """
    import kfp
    import kfp.client.client
    import kfp_server_api

    # kfp.Client print()s links ("Run details: …") to stdout, which is for data (`--json`); its
    # module's own `print` sends them to stderr instead. (Redirecting sys.stdout around each call
    # would redirect every thread's output meanwhile: a cold start's engine check, beside a
    # command printing its JSON, once sent that JSON to stderr.)
    kfp.client.client.print = _to_stderr

    class QuietClient(kfp.Client):  # type: ignore[misc]
        def _is_inverse_proxy_host(self, host: str) -> bool:
            # kfp.Client._load_config tries this branch before `credentials`, and for an AI
            # Platform Pipelines host (*.googleusercontent.com) takes one static token
            # (auth.get_gcp_access_token) that expires an hour later (kfp/client/client.py:
            # `elif self._is_inverse_proxy_host(host)` precedes `elif credentials`). kfp-trigger
            # passes refreshing ADC credentials for those hosts itself (`for_host`).
            return False

        def _load_context_setting_or_default(self) -> None:
            self._context_setting = {"namespace": ""}

        def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
            return kfp_server_api.V2beta1GetHealthzResponse()

        def set_user_namespace(self, namespace: str) -> None:
            self._context_setting["namespace"] = namespace

    return QuietClient


def _to_stderr(*values: object, **options: Any) -> None:
    print(*values, **{**options, "file": sys.stderr})


def _conflict(exc: BaseException) -> bool:
    import kfp_server_api

    return isinstance(exc, kfp_server_api.ApiException) and exc.status == 409


def _equals(key: str, value: str, since: datetime | None = None) -> str:
    """A v2beta1 filter, percent-encoded as the API server expects it.

    The server URL-decodes the filter a second time after the gateway decoded the query string
    (`parseAPIFilter` → `url.QueryUnescape`, backend/src/apiserver/server/list_request_util.go;
    the KFP UI pre-encodes with encodeURIComponent for this reason). Sent as plain JSON, a `+` in
    a run key would arrive as a space and a `%` would be refused with 400.
    """
    predicates: list[dict[str, Any]] = [{"key": key, "operation": "EQUALS", "string_value": value}]
    if since is not None:
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        predicates.append({"key": "created_at", "operation": "GREATER_THAN", "timestamp_value": stamp})
    return quote(json.dumps({"predicates": predicates}), safe="")


def _credentials(host: str, token: str, client_id: str, token_file: str, google_credentials: Any) -> Any:
    """The kfp credentials `for_host` describes (None: a bearer token, or none at all)."""
    from pipelines.kfp.auth import adc_credentials, iap_credentials, refreshing

    if token:
        return None  # kfp.Client sends it as it is
    if token_file:
        from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

        return ServiceAccountTokenVolumeCredentials(token_file)
    if client_id:
        return refreshing(google_credentials or iap_credentials(client_id))
    if host.rstrip("/").endswith(".pipelines.googleusercontent.com"):
        return refreshing(google_credentials or adc_credentials())
    return None


def _failed_task(run: Any, state: RunState) -> str | None:
    """Why a FAILED run failed when the run itself does not say: the v2 driver leaves a run's
    `error` unset (backend/src/v2/driver/resolve.go), but its task details name the task that
    failed, and its error when there is one (api/v2beta1/run.proto, RunDetails.task_details)."""
    if state is not RunState.FAILED or run.run_details is None:
        return None
    for task in run.run_details.task_details or []:
        if str(task.state) == "FAILED" and task.display_name:
            message = task.error.message if task.error is not None and task.error.message else ""
            return f"task {task.display_name} failed" + (f": {message}" if message else "")
    return None


class KfpBackend:
    def __init__(self, client_factory: Callable[[], Any], completion_topic: str = "") -> None:
        """`client_factory` builds the `kfp.Client` (host, namespace, credentials) on first use;
        `completion_topic` (pubsub://projects/P/topics/T) is where notified pipelines report."""
        self._factory = client_factory
        self.completion_topic = completion_topic
        self._client: Any = None
        self._experiments: dict[str, str] = {}
        self._versions: dict[str, tuple[str, str]] = {}
        self._pipeline_names: dict[str, str] = {}  # pipeline version id → pipelineInfo.name
        self._engine = Asked(self._ask_engine)

    @classmethod
    def for_host(
        cls,
        host: str,
        namespace: str,
        token: str = "",
        client_id: str = "",
        token_file: str = "",
        timeout: tuple[float, float] = TIMEOUT,
        completion_topic: str = "",
        google_credentials: Any = None,
    ) -> KfpBackend:
        """A backend for the API at `host`, authenticated by, in order: a bearer `token`; a
        service-account `token_file` (in-cluster: the projected token, re-read on every request
        as the kubelet rotates it); an IAP `client_id` (ID tokens for the ambient service
        account, refreshed); for AI Platform Pipelines hosts (*.pipelines.googleusercontent.com),
        Application Default Credentials (refreshed; `google_credentials` instead, if given);
        otherwise none. A request answered 401 is sent once more with a renewed token.
        `namespace` is set on the client for every request (multi-user clusters scope
        experiments and runs by it; a single-user server ignores it, `ReplaceNamespace` in
        resource_manager.go)."""

        def factory() -> Any:
            credentials = _credentials(host, token, client_id, token_file, google_credentials)
            with warnings.catch_warnings():  # it always warns that it needs KFP >= 2.0: documented
                warnings.filterwarnings("ignore", "This client only works", FutureWarning)
                client = quiet_client()(
                    host=host, namespace=namespace, existing_token=token or None, credentials=credentials
                )
            client.set_user_namespace(namespace)  # kfp.Client keeps "kubeflow" only as a default
            if hasattr(credentials, "renew"):
                renewing(client, credentials.renew)
            return with_timeout(client, timeout)

        return cls(factory, completion_topic)

    @property
    def client(self) -> Any:
        if self._client is None:
            with mapped("connect"):
                self._client = self._factory()
        return self._client

    def experiment_id(self, route: str) -> str:
        name = f"{EXPERIMENT_PREFIX}{route}"
        if name not in self._experiments:
            with mapped("create experiment"):
                try:
                    experiment = self.client.create_experiment(name)  # get-or-create, but racy
                except Exception as exc:
                    if not _conflict(exc):
                        raise
                    experiment = self.client.get_experiment(experiment_name=name)
            self._experiments[name] = experiment.experiment_id
        return self._experiments[name]

    def version(self, pipeline: CompiledPipeline) -> tuple[str, str]:
        """(pipeline_id, version_id) of the pipeline's content-addressed version, uploaded once."""
        if pipeline.version_name in self._versions:
            return self._versions[pipeline.version_name]
        client = self.client
        with mapped("upload pipeline"):
            pipeline_id = client.get_pipeline_id(pipeline.name)
            if pipeline_id is None:
                try:
                    pipeline_id = client.upload_pipeline(str(pipeline.package), pipeline.name).pipeline_id
                except Exception as exc:
                    if not _conflict(exc):
                        raise
                    pipeline_id = client.get_pipeline_id(pipeline.name)
            try:
                version = client.upload_pipeline_version(
                    str(pipeline.package), pipeline.version_name, pipeline_id=pipeline_id
                )
            except Exception as exc:
                if not _conflict(exc):
                    raise
                listed = client.list_pipeline_versions(
                    pipeline_id, filter=_equals("display_name", pipeline.version_name)
                )
                (version,) = listed.pipeline_versions
        self._versions[pipeline.version_name] = (pipeline_id, version.pipeline_version_id)
        return self._versions[pipeline.version_name]

    def submit(self, submission: Submission) -> str:
        params = filled(submission, self.completion_topic)
        experiment_id = self.experiment_id(submission.route)
        pipeline_id, version_id = self.version(submission.pipeline)
        with mapped("create run"):
            run = self.client.run_pipeline(
                experiment_id=experiment_id,
                job_name=submission.run_key,
                pipeline_id=pipeline_id,
                version_id=version_id,
                params=params,
                pipeline_root=submission.pipeline.pipeline_root,
            )
        return str(run.run_id)

    def engine(self) -> Engine:
        """The API server's release: `tag_name` of `GET /apis/v2beta1/healthz`, asked once.

        The server's own HTTP handler answers `{commit_sha, tag_name, multi_user,
        pipeline_store}` (backend/src/apiserver/main.go, `newHealthzResponse`; `TAG_NAME` is set
        in its image, backend/Dockerfile, "unknown" when built without it). The generated model
        (`V2beta1GetHealthzResponse`) keeps only the last two, so the answer is read raw."""
        return self._engine()

    def _ask_engine(self) -> Engine:
        with mapped("healthz"):
            answer = self.client._healthz_api.healthz_service_get_healthz(_preload_content=False)
            told = json.loads(answer.data or b"{}")
        tag = str(told.get("tag_name", "")) if isinstance(told, dict) else ""
        tag = re.sub(r"[^\w.+-]", "", tag)[:64]  # it travels into every result: a tag, nothing else
        return Engine("kfp", "" if tag == "unknown" else tag)

    def find(self, run_key: str) -> str | None:
        since = datetime.now(UTC) - FIND_WINDOW
        with mapped("find run"):
            listed = self.client.list_runs(filter=_equals("display_name", run_key, since), page_size=5)
        runs = [run for run in listed.runs or [] if run.display_name == run_key]
        return str(runs[0].run_id) if runs else None

    def status(self, run_id: str) -> RunStatus:
        with mapped("get run"):
            run = self.client.get_run(run_id)
        state = RunState.parse(str(run.state))
        error = (run.error.message if getattr(run, "error", None) else None) or _failed_task(run, state)
        return RunStatus(
            run_id=run_id,
            state=state,
            started_at=run.created_at.isoformat() if run.created_at else None,
            finished_at=run.finished_at.isoformat() if run.finished_at else None,
            error=error,
            artifact_root=self.artifact_root(run) if state.terminal else None,
            log=f"{self.client._get_url_prefix()}/#/runs/details/{run_id}",  # the KFP UI's page of it
        )

    def artifact_root(self, run: Any) -> str | None:
        """Where the run's artifacts are written: `<pipeline root>/<pipeline name>/<run id>/`
        (the v2 driver's `GenerateOutputURI(pipelineRoot, [pipelineName, runID])`,
        backend/src/v2/metadata/client.go), for a run submitted with a `gs://` pipeline root.

        The API lists no artifact URIs (a run's task details hold artifact ids of the metadata
        store only), so the completion path reads metrics files under this root instead.
        """
        config, reference = run.runtime_config, run.pipeline_version_reference
        root = config.pipeline_root if config is not None else None
        if not root or not root.startswith("gs://") or reference is None:
            return None
        version_id = str(reference.pipeline_version_id)
        if version_id not in self._pipeline_names:
            with mapped("get pipeline version"):
                version = self.client.get_pipeline_version(reference.pipeline_id, version_id)
            info = (version.pipeline_spec or {}).get("pipelineInfo", {})
            self._pipeline_names[version_id] = str(info.get("name", ""))
        name = self._pipeline_names[version_id]
        return f"{root.rstrip('/')}/{name}/{run.run_id}/" if name else None

    def cancel(self, run_id: str) -> None:
        with mapped("terminate run"):
            self.client.terminate_run(run_id)
