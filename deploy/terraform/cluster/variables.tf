variable "project_id" {
  description = "GCP project that receives the network, the GKE cluster and the registry."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id (6-30 chars, lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of the cluster control plane, the subnets, the registry and the internal load balancers."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must look like us-central1 or europe-west4."
  }
}

variable "node_zones" {
  description = "Zones (inside region) where node pools run; empty: the first two zones of the region. Pool sizes below are per zone."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.node_zones) <= 3 && alltrue([for z in var.node_zones : startswith(z, "${var.region}-")])
    error_message = "node_zones must list at most 3 zones of the region (e.g. us-central1-a)."
  }
}

variable "name" {
  description = "Prefix for every resource name (network, cluster, service accounts, registry)."
  type        = string
  default     = "dsobel"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "name must be 3-20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "gke_subnet_cidr" {
  description = "Primary range of the GKE node subnet (nodes and internal load balancer addresses)."
  type        = string
  default     = "10.10.0.0/20"

  validation {
    condition     = can(cidrhost(var.gke_subnet_cidr, 0))
    error_message = "gke_subnet_cidr must be a valid IPv4 CIDR."
  }
}

variable "pods_cidr" {
  description = "Secondary range for Pod IPs (VPC-native cluster)."
  type        = string
  default     = "10.16.0.0/14"

  validation {
    condition     = can(cidrhost(var.pods_cidr, 0))
    error_message = "pods_cidr must be a valid IPv4 CIDR."
  }
}

variable "services_cidr" {
  description = "Secondary range for Service ClusterIPs."
  type        = string
  default     = "10.20.0.0/20"

  validation {
    condition     = can(cidrhost(var.services_cidr, 0))
    error_message = "services_cidr must be a valid IPv4 CIDR."
  }
}

variable "workers_subnet_cidr" {
  description = "Subnet for the worker VMs outside the cluster. Only this range may reach RabbitMQ and Redis through the internal load balancers."
  type        = string
  default     = "10.30.0.0/24"

  validation {
    condition     = can(cidrhost(var.workers_subnet_cidr, 0))
    error_message = "workers_subnet_cidr must be a valid IPv4 CIDR."
  }
}

variable "master_cidr" {
  description = "/28 range for the private control plane endpoint."
  type        = string
  default     = "172.16.0.0/28"

  validation {
    condition     = can(cidrhost(var.master_cidr, 0)) && endswith(var.master_cidr, "/28")
    error_message = "master_cidr must be a /28 IPv4 CIDR."
  }
}

variable "master_authorized_networks" {
  description = "CIDRs allowed to reach the control plane's IP endpoint. Pipelines and operators use the DNS endpoint (IAM-authorized) instead, so this can stay empty."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []

  validation {
    condition     = alltrue([for n in var.master_authorized_networks : can(cidrhost(n.cidr_block, 0)) && n.cidr_block != "0.0.0.0/0"])
    error_message = "Each master_authorized_networks entry needs a valid CIDR other than 0.0.0.0/0."
  }
}

