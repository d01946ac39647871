# Inputs. `kfp-trigger deploy plan` writes the route-derived ones (buckets … backend_environment)
# to routes.auto.tfvars.json from routes.yaml and the backend settings; the rest are yours.

variable "project" {
  description = "The Google Cloud project to deploy into."
  type        = string
}

variable "region" {
  description = "Where the functions, the reconciler's job and the schedules run, e.g. europe-west1."
  type        = string
}

variable "prefix" {
  description = "Prefix of every name a deployment creates (service accounts, topics, subscriptions, functions, triggers, Scheduler jobs, the ledger's database), so that two deployments in one project share none. `kfp-trigger deploy plan --prefix` writes it with the inputs, as chained routes listen to PREFIX-results."
  type        = string
  default     = "kfp-trigger"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,19}$", var.prefix)) # PREFIX-pipelines: a service account id of at most 30
    error_message = "prefix: 3 to 20 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "function_source" {
  description = "The functions' source archive, written by `kfp-trigger deploy source` (the package, routes.yaml and a hashed requirements.txt, nothing else)."
  type        = string
}

variable "pipeline_root_buckets" {
  description = "Buckets of the pipelines' gs:// roots (`kfp-trigger deploy plan` reads them from routes.yaml): runs write their artifacts there, and the functions read run metrics there."
  type        = list(string)
  default     = []
}

variable "buckets" {
  description = "Buckets that storage routes watch, in this project. Each notifies the storage-events topic of every object written."
  type        = list(string)
  default     = []
}

variable "bigquery_datasets" {
  description = "Datasets that bigquery routes watch, by \"project.dataset\". With any, a Logging sink routes this project's BigQuery jobcompleted audit entries to the functions (the routes pick the tables)."
  type = map(object({
    project = string
    dataset = string
  }))
  default = {}
}

variable "product_topics" {
  description = "Topics the product publishes to (pubsub routes), created here with the product message schema."
  type        = list(string)
  default     = []
}

variable "product_schema" {
  description = "The Avro schema (JSON) of product messages: event_id and the data fields routes test."
  type        = string
  default     = ""
}

variable "results_routes" {
  description = "Whether some route listens to the results topic (chained pipelines): the results topic then also triggers handle_event."
  type        = bool
  default     = false
}

variable "schedules" {
  description = "Cloud Scheduler jobs of the schedule routes, by job name."
  type = map(object({
    cron      = string
    time_zone = string
  }))
  default = {}
  validation {
    condition     = alltrue([for job in keys(var.schedules) : can(regex("^[A-Za-z0-9_-]{1,500}$", job))])
    error_message = "schedules: a Cloud Scheduler job name is letters, digits, underscores and dashes."
  }
}

variable "vertex" {
  description = "Whether some pipeline runs on Vertex AI Pipelines (enables the API, lets the functions act as the pipeline runner)."
  type        = bool
  default     = false
}

variable "vertex_pipeline_root" {
  description = "With Vertex pipelines: the gs:// root where runs write their outputs."
  type        = string
  default     = ""
  validation {
    condition     = !var.vertex || startswith(var.vertex_pipeline_root, "gs://")
    error_message = "vertex_pipeline_root: a gs:// URI is required when a pipeline runs on Vertex AI."
  }
}

variable "backend_environment" {
  description = "The backends' settings (KFP_TRIGGER_KFP_HOST, _KFP_NAMESPACE, _KFP_CLIENT_ID, _VERTEX_LOCATION, …), from `kfp-trigger deploy plan`."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for name in keys(var.backend_environment) : startswith(name, "KFP_TRIGGER_")])
    error_message = "backend_environment: only KFP_TRIGGER_* variables."
  }
}

variable "retention_days" {
  description = "Ledger documents expire this many days after they are written (Firestore TTL)."
  type        = number
  default     = 30
  validation {
    condition     = var.retention_days >= 1
    error_message = "retention_days: at least 1 (a run key must outlive the platform's 24 h of redeliveries)."
  }
}

variable "status_viewers" {
  description = "Who may open the status page (IAM members: user:…, group:…): `gcloud run services proxy PREFIX-status`."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for member in var.status_viewers : can(regex("^(user|group|serviceAccount|domain):", member))])
    error_message = "status_viewers: IAM members, e.g. user:oncall@example.com or group:ml-oncall@example.com."
  }
}

variable "telemetry" {
  description = "Metrics and traces: gcp (Cloud Monitoring and Cloud Trace) or off."
  type        = string
  default     = "gcp"
  validation {
    condition     = contains(["gcp", "off"], var.telemetry)
    error_message = "telemetry: gcp or off."
  }
}

variable "alert_webhook_secret" {
  description = "A Secret Manager secret (its id, in var.project) holding a chat webhook URL (Slack-compatible) for alerts; empty: alerts go to the alerts topic only."
  type        = string
  default     = ""
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channels (ids: projects/P/notificationChannels/N) the alerts notify."
  type        = list(string)
  default     = []
}

variable "aws_account_id" {
  description = "With product topics: the AWS account the product runs in."
  type        = string
  default     = ""
  validation {
    condition     = length(var.product_topics) == 0 || can(regex("^[0-9]{12}$", var.aws_account_id))
    error_message = "aws_account_id: the product's 12-digit AWS account is required when product topics exist."
  }
}

variable "aws_role_arn" {
  description = "With product topics: the one role the product publishes as, as it assumes it: arn:aws:sts::ACCOUNT:assumed-role/NAME."
  type        = string
  default     = ""
  validation {
    condition     = length(var.product_topics) == 0 || startswith(var.aws_role_arn, "arn:aws:sts::")
    error_message = "aws_role_arn: arn:aws:sts::ACCOUNT:assumed-role/NAME is required when product topics exist."
  }
}

variable "pipelines_workload_identity" {
  description = "KFP on GKE: the Kubernetes service account (namespace and name) pipeline pods run as, allowed to act as PREFIX-pipelines so their exit step can publish completion notices."
  type = object({
    namespace       = string
    service_account = string
  })
  default = null
}

