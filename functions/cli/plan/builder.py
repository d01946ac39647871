"""`kfp-trigger deploy plan`: everything routes.yaml needs on Google Cloud, from routes.yaml alone.

`build_plan(config, project, region)` returns a `Plan`: resources, each with its Terraform type,
name and arguments and the gcloud command that creates it. `render_terraform` and
`render_gcloud` turn the one plan into either format, so the two cannot disagree.

Identities, and why each may do what it does:

- `kfpt-invoker`: Eventarc and Cloud Scheduler call the functions as it: `eventarc.eventReceiver`
  on the project (Eventarc requires it of a trigger's account) and `run.invoker` on the three
  function services only.
- `kfpt-runtime`: the functions run as it: `datastore.user` (the Firestore ledger; Firestore has
  no finer role), publisher on the results and quarantine topics, object reader on the buckets
  routes read (batch manifests, metrics files); with Vertex pipelines also `aiplatform.user` and
  `actAs` on the pipeline runner alone.
- `kfpt-pipelines`: pipeline runs execute as it: publisher on the completions topic (the exit
  handler's notice). Grant it what the pipelines themselves read and write.
- The Pub/Sub service agent: publisher on the dead-letter topic and subscriber on the
  subscription that dead-letters (Pub/Sub needs both); the Cloud Storage service agent: publisher
  (Eventarc's storage triggers need it).
- The product on AWS, when a route reads a product topic: a Workload Identity Federation pool
  and AWS provider that admit one role; it may publish to the product topics and read the
  results subscription, nothing else.

The functions do not verify tokens themselves (`KFP_TRIGGER_AUTH=none`): they are never public,
and Cloud Run IAM checks every request's OIDC token (signature, audience) and the caller's
`run.invoker` role before the code runs.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from events.pubsub import SCHEDULE_ATTRIBUTE
from events.routes import RoutesConfig, Rule
from functions.service.completion import STALE_CLAIM_MESSAGE

PREFIX = "kfp-trigger"
RUNTIME = "python311"
PRIMITIVE_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
RECONCILE_SCHEDULE = "*/5 * * * *"
MAX_DELIVERY_ATTEMPTS = 10
PUBLISHED = {"type": "google.cloud.pubsub.topic.v1.messagePublished"}
JOB_NAME = re.compile(r"[A-Za-z0-9_-]{1,500}")


class PlanError(ValueError):
    """routes.yaml names something Google Cloud cannot create; the message says what."""


# function → entry point, max instances, memory, timeout in seconds
FUNCTIONS = {
    "events": ("handle_event", 20, "512Mi", 60),
    "completions": ("handle_completion", 10, "512Mi", 120),
    "reconcile": ("reconcile", 1, "512Mi", 540),
}


@dataclass(frozen=True)
class Expr:
    """A Terraform expression (a reference or a call), written unquoted."""

    text: str


@dataclass(frozen=True)
class Block:
    """A nested Terraform block, as opposed to a map-valued argument."""

    body: Mapping[str, Any]


@dataclass(frozen=True)
class Gcloud:
    """One gcloud command: its command path (`pubsub topics create`) and its arguments."""

    path: tuple[str, ...]
    args: tuple[str, ...]

    @property
    def words(self) -> list[str]:
        return ["gcloud", *self.path, *self.args]


@dataclass
class Resource:
    kind: str  # Terraform type, e.g. google_pubsub_topic
    name: str  # Terraform name
    args: dict[str, Any]
    gcloud: Gcloud | None = None  # the command that creates (or updates) it
    exists: Gcloud | None = None  # a command that succeeds when it exists already
    data: bool = False  # a Terraform data source

    @property
    def address(self) -> str:
        return f"{'data.' if self.data else ''}{self.kind}.{self.name}"

    def ref(self, attribute: str) -> Expr:
        return Expr(f"{self.address}.{attribute}")


@dataclass
class Plan:
    project: str
    region: str
    resources: list[Resource] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)  # name → description

    def of_kind(self, kind: str) -> list[Resource]:
        return [resource for resource in self.resources if resource.kind == kind]

    def roles(self) -> list[str]:
        return [str(resource.args["role"]) for resource in self.resources if "role" in resource.args]


def slug(text: str) -> str:
    """A Terraform name for any text: lower-case letters, digits, underscores."""
    cleaned = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return cleaned if cleaned[:1].isalpha() else f"x_{cleaned}"


def resource_id(text: str, limit: int = 63) -> str:
    """A Google resource id for any text: lower-case letters, digits, dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].rstrip("-")


