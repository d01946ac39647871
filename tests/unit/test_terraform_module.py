"""The Terraform module (deploy/terraform/) and its generated inputs.

- the module is `terraform fmt` clean, every reference in it resolves, and every resource's
  arguments and blocks, at any depth, exist in the google provider's published schema
  (tests/support/terraform.py: the CDKTF bindings of provider 6.50); a misspelt one is caught;
- `kfp-trigger deploy plan` writes the inputs for three route sets (KFP, Vertex, both with a
  chained route on the results topic) exactly as the committed goldens, carries the backends'
  settings into the functions' environment, and refuses `backend: local` naming the routes;
- each input the plan writes is a variable the module declares, of a shape it accepts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.support import ROOT, kfp_trigger
from tests.support.terraform import declared, problems, references

MODULE = ROOT / "deploy" / "terraform"
SETS = ROOT / "tests" / "deploy"
BACKEND_ENV = {
    "KFP_TRIGGER_KFP_HOST": "https://1234-dot-europe-west1.pipelines.googleusercontent.com",
    "KFP_TRIGGER_KFP_CLIENT_ID": "0123.apps.googleusercontent.com",
    "KFP_TRIGGER_VERTEX_LOCATION": "europe-west4",
}
REGENERATE = (
    "KFP_TRIGGER_KFP_HOST=… KFP_TRIGGER_KFP_CLIENT_ID=… KFP_TRIGGER_VERTEX_LOCATION=europe-west4 "
    "kfp-trigger deploy plan --routes tests/deploy/SET.yaml --project acme-analytics "
    "--region europe-west1 --out tests/deploy/SET.tfvars.json (values in this test)"
)


def module_text() -> str:
    return "\n".join(path.read_text() for path in sorted(MODULE.glob("*.tf")))


def test_the_module_is_formatted() -> None:
    terraform = shutil.which("terraform")
    assert terraform, "the terraform CLI is part of this machine's toolbox"
    done = subprocess.run(
        [terraform, "fmt", "-check", "-diff", "-recursive", str(MODULE)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout


def test_every_reference_in_the_module_resolves() -> None:
    texts = [path.read_text() for path in sorted(MODULE.glob("*.tf"))]
    used = set(references("\n".join(texts)))
    assert {"var.project", "local.environment", "google_pubsub_topic.service"} <= used
    assert used <= declared(texts), used - declared(texts)


def test_every_argument_is_in_the_providers_schema() -> None:
    assert problems(module_text()) == []


def test_the_schema_check_catches_a_misspelt_argument_at_any_depth() -> None:
    text = (
        module_text()
        .replace("per_series_aligner", "per_series_alligner")
        .replace('account_id   = "${var.prefix}-', 'acount_id    = "${var.prefix}-')
    )
    assert sorted(problems(text)) == [
        "google_monitoring_alert_policy.this.conditions.condition_threshold.aggregations: "
        "unknown argument 'per_series_alligner'",
        "google_service_account.this: unknown argument 'acount_id'",
    ]
    assert problems('resource "google_pubsub_topik" "x" {\n  name = "a"\n}\n') == [
        "google_pubsub_topik.x: no such resource type"
    ]


def plan(routes: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = kfp_trigger(
        "deploy", "plan", "--routes", str(routes), "--project", "acme-analytics", "--region", "europe-west1"
    )
    return subprocess.run(
        [*command, *extra], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False
    )


@pytest.mark.parametrize("name", ["kfp", "vertex", "mixed"])
def test_the_inputs_for_each_route_set_are_the_goldens(name: str, tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KFP_TRIGGER_")} | BACKEND_ENV
    out = tmp_path / "routes.auto.tfvars.json"
    done = plan(SETS / f"{name}.yaml", "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == (SETS / f"{name}.tfvars.json").read_text(), f"regenerate: {REGENERATE}"


def test_the_backends_settings_reach_the_functions_environment() -> None:
    kfp = json.loads((SETS / "kfp.tfvars.json").read_text())
    assert kfp["backend_environment"] == {
        "KFP_TRIGGER_KFP_CLIENT_ID": BACKEND_ENV["KFP_TRIGGER_KFP_CLIENT_ID"],
        "KFP_TRIGGER_KFP_HOST": BACKEND_ENV["KFP_TRIGGER_KFP_HOST"],
    }
    functions = hcl2.loads((MODULE / "functions.tf").read_text())
    (environment,) = [block["environment"] for block in functions["locals"] if "environment" in block]
    assert "var.backend_environment" in str(environment), "the module passes them to every function"
    mixed = json.loads((SETS / "mixed.tfvars.json").read_text())
    assert mixed["results_routes"] is True, "a chained route"
    assert "kfp-trigger-results" not in mixed["product_topics"], "the results topic is declared once"


def test_a_prefix_names_the_results_topic_chained_routes_listen_to(tmp_path: Path) -> None:
    """With `--prefix acme`, the module's results topic is acme-results: a route on it is a chained
    route (not a product topic the module would create a second time), and the inputs carry the
    prefix, so the module and the plan cannot disagree on it."""
    import os

    routes = tmp_path / "routes.yaml"
    routes.write_text(
        (SETS / "mixed.yaml").read_text().replace("topic: kfp-trigger-results", "topic: acme-results")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFP_TRIGGER_")} | BACKEND_ENV
    done = plan(routes, "--prefix", "acme", "--out", "-", env=env)
    assert done.returncode == 0, done.stderr
    inputs = json.loads(done.stdout)
    assert inputs["prefix"] == "acme"
    assert inputs["results_routes"] is True
    assert inputs["product_topics"] == ["product-events"]
    default = plan(routes, "--out", "-", env=env)  # the default prefix: acme-results is the product's
    assert json.loads(default.stdout)["product_topics"] == ["acme-results", "product-events"]


def test_a_bigquery_route_on_any_dataset_deploys(tmp_path: Path) -> None:
    """Audit entries reach the functions through one sink for the project (deliveries.tf): a
    table pattern with a wildcard dataset needs no location of its own."""
    import os

    routes = tmp_path / "routes.yaml"
    routes.write_text(
        (SETS / "mixed.yaml").read_text().replace("acme-analytics.usage.daily", "acme-analytics.{area}.daily")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFP_TRIGGER_")} | BACKEND_ENV
    done = plan(routes, "--out", "-", env=env)
    assert done.returncode == 0, done.stderr
    assert "acme-analytics.{area}" in json.loads(done.stdout)["bigquery_datasets"]


@pytest.mark.parametrize(
    "topic", ["kfp-trigger-quarantine", "kfp-trigger-dead-letter", "kfp-trigger-schedules"]
)
def test_a_route_on_a_topic_the_module_makes_for_itself_is_refused(topic: str, tmp_path: Path) -> None:
    import os

    routes = tmp_path / "routes.yaml"
    routes.write_text((SETS / "mixed.yaml").read_text().replace("topic: product-events", f"topic: {topic}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFP_TRIGGER_")} | BACKEND_ENV
    done = plan(routes, "--out", "-", env=env)
    assert done.returncode == 1, done.stdout
    assert (
        f"routes[survey-ready].when.join.parts.closed.pubsub.topic: {topic} is a topic the module"
        in done.stderr
    )


def test_the_plan_knows_the_topics_the_module_makes_for_itself() -> None:
    """tfvars.SERVICE_TOPICS, which the plan refuses routes on, are the module's own topics."""
    import re

    from functions.cli.tfvars import SERVICE_TOPICS

    messaging = hcl2.loads((MODULE / "messaging.tf").read_text())
    (service,) = [
        block['"google_pubsub_topic"']['"service"']
        for block in messaging["resource"]
        if '"service"' in block.get('"google_pubsub_topic"', {})
    ]
    assert re.findall(r'"([a-z-]+)"', service["for_each"]) == list(SERVICE_TOPICS)


