# Deliveries: every inbound path is a Pub/Sub push subscription of the module's own, so each
# has what an Eventarc trigger's subscription cannot be given (its provider exposes neither;
# production-facts.md): a dead-letter topic (alerted on, alerts.tf), an ack deadline past its
# function's timeout, and 7 days of retries. The push path says what a message carries
# (events/push.py): the product's, schedules, results and completions topics are pushed as
# they are; Cloud Storage notifies a topic of each object written (JSON_API_V1 payload); a
# Logging sink routes BigQuery's jobcompleted audit entries to another.

data "google_storage_project_service_account" "this" {
  project = var.project
}

locals {
  pushed_topics = merge(
    { for topic in var.product_topics : "product-${topic}" => google_pubsub_topic.product[topic].id },
    length(var.schedules) > 0 ? { schedules = google_pubsub_topic.schedules[0].id } : {},
    var.results_routes ? { results = google_pubsub_topic.service["results"].id } : {},
  )
  deliveries = merge(
    { for key, topic in local.pushed_topics : key => { topic = topic, function = "events", path = "/${topic}" } },
    { completions = { topic = google_pubsub_topic.service["completions"].id, function = "completions", path = "/${google_pubsub_topic.service["completions"].id}" } },
    length(var.buckets) > 0 ? { storage = { topic = google_pubsub_topic.service["storage-events"].id, function = "events", path = "/notifications/storage" } } : {},
    length(var.bigquery_datasets) > 0 ? { bigquery = { topic = google_pubsub_topic.service["bigquery-events"].id, function = "events", path = "/notifications/audit-log" } } : {},
  )
  max_delivery_attempts_inbound = 100 # the most Pub/Sub allows: about 16 hours at 10–600 s apart
}

resource "google_pubsub_subscription" "delivery" {
  for_each = local.deliveries
  project  = var.project
  name     = "${var.prefix}-${each.key}"
  topic    = each.value.topic
  # Past the function's own timeout: the push request's deadline is the ack deadline
  # (cloud.google.com/pubsub/docs/push), and a function must answer before it is cut.
  ack_deadline_seconds       = min(600, local.functions[each.value.function].timeout + 30)
  message_retention_duration = local.subscription_defaults.message_retention_duration
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.service["dead-letter"].id
    max_delivery_attempts = local.max_delivery_attempts_inbound
  }
  expiration_policy {
    ttl = "" # never: a quiet topic's subscription would otherwise expire after 31 days
  }
  push_config {
    # The function's run.app URL: internal ingress admits Pub/Sub of the same project there, and
    # only there (cloud.google.com/run/docs/securing/ingress); Cloud Run IAM checks the token.
    push_endpoint = "${google_cloudfunctions2_function.this[each.value.function].service_config[0].uri}${each.value.path}"
    oidc_token {
      service_account_email = google_service_account.this[local.functions[each.value.function].caller].email
      audience              = google_cloudfunctions2_function.this[each.value.function].service_config[0].uri
    }
  }
  depends_on = [google_cloud_run_service_iam_member.invoker, google_service_account_iam_member.pubsub_agent_signs]
}

# Pub/Sub's own agent signs each push request's OIDC token as the caller's account (needed in
# projects that enabled Pub/Sub before 2021-04-08: cloud.google.com/pubsub/docs/authenticate-push-subscriptions),
# and moves undeliverable messages: subscriber on each subscription that dead-letters.
resource "google_service_account_iam_member" "pubsub_agent_signs" {
  for_each           = toset(["event-invoker", "notice-invoker"])
  service_account_id = google_service_account.this[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_agent" {
  for_each     = merge({ for key, delivery in google_pubsub_subscription.delivery : key => delivery.name }, { results = google_pubsub_subscription.results_product.name })
  project      = var.project
  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# Cloud Storage notifies the storage-events topic of every object written in a watched bucket;
# its service agent publishes the notifications (cloud.google.com/storage/docs/reporting-changes).
resource "google_pubsub_topic_iam_member" "storage_agent_publishes" {
  count   = length(var.buckets) > 0 ? 1 : 0
  project = var.project
  topic   = google_pubsub_topic.service["storage-events"].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.this.email_address}"
}

resource "google_storage_notification" "watched" {
  for_each       = toset(var.buckets)
  bucket         = each.key
  topic          = google_pubsub_topic.service["storage-events"].id
  payload_format = "JSON_API_V1"
  event_types    = ["OBJECT_FINALIZE"]
  depends_on     = [google_pubsub_topic_iam_member.storage_agent_publishes]
}

# BigQuery's jobcompleted audit entries, routed to the bigquery-events topic by a sink whose
# own writer identity publishes them (cloud.google.com/logging/docs/export/configure_export_v2).
resource "google_logging_project_sink" "bigquery" {
  count                  = length(var.bigquery_datasets) > 0 ? 1 : 0
  project                = var.project
  name                   = "${var.prefix}-bigquery-jobs"
  destination            = "pubsub.googleapis.com/${google_pubsub_topic.service["bigquery-events"].id}"
  filter                 = "protoPayload.serviceName=\"bigquery.googleapis.com\" AND protoPayload.methodName=\"jobservice.jobcompleted\""
  unique_writer_identity = true
}

resource "google_pubsub_topic_iam_member" "sink_publishes" {
  count   = length(var.bigquery_datasets) > 0 ? 1 : 0
  project = var.project
  topic   = google_pubsub_topic.service["bigquery-events"].name
  role    = "roles/pubsub.publisher"
  member  = google_logging_project_sink.bigquery[0].writer_identity
}
