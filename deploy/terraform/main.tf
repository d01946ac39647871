# kfp-trigger on Google Cloud: what every deployment has. Identities, and why each may do what
# it does:
#
# - one caller per function, each with run.invoker on its own function only: PREFIX-events
#   (the push subscriptions of deliveries.tf call handle_event as it),
#   PREFIX-notices (the completions topic's push subscription calls handle_completion),
#   PREFIX-scheduler (Cloud Scheduler calls reconcile). So a caller of one target cannot post to
#   another: no event can pass for a completion notice.
# - PREFIX-runtime: the functions run as it. PREFIX-pipelines: pipeline runs execute as it.
# What each may do, why, and the page that says so: docs/deploy.md, "Who may do what" (and a
# test holds this module's grants to that table).
# The functions do not verify tokens themselves (KFP_TRIGGER_AUTH=none): they are never public,
# and Cloud Run IAM checks every request's OIDC token and the caller's run.invoker first.

data "google_project" "this" {
  project_id = var.project
}

locals {
  apis = concat(
    ["cloudfunctions", "run", "cloudbuild", "artifactregistry", "pubsub", "firestore", "logging"],
    ["cloudscheduler", "monitoring", "cloudtrace", "iam", "iamcredentials", "sts", "storage"],
    var.vertex ? ["aiplatform"] : [],
    var.alert_webhook_secret == "" ? [] : ["secretmanager"],
  )
  accounts = { # key → (the account id after the prefix, what it is for)
    event-invoker  = { id = "events", role = "Pub/Sub pushes events to handle_event as it" }
    notice-invoker = { id = "notices", role = "Pub/Sub pushes completion notices to handle_completion as it" }
    scheduler      = { id = "scheduler", role = "Cloud Scheduler calls reconcile as it" }
    runtime        = { id = "runtime", role = "the functions run as it" }
    pipelines      = { id = "pipelines", role = "pipeline runs execute as it" }
  }
  member = { for key, account in google_service_account.this : key => "serviceAccount:${account.email}" }
  root_buckets = distinct(concat(
    var.pipeline_root_buckets,
    var.vertex && var.vertex_pipeline_root != "" ? [split("/", trimprefix(var.vertex_pipeline_root, "gs://"))[0]] : [],
  ))
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
  account_id   = "${var.prefix}-${each.value.id}"
  display_name = "${var.prefix}: ${each.value.role}"
  depends_on   = [google_project_service.this]
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
  for_each = toset(concat(var.buckets, local.root_buckets)) # batch manifests; run metrics under a root
  bucket   = each.key
  role     = "roles/storage.objectViewer"
  member   = local.member["runtime"]
}

# Runs execute as the pipelines' identity: they write their artifacts under the pipeline root,
# and on Vertex the identity a PipelineJob runs as needs Vertex AI User
# (cloud.google.com/vertex-ai/docs/pipelines/configure-project#service-account).
resource "google_storage_bucket_iam_member" "pipelines_write" {
  for_each = toset(local.root_buckets)
  bucket   = each.key
  role     = "roles/storage.objectAdmin"
  member   = local.member["pipelines"]
}

resource "google_project_iam_member" "pipelines_vertex" {
  count   = var.vertex ? 1 : 0
  project = var.project
  role    = "roles/aiplatform.user"
  member  = local.member["pipelines"]
}

# The chat webhook's URL, a secret the functions read at start
# (cloud.google.com/functions/docs/configuring/secrets#making_a_secret_accessible_to_a_function).
resource "google_secret_manager_secret_iam_member" "runtime_reads_webhook" {
  count     = var.alert_webhook_secret == "" ? 0 : 1
  project   = var.project
  secret_id = var.alert_webhook_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = local.member["runtime"]
}

# The ledger, and the TTL policies that delete what it marked expire_at (KFP_TRIGGER_RETENTION_DAYS).
resource "google_firestore_database" "ledger" {
  project     = var.project
  name        = "${var.prefix}-ledger" # a database of its own: two deployments share no document
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