def test_a_prefix_the_module_would_refuse_is_refused_first() -> None:
    done = plan(SETS / "vertex.yaml", "--prefix", "Acme_1", "--out", "-")
    assert done.returncode == 1
    assert "prefix 'Acme_1': 3 to 20 lower-case letters" in done.stderr


def test_backend_local_is_refused_naming_the_routes() -> None:
    done = plan(ROOT / "deploy" / "routes.example.yaml", "--out", "-")
    assert done.returncode == 1
    assert (
        "routes survey-responses-landed, survey-closed, survey-table-loaded, nightly-retrain" in done.stderr
    )
    assert "backend: local" in done.stderr


def test_a_kfp_route_without_its_host_is_refused() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KFP_TRIGGER_")}
    done = plan(SETS / "kfp.yaml", "--out", "-", env=env)
    assert done.returncode == 1
    assert "KFP_TRIGGER_KFP_HOST is required: routes responses-landed" in done.stderr


def test_every_input_is_a_variable_of_the_module() -> None:
    variables = {
        name.strip('"'): body
        for block in hcl2.loads((MODULE / "variables.tf").read_text())["variable"]
        for name, body in block.items()
    }
    for name in ("kfp", "vertex", "mixed"):
        inputs = json.loads((SETS / f"{name}.tfvars.json").read_text())
        assert set(inputs) <= set(variables), set(inputs) - set(variables)


