variable "project_id" {
  description = "GCP project (the same as the cluster stack)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id."
  }
}

variable "region" {
  description = "Region of the worker subnet and the internal load balancers."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must look like us-central1."
  }
}

variable "zones" {
  description = "Zones the regional managed instance group spreads over (scripts/deploy.sh passes the cluster's node zones); empty: Google picks three zones of the region."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for z in var.zones : startswith(z, "${var.region}-")])
    error_message = "zones must be zones of the region (e.g. us-central1-a)."
  }
}

variable "name" {
  description = "Prefix for resource names; the same as the cluster stack's name."
  type        = string
  default     = "dsobel"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "name must be 3-20 lowercase letters, digits or hyphens."
  }
}

variable "network" {
  description = "VPC name (cluster stack output network)."
  type        = string
  default     = "dsobel-vpc"
}

variable "subnetwork" {
  description = "Worker subnet name (cluster stack output workers_subnetwork)."
  type        = string
  default     = "dsobel-workers"
}

variable "rabbitmq_address" {
  description = "host:port of RabbitMQ's internal load balancer (cluster output rabbitmq_ilb_ip, port 5672)."
  type        = string

  validation {
    condition     = can(regex("^[0-9.]+:[0-9]+$", var.rabbitmq_address))
    error_message = "rabbitmq_address must be IPv4:port, e.g. 10.10.0.5:5672."
  }
}

variable "state_store_url" {
  description = "DSOBEL_REDIS_URL of the workers without credentials: redis://IP:6379/0 of the state Redis's internal load balancer (cluster output redis_ilb_ip), or the Memorystore state cluster's seed list (cluster output memorystore_state_seeds)."
  type        = string

  validation {
    condition     = can(regex("^redis://[0-9.]+:[0-9]+(/[0-9]+)?(,redis://[0-9.]+:[0-9]+(/[0-9]+)?)*$", var.state_store_url))
    error_message = "state_store_url must be redis://IPv4:PORT[/DB], or a comma-separated list of them, without credentials."
  }
}

variable "bytes_store_url" {
  description = "DSOBEL_REDIS_BYTES_URL of the workers without credentials (the bytes Redis's load balancer, or the Memorystore bytes cluster's seed list); empty: the bytes go to the state store."
  type        = string
  default     = ""

  validation {
    condition     = var.bytes_store_url == "" || can(regex("^redis://[0-9.]+:[0-9]+(/[0-9]+)?(,redis://[0-9.]+:[0-9]+(/[0-9]+)?)*$", var.bytes_store_url))
    error_message = "bytes_store_url must be empty, redis://IPv4:PORT[/DB], or a comma-separated list of them, without credentials."
  }
}

variable "store_auth" {
  description = "The store asks for a password (the in-cluster Redis roles): the VMs put the password from Secret Manager into both store URLs at start. false for Memorystore, which has no AUTH here."
  type        = bool
  default     = true
}

variable "batch_buckets" {
  description = "The batch buckets (cluster output batch_buckets, the same type as the cluster stack's variable): the worker VMs' service account gets object access to each, read-only where writable = false."
  type = map(object({
    create               = optional(bool, true)
    writable             = optional(bool, true)
    location             = optional(string, "")
    prefixes             = optional(list(string), [])
    manifest_expiry_days = optional(number, 0)
  }))
  default = {}
}

variable "batch_stores" {
  description = "DSOBEL_BATCH_STORES of the worker VMs (cluster output batch_stores): the gs:// roots batches may use; empty: none."
  type        = string
  default     = ""

  validation {
    condition     = var.batch_stores == "" || can(regex("^gs://[a-z0-9][a-z0-9_-]{1,61}[a-z0-9](/[^,]+)?(,gs://[a-z0-9][a-z0-9_-]{1,61}[a-z0-9](/[^,]+)?)*$", var.batch_stores))
    error_message = "batch_stores must be empty or comma-separated gs://BUCKET[/PREFIX] roots."
  }
}

