"""`kfp-trigger deploy plan`: everything routes.yaml needs on Google Cloud, from routes.yaml alone.

This module builds what every deployment has; `deployment.py` adds the functions, their
triggers, schedules, federation and alerts; `render.py` writes the plan as Terraform or gcloud.

`build_plan(config, project, region)` returns a `Plan`: resources, each with its Terraform type,
name and arguments and the gcloud command that creates it. `render_terraform` and
`render_gcloud` turn the one plan into either format, so the two cannot disagree.

Identities, and why each may do what it does:

- One caller per function, each with `run.invoker` on its own function only: `kfpt-event-invoker`
  (Eventarc's triggers on buckets, BigQuery and topics call `handle_event` as it),
  `kfpt-notice-invoker` (Eventarc's trigger on the completions topic calls `handle_completion`),
  `kfpt-scheduler` (Cloud Scheduler calls `reconcile`). The two Eventarc ones also have
  `eventarc.eventReceiver` on the project (Eventarc requires it of a trigger's account). So a
  caller of one target cannot post to another (no event can pass for a completion notice).
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
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from events.pubsub import SCHEDULES_TOPIC
from events.routes import RoutesConfig, Rule
from functions.adapters.firestore_ledger import EXPIRE_AT, TTL_COLLECTIONS
from functions.cli.plan.model import (
    MAX_DELIVERY_ATTEMPTS,
    PREFIX,
    Block,
    Expr,
    Gcloud,
    Plan,
    Resource,
    slug,
)
from functions.settings import Settings

LEDGER_COLLECTION = f"{PREFIX}-runs"
PIPELINE_ROOT = "gs://pipeline-root/placeholder"  # stands for the deployer's pipeline root


class Builder:
    """The resources every deployment has: APIs, identities, Firestore, topics and subscriptions."""

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
        self.project_data = self.add(Resource("google_project", "this", {"project_id": project}, data=True))

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
            ("event-invoker", "kfp-trigger: Eventarc delivers events to handle_event as it"),
            ("notice-invoker", "kfp-trigger: Eventarc delivers completion notices as it"),
            ("scheduler", "kfp-trigger: Cloud Scheduler calls reconcile as it"),
            ("runtime", "kfp-trigger: the functions run as it"),
            ("pipelines", "kfp-trigger: pipeline runs execute as it"),
        ):
            self.accounts[key] = self.add(
                Resource(
                    "google_service_account",
                    slug(key),
                    {"project": self.project, "account_id": f"kfpt-{key}", "display_name": title},
                    self.cmd("iam service-accounts create {id}", f"--display-name={title}", id=f"kfpt-{key}"),
                    self.cmd("iam service-accounts describe {email}", email=self.email(key)),
                )
            )
        for caller in ("event-invoker", "notice-invoker"):
            self.project_role(
                f"{slug(caller)}_event_receiver", self.member(caller), "roles/eventarc.eventReceiver"
            )
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
        database = self.add(
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
        # TTL policies: Firestore deletes what the ledger marked `expire_at` (KFP_TRIGGER_RETENTION_DAYS).
        for suffix in TTL_COLLECTIONS:
            collection = f"{LEDGER_COLLECTION}{suffix}"
            ttl = {
                "project": self.project,
                "database": database.ref("name"),
                "collection": collection,
                "field": EXPIRE_AT,
            }
            self.add(
                Resource(
                    "google_firestore_field",
                    slug(f"ttl-{collection}"),
                    ttl | {"ttl_config": Block({})},
                    self.cmd(
                        "firestore fields ttls update {field}",
                        f"--collection-group={collection}",
                        "--enable-ttl",
                        "--async",
                        field=EXPIRE_AT,
                    ),
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
        self.ticks = self.topic("schedules", SCHEDULES_TOPIC) if self.schedules else None
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
        """The functions' variables: `Settings` for this deployment, rendered by the settings
        themselves (`pipeline_root` is a Terraform variable or a shell one)."""
        topics = f"pubsub://projects/{self.project}/topics"
        values: dict[str, Any] = {
            "state_dir": Path("/tmp/kfp-trigger"),
            "ledger": f"firestore://{self.project}/{LEDGER_COLLECTION}",
            "results": f"{topics}/{PREFIX}-results",
            "quarantine": f"{topics}/{PREFIX}-quarantine",
            "completion_topic": f"{topics}/{PREFIX}-completions",
            "storage": "gcs",
            "auth": "none",  # Cloud Run IAM verifies every caller first (module docstring)
        }
        if self.vertex:
            values |= {
                "vertex_project": self.project,
                "vertex_location": self.region,
                "vertex_pipeline_root": PIPELINE_ROOT,
                "vertex_service_account": self.email("pipelines"),
            }
        settings = Settings.model_validate(values)
        env: dict[str, Any] = {
            key: pipeline_root if value == PIPELINE_ROOT else value
            for key, value in settings.to_environment().items()
        }
        return env | {"GOOGLE_CLOUD_PROJECT": self.project}


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
