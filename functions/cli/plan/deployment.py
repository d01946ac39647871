"""The deploy plan's functions and what calls them: Cloud Functions with their source and
environment, Eventarc triggers, Cloud Scheduler jobs, Workload Identity Federation for the AWS
product, and alerts. `build_plan` is the entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from events.pubsub import SCHEDULE_ATTRIBUTE
from events.routes import RoutesConfig
from functions.cli.plan.builder import Builder
from functions.cli.plan.model import (
    CALLERS,
    FUNCTIONS,
    JOB_NAME,
    NOT_SHIPPED,
    PREFIX,
    PUBLISHED,
    RECONCILE_SCHEDULE,
    RUNTIME,
    Block,
    Expr,
    Plan,
    PlanError,
    Resource,
    resource_id,
    slug,
)
from functions.service.completion import STALE_CLAIM_MESSAGE


def build_plan(config: RoutesConfig, project: str, region: str) -> Plan:
    return Deployment(config, project, region).build()


class Deployment(Builder):
    """Every resource of a deployment."""

    def build(self) -> Plan:
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
                    "excludes": list(NOT_SHIPPED),
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
            tf, gc = self.member(CALLERS[key])
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
            "service_account": self.accounts[CALLERS[function]].ref("email"),
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
            f"--service-account={self.email(CALLERS[function])}",
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
        token = Block({"service_account_email": self.accounts["scheduler"].ref("email"), "audience": uri})
        job_id = f"{PREFIX}-reconcile"
        flags = [
            f"--location={self.region}",
            f"--schedule={RECONCILE_SCHEDULE}",
            "--time-zone=UTC",
            "--uri=${RECONCILE_URL}",
            "--http-method=POST",
            f"--oidc-service-account-email={self.email('scheduler')}",
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
