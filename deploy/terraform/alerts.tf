# Alerts: dead letters (deliveries that ran out of attempts, results the product did not take), claims the reconciler found past their lease
# (a log-based metric on its "claim past its lease" lines, functions/service/completion.py), and
# join windows that expired with parts missing.

resource "google_logging_metric" "stale_claims" {
  project = var.project
  name    = "${var.prefix}/stale-claims"
  filter  = "resource.type = \"cloud_run_revision\" AND jsonPayload.message = \"claim past its lease\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
  depends_on = [google_project_service.this]
}

# Join windows that closed with parts missing, on routes with on_expire: alert (the "join expired
# (alert)" line, functions/service/joins.py).
resource "google_logging_metric" "joins_expired" {
  project = var.project
  name    = "${var.prefix}/joins-expired"
  filter  = "resource.type = \"cloud_run_revision\" AND jsonPayload.message = \"join expired (alert)\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
  depends_on = [google_project_service.this]
}

locals {
  alerts = {
    dead_letters = {
      title  = "dead letters: deliveries out of attempts, or results the product did not take"
      filter = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = one_of(\"${google_pubsub_subscription.hold["dead-letter"].name}\", \"${google_pubsub_subscription.hold["results-dead-letter"].name}\") AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
    }
    stale_claims = {
      title  = "claims stuck past their lease"
      filter = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.stale_claims.name}\""
    }
    joins_expired = {
      title  = "join windows expired with parts missing"
      filter = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.joins_expired.name}\""
    }
  }
}

resource "google_monitoring_alert_policy" "this" {
  for_each              = local.alerts
  project               = var.project
  display_name          = "${var.prefix}: ${each.value.title}"
  combiner              = "OR"
  notification_channels = var.notification_channels
  conditions {
    display_name = each.value.title
    condition_threshold {
      filter          = each.value.filter
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
}
