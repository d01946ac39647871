# The product on AWS publishes to its topics and reads results through Workload Identity
# Federation: a pool and an AWS provider that admit one role, and nothing else.

locals {
  federated = length(var.product_topics) > 0
  # Google's documented AWS mapping: the role as arn:aws:sts::ACCOUNT:assumed-role/NAME.
  aws_role = "assertion.arn.contains('assumed-role') ? assertion.arn.extract('{account_arn}assumed-role/') + 'assumed-role/' + assertion.arn.extract('assumed-role/{role_name}/') : assertion.arn"
  product  = local.federated ? "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.aws[0].name}/attribute.aws_role/${var.aws_role_arn}" : ""
}

resource "google_iam_workload_identity_pool" "aws" {
  count                     = local.federated ? 1 : 0
  project                   = var.project
  workload_identity_pool_id = "${var.prefix}-aws"
  display_name              = "${var.prefix}: the AWS product"
  depends_on                = [google_project_service.this]
}

resource "google_iam_workload_identity_pool_provider" "aws" {
  count                              = local.federated ? 1 : 0
  project                            = var.project
  workload_identity_pool_id          = google_iam_workload_identity_pool.aws[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "product"
  attribute_mapping = {
    "google.subject"     = "assertion.arn"
    "attribute.aws_role" = local.aws_role
  }
  attribute_condition = "attribute.aws_role == \"${var.aws_role_arn}\""
  aws {
    account_id = var.aws_account_id
  }
}

resource "google_pubsub_topic_iam_member" "product_publishes" {
  for_each = toset(var.product_topics)
  project  = var.project
  topic    = google_pubsub_topic.product[each.key].name
  role     = "roles/pubsub.publisher"
  member   = local.product
}

resource "google_pubsub_subscription_iam_member" "product_reads_results" {
  count        = local.federated ? 1 : 0
  project      = var.project
  subscription = google_pubsub_subscription.results_product.name
  role         = "roles/pubsub.subscriber"
  member       = local.product
}
