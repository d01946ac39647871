"""`kfp-trigger doctor` (issue 21) against the real parts that run here: the KFP API fake
reporting a release, the Pub/Sub emulator, the embedded default; and the checks every cold start
makes, with a pipeline its engine cannot run failing fast instead of failing on the cluster."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from events.errors import PermanentError, TransientError
from functions import bootstrap
from functions.cli.doctor import checks
from functions.service import intake
from functions.service.doctor import Finding, engine_findings
from functions.service.ports import Services
from functions.service.records import Outcome
from functions.settings import Settings
from pipelines import engines
from pipelines.backend import RunState
from pipelines.catalog import LoadedRoutes
from tests.conftest import PROJECT
from tests.support import ROOT, call, serving, storage_event
from tests.support.fakes import RecordingBackend, RecordingSink
from tests.support.kfp_fake import FakeKfp
from tests.support.pubsub import topic_with_subscription

NOTIFIED_ON_KFP = """
pipelines:
  retrain: {source: "tests.support.echo_pipeline:echo_pipeline", backend: kfp, notify: true}
  plain: {source: "tests.support.echo_pipeline:echo_pipeline", backend: kfp}
routes:
  - name: landed
    when: {storage: {bucket: landing}}
    run: {pipeline: retrain}
  - name: plain
    when: {storage: {bucket: other-landing}}
    run: {pipeline: plain}
