# Topics and subscriptions. Deliveries that ran out of attempts end in the dead-letter topic
# (deliveries.tf; alerted on, kept 31 days, sent on by each reconcile pass), results the product
# did not take in results-dead-letter (alerted on, kept 31 days for people); quarantined events in
# the quarantine topic; results in the results topic, read by the product. No subscription expires: a quiet one would, after 31 days (the default policy),
# and what its topic then received would reach no one.

locals {
  subscription_defaults = {
    ack_deadline_seconds       = 60
    message_retention_duration = "604800s"
  }
  max_delivery_attempts = 10
}

resource "google_pubsub_topic" "service" {
  for_each = toset(concat(
    ["dead-letter", "results-dead-letter", "quarantine", "results", "completions", "alerts"],
    length(var.buckets) > 0 ? ["storage-events"] : [],            # Cloud Storage's notifications
    length(var.bigquery_datasets) > 0 ? ["bigquery-events"] : [], # the BigQuery audit-log sink's
  ))
  project    = var.project
  name       = "${var.prefix}-${each.key}"
  depends_on = [google_project_service.this]
}

resource "google_pubsub_topic" "schedules" {
  count      = length(var.schedules) > 0 ? 1 : 0
  project    = var.project
  name       = "${var.prefix}-schedules" # the functions know ticks by it (KFP_TRIGGER_SCHEDULES_TOPIC)
  depends_on = [google_project_service.this]
}

resource "google_pubsub_schema" "product" {
  count      = length(var.product_topics) > 0 ? 1 : 0
  project    = var.project
  name       = "${var.prefix}-product-message"
  type       = "AVRO"
  definition = var.product_schema
  depends_on = [google_project_service.this]
}

resource "google_pubsub_topic" "product" {
  for_each = toset(var.product_topics)
  project  = var.project
  name     = each.key
  schema_settings {
    schema   = google_pubsub_schema.product[0].id
    encoding = "JSON"
  }
}

resource "google_pubsub_subscription" "hold" {
  for_each                   = toset(["dead-letter", "results-dead-letter", "quarantine", "alerts"]) # kept 7 days (dead letters 31)
  project                    = var.project
  name                       = "${var.prefix}-${each.key}-hold"
  topic                      = google_pubsub_topic.service[each.key].id
  ack_deadline_seconds       = local.subscription_defaults.ack_deadline_seconds
  message_retention_duration = endswith(each.key, "dead-letter") ? "2678400s" : local.subscription_defaults.message_retention_duration
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "results_product" {
  project                    = var.project
  name                       = "${var.prefix}-results-product"
  topic                      = google_pubsub_topic.service["results"].id
  ack_deadline_seconds       = local.subscription_defaults.ack_deadline_seconds
  message_retention_duration = local.subscription_defaults.message_retention_duration
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
  dead_letter_policy { # results the product did not take: held for people, not sent on
    dead_letter_topic     = google_pubsub_topic.service["results-dead-letter"].id
    max_delivery_attempts = local.max_delivery_attempts
  }
  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub's own agent moves undeliverable messages: publisher on the dead-letter topic, and
# subscriber on each subscription that dead-letters (deliveries.tf; it needs both).
resource "google_pubsub_topic_iam_member" "dead_letter_agent" {
  for_each = toset(["dead-letter", "results-dead-letter"])
  project  = var.project
  topic    = google_pubsub_topic.service[each.key].name
  role     = "roles/pubsub.publisher"
  member   = local.pubsub_agent
}

# The reconciler takes the dead letters of deliveries and sends them on (service/dead_letters.py).
resource "google_pubsub_subscription_iam_member" "runtime_redelivers" {
  project      = var.project
  subscription = google_pubsub_subscription.hold["dead-letter"].name
  role         = "roles/pubsub.subscriber"
  member       = local.member["runtime"]
}

resource "google_pubsub_topic_iam_member" "runtime_publishes" {
  for_each = toset(["results", "quarantine", "alerts"])
  project  = var.project
  topic    = google_pubsub_topic.service[each.key].name
  role     = "roles/pubsub.publisher"
  member   = local.member["runtime"]
}

resource "google_pubsub_topic_iam_member" "pipelines_notify" {
  project = var.project
  topic   = google_pubsub_topic.service["completions"].name
  role    = "roles/pubsub.publisher"
  member  = local.member["pipelines"]
}
