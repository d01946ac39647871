# Eventarc triggers: storage in each bucket's location, BigQuery audit logs in each dataset's
# (a multi-region dataset only reaches a global trigger), Pub/Sub on the product, schedules,
# results (chained routes) and completions topics.

data "google_storage_bucket" "watched" {
  for_each = toset(var.buckets)
  name     = each.key
}

data "google_bigquery_dataset" "watched" {
  for_each   = var.bigquery_datasets
  project    = each.value.project
  dataset_id = each.value.dataset
}

data "google_storage_project_service_account" "this" {
  project = var.project
}

locals {
  bigquery_locations = toset([
    for dataset in data.google_bigquery_dataset.watched :
    contains(["us", "eu"], lower(dataset.location)) ? "global" : lower(dataset.location)
  ])
  topic_triggers = merge(
    { for topic in var.product_topics : "pubsub-${topic}" => google_pubsub_topic.product[topic].id },
    length(var.schedules) > 0 ? { schedules = google_pubsub_topic.schedules[0].id } : {},
    var.results_routes ? { results = google_pubsub_topic.service["results"].id } : {},
  )
}

# Eventarc's storage triggers publish through Cloud Storage's own service agent.
resource "google_project_iam_member" "storage_agent_publishes" {
  count   = length(var.buckets) > 0 ? 1 : 0
  project = var.project
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.this.email_address}"
}

resource "google_eventarc_trigger" "storage" {
  for_each        = toset(var.buckets)
  project         = var.project
  name            = trimsuffix(substr("${var.prefix}-storage-${replace(lower(each.key), "/[^a-z0-9]+/", "-")}", 0, 63), "-")
  location        = lower(data.google_storage_bucket.watched[each.key].location)
  service_account = google_service_account.this["event-invoker"].email
  matching_criteria {
    attribute = "type"
    value     = "google.cloud.storage.object.v1.finalized"
  }
  matching_criteria {
    attribute = "bucket"
    value     = each.key
  }
  destination {
    cloud_run_service {
      service = google_cloudfunctions2_function.this["events"].name
      region  = var.region
    }
  }
  depends_on = [
    google_project_iam_member.storage_agent_publishes,
    google_project_iam_member.event_receiver,
    google_cloud_run_service_iam_member.invoker,
  ]
}

resource "google_eventarc_trigger" "bigquery" {
  for_each        = local.bigquery_locations
  project         = var.project
  name            = "${var.prefix}-bigquery-jobs-${each.key}"
  location        = each.key
  service_account = google_service_account.this["event-invoker"].email
  matching_criteria {
    attribute = "type"
    value     = "google.cloud.audit.log.v1.written"
  }
  matching_criteria {
    attribute = "serviceName"
    value     = "bigquery.googleapis.com"
  }
  matching_criteria {
    attribute = "methodName"
    value     = "jobservice.jobcompleted"
  }
  destination {
    cloud_run_service {
      service = google_cloudfunctions2_function.this["events"].name
      region  = var.region
    }
  }
  depends_on = [google_project_iam_member.event_receiver, google_cloud_run_service_iam_member.invoker]
}

resource "google_eventarc_trigger" "topic" {
  for_each = merge(
    local.topic_triggers,
    { completions = google_pubsub_topic.service["completions"].id },
  )
  project         = var.project
  name            = trimsuffix(substr("${var.prefix}-${replace(lower(each.key), "/[^a-z0-9]+/", "-")}", 0, 63), "-")
  location        = var.region
  service_account = google_service_account.this[each.key == "completions" ? "notice-invoker" : "event-invoker"].email
  matching_criteria {
    attribute = "type"
    value     = "google.cloud.pubsub.topic.v1.messagePublished"
  }
  destination {
    cloud_run_service {
      service = google_cloudfunctions2_function.this[each.key == "completions" ? "completions" : "events"].name
      region  = var.region
    }
  }
  transport {
    pubsub {
      topic = each.value
    }
  }
  depends_on = [google_project_iam_member.event_receiver, google_cloud_run_service_iam_member.invoker]
}
