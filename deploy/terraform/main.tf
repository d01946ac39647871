# kfp-trigger on Google Cloud: what every deployment has. Identities, and why each may do what
# it does:
#
# - one caller per function, each with run.invoker on its own function only: kfpt-event-invoker
#   (Eventarc's triggers on buckets, BigQuery and topics call handle_event as it),
#   kfpt-notice-invoker (the trigger on the completions topic calls handle_completion),
#   kfpt-scheduler (Cloud Scheduler calls reconcile). So a caller of one target cannot post to
#   another: no event can pass for a completion notice.
# - kfpt-runtime: the functions run as it: datastore.user (the ledger; Firestore has no finer
#   role), publisher on the results and quarantine topics, object reader on the watched buckets;
#   with Vertex also aiplatform.user and actAs on kfpt-pipelines alone; with telemetry (the
#   default) monitoring.metricWriter and cloudtrace.agent, to write its metrics and spans.
# - kfpt-pipelines: pipeline runs execute as it: publisher on the completions topic.
# The functions do not verify tokens themselves (KFP_TRIGGER_AUTH=none): they are never public,
# and Cloud Run IAM checks every request's OIDC token and the caller's run.invoker first.

data "google_project" "this" {
  project_id = var.project
}

locals {
  apis = concat(
    ["cloudfunctions", "run", "cloudbuild", "artifactregistry", "eventarc", "pubsub", "firestore"],
    ["cloudscheduler", "monitoring", "cloudtrace", "logging", "iam", "iamcredentials", "sts", "storage"],
    var.vertex ? ["aiplatform"] : [],
  )
  accounts = {
    event-invoker  = "Eventarc delivers events to handle_event as it"
    notice-invoker = "Eventarc delivers completion notices to handle_completion as it"
    scheduler      = "Cloud Scheduler calls reconcile as it"
    runtime        = "the functions run as it"
    pipelines      = "pipeline runs execute as it"
  }
  member       = { for key, account in google_service_account.this : key => "serviceAccount:${account.email}" }
  topics       = "pubsub://projects/${var.project}/topics"
  ledger       = "${var.prefix}-runs"
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_project_service" "this" {
  for_each           = toset(local.apis)
  project            = var.project
  service            = "${each.key}.googleapis.com"
  disable_on_destroy = false
}

resource "google_service_account" "this" {
  for_each     = local.accounts
  project      = var.project
  account_id   = "kfpt-${each.key}"
  display_name = "kfp-trigger: ${each.value}"
  depends_on   = [google_project_service.this]
}

resource "google_project_iam_member" "event_receiver" {
  for_each = toset(["event-invoker", "notice-invoker"]) # Eventarc requires it of a trigger's account
  project  = var.project
  role     = "roles/eventarc.eventReceiver"
  member   = local.member[each.key]
}

resource "google_project_iam_member" "runtime_ledger" {
  project = var.project
  role    = "roles/datastore.user"
  member  = local.member["runtime"]
}

resource "google_project_iam_member" "runtime_telemetry" {
  for_each = toset(var.telemetry == "gcp" ? ["roles/monitoring.metricWriter", "roles/cloudtrace.agent"] : [])
  project  = var.project
  role     = each.key
  member   = local.member["runtime"]
}

resource "google_project_iam_member" "runtime_vertex" {
  count   = var.vertex ? 1 : 0
  project = var.project
  role    = "roles/aiplatform.user"
  member  = local.member["runtime"]
}

resource "google_service_account_iam_member" "runtime_acts_as_pipelines" {
  count              = var.vertex ? 1 : 0
  service_account_id = google_service_account.this["pipelines"].name
  role               = "roles/iam.serviceAccountUser"
  member             = local.member["runtime"]
}

resource "google_service_account_iam_member" "pipeline_pods" {
  count              = var.pipelines_workload_identity == null ? 0 : 1
  service_account_id = google_service_account.this["pipelines"].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project}.svc.id.goog[${var.pipelines_workload_identity.namespace}/${var.pipelines_workload_identity.service_account}]"
}

resource "google_storage_bucket_iam_member" "runtime_reads" {
  for_each = toset(var.buckets) # batch manifests, metrics files
  bucket   = each.key
  role     = "roles/storage.objectViewer"
  member   = local.member["runtime"]
}

# The ledger, and the TTL policies that delete what it marked expire_at (KFP_TRIGGER_RETENTION_DAYS).
resource "google_firestore_database" "ledger" {
  project     = var.project
  name        = "(default)"
  location_id = var.region
  type        = "FIRESTORE_NATIVE"
  depends_on  = [google_project_service.this]
}

# The status page's "latest decisions of a route" (FirestoreLedger.recent with a route).
resource "google_firestore_index" "decisions_by_route" {
  project    = var.project
  database   = google_firestore_database.ledger.name
  collection = "${local.ledger}-decisions"
  fields {
    field_path = "route"
    order      = "ASCENDING"
  }
  fields {
    field_path = "at"
    order      = "DESCENDING"
  }
}

locals {
  run_filters = { route = ["route"], state = ["state"], route_state = ["route", "state"] }
}

# `kfp-trigger runs` lists runs newest (or oldest) first by route, state or both, and the
# reconciler reads the queue oldest first (FirestoreLedger.runs: equality filters and an order
# on created_at need a composite index, one per direction).
resource "google_firestore_index" "runs_by_time" {
  for_each = merge(
    { for name, filtered in local.run_filters : name => { filtered = filtered, order = "ASCENDING" } },
    { for name, filtered in local.run_filters : "${name}_newest" => { filtered = filtered, order = "DESCENDING" } },
  )
  project    = var.project
  database   = google_firestore_database.ledger.name
  collection = local.ledger
  dynamic "fields" {
    for_each = each.value.filtered
    content {
      field_path = fields.value
      order      = "ASCENDING"
    }
  }
  fields {
    field_path = "created_at"
    order      = each.value.order
  }
}

resource "google_firestore_field" "ttl" {
  for_each   = toset(["", "-decisions", "-members", "-places", "-marks", "-joins", "-join-parts", "-events"])
  project    = var.project
  database   = google_firestore_database.ledger.name
  collection = "${local.ledger}${each.key}"
  field      = "expire_at"
  ttl_config {}
}