def build_plan(config: RoutesConfig, project: str, region: str) -> Plan:
    return _Builder(config, project, region).build()


class _Builder:
    def __init__(self, config: RoutesConfig, project: str, region: str) -> None:
        self.config, self.project, self.region = config, project, region
        self.plan = Plan(project, region)
        rules = config.rules
        self.buckets = sorted({rule.index for rule in rules if rule.source == "storage"})
        self.product_topics = sorted({rule.index for rule in rules if rule.source == "pubsub"})
        self.schedules: list[Rule] = [rule for rule in rules if rule.source == "schedule"]
        self.bigquery = any(rule.source == "bigquery" for rule in rules)
        backends = {definition.backend for definition in config.pipelines.values()}
        self.vertex = "vertex" in backends | {rule.backend for rule in rules}

    def cmd(self, template: str, *flags: str, project: bool = True, **values: str) -> Gcloud:
        """A gcloud command: `template` is its command path, then `{name}` values, then flags."""
        path = tuple(template.split(" {", 1)[0].split())
        positional = template[len(" ".join(path)) :].format(**{k: shlex.quote(v) for k, v in values.items()})
        args = [*shlex.split(positional), *flags, *(["--project", self.project] if project else [])]
        return Gcloud(path, tuple(args))

    def email(self, account: str) -> str:
        return f"kfpt-{account}@{self.project}.iam.gserviceaccount.com"

    def member(self, account: str) -> tuple[Expr, str]:
        """(Terraform, gcloud) IAM member for one of the planned service accounts."""
        address = self.accounts[account].address
        return Expr(f'"serviceAccount:${{{address}.email}}"'), f"serviceAccount:{self.email(account)}"

    def add(self, resource: Resource) -> Resource:
        self.plan.resources.append(resource)
        return resource

    def build(self) -> Plan:
        self.project_data = self.add(
            Resource("google_project", "this", {"project_id": self.project}, data=True)
        )
        self.apis()
        self.identities()
        self.firestore()
        self.messaging()
        self.functions()
        self.triggers()
        self.scheduler()
        if self.product_topics:
            self.federation()
        self.alerts()
        return self.plan

    def apis(self) -> None:
        apis = ["cloudfunctions", "run", "cloudbuild", "artifactregistry", "eventarc", "pubsub", "firestore"]
        apis += ["cloudscheduler", "monitoring", "logging", "iam", "iamcredentials", "sts", "storage"]
        for api in apis + (["aiplatform"] if self.vertex else []):
            service = f"{api}.googleapis.com"
            args = {"project": self.project, "service": service, "disable_on_destroy": False}
            self.add(
                Resource(
                    "google_project_service", slug(api), args, self.cmd("services enable {s}", s=service)
                )
            )

    def identities(self) -> None:
        self.accounts: dict[str, Resource] = {}
        for key, title in (
            ("invoker", "kfp-trigger: Eventarc and Cloud Scheduler call the functions as it"),
            ("runtime", "kfp-trigger: the functions run as it"),
            ("pipelines", "kfp-trigger: pipeline runs execute as it"),
        ):
            self.accounts[key] = self.add(
                Resource(
                    "google_service_account",
                    key,
                    {"project": self.project, "account_id": f"kfpt-{key}", "display_name": title},
                    self.cmd("iam service-accounts create {id}", f"--display-name={title}", id=f"kfpt-{key}"),
                    self.cmd("iam service-accounts describe {email}", email=self.email(key)),
                )
            )
        self.project_role("invoker_event_receiver", self.member("invoker"), "roles/eventarc.eventReceiver")
        self.project_role("runtime_firestore", self.member("runtime"), "roles/datastore.user")
        if self.vertex:
            self.project_role("runtime_vertex", self.member("runtime"), "roles/aiplatform.user")
            tf, gc = self.member("runtime")
            role = "roles/iam.serviceAccountUser"
            self.add(
                Resource(
                    "google_service_account_iam_member",
                    "runtime_acts_as_pipelines",
                    {
                        "service_account_id": self.accounts["pipelines"].ref("name"),
                        "role": role,
                        "member": tf,
                    },
                    self.cmd(
                        "iam service-accounts add-iam-policy-binding {email}",
                        f"--member={gc}",
                        f"--role={role}",
                        email=self.email("pipelines"),
                    ),
                )
            )

    def project_role(self, name: str, member: tuple[Expr, str], role: str) -> None:
        tf, gc = member
        command = "projects add-iam-policy-binding {p}"
        self.add(
            Resource(
                "google_project_iam_member",
                name,
                {"project": self.project, "role": role, "member": tf},
                self.cmd(
                    command,
                    f"--member={gc}",
                    f"--role={role}",
                    "--condition=None",
                    project=False,
                    p=self.project,
                ),
            )
        )

    def firestore(self) -> None:
        args = {
            "project": self.project,
            "name": "(default)",
            "location_id": self.region,
            "type": "FIRESTORE_NATIVE",
        }
        self.add(
            Resource(
                "google_firestore_database",
                "ledger",
                args,
                self.cmd(
                    "firestore databases create", f"--location={self.region}", "--type=firestore-native"
                ),
                self.cmd("firestore databases describe", "--database=(default)"),
            )
        )

    def topic(
        self, name: str, topic_id: str, extra: Mapping[str, Any] | None = None, flags: Sequence[str] = ()
    ) -> Resource:
        return self.add(
            Resource(
                "google_pubsub_topic",
                name,
                {"project": self.project, "name": topic_id, **(extra or {})},
                self.cmd("pubsub topics create {id}", *flags, id=topic_id),
                self.cmd("pubsub topics describe {id}", id=topic_id),
            )
        )

    def subscription(
        self, name: str, sub_id: str, of: Resource, dead_letter: Resource | None = None
    ) -> Resource:
        args = {
            "project": self.project,
            "name": sub_id,
            "topic": of.ref("id"),
            "ack_deadline_seconds": 60,
            "message_retention_duration": "604800s",
            "retry_policy": Block({"minimum_backoff": "10s", "maximum_backoff": "600s"}),
        }
        flags = ["--ack-deadline=60", "--message-retention-duration=7d"]
        flags += ["--min-retry-delay=10s", "--max-retry-delay=600s"]
        if dead_letter is not None:
            args["dead_letter_policy"] = Block(
                {"dead_letter_topic": dead_letter.ref("id"), "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS}
            )
            flags += [f"--dead-letter-topic={dead_letter.args['name']}"]
            flags += [f"--max-delivery-attempts={MAX_DELIVERY_ATTEMPTS}"]
        return self.add(
            Resource(
                "google_pubsub_subscription",
                name,
                args,
                self.cmd("pubsub subscriptions create {id}", f"--topic={of.args['name']}", *flags, id=sub_id),
                self.cmd("pubsub subscriptions describe {id}", id=sub_id),
            )
        )

    def grant(self, name: str, on: Resource, role: str, member: tuple[Expr, str]) -> None:
        """`role` on one topic or subscription for `member` (never on the project)."""
        tf, gc = member
        kind = "topic" if on.kind == "google_pubsub_topic" else "subscription"
        self.add(
            Resource(
                f"google_pubsub_{kind}_iam_member",
                name,
                {"project": self.project, kind: on.ref("name"), "role": role, "member": tf},
                self.cmd(
                    f"pubsub {kind}s add-iam-policy-binding {{id}}",
                    f"--member={gc}",
                    f"--role={role}",
                    id=on.args["name"],
                ),
            )
        )

    def messaging(self) -> None:
        agent = "gcp-sa-pubsub.iam.gserviceaccount.com"
        pubsub_agent = (
            Expr(f'"serviceAccount:service-${{{self.project_data.address}.number}}@{agent}"'),
            f"serviceAccount:service-${{PROJECT_NUMBER}}@{agent}",
        )
        self.dead_letter = self.topic("dead_letter", f"{PREFIX}-dead-letter")
        self.dead_hold = self.subscription("dead_letter_hold", f"{PREFIX}-dead-letter-hold", self.dead_letter)
        self.quarantine = self.topic("quarantine", f"{PREFIX}-quarantine")
        self.subscription("quarantine_hold", f"{PREFIX}-quarantine-hold", self.quarantine)
        self.results = self.topic("results", f"{PREFIX}-results")
        self.results_sub = self.subscription(
            "results_product", f"{PREFIX}-results-product", self.results, dead_letter=self.dead_letter
        )
        self.completions = self.topic("completions", f"{PREFIX}-completions")
        self.ticks = self.topic("schedules", f"{PREFIX}-schedules") if self.schedules else None
        self.products: dict[str, Resource] = {}
        if self.product_topics:
            definition = json.dumps(product_schema(self.config), sort_keys=True)
            schema_id = f"{PREFIX}-product-message"
            schema = self.add(
                Resource(
                    "google_pubsub_schema",
                    "product",
                    {"project": self.project, "name": schema_id, "type": "AVRO", "definition": definition},
                    self.cmd(
                        "pubsub schemas create {id}",
                        "--type=avro",
                        f"--definition={definition}",
                        id=schema_id,
                    ),
                    self.cmd("pubsub schemas describe {id}", id=schema_id),
                )
            )
            settings = {"schema_settings": Block({"schema": schema.ref("id"), "encoding": "JSON"})}
            for name in self.product_topics:
                flags = [f"--schema={schema_id}", "--message-encoding=json"]
                self.products[name] = self.topic(f"product_{slug(name)}", name, settings, flags)
        self.grant("dead_letter_pubsub_agent", self.dead_letter, "roles/pubsub.publisher", pubsub_agent)
        self.grant("results_product_pubsub_agent", self.results_sub, "roles/pubsub.subscriber", pubsub_agent)
        self.grant("results_runtime", self.results, "roles/pubsub.publisher", self.member("runtime"))
        self.grant("quarantine_runtime", self.quarantine, "roles/pubsub.publisher", self.member("runtime"))
        self.grant(
            "completions_pipelines", self.completions, "roles/pubsub.publisher", self.member("pipelines")
        )
        tf, gc = self.member("runtime")
        role = "roles/storage.objectViewer"
        for bucket in self.buckets:
            self.add(
                Resource(
                    "google_storage_bucket_iam_member",
                    f"runtime_reads_{slug(bucket)}",
                    {"bucket": bucket, "role": role, "member": tf},
                    self.cmd(
                        "storage buckets add-iam-policy-binding {b}",
                        f"--member={gc}",
                        f"--role={role}",
                        b=f"gs://{bucket}",
                    ),
                )
            )

    def environment(self, pipeline_root: Any) -> dict[str, Any]:
        topics = f"projects/{self.project}/topics"
        env: dict[str, Any] = {
            "KFP_TRIGGER_ROUTES": "routes.yaml",
            "KFP_TRIGGER_STATE_DIR": "/tmp/kfp-trigger",
            "KFP_TRIGGER_LEDGER": f"firestore://{self.project}/{PREFIX}-runs",
            "KFP_TRIGGER_RESULTS": f"pubsub://{topics}/{PREFIX}-results",
            "KFP_TRIGGER_QUARANTINE": f"pubsub://{topics}/{PREFIX}-quarantine",
            "KFP_TRIGGER_COMPLETION_TOPIC": f"pubsub://{topics}/{PREFIX}-completions",
            "KFP_TRIGGER_STORAGE": "gcs",
            "KFP_TRIGGER_AUTH": "none",  # Cloud Run IAM verifies every caller first (module docstring)
            "GOOGLE_CLOUD_PROJECT": self.project,
        }
        if self.vertex:
            env["KFP_TRIGGER_VERTEX_PROJECT"] = self.project
            env["KFP_TRIGGER_VERTEX_LOCATION"] = self.region
            env["KFP_TRIGGER_VERTEX_PIPELINE_ROOT"] = pipeline_root
            env["KFP_TRIGGER_VERTEX_SERVICE_ACCOUNT"] = self.email("pipelines")
        return env

    def functions(self) -> None:
        self.plan.variables["source_dir"] = "the kfp-trigger checkout to deploy (main.py, routes.yaml, …)"
        if self.vertex:
            self.plan.variables["pipeline_root"] = "gs://bucket/path where Vertex AI writes run outputs"
        archive = self.add(
            Resource(
                "archive_file",
                "source",
                {
                    "type": "zip",
                    "source_dir": Expr("var.source_dir"),
                    "output_path": Expr('"${path.module}/kfp-trigger-source.zip"'),
                    "excludes": [".venv", ".git", ".kfp-trigger", "landing", "tests", "bench"],
                },
                data=True,
            )
        )
        bucket = self.add(
            Resource(
                "google_storage_bucket",
                "source",
                {
                    "project": self.project,
                    "name": f"{self.project}-kfp-trigger-source",
                    "location": self.region,
                    "uniform_bucket_level_access": True,
                    "public_access_prevention": "enforced",
                },
            )
        )
        uploaded = self.add(
            Resource(
                "google_storage_bucket_object",
                "source",
                {
                    "bucket": bucket.ref("name"),
                    "name": Expr(f'"source-${{{archive.address}.output_md5}}.zip"'),
                    "source": archive.ref("output_path"),
                },
            )
        )
        env = self.environment(Expr("var.pipeline_root"))
        gcloud_env = ",".join(f"{key}={value}" for key, value in self.environment("${PIPELINE_ROOT}").items())
        source = Block(
            {"storage_source": Block({"bucket": bucket.ref("name"), "object": uploaded.ref("name")})}
        )
        self.services: dict[str, Resource] = {}
        for key, (entry, instances, memory, timeout) in FUNCTIONS.items():
            name = f"{PREFIX}-{key}"
            service_config = {
                "max_instance_count": instances,
                "available_memory": memory,
                "timeout_seconds": timeout,
                "ingress_settings": "ALLOW_INTERNAL_ONLY",
                "all_traffic_on_latest_revision": True,
                "service_account_email": self.accounts["runtime"].ref("email"),
                "environment_variables": env,
            }
            flags = [
                "--gen2",
                f"--region={self.region}",
                f"--runtime={RUNTIME}",
                "--source=.",
                f"--entry-point={entry}",
                "--trigger-http",
                "--no-allow-unauthenticated",
                "--ingress-settings=internal-only",
                f"--run-service-account={self.email('runtime')}",
                f"--max-instances={instances}",
                f"--memory={memory}",
                f"--timeout={timeout}s",
                f"--set-env-vars={gcloud_env}",
            ]
            self.services[key] = self.add(
                Resource(
                    "google_cloudfunctions2_function",
                    slug(key),
                    {
                        "project": self.project,
                        "name": name,
                        "location": self.region,
                        "build_config": Block({"runtime": RUNTIME, "entry_point": entry, "source": source}),
                        "service_config": Block(service_config),
                    },
                    self.cmd("functions deploy {name}", *flags, name=name),
                )
            )
            tf, gc = self.member("invoker")
            self.add(
                Resource(
                    "google_cloud_run_service_iam_member",
                    f"invoker_{slug(key)}",
                    {
                        "project": self.project,
                        "location": self.region,
                        "service": self.services[key].ref("name"),
                        "role": "roles/run.invoker",
                        "member": tf,
                    },
                    self.cmd(
                        "run services add-iam-policy-binding {name}",
                        f"--region={self.region}",
                        f"--member={gc}",
                        "--role=roles/run.invoker",
                        name=name,
                    ),
                )
            )

    def trigger(
        self, name: str, function: str, criteria: Mapping[str, str], topic: Resource | None = None
    ) -> None:
        trigger_id = resource_id(f"kfpt-{name}")
        service = self.services[function]
        destination = Block({"service": service.ref("name"), "region": self.region})
        args: dict[str, Any] = {
            "project": self.project,
            "name": trigger_id,
            "location": self.region,
            "service_account": self.accounts["invoker"].ref("email"),
            "matching_criteria": [
                Block({"attribute": key, "value": value}) for key, value in criteria.items()
            ],
            "destination": Block({"cloud_run_service": destination}),
        }
        flags = [
            f"--location={self.region}",
            f"--destination-run-service={service.args['name']}",
            f"--destination-run-region={self.region}",
            *(f"--event-filters={key}={value}" for key, value in criteria.items()),
            f"--service-account={self.email('invoker')}",
        ]
        if topic is not None:
            args["transport"] = Block({"pubsub": Block({"topic": topic.ref("id")})})
            flags.append(f"--transport-topic=projects/{self.project}/topics/{topic.args['name']}")
        self.add(
            Resource(
                "google_eventarc_trigger",
                slug(name),
                args,
                self.cmd("eventarc triggers create {id}", *flags, id=trigger_id),
                self.cmd("eventarc triggers describe {id}", f"--location={self.region}", id=trigger_id),
            )
        )

    def triggers(self) -> None:
        if self.buckets:
            agent = self.add(
                Resource(
                    "google_storage_project_service_account", "this", {"project": self.project}, data=True
                )
            )
            gcs_agent = "serviceAccount:service-${PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"
            member = (Expr(f'"serviceAccount:${{{agent.address}.email_address}}"'), gcs_agent)
            self.project_role("storage_agent_publishes", member, "roles/pubsub.publisher")
        for bucket in self.buckets:
            criteria = {"type": "google.cloud.storage.object.v1.finalized", "bucket": bucket}
            self.trigger(f"storage-{bucket}", "events", criteria)
        if self.bigquery:
            criteria = {
                "type": "google.cloud.audit.log.v1.written",
                "serviceName": "bigquery.googleapis.com",
                "methodName": "jobservice.jobcompleted",
            }
            self.trigger("bigquery-jobs", "events", criteria)
        for name, topic in self.products.items():
            self.trigger(f"pubsub-{name}", "events", PUBLISHED, topic)
        if self.ticks is not None:
            self.trigger("schedules", "events", PUBLISHED, self.ticks)
        self.trigger("completions", "completions", PUBLISHED, self.completions)

    def scheduler(self) -> None:
        for rule in self.schedules:
            assert self.ticks is not None
            if not JOB_NAME.fullmatch(rule.index):
                raise PlanError(
                    f"routes[{rule.name}].when.schedule.job: a Cloud Scheduler job name is {JOB_NAME.pattern}"
                )
            job_id = resource_id(rule.index, 500)
            target = {
                "topic_name": self.ticks.ref("id"),
                "attributes": {SCHEDULE_ATTRIBUTE: rule.index},
                "data": Expr('base64encode("{}")'),
            }
            flags = [
                f"--location={self.region}",
                f"--schedule={rule.cron}",
                f"--time-zone={rule.timezone}",
                f"--topic={self.ticks.args['name']}",
                f"--attributes={SCHEDULE_ATTRIBUTE}={rule.index}",
                "--message-body={}",
            ]
            self.add(
                Resource(
                    "google_cloud_scheduler_job",
                    f"schedule_{slug(rule.index)}",
                    {
                        "project": self.project,
                        "region": self.region,
                        "name": job_id,
                        "schedule": rule.cron,
                        "time_zone": rule.timezone,
                        "pubsub_target": Block(target),
                    },
                    self.cmd("scheduler jobs create pubsub {id}", *flags, id=job_id),
                    self.cmd("scheduler jobs describe {id}", f"--location={self.region}", id=job_id),
                )
            )
        uri = self.services["reconcile"].ref("service_config[0].uri")
        token = Block({"service_account_email": self.accounts["invoker"].ref("email"), "audience": uri})
        job_id = f"{PREFIX}-reconcile"
        flags = [
            f"--location={self.region}",
            f"--schedule={RECONCILE_SCHEDULE}",
            "--time-zone=UTC",
            "--uri=${RECONCILE_URL}",
            "--http-method=POST",
            f"--oidc-service-account-email={self.email('invoker')}",
            "--oidc-token-audience=${RECONCILE_URL}",
        ]
        self.add(
            Resource(
                "google_cloud_scheduler_job",
                "reconcile",
                {
                    "project": self.project,
                    "region": self.region,
                    "name": job_id,
                    "schedule": RECONCILE_SCHEDULE,
                    "time_zone": "UTC",
                    "http_target": Block({"uri": uri, "http_method": "POST", "oidc_token": token}),
                },
                self.cmd("scheduler jobs create http {id}", *flags, id=job_id),
                self.cmd("scheduler jobs describe {id}", f"--location={self.region}", id=job_id),
            )
        )

    def federation(self) -> None:
        self.plan.variables["aws_account_id"] = "the AWS account the product runs in"
        self.plan.variables["aws_role_arn"] = (
            "the one role the product publishes as, as it assumes it: arn:aws:sts::ACCOUNT:assumed-role/NAME"
        )
        pool_id, provider_id = f"{PREFIX}-aws", "product"
        title = "kfp-trigger: the AWS product"
        pool = self.add(
            Resource(
                "google_iam_workload_identity_pool",
                "aws",
                {"project": self.project, "workload_identity_pool_id": pool_id, "display_name": title},
                self.cmd(
                    "iam workload-identity-pools create {id}",
                    "--location=global",
                    f"--display-name={title}",
                    id=pool_id,
                ),
                self.cmd("iam workload-identity-pools describe {id}", "--location=global", id=pool_id),
            )
        )
        # Google's documented AWS mapping: the role as arn:aws:sts::ACCOUNT:assumed-role/NAME.
        role = (
            "assertion.arn.contains('assumed-role') ? assertion.arn.extract('{account_arn}assumed-role/')"
            " + 'assumed-role/' + assertion.arn.extract('assumed-role/{role_name}/') : assertion.arn"
        )
        mapping = {"google.subject": "assertion.arn", "attribute.aws_role": role}
        in_pool = ["--location=global", f"--workload-identity-pool={pool_id}"]
        self.add(
            Resource(
                "google_iam_workload_identity_pool_provider",
                "aws",
                {
                    "project": self.project,
                    "workload_identity_pool_id": pool.ref("workload_identity_pool_id"),
                    "workload_identity_pool_provider_id": provider_id,
                    "attribute_mapping": mapping,
                    "attribute_condition": Expr('"attribute.aws_role == \\"${var.aws_role_arn}\\""'),
                    "aws": Block({"account_id": Expr("var.aws_account_id")}),
                },
                self.cmd(
                    "iam workload-identity-pools providers create-aws {id}",
                    *in_pool,
                    "--account-id=${AWS_ACCOUNT_ID}",
                    "--attribute-mapping=" + ",".join(f"{key}={value}" for key, value in mapping.items()),
                    '--attribute-condition=attribute.aws_role == "${AWS_ROLE_ARN}"',
                    id=provider_id,
                ),
                self.cmd("iam workload-identity-pools providers describe {id}", *in_pool, id=provider_id),
            )
        )
        principals = (
            Expr(
                f'"principalSet://iam.googleapis.com/${{{pool.address}.name}}/attribute.aws_role/${{var.aws_role_arn}}"'
            ),
            "principalSet://iam.googleapis.com/projects/${PROJECT_NUMBER}/locations/global/"
            f"workloadIdentityPools/{pool_id}/attribute.aws_role/${{AWS_ROLE_ARN}}",
        )
        for name, topic in self.products.items():
            self.grant(f"product_publishes_{slug(name)}", topic, "roles/pubsub.publisher", principals)
        self.grant("product_reads_results", self.results_sub, "roles/pubsub.subscriber", principals)

    def alerts(self) -> None:
        metric_id = "kfp-trigger/stale-claims"
        log_filter = f'jsonPayload.message="{STALE_CLAIM_MESSAGE}"'
        metric = self.add(
            Resource(
                "google_logging_metric",
                "stale_claims",
                {
                    "project": self.project,
                    "name": metric_id,
                    "filter": log_filter,
                    "metric_descriptor": Block({"metric_kind": "DELTA", "value_type": "INT64"}),
                },
                self.cmd(
                    "logging metrics create {id}",
                    "--description=kfp-trigger claims the reconciler found past their lease",
                    f"--log-filter={log_filter}",
                    id=metric_id,
                ),
                self.cmd("logging metrics describe {id}", id=metric_id),
            )
        )
        dead_letters = (
            f'resource.type = "pubsub_subscription" AND resource.labels.subscription_id = '
            f'"{self.dead_hold.args["name"]}" AND metric.type = '
            '"pubsub.googleapis.com/subscription/num_undelivered_messages"'
        )
        stale = Expr(f'"metric.type = \\"logging.googleapis.com/user/${{{metric.address}.name}}\\""')
        for name, title, query in (
            ("dead_letters", "kfp-trigger: messages in the dead-letter topic", dead_letters),
            ("stale_claims", "kfp-trigger: claims stuck past their lease", stale),
        ):
            threshold = {
                "filter": query,
                "comparison": "COMPARISON_GT",
                "threshold_value": 0,
                "duration": "0s",
                "aggregations": Block({"alignment_period": "300s", "per_series_aligner": "ALIGN_MAX"}),
            }
            condition = Block({"display_name": title, "condition_threshold": Block(threshold)})
            args = {"project": self.project, "display_name": title, "combiner": "OR", "conditions": condition}
            self.add(Resource("google_monitoring_alert_policy", name, args))


def product_schema(config: RoutesConfig) -> dict[str, Any]:
    """An Avro record for product messages: `event_id` (the dedupe key) and every top-level data
    field a route tests, optional, of its condition's type."""
    fields: dict[str, str] = {}
    for rule in config.rules:
        for path, values in rule.data.items():
            kind = {bool: "boolean", int: "long", float: "double"}.get(type(values[0]), "string")
            fields.setdefault(path.split(".", 1)[0], kind)
    fields.pop("event_id", None)
    record: list[dict[str, Any]] = [{"name": "event_id", "type": "string"}]
    record += [
        {"name": name, "type": ["null", kind], "default": None} for name, kind in sorted(fields.items())
    ]
    return {"type": "record", "name": "ProductMessage", "fields": record}


# ---- rendering --------------------------------------------------------------------------------


def _hcl_value(value: Any, indent: int) -> str:
    if isinstance(value, Expr):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):  # text from routes.yaml stays text: no ${…} or %{…} directives
        return json.dumps(value, ensure_ascii=False).replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, list):
        return "[" + ", ".join(_hcl_value(item, indent) for item in value) + "]"
    if isinstance(value, Mapping):
        pairs = [(json.dumps(str(key)), _hcl_value(item, indent + 1)) for key, item in value.items()]
        return "{\n" + "\n".join(_aligned(pairs, indent + 1)) + "\n" + "  " * indent + "}"
    raise TypeError(f"cannot render {type(value).__name__} as HCL")


