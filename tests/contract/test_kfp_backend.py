"""The `kfp` backend through the real `kfp.Client` against the local KFP API fake, which
checks every request against the kfp_server_api models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from events.errors import PermanentError, TransientError
from pipelines.backend import CompiledPipeline, RunState, Submission
from pipelines.catalog import LoadedRoutes
from pipelines.engines import Engine, refusal
from pipelines.kfp.backend import KfpBackend
from tests.support import serving
from tests.support.kfp_fake import FakeKfp


@pytest.fixture
def fake() -> FakeKfp:
    return FakeKfp()


@pytest.fixture
def kfp(fake: FakeKfp) -> Iterator[KfpBackend]:
    with serving(fake) as url:
        yield KfpBackend.for_host(url, namespace="kubeflow", token="test-token")


def submission(test_routes: LoadedRoutes, key: str = "route/b/o#1") -> Submission:
    return Submission(key, "survey-landed", test_routes.catalog["echo"], {"message": "hi"})


def test_a_run_is_created_from_its_content_addressed_version(
    kfp: KfpBackend, fake: FakeKfp, test_routes: LoadedRoutes
) -> None:
    run_id = kfp.submit(submission(test_routes))
    run = fake.runs[run_id]
    assert run["display_name"] == "route/b/o#1"
    assert run["runtime_config"]["parameters"] == {"message": "hi", "run_key": "route/b/o#1"}
    version = fake.versions[run["pipeline_version_reference"]["pipeline_version_id"]]
    assert version["name"] == test_routes.catalog["echo"].version_name
    assert [e["display_name"] for e in fake.experiments.values()] == ["kfp-trigger-survey-landed"]


def test_the_pipeline_root_travels_with_the_run(
    kfp: KfpBackend, fake: FakeKfp, test_routes: LoadedRoutes
) -> None:
    from dataclasses import replace

    rooted = replace(test_routes.catalog["echo"], pipeline_root="gs://acme-pipelines/root")
    run_id = kfp.submit(Submission("k", "survey-landed", rooted, {"message": "hi"}))
    assert fake.runs[run_id]["runtime_config"]["pipeline_root"] == "gs://acme-pipelines/root"


def test_one_hundred_events_upload_the_version_once(fake: FakeKfp, test_routes: LoadedRoutes) -> None:
    with serving(fake) as url:
        for instance in range(4):  # several instances, each with a cold cache
            backend = KfpBackend.for_host(url, namespace="kubeflow")
            for n in range(25):
                backend.submit(submission(test_routes, f"route/b/o#{instance}-{n}"))
    uploads = [path for method, path in fake.requests if method == "POST" and "upload" in path]
    assert len(fake.runs) == 100
    assert len([v for v in fake.versions.values() if v["name"].startswith("echo-")]) == 1
    assert len(uploads) == 1 + 4, (
        "the pipeline once, then one version upload per instance: 409 after the first"
    )


def test_a_lost_create_response_is_recovered_by_lookup(
    kfp: KfpBackend, fake: FakeKfp, test_routes: LoadedRoutes
) -> None:
    fake.fail_next("POST", "/runs", "lost")
    with pytest.raises(TransientError, match="HTTP 504"):
        kfp.submit(submission(test_routes))
    (created,) = fake.runs
    assert kfp.find("route/b/o#1") == created, "the run was created: find it instead of creating again"
    assert kfp.find("route/b/o#2") is None


def test_an_unavailable_server_is_transient(
    kfp: KfpBackend, fake: FakeKfp, test_routes: LoadedRoutes
) -> None:
    kfp.submit(submission(test_routes, "warm"))
    fake.fail_next("POST", "/runs", "503")
    with pytest.raises(TransientError, match="HTTP 503"):
        kfp.submit(submission(test_routes))
    assert len(fake.runs) == 1


def test_a_refusal_s_words_go_to_the_log_not_into_the_error(
    kfp: KfpBackend, fake: FakeKfp, test_routes: LoadedRoutes, caplog: pytest.LogCaptureFixture
) -> None:
    """The error can reach a published result and the ledger: it says which call was refused
    and how (HTTP status, gRPC code), never the body, which quotes the run's parameter values."""
    kfp.submit(submission(test_routes, "warm"))
    fake.fail_next("POST", "/runs", "invalid")
    secret = Submission("k#secret", "survey-landed", test_routes.catalog["echo"], {"message": "s3cret-token"})
    with pytest.raises(PermanentError) as refused:
        kfp.submit(secret)
    assert str(refused.value) == "KFP create run: HTTP 400 INVALID_ARGUMENT"
    (logged,) = [record for record in caplog.records if record.getMessage() == "KFP refused"]
    assert "s3cret-token" in logged.fields["body"]  # type: ignore[attr-defined]


