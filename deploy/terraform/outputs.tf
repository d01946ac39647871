output "functions" {
  description = "The functions' names and URLs (internal ingress: reachable from the project's network and its triggers)."
  value       = { for key, function in google_cloudfunctions2_function.this : key => { name = function.name, url = function.service_config[0].uri } }
}

output "topics" {
  description = "Topics: results (the product subscribes), quarantine, dead-letter, completions, and the product's."
  value       = merge({ for key, topic in google_pubsub_topic.service : key => topic.id }, { for key, topic in google_pubsub_topic.product : key => topic.id })
}

output "results_subscription" {
  description = "The product's subscription to the results."
  value       = google_pubsub_subscription.results_product.id
}

output "service_accounts" {
  description = "The identities the module created, by role."
  value       = { for key, account in google_service_account.this : key => account.email }
}

output "workload_identity_provider" {
  description = "With product topics: the provider the AWS product exchanges its credentials with."
  value       = local.federated ? google_iam_workload_identity_pool_provider.aws[0].name : null
}
