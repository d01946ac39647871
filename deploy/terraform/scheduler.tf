# One Cloud Scheduler job per schedule route (it publishes a tick, attribute scheduler_job = the
# job), and the reconciler every 5 minutes (HTTP, with an OIDC token as PREFIX-scheduler).

resource "google_cloud_scheduler_job" "schedule" {
  for_each  = var.schedules
  project   = var.project
  region    = var.region
  name      = "${var.prefix}-${each.key}" # the tick names the route's job itself (its attribute)
  schedule  = each.value.cron
  time_zone = each.value.time_zone
  pubsub_target {
    topic_name = google_pubsub_topic.schedules[0].id
    attributes = { scheduler_job = each.key }
    data       = base64encode("{}")
  }
  depends_on = [google_project_service.this]
}

resource "google_cloud_scheduler_job" "reconcile" {
  project   = var.project
  region    = var.region
  name      = "${var.prefix}-reconcile"
  schedule  = "*/5 * * * *"
  time_zone = "UTC"
  # Past the function's own timeout, so a long pass ends as the function says (the default, 180 s,
  # would abandon it first: cloud.google.com/scheduler/docs/reference/rest/v1/projects.locations.jobs).
  attempt_deadline = "${local.functions["reconcile"].timeout + 30}s"
  http_target {
    uri         = google_cloudfunctions2_function.this["reconcile"].service_config[0].uri
    http_method = "POST"
    oidc_token {
      service_account_email = google_service_account.this["scheduler"].email
      audience              = google_cloudfunctions2_function.this["reconcile"].service_config[0].uri
    }
  }
  depends_on = [google_cloud_run_service_iam_member.invoker]
}