# Every v2beta1 RuntimeState (backend/api/v2beta1/run.proto) and what it means to us.
RUNTIME_STATES = {
    "RUNTIME_STATE_UNSPECIFIED": RunState.PENDING,
    "PENDING": RunState.PENDING,
    "RUNNING": RunState.RUNNING,
    "SUCCEEDED": RunState.SUCCEEDED,
    "SKIPPED": RunState.SKIPPED,
    "FAILED": RunState.FAILED,
    "CANCELING": RunState.RUNNING,  # it may still end SUCCEEDED or FAILED
    "CANCELED": RunState.CANCELED,
    "PAUSED": RunState.RUNNING,  # it resumes
}


@pytest.mark.parametrize(("server_state", "ours"), sorted(RUNTIME_STATES.items()))
def test_every_run_state_is_mapped(
    kfp: KfpBackend, fake: FakeKfp, test_routes: LoadedRoutes, server_state: str, ours: RunState
) -> None:
    run_id = kfp.submit(submission(test_routes))
    fake.states[run_id] = server_state
    assert kfp.status(run_id).state is ours


def test_the_fake_refuses_what_the_real_server_would() -> None:
    from tests.support.kfp_fake import check

    check({"display_name": "x", "runtime_config": {"parameters": {"a": 1}}}, "V2beta1Run", "run")
    with pytest.raises(ValueError, match="unknown field 'bogus'"):
        check({"display_name": "x", "runtime_config": {"bogus": 1}}, "V2beta1Run", "run")
    with pytest.raises(ValueError, match="expected str"):
        check({"display_name": 7}, "V2beta1Run", "run")


def test_refreshing_credentials_authorize_every_request(fake: FakeKfp, test_routes: LoadedRoutes) -> None:
    from pipelines.kfp.auth import refreshing
    from tests.support.fakes import StubCredentials

    expired = StubCredentials(*[-1.0] * 1000)  # every token it gets has expired already
    with serving(fake) as url:

        def client() -> object:
            import kfp

            return kfp.Client(host=url, namespace="kubeflow", credentials=refreshing(expired))

        backend = KfpBackend(client)
        with pytest.warns(FutureWarning):
            backend.submit(submission(test_routes))
    assert fake.authorizations
    assert all(header.startswith("Bearer token-") for header in fake.authorizations)
    assert len(set(fake.authorizations)) == len(fake.authorizations), (
        "an expired token is refreshed each time"
    )


def test_in_cluster_token_file_is_reread_as_it_rotates(
    fake: FakeKfp, test_routes: LoadedRoutes, tmp_path
) -> None:
    token = tmp_path / "token"
    token.write_text("sa-token-1")
    with serving(fake) as url:
        backend = KfpBackend.for_host(url, "kubeflow", token_file=str(token))
        backend.submit(submission(test_routes, "k1"))
        token.write_text("sa-token-2")  # the kubelet rotated it
        backend.submit(submission(test_routes, "k2"))
    assert fake.authorizations[0] == "Bearer sa-token-1"
    assert fake.authorizations[-1] == "Bearer sa-token-2"


def test_an_experiment_created_by_a_concurrent_instance_is_read_not_duplicated(
    kfp: KfpBackend, fake: FakeKfp, test_routes: LoadedRoutes
) -> None:
    fake.experiments["other"] = {"experiment_id": "other", "display_name": "kfp-trigger-survey-landed"}
    fake.fail_next("GET", "/experiments", "empty")  # the get of get-or-create misses it; the create gets 409
    run_id = kfp.submit(submission(test_routes))
    assert fake.runs[run_id]["experiment_id"] == "other"
    assert len(fake.experiments) == 1


def test_a_hung_api_call_times_out_as_transient_and_the_run_is_found(
    fake: FakeKfp, test_routes: LoadedRoutes
) -> None:
    with serving(fake) as url:
        backend = KfpBackend.for_host(url, "kubeflow", timeout=(2.0, 0.5))
        backend.submit(submission(test_routes, "warm"))
        fake.fail_next("POST", "/runs", "timeout")
        with pytest.raises(TransientError, match="KFP create run: timed out"):
            backend.submit(submission(test_routes, "slow"))
        assert backend.find("slow") is not None, "created all the same: the retry must look first"


