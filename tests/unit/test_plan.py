"""`kfp-trigger deploy plan`: every resource the routes need, least privilege, Terraform that
parses with every reference resolved, and the golden outputs for the example routes."""

from __future__ import annotations

import re

import hcl2
import pytest

from events.routes import load_routes
from functions.cli.plan.deployment import build_plan
from functions.cli.plan.model import PRIMITIVE_ROLES, Plan
from functions.cli.plan.render import render_gcloud, render_terraform
from tests.support import ROOT

EXAMPLE = ROOT / "deploy" / "routes.example.yaml"
GOLDEN = {
    "terraform": ROOT / "deploy" / "terraform" / "main.tf",
    "gcloud": ROOT / "deploy" / "gcloud" / "deploy.sh",
}
REGENERATE = (
    "kfp-trigger deploy plan --routes deploy/routes.example.yaml --project acme-analytics "
    "--region europe-west1 [--format gcloud] --out …"
)


def plan_of(text: str) -> Plan:
    return build_plan(load_routes(text), "acme-analytics", "europe-west1")


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_of(EXAMPLE.read_text())


def names(plan: Plan, kind: str) -> set[str]:
    return {
        str(resource.args.get("name") or resource.args.get("account_id")) for resource in plan.of_kind(kind)
    }


@pytest.mark.parametrize("output", ["terraform", "gcloud"])
def test_the_golden_outputs_are_current(plan: Plan, output: str) -> None:
    rendered = render_terraform(plan) if output == "terraform" else render_gcloud(plan)
    assert rendered == GOLDEN[output].read_text(), f"regenerate with: {REGENERATE}"


