# The three functions, built from `kfp-trigger deploy source`'s archive: its name carries its
# MD5, so a function is rebuilt only when the code or the requirements change.

locals {
  functions = {
    # Each timeout leaves an engine call that hangs for KFP_TRIGGER_BACKEND_TIMEOUT_SECONDS (60 s)
    # the time to answer 503 before the platform cuts the request (a test holds the order).
    events      = { entry_point = "handle_event", caller = "event-invoker", max_instances = 20, timeout = 120 }
    completions = { entry_point = "handle_completion", caller = "notice-invoker", max_instances = 10, timeout = 120 }
    reconcile   = { entry_point = "reconcile", caller = "scheduler", max_instances = 1, timeout = 540 }
    # The read-only status page, for people: var.status_viewers may invoke it (through
    # `gcloud run services proxy`, which needs an ingress that admits them; IAM still checks).
    status = { entry_point = "status_page", caller = "", max_instances = 2, timeout = 60 }
  }
  environment = merge(
    var.vertex ? {
      KFP_TRIGGER_VERTEX_PROJECT         = var.project
      KFP_TRIGGER_VERTEX_LOCATION        = var.region
      KFP_TRIGGER_VERTEX_PIPELINE_ROOT   = var.vertex_pipeline_root
      KFP_TRIGGER_VERTEX_SERVICE_ACCOUNT = google_service_account.this["pipelines"].email
    } : {},
    var.backend_environment, # the backends' settings from `kfp-trigger deploy plan` win over those defaults
    {
      KFP_TRIGGER_STATE_DIR        = "/tmp/kfp-trigger"
      KFP_TRIGGER_LEDGER           = "firestore://${var.project}/${local.ledger}?database=${google_firestore_database.ledger.name}"
      KFP_TRIGGER_RESULTS          = "${local.topics}/${google_pubsub_topic.service["results"].name}"
      KFP_TRIGGER_QUARANTINE       = "${local.topics}/${google_pubsub_topic.service["quarantine"].name}"
      KFP_TRIGGER_ALERTS           = "${local.topics}/${google_pubsub_topic.service["alerts"].name}"
      KFP_TRIGGER_COMPLETION_TOPIC = "${local.topics}/${google_pubsub_topic.service["completions"].name}"
      KFP_TRIGGER_SCHEDULES_TOPIC  = "${var.prefix}-schedules"
      KFP_TRIGGER_DEAD_LETTERS     = google_pubsub_subscription.hold["dead-letter"].id # each reconcile pass sends them on
      KFP_TRIGGER_DELIVERIES       = jsonencode({ for key, delivery in local.deliveries : "${var.prefix}-${key}" => delivery.path })
      KFP_TRIGGER_STORAGE          = "gcs"
      KFP_TRIGGER_AUTH             = "none" # Cloud Run IAM verifies every caller first (main.tf)
      KFP_TRIGGER_RETENTION_DAYS   = tostring(var.retention_days)
      KFP_TRIGGER_TELEMETRY        = var.telemetry
      GOOGLE_CLOUD_PROJECT         = var.project
    },
  )
}

resource "google_storage_bucket" "source" {
  project                     = var.project
  name                        = "${var.project}-${var.prefix}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  depends_on                  = [google_project_service.this]
}

resource "google_storage_bucket_object" "source" {
  bucket = google_storage_bucket.source.name
  name   = "source-${filemd5(var.function_source)}.zip"
  source = var.function_source
}

resource "google_cloudfunctions2_function" "this" {
  for_each = local.functions
  project  = var.project
  name     = "${var.prefix}-${each.key}"
  location = var.region
  build_config {
    runtime     = "python311"
    entry_point = each.value.entry_point
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }
  service_config {
    max_instance_count             = each.value.max_instances
    available_memory               = "512Mi"
    timeout_seconds                = each.value.timeout
    ingress_settings               = each.value.caller == "" ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.this["runtime"].email
    environment_variables          = local.environment
    dynamic "secret_environment_variables" {
      for_each = var.alert_webhook_secret == "" ? [] : [var.alert_webhook_secret]
      content {
        key        = "KFP_TRIGGER_ALERT_WEBHOOK" # the chat webhook's URL is a secret
        project_id = var.project
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }
  depends_on = [google_project_service.this, google_project_iam_member.runtime_ledger]
}

# Each function is invokable by its one caller only; the status page by its viewers only.
resource "google_cloud_run_service_iam_member" "invoker" {
  for_each = { for name, function in local.functions : name => function if function.caller != "" }
  project  = var.project
  location = var.region
  service  = google_cloudfunctions2_function.this[each.key].name
  role     = "roles/run.invoker"
  member   = local.member[each.value.caller]
}

resource "google_cloud_run_service_iam_member" "status_viewer" {
  for_each = toset(var.status_viewers)
  project  = var.project
  location = var.region
  service  = google_cloudfunctions2_function.this["status"].name
  role     = "roles/run.invoker"
  member   = each.key
}