"""


def settings_for(tmp_path: Path, routes: str, **overrides: object) -> Settings:
    (tmp_path / "routes.yaml").write_text(routes)
    return Settings(routes=tmp_path / "routes.yaml", state_dir=tmp_path / "state", **overrides)  # type: ignore[arg-type]


def on_kfp(tmp_path: Path, url: str) -> Settings:
    return settings_for(tmp_path, NOTIFIED_ON_KFP, kfp_host=url, kfp_token="t")


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {finding.check: finding for finding in findings}


def test_on_the_embedded_default_every_check_passes(tmp_path: Path) -> None:
    settings = Settings(routes=ROOT / "deploy" / "routes.example.yaml", state_dir=tmp_path / "state")
    findings = list(checks(settings, ""))
    assert [f for f in findings if f.status != "ok"] == []
    assert {"routes", "engine local", "ledger", "results", "quarantine", "alerts"} <= set(by_check(findings))
    assert by_check(findings)["engine local"].detail.startswith("answers: local (kfp 2.")


def test_an_old_kfp_fails_a_notified_pipeline_naming_the_feature_and_its_minimum(tmp_path: Path) -> None:
    with serving(FakeKfp(version="2.5.0")) as url:
        found = by_check(list(checks(on_kfp(tmp_path, url), "")))
    assert found["engine kfp"] == Finding("engine kfp", "ok", "answers: kfp 2.5.0")
    failed = found["pipeline retrain on kfp"]
    assert failed.status == "fail"
    assert failed.detail.startswith(
        "KFP 2.5.0 cannot run an exit handler whose task reads dsl.PipelineTaskFinalStatus "
        "(notify: true adds one): it needs KFP 2.14.0 or later"
    )
    assert "upgrade the cluster" in failed.fix
    assert found["pipeline plain on kfp"].status == "ok", "a pipeline without the feature runs on 2.5.0"


def test_a_new_enough_kfp_runs_it_and_a_server_without_its_release_is_a_warning(tmp_path: Path) -> None:
    with serving(FakeKfp(version="2.14.0")) as url:
        found = by_check(
            list(checks(settings_for(tmp_path, NOTIFIED_ON_KFP, kfp_host=url, kfp_token="t"), ""))
        )
    assert found["pipeline retrain on kfp"].status == "ok"
    assert "final-status" in found["pipeline retrain on kfp"].detail
    with serving(FakeKfp(version="unknown")) as url:
        found = by_check(
            list(checks(settings_for(tmp_path, NOTIFIED_ON_KFP, kfp_host=url, kfp_token="t"), ""))
        )
    assert found["engine kfp"].status == "warn"
    assert "does not say its release" in found["engine kfp"].detail


def test_an_engine_that_does_not_answer_fails_with_the_fix(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, NOTIFIED_ON_KFP, kfp_host="http://127.0.0.1:9", kfp_token="t")
    found = by_check(list(checks(settings, "")))
    assert found["engine kfp"].status == "fail"
    assert "KFP_TRIGGER_KFP_HOST" in found["engine kfp"].fix
    missing = by_check(list(checks(settings_for(tmp_path, NOTIFIED_ON_KFP), "")))
    assert missing["engines"] == Finding(
        "engines",
        "fail",
        "KFP_TRIGGER_KFP_HOST is required: a pipeline has backend: kfp",
        "set it (docs/configuration.md)",
    )


@pytest.mark.emulator
def test_a_missing_completion_topic_fails_naming_it_and_the_fix(tmp_path: Path, pubsub_emulator: str) -> None:
    results, _ = topic_with_subscription("results")
    missing = f"projects/{PROJECT}/topics/kfp-trigger-completions"
    settings = Settings(
        routes=ROOT / "deploy" / "routes.example.yaml",
        state_dir=tmp_path,
        results=f"pubsub://{results}",
        completion_topic=f"pubsub://{missing}",
    )
    found = by_check(list(checks(settings, "")))
    assert found["completion"] == Finding(
        "completion",
        "fail",
        f"topic {missing} does not exist",
        f"gcloud pubsub topics create kfp-trigger-completions --project {PROJECT} "
        "(or apply the Terraform module)",
    )
    assert found["results"].status == "warn", "the topic exists; the emulator cannot test permissions"
    assert found["results"].detail == (
        f"topic {results} exists; pubsub.topics.publish not tested: this endpoint (an emulator) has no IAM"
    )


def test_the_dead_letter_subscription_must_exist(tmp_path: Path, pubsub_emulator: str) -> None:
    _, held = topic_with_subscription("dead-letter")
    missing = f"projects/{PROJECT}/subscriptions/kfp-trigger-dead-letter-hold"
    routes = ROOT / "deploy" / "routes.example.yaml"
    for subscription, status in ((held, "warn"), (missing, "fail")):
        settings = Settings(routes=routes, state_dir=tmp_path, dead_letters=subscription)
        found = by_check(list(checks(settings, "")))["dead letters"]
        assert (found.status, subscription in found.detail) == (status, True), found
    assert "does not exist" in found.detail
    assert "KFP_TRIGGER_DEAD_LETTERS" in found.fix


def test_signature_secrets_routes_name_must_be_set(tmp_path: Path) -> None:
    signed = (
        "pipelines: {p: {source: 'tests.support.echo_pipeline:echo_pipeline'}}\n"
        "routes:\n  - name: r\n"
        "    when: {pubsub: {topic: product-events, signature: {secret: SIGNING_KEY}}}\n"
        "    run: {pipeline: p}\n"
    )
    found = by_check(list(checks(settings_for(tmp_path, signed), "")))
    assert found["secrets"].status == "fail"
    assert found["secrets"].detail == "SIGNING_KEY is not set: a route checks signatures with it"


def test_a_cold_start_logs_what_an_engine_cannot_run_once(
    test_routes: LoadedRoutes, caplog: pytest.LogCaptureFixture
) -> None:
    old = RecordingBackend(reports=engines.Engine("kfp", "2.5.0"))
    catalog = {
        "echo": replace(test_routes.catalog["echo"], backend="kfp", features=frozenset({"final-status"}))
    }
    with caplog.at_level(logging.WARNING, logger="kfp_trigger.doctor"):
        from functions.service.doctor import at_cold_start

        at_cold_start({"kfp": old}, catalog)
    (line,) = caplog.records
    assert line.levelno == logging.ERROR
    assert line.getMessage().startswith("pipeline echo on kfp: KFP 2.5.0 cannot run an exit handler")


def test_an_event_for_a_pipeline_its_engine_cannot_run_fails_fast_with_the_reason(services: Services) -> None:
    """No run starts on the cluster; the run ends FAILED with the reason, recorded and published,
    and its result names the engine."""
    old = RecordingBackend(reports=engines.Engine("kfp", "2.5.0"))
    echo = replace(services.catalog["echo"], features=frozenset({"final-status"}))
    services = replace(services, backends={"local": old}, catalog={**services.catalog, "echo": echo})
    reply = call(intake.handle, services, *storage_event("some-bucket", "folder/x.csv"))
    assert reply.status == 200
    assert old.submitted == []
    (decision,) = [d for d in services.decisions.trail("e-1") if d.outcome is Outcome.FAILED]
    assert "KFP 2.5.0 cannot run an exit handler" in decision.reason
    assert isinstance(services.results, RecordingSink)
    (result,) = services.results.published
    data = result["data"]
    assert isinstance(data, dict)
    assert (data["state"], data["engine"]) == (RunState.FAILED, "kfp 2.5.0")
    assert data["error"]["kind"] == "submit"


def test_every_result_names_the_engine_that_ran_it(services: Services) -> None:
    from functions.service import runs

    backend = services.backends["local"]
    assert isinstance(backend, RecordingBackend)
    call(intake.handle, services, *storage_event("some-bucket", "folder/y.csv", event_id="e-2"))
    (record,) = services.store.runs()
    backend.states[str(record.run_id)] = RunState.SUCCEEDED
    assert runs.complete(services, record) is RunState.SUCCEEDED
    assert isinstance(services.results, RecordingSink)
    (result,) = services.results.published
    assert result["data"]["engine"] == "recording"  # type: ignore[index]
    (submitted,) = [d for d in services.decisions.trail("e-2") if d.outcome is Outcome.RUN]
    assert submitted.reason.endswith(" on recording")


def test_an_engine_that_does_not_answer_is_retried_and_one_that_cannot_say_is_not_a_refusal(
    services: Services, test_routes: LoadedRoutes
) -> None:
    """A silent engine: its submit would meet the same timeout, so the delivery is answered 503 at
    once (Eventarc redelivers), nothing submitted. An engine that answers but cannot say what it
    is (a list permission refused): the submit goes ahead and says what is wrong, if anything."""

    class Silent(RecordingBackend):
        def engine(self) -> engines.Engine:
            raise TransientError("healthz: ConnectionError")

    class Mute(RecordingBackend):
        def engine(self) -> engines.Engine:
            raise PermanentError("list pipeline jobs: PermissionDenied")

    silent = Silent()
    found = engine_findings({"local": silent}, test_routes.catalog)
    assert found[0].status == "fail"
    headers, body = storage_event("some-bucket", "folder/y.csv", event_id="e-2")
    reply = call(intake.handle, replace(services, backends={"local": silent}), headers, body)
    assert reply.status == 503
    assert silent.submitted == []
    mute = Mute()
    headers, body = storage_event("some-bucket", "folder/z.csv", event_id="e-3")
    assert call(intake.handle, replace(services, backends={"local": mute}), headers, body).status == 200
    assert len(mute.submitted) == 1


def test_bootstrap_builds_with_the_cold_start_check(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(routes=ROOT / "deploy" / "routes.example.yaml", state_dir=tmp_path, auth="none")
    with caplog.at_level(logging.WARNING, logger="kfp_trigger.doctor"):
        bootstrap.build(settings)
    assert caplog.records == [], "the embedded default has nothing to say"


@pytest.mark.parametrize(
    ("answer", "status", "detail"),
    [
        (True, "ok", "topic t exists; this identity holds pubsub.topics.publish"),
        (False, "fail", "topic t exists, but this identity lacks pubsub.topics.publish"),
        ("not implemented", "warn", "topic t exists; pubsub.topics.publish not tested: this endpoint"),
        (
            "refused",
            "warn",
            "topic t exists; pubsub.topics.publish for this identity not tested: PermissionDenied",
        ),
    ],
)
def test_a_permission_test_answers_for_what_it_asked(answer: object, status: str, detail: str) -> None:
    """TestIamPermissions answers the subset of the asked permissions the caller holds (Pub/Sub and
    Cloud Storage alike); the emulators implement no IAM (501), and impersonating the pipelines'
    identity may be refused. Each answer is a finding, never a crash."""
    from google.api_core import exceptions

    from functions.cli.doctor import PUBLISH, permitted

    def granted() -> bool:
        if answer == "not implemented":
            raise exceptions.MethodNotImplemented("")
        if answer == "refused":
            raise exceptions.PermissionDenied("iam.serviceAccounts.getAccessToken")
        return bool(answer)

    finding = permitted("results", "topic t exists", "this identity", PUBLISH, granted)
    assert finding.status == status
    assert finding.detail.startswith(detail)
    if status == "fail":
        assert finding.fix == "grant this identity a role with pubsub.topics.publish"
