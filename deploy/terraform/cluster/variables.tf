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
  description = "Machine type of the infrastructure pool (RabbitMQ, Redis)."
  type        = string
  default     = "e2-standard-2"
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
    # The Terraform state: objects, and storage.buckets.get for the
    # `gcloud storage buckets describe` every pipeline starts with.
    "roles/storage.objectAdmin",
    "roles/storage.bucketViewer",
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
