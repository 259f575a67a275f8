locals {
  labels = merge({ app = "dsobel", managed-by = "terraform" }, var.labels)

  # Label and taint that the Kubernetes manifests select and tolerate
  # (deploy/k8s/overlays/gke). Change both sides together.
  pool_label_key = "dsobel.io/pool"

  # Every API a resource of either stack (or scripts/deploy.sh) calls. Each
  # resource that needs one depends on google_project_service.apis, directly or
  # through a resource that does: on a new project the first apply would
  # otherwise race the enablement.
  apis = [
    "artifactregistry.googleapis.com",
    "billingbudgets.googleapis.com",
    "binaryauthorization.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    # Memorystore for Redis Cluster and the Private Service Connect automation
    # that places its endpoints in the VPC (store = "memorystore"; free to
    # enable otherwise).
    "networkconnectivity.googleapis.com",
    "redis.googleapis.com",
    "secretmanager.googleapis.com",
    "serviceconsumermanagement.googleapis.com",
    "serviceusage.googleapis.com",
    # Batch buckets (var.batch_buckets).
    "storage.googleapis.com",
    "sts.googleapis.com",
  ]

  # Node zones: as given, or the first two zones of the region.
  node_zones = length(var.node_zones) > 0 ? var.node_zones : slice(sort(data.google_compute_zones.available.names), 0, 2)

  # Least privilege for GKE nodes: the predefined role Google recommends for
  # node service accounts (logs, metrics, autoscaling metrics) and nothing else.
  node_roles = [
    "roles/container.defaultNodeServiceAccount",
  ]
}

resource "google_project_service" "apis" {
  for_each = toset(local.apis)

  service            = each.value
  disable_on_destroy = false
}

# Read after the Compute API is on (on a new project it is not yet at plan time).
data "google_compute_zones" "available" {
  region = var.region
  status = "UP"

  depends_on = [google_project_service.apis]
}

# The project's number: the budget's filter and the Workload Identity
# principals of the batch buckets' IAM name the project by it. Read through
# Resource Manager, which scripts/deploy.sh enables before Terraform runs.
data "google_project" "this" {}

# ---------------------------------------------------------------- network

resource "google_compute_network" "vpc" {
  name                    = "${var.name}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.apis]
}