def test_the_fake_decodes_the_filter_as_the_server_does(fake: FakeKfp) -> None:
    """Plain JSON with `+` loses it to a space; a bare `%` is refused, as on the real server."""
    import json

    import requests

    fake.runs["r-1"] = {"run_id": "r-1", "display_name": "a+b", "experiment_id": "e"}
    predicate = {"key": "display_name", "operation": "EQUALS", "string_value": "a+b"}
    plain = json.dumps({"predicates": [predicate]})
    with serving(fake) as url:
        listed = requests.get(f"{url}/apis/v2beta1/runs", params={"filter": plain}, timeout=10).json()
        assert listed["runs"] == [], "a + in plain JSON arrives as a space"
        percent = plain.replace("a+b", "100%")
        refused = requests.get(f"{url}/apis/v2beta1/runs", params={"filter": percent}, timeout=10)
        assert refused.status_code == 400
        assert "invalid URL escape" in refused.json()["message"]
        unknown = json.dumps({"predicates": [{**predicate, "key": "pipeline_root"}]})
        refused = requests.get(f"{url}/apis/v2beta1/runs", params={"filter": unknown}, timeout=10)
        assert refused.status_code == 400


def test_the_client_makes_no_request_until_ours_and_keeps_no_context_file(
    fake: FakeKfp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kfp.Client's own /healthz probe (5 tries, 5 s apart, no timeout) never runs, and neither
    an operator's ~/.config/kfp/context.json nor ours changes what the backend sends."""
    monkeypatch.setenv("HOME", str(tmp_path))
    context = tmp_path / ".config" / "kfp" / "context.json"
    context.parent.mkdir(parents=True)
    context.write_text('{"namespace": "someone-else", "client_authentication_cookie": "stale"}')
    import kfp

    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(context))
    with serving(fake) as url:
        backend = KfpBackend.for_host(url, "kubeflow")
        assert backend.client.get_user_namespace() == "kubeflow"
        team = KfpBackend.for_host(url, "team-a")
        assert team.client.get_user_namespace() == "team-a"
    assert fake.requests == []
    assert "someone-else" in context.read_text(), "the operator's context file is left as it was"


def test_a_server_that_never_answers_is_transient_within_the_timeout(test_routes: LoadedRoutes) -> None:
    import socket
    import time

    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        backend = KfpBackend.for_host(
            f"http://127.0.0.1:{silent.getsockname()[1]}", "kubeflow", timeout=(1.0, 0.5)
        )
        started = time.monotonic()
        with pytest.raises(TransientError):
            backend.submit(submission(test_routes))
        assert time.monotonic() - started < 5, "one timed-out request, not kfp.Client's retries"


def test_connection_refused_is_transient(test_routes: LoadedRoutes) -> None:
    from tests.support import free_port

    backend = KfpBackend.for_host(f"http://127.0.0.1:{free_port()}", "kubeflow", timeout=(1.0, 0.5))
    with pytest.raises(TransientError):
        backend.submit(submission(test_routes))
    with pytest.raises(TransientError):
        backend.find("route/b/o#1")


@pytest.fixture(scope="module")
def notified(tmp_path_factory: pytest.TempPathFactory) -> CompiledPipeline:
    from events.rules import PipelineDef
    from pipelines.catalog import build_pipeline

    folder = tmp_path_factory.mktemp("notified")
    echo = PipelineDef(
        "echo", "tests.support.echo_pipeline:echo_pipeline", None, "kfp", None, {}, notify=True
    )
    return build_pipeline(echo, folder, folder / "packages")


def test_a_notified_pipeline_is_told_where_to_report_its_end(
    fake: FakeKfp, notified: CompiledPipeline
) -> None:
    topic = "pubsub://projects/acme-analytics/topics/kfp-trigger-completions"
    with serving(fake) as url:
        backend = KfpBackend.for_host(url, "kubeflow", completion_topic=topic)
        run_id = backend.submit(Submission("route/b/o#1", "survey-landed", notified, {"message": "hi"}))
    parameters = fake.runs[run_id]["runtime_config"]["parameters"]
    assert parameters == {"message": "hi", "run_key": "route/b/o#1", "completion_topic": topic}


def test_cancel_terminates_a_run_that_has_not_ended(
    kfp: KfpBackend, fake: FakeKfp, test_routes: LoadedRoutes
) -> None:
    run_id = kfp.submit(submission(test_routes))
    kfp.cancel(run_id)
    assert ("POST", f"/apis/v2beta1/runs/{run_id}:terminate") in fake.requests
    assert kfp.status(run_id).state is RunState.RUNNING, "CANCELING: it may still end otherwise"
    fake.end(run_id, "CANCELED")  # the terminate stopped it
    assert kfp.status(run_id).state is RunState.FAILED, "KFP's word for a terminated run"
    with pytest.raises(PermanentError, match="HTTP 400"):
        kfp.cancel(run_id)  # the server refuses to terminate an ended run