def test_the_log_based_alerts_watch_the_lines_the_code_logs() -> None:
    """A metric's filter names a log message: renaming it in the code would blind the alert."""
    from functions.service.completion import STALE_CLAIM_MESSAGE
    from functions.service.joins import ALERT

    alerts = (MODULE / "alerts.tf").read_text()
    for message in (STALE_CLAIM_MESSAGE, ALERT):
        assert f'jsonPayload.message = \\"{message}\\"' in alerts, message


def test_only_the_status_viewers_may_open_the_status_page() -> None:
    """Each function is invokable by its one caller; the status page (open ingress, for the
    proxy) by `status_viewers` alone, and nothing anywhere by allUsers."""
    module = "\n".join(path.read_text() for path in sorted(MODULE.glob("*.tf")))
    assert "allUsers" not in module
    assert "allAuthenticatedUsers" not in module
    functions = hcl2.loads((MODULE / "functions.tf").read_text())
    invokers = {  # python-hcl2 keeps the labels' quotes
        name.strip('"'): block
        for resource in functions["resource"]
        for kind, blocks in resource.items()
        if kind.strip('"') == "google_cloud_run_service_iam_member"
        for name, block in blocks.items()
    }
    assert set(invokers) == {"invoker", "status_viewer"}
    assert 'function.caller != ""' in str(invokers["invoker"]["for_each"])
    assert "var.status_viewers" in str(invokers["status_viewer"]["for_each"])
    assert 'google_cloudfunctions2_function.this["status"]' in str(invokers["status_viewer"]["service"])


# The argument that names what each kind of resource creates, unique in a project (or globally):
# a second deployment with another prefix must name it otherwise.
NAMED = {
    "google_service_account": "account_id",
    "google_pubsub_topic": "name",
    "google_pubsub_subscription": "name",
    "google_pubsub_schema": "name",
    "google_cloudfunctions2_function": "name",
    "google_cloud_scheduler_job": "name",
    "google_logging_project_sink": "name",
    "google_logging_metric": "name",
    "google_firestore_database": "name",
    "google_iam_workload_identity_pool": "workload_identity_pool_id",
    "google_storage_bucket": "name",
    "google_monitoring_alert_policy": "display_name",
}
SHARED = {("google_pubsub_topic", "product")}  # routes.yaml names the product's topics: the product's


def names(prefix: str) -> dict[str, str]:
    """Every name the module gives what it creates, `var.prefix` rendered as `prefix`."""
    found = {}
    for path in sorted(MODULE.glob("*.tf")):
        for block in hcl2.loads(path.read_text()).get("resource", []):
            for kind, resources in block.items():
                for name, body in resources.items():
                    kind, name = kind.strip('"'), name.strip('"')
                    if kind in NAMED and (kind, name) not in SHARED:
                        found[f"{kind}.{name}"] = str(body[NAMED[kind]]).replace("${var.prefix}", prefix)
    return found