variable "rabbitmq_user" {
  description = "RabbitMQ user name of the workers (the password comes from Secret Manager)."
  type        = string
  default     = "dsobel"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.rabbitmq_user))
    error_message = "rabbitmq_user may hold letters, digits, '_', '.', '-' only (it is put in a URL)."
  }
}

variable "image" {
  description = "Worker image, REGION-docker.pkg.dev/PROJECT/REPO/dsobel:TAG (a digest reference is best)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]+-docker\\.pkg\\.dev/[^/]+/[^/]+/dsobel[:@].+$", var.image))
    error_message = "image must be an Artifact Registry reference to the dsobel image with a tag or digest."
  }
}

variable "artifact_repository_id" {
  description = "Artifact Registry repository holding the image (cluster output artifact_repository_id)."
  type        = string
  default     = "dsobel"
}

variable "machine_type" {
  description = "Machine type of a worker VM."
  type        = string
  default     = "e2-standard-4"
}

variable "min_replicas" {
  description = "Minimum number of worker VMs."
  type        = number
  default     = 1

  validation {
    condition     = var.min_replicas >= 0
    error_message = "min_replicas must be >= 0."
  }
}

variable "max_replicas" {
  description = "Maximum number of worker VMs."
  type        = number
  default     = 4

  validation {
    condition     = var.max_replicas >= 1 && var.max_replicas <= 100
    error_message = "max_replicas must be between 1 and 100."
  }
}

variable "spot" {
  description = "Run the worker VMs as Spot VMs (much cheaper; Google may reclaim them at any time, in-flight strips are redelivered)."
  type        = bool
  default     = false
}

variable "strips_per_vm" {
  description = "Queue backlog per worker VM the autoscaler aims at: one VM per this many strips ready in the work queue."
  type        = number
  default     = 16

  validation {
    condition     = var.strips_per_vm >= 1
    error_message = "strips_per_vm must be at least 1."
  }
}

variable "collector_image" {
  description = "Google-built OpenTelemetry Collector image that scrapes the worker's /metrics on each VM into Managed Prometheus (pulled through Private Google Access)."
  type        = string
  default     = "us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:0.151.0"
}

variable "cpu_target" {
  description = "Autoscaler target CPU utilisation (0-1)."
  type        = number
  default     = 0.7

  validation {
    condition     = var.cpu_target > 0.1 && var.cpu_target < 0.95
    error_message = "cpu_target must be between 0.1 and 0.95."
  }
}

variable "worker_settings" {
  description = "Extra DSOBEL_* / RUST_LOG settings for the worker process (same names as the binary's flags). Connection URLs are built from the addresses and secrets, not set here. The lifetimes match the cluster's ConfigMap (deploy/k8s/base/config.yaml): a worker writes whole-image results and records with them."
  type        = map(string)
  default = {
    DSOBEL_QUEUE                 = "dsobel.strips"
    DSOBEL_LOG_FORMAT            = "json"
    DSOBEL_SHUTDOWN_TIMEOUT_SECS = "30"
    DSOBEL_RESULT_TTL_SECS       = "600"
    DSOBEL_WORK_TTL_SECS         = "600"
    RUST_LOG                     = "info"
  }

  validation {
    condition     = alltrue([for k, v in var.worker_settings : can(regex("^(DSOBEL_[A-Z_]+|RUST_LOG)$", k)) && !contains(["DSOBEL_AMQP_URL", "DSOBEL_REDIS_URL", "DSOBEL_REDIS_BYTES_URL", "DSOBEL_API_KEY", "DSOBEL_BATCH_STORES"], k) && !can(regex("[\\n\\r]", v))])
    error_message = "worker_settings keys must be DSOBEL_* or RUST_LOG, without the URLs and the key (built from the stack's inputs) or DSOBEL_BATCH_STORES (batch_stores), and values on one line."
  }
}

variable "enable_iap_ssh" {
  description = "Allow SSH to the worker VMs through Identity-Aware Proxy (OS Login) for debugging."
  type        = bool
  default     = false
}

variable "labels" {
  description = "Extra labels on every labelled resource."
  type        = map(string)
  default     = {}
}