# Explicit lowest-priority deny for ingress (GKE adds its own allow rules for
# nodes, health checks and load balancers above it), logged.
resource "google_compute_firewall" "deny_ingress" {
  name        = "${var.name}-deny-all-ingress"
  network     = google_compute_network.vpc.name
  description = "Default deny for ingress into the dsobel VPC."
  direction   = "INGRESS"
  priority    = 65534

  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_subnetwork" "gke" {
  name                     = "${var.name}-gke"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = var.gke_subnet_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_subnetwork" "workers" {
  name                     = "${var.name}-workers"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = var.workers_subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Private nodes have no public address; Cloud NAT lets them pull the public
# RabbitMQ, Redis and nginx base images. The worker subnet is deliberately not
# NATed: worker VMs reach only Google APIs (Private Google Access) and the
# internal load balancers.
resource "google_compute_router" "router" {
  name    = "${var.name}-router"
  region  = var.region
  network = google_compute_network.vpc.id
}

resource "google_compute_router_nat" "nat" {
  name                               = "${var.name}-nat"
  router                             = google_compute_router.router.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.gke.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Fixed internal addresses for the RabbitMQ and Redis internal load balancers,
# so the worker VMs' settings do not change when the Services are recreated.
# The two Redis roles have load balancers only while they run in the cluster.
resource "google_compute_address" "rabbitmq_ilb" {
  name         = "${var.name}-rabbitmq-ilb"
  region       = var.region
  subnetwork   = google_compute_subnetwork.gke.id
  address_type = "INTERNAL"
  purpose      = "GCE_ENDPOINT"
  labels       = local.labels
}

resource "google_compute_address" "redis_ilb" {
  count = local.memorystore ? 0 : 1

  name         = "${var.name}-redis-ilb"
  region       = var.region
  subnetwork   = google_compute_subnetwork.gke.id
  address_type = "INTERNAL"
  purpose      = "GCE_ENDPOINT"
  labels       = local.labels
}

resource "google_compute_address" "redis_bytes_ilb" {
  count = local.memorystore ? 0 : 1

  name         = "${var.name}-redis-bytes-ilb"
  region       = var.region
  subnetwork   = google_compute_subnetwork.gke.id
  address_type = "INTERNAL"
  purpose      = "GCE_ENDPOINT"
  labels       = local.labels
}

# Global address for the frontend Ingress (deploy/k8s/overlays/gke/ingress.yaml).
resource "google_compute_global_address" "web" {
  name   = "${var.name}-web"
  labels = local.labels

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------- registry

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Images are public build outputs of this repository; Google-managed encryption is sufficient and a KMS key would add a key-management duty and cost to every install.
  repository_id = var.name
  location      = var.region
  format        = "DOCKER"
  description   = "dsobel container images (dsobel, dsobel-web)"
  labels        = local.labels

  docker_config {
    immutable_tags = false
  }

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }

  cleanup_policies {
    id     = "delete-old-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "1209600s"
    }
  }

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------- node identity

resource "google_service_account" "nodes" {
  account_id   = "${var.name}-gke-nodes"
  display_name = "dsobel GKE nodes (least privilege)"

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "nodes" {
  for_each = toset(local.node_roles)

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_artifact_registry_repository_iam_member" "nodes_pull" {
  project    = var.project_id
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.nodes.email}"
}

# ---------------------------------------------------------------- cluster

resource "google_container_cluster" "this" {
  #checkov:skip=CKV_GCP_18:The control plane's IP endpoint is locked to master_authorized_networks (empty by default); operators and pipelines use the IAM-authorized DNS endpoint, which needs no public IP allow-list.
  #checkov:skip=CKV_GCP_12:Network policy is enforced by GKE Dataplane V2 (datapath_provider = ADVANCED_DATAPATH); the legacy Calico network_policy block must stay off with it.
  #checkov:skip=CKV_GCP_24:PodSecurityPolicy was removed from Kubernetes in 1.25; the namespace enforces the restricted Pod Security Standard instead (deploy/k8s/base/namespace.yaml).
  #checkov:skip=CKV_GCP_65:Google Groups for RBAC needs a Workspace/Cloud Identity domain this project cannot assume; RBAC is granted to IAM principals.
  name     = "${var.name}-gke"
  location = var.region

  node_locations = local.node_zones

  # Node pools are managed below; the default pool is created and removed at once.
  remove_default_node_pool = true
  initial_node_count       = 1

  network         = google_compute_network.vpc.id
  subnetwork      = google_compute_subnetwork.gke.id
  networking_mode = "VPC_NATIVE"

  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  datapath_provider = "ADVANCED_DATAPATH"

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = var.master_cidr
  }

  master_authorized_networks_config {
    gcp_public_cidrs_access_enabled = false

    dynamic "cidr_blocks" {
      for_each = var.master_authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  control_plane_endpoints_config {
    dns_endpoint_config {
      allow_external_traffic = true
    }
  }

  release_channel {
    channel = var.release_channel
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  enable_shielded_nodes       = true
  enable_intranode_visibility = true
  enable_legacy_abac          = false

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  addons_config {
    http_load_balancing {
      disabled = false
    }
    horizontal_pod_autoscaling {
      disabled = false
    }
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }

  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS"]
    managed_prometheus {
      enabled = true
    }
  }

  # Configuration auditing only: GKE no longer offers the basic workload
  # vulnerability scanning (VULNERABILITY_BASIC); Artifact Registry scanning or
  # VULNERABILITY_ENTERPRISE (paid) are the alternatives.
  security_posture_config {
    mode               = "BASIC"
    vulnerability_mode = "VULNERABILITY_DISABLED"
  }

  # GKE requires at least 48 hours of maintenance availability in any 32 days
  # (and windows of at least 4 hours). Saturdays and Sundays 00:00-12:00 UTC
  # give 24 hours a week, at least 96 hours in any 32 days (checked by
  # deploy/rehearsal/check_gke_rules.py).
  maintenance_policy {
    recurring_window {
      start_time = "2025-01-04T00:00:00Z"
      end_time   = "2025-01-04T12:00:00Z"
      recurrence = "FREQ=WEEKLY;BYDAY=SA,SU"
    }
  }

  # Settings for the default pool that exists for a moment during creation.
  node_config {
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    image_type      = "COS_CONTAINERD"

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    metadata = {
      disable-legacy-endpoints = "true"
    }
  }

  resource_labels     = local.labels
  deletion_protection = var.deletion_protection

  lifecycle {
    ignore_changes = [node_config]
  }

  depends_on = [google_project_service.apis, google_project_iam_member.nodes]
}

resource "google_container_node_pool" "infra" {
  name       = "infra"
  cluster    = google_container_cluster.this.id
  location   = var.region
  node_count = var.infra_nodes_per_zone

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type    = var.infra_machine_type
    image_type      = "COS_CONTAINERD"
    disk_type       = "pd-balanced"
    disk_size_gb    = var.node_disk_size_gb
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    labels = {
      (local.pool_label_key) = "infra"
    }

    taint {
      key    = local.pool_label_key
      value  = "infra"
      effect = "NO_SCHEDULE"
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    metadata = {
      disable-legacy-endpoints = "true"
    }

    resource_labels = local.labels
  }
}

resource "google_container_node_pool" "app" {
  name     = "app"
  cluster  = google_container_cluster.this.id
  location = var.region

  autoscaling {
    total_min_node_count = var.app_min_nodes
    total_max_node_count = var.app_max_nodes
    location_policy      = "BALANCED"
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type    = var.app_machine_type
    spot            = var.app_spot
    image_type      = "COS_CONTAINERD"
    disk_type       = "pd-balanced"
    disk_size_gb    = var.node_disk_size_gb
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    labels = {
      (local.pool_label_key) = "app"
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    metadata = {
      disable-legacy-endpoints = "true"
    }

    resource_labels = local.labels
  }

  lifecycle {
    ignore_changes = [node_count]
  }
}