def _aligned(pairs: Sequence[tuple[str, str]], indent: int) -> list[str]:
    """`key = value` lines, with the `=` of consecutive one-line values aligned (terraform fmt)."""
    pad = "  " * indent
    lines: list[str] = []
    run: list[tuple[str, str]] = []  # one-line values waiting to be aligned

    def flush() -> None:
        width = max((len(key) for key, _ in run), default=0)
        lines.extend(f"{pad}{key.ljust(width)} = {value}" for key, value in run)
        run.clear()

    for key, value in pairs:
        if "\n" in value:
            flush()
            lines.append(f"{pad}{key} = {value}")
        else:
            run.append((key, value))
    flush()
    return lines


def _hcl_body(body: Mapping[str, Any], indent: int) -> list[str]:
    lines: list[str] = []
    pairs: list[tuple[str, str]] = []
    for key, value in body.items():
        blocks = [value] if isinstance(value, Block) else value if _all_blocks(value) else None
        if blocks is None:
            pairs.append((key, _hcl_value(value, indent)))
            continue
        lines += _aligned(pairs, indent)
        pairs = []
        pad = "  " * indent
        for block in blocks:
            lines += [f"{pad}{key} {{", *_hcl_body(block.body, indent + 1), f"{pad}}}"]
    return lines + _aligned(pairs, indent)