def test_two_deployments_in_one_project_share_no_name() -> None:
    """Every name a deployment creates carries its prefix (the schedules topic and Scheduler jobs,
    service accounts, the ledger's own database too), so a second deployment in the project
    (deploy plan --prefix) collides with nothing on apply."""
    first, second = names("kfp-trigger"), names("acme-ml")
    assert {resource.split(".")[0] for resource in first} == set(NAMED), "the module creates each kind"
    shared = sorted(resource for resource in first if first[resource] == second[resource])
    assert shared == [], "named alike in both deployments"


ACCOUNTS = {  # main.tf's local.accounts: key → the account's name
    "event-invoker": "PREFIX-events",
    "notice-invoker": "PREFIX-notices",
    "scheduler": "PREFIX-scheduler",
    "runtime": "PREFIX-runtime",
    "pipelines": "PREFIX-pipelines",
}
OTHERS = {  # a member expression → who that is, in docs/deploy.md's words
    "${local.pubsub_agent}": "Pub/Sub service agent",
    "serviceAccount:${data.google_storage_project_service_account.this.email_address}": (
        "Cloud Storage service agent"
    ),
    "${local.product}": "the AWS product",
    "${google_logging_project_sink.bigquery[0].writer_identity}": "the BigQuery log sink's writer",
    "${each.key}": "status viewers",
}
WHEN = {  # what a grant's count or for_each depends on → the "when" column
    "var.vertex": "vertex",
    "var.telemetry": "telemetry gcp",
    "var.alert_webhook_secret": "a webhook secret",
    "var.pipelines_workload_identity": "pipelines_workload_identity",
    "length(var.buckets)": "storage routes",
    "length(var.bigquery_datasets)": "bigquery routes",
    "local.federated": "product topics",
    "var.product_topics": "product topics",
    "var.status_viewers": "status_viewers",
}


def module_grants() -> set[tuple[str, str, str]]:
    """(principal, role, when) of every IAM member resource of the module."""
    import re

    callers = re.findall(r'caller = "([\w-]+)"', (MODULE / "functions.tf").read_text())
    grants = set()
    for path in sorted(MODULE.glob("*.tf")):
        for block in hcl2.loads(path.read_text()).get("resource", []):
            for kind, resources in block.items():
                if not kind.strip('"').endswith("_iam_member"):
                    continue
                for body in resources.values():
                    member, role = str(body["member"]).strip('"'), str(body["role"]).strip('"')
                    condition = str(body.get("count", "")) + str(body.get("for_each", ""))
                    roles = re.findall(r"roles/[\w.]+", condition) if role == "${each.key}" else [role]
                    when = next((said for found, said in WHEN.items() if found in condition), "always")
                    if keys := re.findall(r'local\.member\["([\w-]+)"\]', member):
                        principals = [ACCOUNTS[key] for key in keys]
                    elif member == "${local.member[each.key]}":  # for_each over account keys
                        principals = [ACCOUNTS[key] for key in re.findall(r'"([\w-]+)"', condition)]
                    elif "each.value.caller" in member:
                        principals = [ACCOUNTS[caller] for caller in callers]
                    elif ".svc.id.goog[" in member:
                        principals = ["KFP's pipeline pods"]
                    else:
                        principals = [OTHERS[member]]
                    grants |= {(principal, each, when) for principal in principals for each in roles}
    return grants


def documented_grants() -> set[tuple[str, str, str]]:
    """(principal, role, when) of every row of docs/deploy.md's "Who may do what" table."""
    text = (ROOT / "docs" / "deploy.md").read_text().split("## Who may do what", 1)[1]
    rows = [line for line in text.splitlines() if line.startswith("| ") and "roles/" in line]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    return {(principal, role, when) for principal, role, _, when, *_ in cells}


def test_the_module_grants_exactly_what_the_iam_table_documents() -> None:
    """Every grant has its row (principal, role, when; why and the Google page say the rest),
    and every row its grant, for every backend: a grant missing from either fails."""
    module, documented = module_grants(), documented_grants()
    assert sorted(module - documented) == [], "granted, not documented"
    assert sorted(documented - module) == [], "documented, not granted"
    vertex = {(principal, role) for principal, role, when in module if when == "vertex"}
    assert ("PREFIX-pipelines", "roles/aiplatform.user") in vertex, "a PipelineJob's identity"
    kfp = {(principal, role) for principal, role, when in module if when == "always"}
    assert ("PREFIX-runtime", "roles/storage.objectViewer") in kfp, "metrics under a pipeline root"