def test_on_a_multi_user_cluster_each_namespace_has_its_own_experiment(test_routes: LoadedRoutes) -> None:
    fake = FakeKfp(multi_user=True)
    with serving(fake) as url:
        for namespace in ("team-a", "team-b"):
            KfpBackend.for_host(url, namespace).submit(submission(test_routes, f"route/b/{namespace}#1"))
    experiments = sorted((e["namespace"], e["display_name"]) for e in fake.experiments.values())
    assert experiments == [("team-a", "kfp-trigger-survey-landed"), ("team-b", "kfp-trigger-survey-landed")]


def test_the_fake_pages_lists_as_the_server_does(fake: FakeKfp) -> None:
    """list/list.go: page size 0 means 20, at most 200; next_page_token while more remain."""
    import requests

    fake.runs.update({f"r-{n:02}": {"run_id": f"r-{n:02}", "experiment_id": "e"} for n in range(25)})
    with serving(fake) as url:
        first = requests.get(f"{url}/apis/v2beta1/runs", timeout=10).json()
        assert (len(first["runs"]), first["total_size"]) == (20, 25)
        rest = requests.get(
            f"{url}/apis/v2beta1/runs", params={"page_token": first["next_page_token"]}, timeout=10
        ).json()
        assert (len(rest["runs"]), "next_page_token" in rest) == (5, False)
        refused = requests.get(f"{url}/apis/v2beta1/runs", params={"page_size": -1}, timeout=10)
        assert refused.status_code == 400


def test_the_engine_is_the_release_healthz_reports_asked_once(
    fake: FakeKfp, test_routes: LoadedRoutes
) -> None:
    """`tag_name` from the server's own healthz handler (backend/src/apiserver/main.go)."""
    fake.version = "2.15.0"
    with serving(fake) as url:
        backend = KfpBackend.for_host(url, "kubeflow", token="t")
        assert backend.engine() == Engine("kfp", "2.15.0")
        assert backend.engine().label == "kfp 2.15.0"
    assert sum(path.endswith("/healthz") for _, path in fake.requests) == 1
    fake.version = "2.16.1\n<script>" + "x" * 500  # whatever a server says, a result carries a tag
    with serving(fake) as url:
        assert KfpBackend.for_host(url, "kubeflow", token="t").engine().version == ("2.16.1script" + "x" * 52)


def test_the_ir_says_which_features_a_pipeline_needs(
    notified: CompiledPipeline, test_routes: LoadedRoutes
) -> None:
    """notify: true adds an exit task reading PipelineTaskFinalStatus (`taskFinalStatus` in the IR)."""
    assert notified.features == frozenset({"final-status", "caching-options"})  # the notice is never cached
    assert test_routes.catalog["echo"].features == frozenset()
    assert notified.schema_version == "2.1.0"
    assert refusal(Engine("kfp", "2.5.0"), notified.features) is not None
    assert refusal(Engine("kfp", "v2.14.0"), notified.features) is None
    assert refusal(Engine("kfp", "2.15.0-rc.1"), notified.features) is None
    assert refusal(Engine("kfp", ""), notified.features) is None, (
        "an unknown release is warned of, not refused"
    )
    assert refusal(Engine("vertex"), notified.features) is None
    assert refusal(Engine("kfp", "2.14.0"), frozenset(), "2.0.0") == (
        "KFP accepts only IR schema 2.1.0; the pipeline is 2.0.0"
    )


def test_kfp_local_is_held_to_the_sdk_release_that_runs_exit_handlers(notified: CompiledPipeline) -> None:
    """kfp.local raised NotImplementedError for ExitHandler in 2.15 (#12931); 2.17.0 runs it (#13331)."""
    assert refusal(Engine("local", "2.15.0"), notified.features) == (
        "kfp.local 2.15.0 cannot run an exit handler whose task reads dsl.PipelineTaskFinalStatus "
        "(notify: true adds one): it needs kfp.local 2.17.0 or later"
    )
    assert refusal(Engine("local", "2.17.3"), notified.features) is None