def test_every_resource_the_routes_need_is_planned(plan: Plan) -> None:
    assert names(plan, "google_pubsub_topic") == {
        "product-events",
        "kfp-trigger-schedules",
        "kfp-trigger-completions",
        "kfp-trigger-results",
        "kfp-trigger-quarantine",
        "kfp-trigger-dead-letter",
    }
    (product,) = [t for t in plan.of_kind("google_pubsub_topic") if t.args["name"] == "product-events"]
    assert "schema_settings" in product.args
    subscriptions = {s.args["name"]: s.args for s in plan.of_kind("google_pubsub_subscription")}
    assert (
        subscriptions["kfp-trigger-results-product"]["dead_letter_policy"].body["max_delivery_attempts"] == 10
    )
    assert "kfp-trigger-dead-letter-hold" in subscriptions, "dead letters are kept by a subscription"
    for args in subscriptions.values():
        assert args["retry_policy"].body == {"minimum_backoff": "10s", "maximum_backoff": "600s"}
        assert args["message_retention_duration"] == "604800s"
    functions = {
        f.args["name"]: f.args["service_config"].body for f in plan.of_kind("google_cloudfunctions2_function")
    }
    assert set(functions) == {"kfp-trigger-events", "kfp-trigger-completions", "kfp-trigger-reconcile"}
    for config in functions.values():
        assert config["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
        assert {"max_instance_count", "available_memory", "timeout_seconds"} <= set(config)
    triggers = {t.args["name"]: t.args for t in plan.of_kind("google_eventarc_trigger")}
    assert set(triggers) == {
        "kfpt-storage-acme-survey-landing",
        "kfpt-bigquery-jobs",
        "kfpt-pubsub-product-events",
        "kfpt-schedules",
        "kfpt-completions",
    }
    bucket = {
        c.body["attribute"]: c.body["value"]
        for c in triggers["kfpt-storage-acme-survey-landing"]["matching_criteria"]
    }
    assert bucket == {"type": "google.cloud.storage.object.v1.finalized", "bucket": "acme-survey-landing"}
    jobs = {j.args["name"]: j.args for j in plan.of_kind("google_cloud_scheduler_job")}
    assert jobs["survey-nightly-retrain"]["pubsub_target"].body["attributes"] == {
        "scheduler_job": "survey-nightly-retrain"
    }
    assert jobs["survey-nightly-retrain"]["time_zone"] == "Europe/Berlin"
    assert "oidc_token" in jobs["kfp-trigger-reconcile"]["http_target"].body
    assert plan.of_kind("google_firestore_database")
    assert names(plan, "google_service_account") == {
        "kfpt-event-invoker",
        "kfpt-notice-invoker",
        "kfpt-scheduler",
        "kfpt-runtime",
        "kfpt-pipelines",
    }
    (provider,) = plan.of_kind("google_iam_workload_identity_pool_provider")
    assert "var.aws_role_arn" in provider.args["attribute_condition"].text
    assert len(plan.of_kind("google_monitoring_alert_policy")) == 2


def test_no_primitive_role_and_nothing_public(plan: Plan) -> None:
    assert not PRIMITIVE_ROLES & set(plan.roles())
    for text in (render_terraform(plan), render_gcloud(plan)):
        assert "allUsers" not in text
        assert "allAuthenticatedUsers" not in text
    for function in plan.of_kind("google_cloudfunctions2_function"):
        assert function.gcloud is not None
        assert "--no-allow-unauthenticated" in function.gcloud.args
    invokers = plan.of_kind("google_cloud_run_service_iam_member")
    callers = {
        str(i.args["service"].text).split(".")[1]: str(i.args["member"].text).split(".")[1] for i in invokers
    }
    assert callers == {
        "events": "event_invoker",
        "completions": "notice_invoker",
        "reconcile": "scheduler",
    }, "each function has one caller, and no caller may post to another target"


def test_the_product_may_publish_to_its_topic_only(plan: Plan) -> None:
    grants = [r for r in plan.resources if "principalSet" in str(r.args.get("member", ""))]
    publishes = [(g.kind, g.args["role"]) for g in grants if g.args["role"] == "roles/pubsub.publisher"]
    assert publishes == [("google_pubsub_topic_iam_member", "roles/pubsub.publisher")]
    assert {g.args["role"] for g in grants} == {"roles/pubsub.publisher", "roles/pubsub.subscriber"}


def test_a_new_schedule_route_adds_exactly_one_scheduler_job(plan: Plan) -> None:
    extra = (
        "\n  - name: weekly-report\n    when:\n      schedule: {job: weekly-report, cron: '0 6 * * 1'}\n"
        "    run: {pipeline: survey-retrain, params: {responses_uri: 'gs://x/'}}\n"
    )
    bigger = plan_of(EXAMPLE.read_text() + extra)
    assert (
        len(bigger.of_kind("google_cloud_scheduler_job"))
        == len(plan.of_kind("google_cloud_scheduler_job")) + 1
    )
    assert len(bigger.resources) == len(plan.resources) + 1


def test_the_terraform_parses_and_every_reference_resolves(plan: Plan) -> None:
    text = render_terraform(plan)
    parsed = hcl2.loads(text)
    defined = {
        f"{kind.strip(chr(34))}.{name.strip(chr(34))}"
        for block in parsed["resource"]
        for kind, named in block.items()
        for name in named
    }
    defined |= {
        f"data.{kind.strip(chr(34))}.{name.strip(chr(34))}"
        for block in parsed["data"]
        for kind, named in block.items()
        for name in named
    }
    defined |= {f"var.{name.strip(chr(34))}" for block in parsed["variable"] for name in block}
    references = set(re.findall(r"\b(data\.\w+\.\w+|google_\w+\.\w+|archive_file\.\w+|var\.\w+)", text))
    references = {ref for ref in references if not ref.endswith(".googleapis")}
    assert references, "the plan refers to its own resources"
    assert references <= defined, references - defined
    assert "path.module" in text


def test_text_never_becomes_a_terraform_template_and_job_names_are_checked() -> None:
    from functions.cli.plan.model import PlanError
    from functions.cli.plan.render import _hcl_value

    assert _hcl_value("${var.secret} %{if x}", 0) == '"$${var.secret} %%{if x}"'
    bad_job = EXAMPLE.read_text().replace("job: survey-nightly-retrain", 'job: "nightly ${oops}"')
    with pytest.raises(PlanError, match=r"routes\[nightly-retrain\]\.when\.schedule\.job"):
        plan_of(bad_job)