def test_timeouts_are_ordered_engine_call_function_and_caller() -> None:
    """An engine call that hangs ends (KFP_TRIGGER_BACKEND_TIMEOUT_SECONDS) with time left for the
    function to answer 503, and the reconciler's caller waits longer than the function may run, so
    the platform never cuts a request the function would still answer."""
    import re

    from functions.settings import Settings

    backend = Settings().backend_timeout_seconds
    functions = (MODULE / "functions.tf").read_text()
    timeouts = {
        name: int(seconds) for name, seconds in re.findall(r"(\w+)\s*=\s*\{[^}\n]*timeout = (\d+)", functions)
    }
    assert {"events", "completions", "reconcile"} <= set(timeouts)
    for name in ("events", "completions", "reconcile"):  # the functions that call engines
        assert timeouts[name] >= backend + 30, (
            f"{name}: {timeouts[name]} s leaves no time after a hung engine call"
        )
    scheduler = (MODULE / "scheduler.tf").read_text()
    assert 'attempt_deadline = "${local.functions["reconcile"].timeout + 30}s"' in scheduler
    # A push request's deadline is its subscription's ack deadline (cloud.google.com/pubsub/docs/push).
    (delivery,) = resources("google_pubsub_subscription", "delivery")
    deadline = "${min(600, local.functions[each.value.function].timeout + 30)}"
    assert delivery["ack_deadline_seconds"] == deadline
    for name in ("events", "completions"):  # the pushed functions
        assert timeouts[name] + 30 <= 600, f"{name}: {timeouts[name]} s leaves a push no deadline past it"


def resources(kind: str, name: str = "") -> list[dict[str, Any]]:
    """The module's resources of `kind` (named `name`, if given), as python-hcl2 reads them."""
    return [
        body
        for path in sorted(MODULE.glob("*.tf"))
        for block in hcl2.loads(path.read_text()).get("resource", [])
        for found, named in block.items()
        if found.strip('"') == kind
        for label, body in named.items()
        if name in ("", label.strip('"'))
    ]


def test_every_inbound_path_has_a_dead_letter_and_never_expires() -> None:
    """Each topic the functions hear is pushed by a subscription of the module's own with a
    dead-letter policy (no Eventarc trigger, whose subscription takes none), and no
    subscription expires when its topic is quiet."""
    assert resources("google_eventarc_trigger") == []
    from functions.cli.tfvars import SERVICE_TOPICS

    routed = "".join(str(block) for block in hcl2.loads((MODULE / "deliveries.tf").read_text())["locals"])
    outbound = {"dead-letter", "results-dead-letter", "quarantine", "alerts"}  # held (messaging.tf)
    inbound = [f'google_pubsub_topic.service["{name}"]' for name in SERVICE_TOPICS if name not in outbound]
    for topic in [*inbound, "google_pubsub_topic.product[topic]", "google_pubsub_topic.schedules[0]"]:
        assert f"{topic}.id" in routed, f"{topic}: no subscription pushes it"
    (delivery,) = resources("google_pubsub_subscription", "delivery")
    (policy,) = delivery["dead_letter_policy"]
    assert policy["dead_letter_topic"] == '${google_pubsub_topic.service["dead-letter"].id}'
    assert policy["max_delivery_attempts"] == "${local.max_delivery_attempts_inbound}"
    (push,) = delivery["push_config"]
    assert "oidc_token" in push
    # the reconciler knows each delivery's dead letters by its subscription's name
    assert delivery["name"].strip('"') == "${var.prefix}-${each.key}"
    functions = (MODULE / "functions.tf").read_text()
    assert '{ for key, delivery in local.deliveries : "${var.prefix}-${key}" => delivery.path }' in functions
    for subscription in resources("google_pubsub_subscription"):
        (expiration,) = subscription["expiration_policy"]
        assert expiration["ttl"] in ('""', ""), subscription["name"]