def test_a_warm_backend_on_an_inverse_proxy_host_keeps_its_token_fresh(
    fake: FakeKfp, test_routes: LoadedRoutes
) -> None:
    """An AI Platform Pipelines host (*.pipelines.googleusercontent.com) takes refreshing ADC
    credentials, not kfp.Client's one static token of its inverse-proxy branch: a token that
    expired is refreshed before the next request, and one the proxy refuses while google-auth
    still counts it valid is renewed and the request sent once more; only credentials refused
    twice make the call fail."""
    import datetime

    from google.auth import _helpers

    from tests.support.fakes import StubCredentials

    adc = StubCredentials(3600, 3600, 3600, 3600)
    host = "https://1234abcd-dot-europe-west1.pipelines.googleusercontent.com"
    backend = KfpBackend.for_host(host, "kubeflow", google_credentials=adc)
    with serving(fake) as url:
        backend.client._run_api.api_client.configuration.host = url  # the proxy, here
        fake.tokens = {"token-1"}
        backend.submit(submission(test_routes, "k-1"))
        assert set(fake.authorizations) == {"Bearer token-1"}
        adc.expiry = _helpers.utcnow() - datetime.timedelta(seconds=1)  # an hour later
        fake.tokens = {"token-2"}
        backend.submit(submission(test_routes, "k-2"))
        assert fake.authorizations[-1] == "Bearer token-2"
        fake.tokens = {"token-3"}  # revoked while google-auth still counts token-2 valid
        backend.submit(submission(test_routes, "k-3"))
        assert fake.authorizations[-2:] == ["Bearer token-2", "Bearer token-3"], (
            "refused, renewed, sent again"
        )
        fake.tokens = set()  # credentials no proxy admits: refused twice, then the call fails
        with pytest.raises(PermanentError, match="HTTP 401"):
            backend.submit(submission(test_routes, "k-4"))
    assert len(fake.runs) == 3


def test_a_tls_failure_is_no_answer_and_is_retried(tmp_path: Path, test_routes: LoadedRoutes) -> None:
    """A certificate this machine does not trust is no answer from the server at all, so the
    delivery is retried, never a run recorded FAILED: whether urllib3's retries give up first
    (MaxRetryError) or kfp_server_api turns the SSLError into ApiException(status=0)
    (kfp_server_api/rest.py, `except urllib3.exceptions.SSLError`)."""
    import kfp_server_api

    from pipelines.kfp.errors import mapped
    from tests.support import self_signed

    with serving(FakeKfp(), tls=self_signed(tmp_path)) as url:
        backend = KfpBackend.for_host(url, "kubeflow", token="t", timeout=(2.0, 2.0))
        with pytest.raises(TransientError):
            backend.submit(submission(test_routes))
    with pytest.raises(TransientError, match="no answer"), mapped("create run"):
        raise kfp_server_api.ApiException(status=0, reason="SSLError")


def test_a_failed_run_says_which_task_failed(
    kfp: KfpBackend, fake: FakeKfp, test_routes: LoadedRoutes
) -> None:
    """KFP's v2 driver leaves a run's own error empty; its task details name the failed task."""
    run_id = kfp.submit(submission(test_routes))
    fake.states[run_id] = "FAILED"
    fake.tasks[run_id] = [
        {"display_name": "load-responses", "state": "SUCCEEDED"},
        {"display_name": "train-model", "state": "FAILED", "error": {"code": 2, "message": "OOMKilled"}},
    ]
    assert kfp.status(run_id).error == "task train-model failed: OOMKilled"


def test_the_client_s_links_go_to_stderr_and_no_thread_s_output_is_moved(
    kfp: KfpBackend, test_routes: LoadedRoutes, capsys: pytest.CaptureFixture[str]
) -> None:
    """kfp.Client prints "Run details: …" links; stdout is for data (`--json`). They go to
    stderr by the client module's own `print`, and sys.stdout stays what it is for every thread
    (a process-wide redirect once sent a command's JSON to stderr while a cold start's engine
    check ran beside it)."""
    import sys
    import threading
    import time

    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.add(id(sys.stdout))
            time.sleep(0.0005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        kfp.submit(submission(test_routes))
    finally:
        stop.set()
        watcher.join()
    out, err = capsys.readouterr()
    assert "details:" not in out
    assert "Run details:" in err
    assert len(seen) == 1, "sys.stdout was swapped during a KFP call"


@pytest.mark.parametrize(
    ("host", "said"),
    [
        ("http://127.0.0.1:9", "connection refused (nothing listens at that host and port)"),
        ("http://no-such-host.invalid", "DNS: the host name does not resolve"),
    ],
)
def test_an_engine_that_does_not_answer_says_why(host: str, said: str) -> None:
    """`doctor` and every log line name the cause an operator acts on, not MaxRetryError."""
    with pytest.raises(TransientError) as raised:
        KfpBackend.for_host(host, "kubeflow", token="t", timeout=(2.0, 2.0)).engine()
    assert str(raised.value) == f"KFP healthz: {said}"