variable "release_channel" {
  description = "GKE release channel."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "infra_machine_type" {
  description = "Machine type of the infrastructure pool (RabbitMQ and, with store = \"in-cluster\", the two Redis roles). 16 GB holds both Redis roles at the sizes docs/deploy.md#capacity derives (7 GiB bytes store, 2 GiB state store) next to RabbitMQ, on one node if need be; with store = \"memorystore\" e2-standard-2 is enough."
  type        = string
  default     = "e2-highmem-2"
}

variable "infra_nodes_per_zone" {
  description = "Fixed node count per zone of the infrastructure pool."
  type        = number
  default     = 1

  validation {
    condition     = var.infra_nodes_per_zone >= 1 && var.infra_nodes_per_zone <= 5
    error_message = "infra_nodes_per_zone must be between 1 and 5."
  }
}

variable "app_machine_type" {
  description = "Machine type of the application pool (frontend, backend, worker pods)."
  type        = string
  default     = "e2-standard-4"
}

variable "app_spot" {
  description = "Run the application pool on Spot VMs (about 60-90 % cheaper; Google may reclaim a node at any time, its pods are rescheduled and in-flight strips redelivered). The infra pool (RabbitMQ, Redis) always stays on standard VMs."
  type        = bool
  default     = false
}

variable "app_min_nodes" {
  description = "Minimum total node count of the application pool (cluster autoscaler)."
  type        = number
  default     = 2

  validation {
    condition     = var.app_min_nodes >= 1
    error_message = "app_min_nodes must be at least 1."
  }
}

variable "app_max_nodes" {
  description = "Maximum total node count of the application pool (cluster autoscaler)."
  type        = number
  default     = 6

  validation {
    condition     = var.app_max_nodes >= 1 && var.app_max_nodes <= 100
    error_message = "app_max_nodes must be between 1 and 100."
  }
}

variable "node_disk_size_gb" {
  description = "Boot disk size of every node."
  type        = number
  default     = 50

  validation {
    condition     = var.node_disk_size_gb >= 20
    error_message = "node_disk_size_gb must be at least 20."
  }
}

variable "github_repository" {
  description = "owner/name of the GitHub repository whose Actions may deploy through Workload Identity Federation. Empty: no federation is created."
  type        = string
  default     = ""

  validation {
    condition     = var.github_repository == "" || can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be empty or owner/name."
  }
}

variable "github_ref" {
  description = "Git ref whose workflow runs may deploy (the OIDC subject must be repo:OWNER/NAME:ref:THIS)."
  type        = string
  default     = "refs/heads/main"

  validation {
    condition     = can(regex("^refs/(heads|tags)/[A-Za-z0-9_./-]+$", var.github_ref))
    error_message = "github_ref must look like refs/heads/main."
  }
}

variable "deployer_roles" {
  description = "Project roles of the CI deployer service account (used only when github_repository is set). Creating the cluster from a pipeline needs these; narrow them if pipeline 1 is run by hand."
  type        = list(string)
  default = [
    # Creates the repository and grants the worker VMs read access to it.
    "roles/artifactregistry.admin",
    "roles/compute.networkAdmin",
    "roles/compute.securityAdmin",
    "roles/compute.instanceAdmin.v1",
    "roles/container.admin",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/iam.workloadIdentityPoolAdmin",
    # Dashboard, alert policies and notification channel (monitoring.tf).
    "roles/monitoring.editor",
    "roles/resourcemanager.projectIamAdmin",
    "roles/secretmanager.admin",
    "roles/serviceusage.serviceUsageAdmin",
    # The Terraform state bucket (objects, and storage.buckets.get for the
    # `gcloud storage buckets describe` every pipeline starts with), and the
    # batch buckets: creating them and granting the apps access to them.
    "roles/storage.admin",
    # Memorystore for Redis Cluster (store = "memorystore"): the clusters and
    # the service connection policy that lets them place their Private Service
    # Connect endpoints in the VPC.
    "roles/redis.admin",
    "roles/networkconnectivity.consumerNetworkAdmin",
  ]
}

variable "deletion_protection" {
  description = "Refuse to delete the cluster. Set false (and apply) before destroying."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Extra labels on every labelled resource."
  type        = map(string)
  default     = {}
}

variable "billing_account" {
  description = "Billing account id (XXXXXX-XXXXXX-XXXXXX) for a monthly budget alert on this project; empty: no budget. Needs Billing Account Administrator or Costs Manager on that account."
  type        = string
  default     = ""

  validation {
    condition     = var.billing_account == "" || can(regex("^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$", var.billing_account))
    error_message = "billing_account must be empty or look like 012345-6789AB-CDEF01."
  }
}

variable "budget_amount" {
  description = "Monthly budget in the billing account's currency; e-mails go to the billing account's admins at 50 %, 90 % and 100 % (and at a forecast of 100 %)."
  type        = number
  default     = 100

  validation {
    condition     = var.budget_amount >= 1
    error_message = "budget_amount must be at least 1."
  }
}

variable "alert_email" {
  description = "E-mail address that receives the monitoring alerts; empty: alerts only show in the console."
  type        = string
  default     = ""

  validation {
    condition     = var.alert_email == "" || can(regex("^[^@ ]+@[^@ ]+$", var.alert_email))
    error_message = "alert_email must be empty or an e-mail address."
  }
}

variable "backlog_alert_threshold" {
  description = "Alert when more strips than this wait in the queue and the backlog keeps growing for 10 minutes."
  type        = number
  default     = 200
}

# ---------------------------------------------------------------- store

variable "store" {
  description = "Where the store runs. \"in-cluster\": two Redis StatefulSets on the infra pool (the state role with an append-only file, the bytes role without persistence), for small deploys. \"memorystore\": two Memorystore for Redis Cluster instances (state with AOF persistence, bytes without), reached through Private Service Connect, the production store that grows by shards. docs/deploy.md#store-roles."
  type        = string
  default     = "in-cluster"

  validation {
    condition     = contains(["in-cluster", "memorystore"], var.store)
    error_message = "store must be \"in-cluster\" or \"memorystore\"."
  }
}

variable "store_subnet_cidr" {
  description = "Range of the subnet that receives the Memorystore clusters' Private Service Connect endpoints (two per cluster, four in all); used only with store = \"memorystore\". Backend and worker pods are allowed to reach exactly this range."
  type        = string
  default     = "10.40.0.0/28"

  validation {
    condition     = can(cidrhost(var.store_subnet_cidr, 0)) && tonumber(split("/", var.store_subnet_cidr)[1]) <= 28
    error_message = "store_subnet_cidr must be an IPv4 CIDR of /28 or larger (four endpoints and the subnet's reserved addresses)."
  }
}

variable "memorystore_state_shards" {
  description = "Shards of the state store (records, claims, pending sets; about 0.5 KB a job and a few small commands). One shard carries thousands of jobs a second (docs/deploy.md#capacity)."
  type        = number
  default     = 1

  validation {
    condition     = var.memorystore_state_shards >= 1 && var.memorystore_state_shards <= 250 && floor(var.memorystore_state_shards) == var.memorystore_state_shards
    error_message = "memorystore_state_shards must be a whole number from 1 to 250."
  }
}

variable "memorystore_state_replicas" {
  description = "Replicas per shard of the state store (0-2). One keeps the records through a node failure (the replica takes over); the append-only file covers the loss of a whole shard."
  type        = number
  default     = 1

  validation {
    condition     = contains([0, 1, 2], var.memorystore_state_replicas) && var.memorystore_state_shards * (1 + var.memorystore_state_replicas) <= 250
    error_message = "memorystore_state_replicas must be 0, 1 or 2, and shards x (1 + replicas) at most 250 (Memorystore's usage units per instance)."
  }
}

variable "memorystore_state_node_type" {
  description = "Node type of the state store's shards."
  type        = string
  default     = "REDIS_STANDARD_SMALL"

  validation {
    condition     = contains(["REDIS_SHARED_CORE_NANO", "REDIS_STANDARD_SMALL", "REDIS_HIGHMEM_MEDIUM", "REDIS_HIGHCPU_MEDIUM", "REDIS_STANDARD_LARGE", "REDIS_HIGHMEM_XLARGE", "REDIS_HIGHMEM_2XLARGE"], var.memorystore_state_node_type)
    error_message = "memorystore_state_node_type must be one of Memorystore's node types, e.g. REDIS_STANDARD_SMALL."
  }
}

variable "memorystore_bytes_shards" {
  description = "Shards of the bytes store (uploads while their jobs run, PNGs for DSOBEL_RESULT_TTL_SECS). The rate it holds grows with the shard count: docs/deploy.md#capacity."
  type        = number
  default     = 3

  validation {
    condition     = var.memorystore_bytes_shards >= 1 && var.memorystore_bytes_shards <= 250 && floor(var.memorystore_bytes_shards) == var.memorystore_bytes_shards
    error_message = "memorystore_bytes_shards must be a whole number from 1 to 250."
  }
}

variable "memorystore_bytes_replicas" {
  description = "Replicas per shard of the bytes store (0-2). 0: a failed node fails the jobs in flight on its shard (job-lost) and loses their results, which the bytes role accepts; 1 keeps them through a failover at twice the nodes."
  type        = number
  default     = 0

  validation {
    condition     = contains([0, 1, 2], var.memorystore_bytes_replicas) && var.memorystore_bytes_shards * (1 + var.memorystore_bytes_replicas) <= 250
    error_message = "memorystore_bytes_replicas must be 0, 1 or 2, and shards x (1 + replicas) at most 250 (Memorystore's usage units per instance)."
  }
}

variable "memorystore_bytes_node_type" {
  description = "Node type of the bytes store's shards."
  type        = string
  default     = "REDIS_STANDARD_SMALL"

  validation {
    condition     = contains(["REDIS_SHARED_CORE_NANO", "REDIS_STANDARD_SMALL", "REDIS_HIGHMEM_MEDIUM", "REDIS_HIGHCPU_MEDIUM", "REDIS_STANDARD_LARGE", "REDIS_HIGHMEM_XLARGE", "REDIS_HIGHMEM_2XLARGE"], var.memorystore_bytes_node_type)
    error_message = "memorystore_bytes_node_type must be one of Memorystore's node types, e.g. REDIS_STANDARD_SMALL."
  }
}

# ---------------------------------------------------------------- batches

variable "batch_buckets" {
  description = <<-EOT
    Cloud Storage buckets that batches may read and write (DSOBEL_BATCH_STORES), by name. Each:
      create               true: Terraform creates it (and on destroy leaves it and its objects
                           in place); false: an existing bucket, only granted access
      writable             false: read-only (a batch source); true: outputs and manifests too
      location             where a created bucket lives (default: the region)
      prefixes             allowed roots inside the bucket (default: the whole bucket)
      manifest_expiry_days > 0: objects under _manifest/ at each root are deleted after this many days
    The backend's and the workers' Kubernetes service accounts (Workload Identity) and the worker
    VMs' service account get object access to exactly these buckets; nothing project-wide.
  EOT
  type = map(object({
    create               = optional(bool, true)
    writable             = optional(bool, true)
    location             = optional(string, "")
    prefixes             = optional(list(string), [])
    manifest_expiry_days = optional(number, 0)
  }))
  default = {}

  validation {
    condition     = alltrue([for name, b in var.batch_buckets : can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", name)) && !startswith(name, "goog")])
    error_message = "batch_buckets keys must be bucket names: 3-63 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit, not starting with \"goog\"."
  }

  validation {
    condition     = alltrue(flatten([for b in var.batch_buckets : [for p in b.prefixes : can(regex("^[A-Za-z0-9._=-]+(/[A-Za-z0-9._=-]+)*$", p)) && !contains(split("/", p), "..") && !contains(split("/", p), ".")]]))
    error_message = "batch_buckets prefixes are relative folder paths (a/b), without leading or trailing '/', '.' or '..'."
  }

  validation {
    condition     = alltrue([for b in var.batch_buckets : b.manifest_expiry_days >= 0 && floor(b.manifest_expiry_days) == b.manifest_expiry_days])
    error_message = "manifest_expiry_days must be a whole number of days (0: keep manifests)."
  }
}