def _all_blocks(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, Block) for item in value)


def _block(header: str, body: Mapping[str, Any]) -> str:
    return "\n".join([f"{header} {{", *_hcl_body(body, 1), "}"])


def render_terraform(plan: Plan) -> str:
    """The plan as one Terraform file (google provider), laid out as `terraform fmt` would."""
    providers = {
        "google": Expr('{ source = "hashicorp/google", version = ">= 6.0" }'),
        "archive": Expr('{ source = "hashicorp/archive", version = ">= 2.4" }'),
    }
    blocks = [
        "# Generated by `kfp-trigger deploy plan` from routes.yaml. Edit routes.yaml, not this file.\n"
        + _block("terraform", {"required_providers": Block(providers)}),
        _block('provider "google"', {"project": plan.project, "region": plan.region}),
    ]
    for name, description in plan.variables.items():
        variable = {"description": description, "type": Expr("string")}
        blocks.append(
            _block(f'variable "{name}"', variable | ({"default": "."} if name == "source_dir" else {}))
        )
    for resource in plan.resources:
        keyword = "data" if resource.data else "resource"
        blocks.append(_block(f'{keyword} "{resource.kind}" "{resource.name}"', resource.args))
    return "\n\n".join(blocks) + "\n"


def render_gcloud(plan: Plan) -> str:
    """The plan as an idempotent bash script: what exists is left alone, functions are redeployed,
    IAM bindings are added (adding one twice changes nothing)."""
    lines = [
        "#!/usr/bin/env bash",
        "# Generated by `kfp-trigger deploy plan --format gcloud` from routes.yaml. Safe to run again.",
        "# Run it from the kfp-trigger checkout to deploy (functions are deployed from `.`).",
        "set -euo pipefail",
        f"PROJECT={shlex.quote(plan.project)}",
        f"REGION={shlex.quote(plan.region)}",
        'PROJECT_NUMBER="$(gcloud projects describe "$PROJECT" --format="value(projectNumber)")"',
    ]
    if "pipeline_root" in plan.variables:
        lines.append(': "${PIPELINE_ROOT:?set PIPELINE_ROOT=gs://bucket/path for Vertex AI run outputs}"')
    if "aws_account_id" in plan.variables:
        lines.append(': "${AWS_ACCOUNT_ID:?set AWS_ACCOUNT_ID to the AWS account of the product}"')
        lines.append(
            ': "${AWS_ROLE_ARN:?set AWS_ROLE_ARN=arn:aws:sts::ACCOUNT:assumed-role/NAME, the product role}"'
        )
    lines += ["", 'exists() { "$@" >/dev/null 2>&1; }']
    for resource in plan.resources:
        if resource.gcloud is None:
            continue
        command = _shell(resource.gcloud.words)
        if resource.exists is not None:
            command = f"exists {_shell(resource.exists.words)} || {command}"
        lines += ["", f"# {resource.address}", command]
        if resource.address == "google_cloudfunctions2_function.reconcile":
            lines.append(
                'RECONCILE_URL="$(gcloud functions describe kfp-trigger-reconcile --gen2 --region="$REGION" '
                '--project="$PROJECT" --format="value(serviceConfig.uri)")"'
            )
    return "\n".join(lines) + "\n"


def _shell(words: Sequence[str]) -> str:
    """Shell words, quoted; a word holding one of the script's ${VARIABLES} stays expandable."""
    return " ".join(
        '"' + re.sub(r'(["\\`])', r"\\\1", word) + '"' if "${" in word else shlex.quote(word)
        for word in words
    )
