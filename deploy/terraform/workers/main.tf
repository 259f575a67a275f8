locals {
  labels = merge({ app = "dsobel", component = "worker", managed-by = "terraform" }, var.labels)

  tag = "${var.name}-worker"

  registry_host = "${var.region}-docker.pkg.dev"

  # Google's load-balancer / health-check probe ranges.
  health_check_ranges = ["35.191.0.0/16", "130.211.0.0/22"]
  iap_range           = ["35.235.240.0/20"]

  settings = merge(var.worker_settings, {
    DSOBEL_HEALTH_LISTEN = "0.0.0.0:9090"
  }, var.batch_stores == "" ? {} : { DSOBEL_BATCH_STORES = var.batch_stores })

  # Built from names, not read with a data source: the stack must plan (and
  # destroy) even when the cluster stack's network is gone.
  subnetwork = "projects/${var.project_id}/regions/${var.region}/subnetworks/${var.subnetwork}"

  queue = lookup(var.worker_settings, "DSOBEL_QUEUE", "dsobel.strips")
}

# ---------------------------------------------------------------- identity

resource "google_service_account" "worker" {
  account_id   = "${var.name}-worker-vm"
  display_name = "dsobel worker VMs"
}

resource "google_project_iam_member" "worker" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_artifact_registry_repository_iam_member" "worker_pull" {
  project    = var.project_id
  location   = var.region
  repository = var.artifact_repository_id
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.worker.email}"
}

# Secret containers only: the values are added out of band
# (scripts/deploy.sh: gcloud secrets versions add), never through Terraform,
# so no password lands in the state.
resource "google_secret_manager_secret" "rabbitmq_password" {
  secret_id = "${var.name}-rabbitmq-password"
  labels    = local.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret" "redis_password" {
  secret_id = "${var.name}-redis-password"
  labels    = local.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_iam_member" "worker_rabbitmq" {
  secret_id = google_secret_manager_secret.rabbitmq_password.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_secret_manager_secret_iam_member" "worker_redis" {
  secret_id = google_secret_manager_secret.redis_password.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.worker.email}"
}

# Batches: object access to exactly the batch buckets, bucket by bucket (the
# cluster stack grants the same to the backend and worker pods).
resource "google_storage_bucket_iam_member" "worker_batch" {
  for_each = var.batch_buckets

  bucket = each.key
  role   = each.value.writable ? "roles/storage.objectUser" : "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.worker.email}"
}

# ---------------------------------------------------------------- VMs

resource "google_compute_instance_template" "worker" {
  name_prefix  = "${var.name}-worker-"
  description  = "dsobel worker on Container-Optimized OS"
  machine_type = var.machine_type
  region       = var.region
  tags         = [local.tag]
  labels       = local.labels

  can_ip_forward = false

  disk {
    source_image = "projects/cos-cloud/global/images/family/cos-stable"
    auto_delete  = true
    boot         = true
    disk_type    = "pd-balanced"
    disk_size_gb = 20
    labels       = local.labels
  }

  # No access_config block: no external IP. The subnet has Private Google
  # Access (Artifact Registry, Secret Manager, Logging) and no NAT.
  network_interface {
    subnetwork = local.subnetwork
  }

  service_account {
    email  = google_service_account.worker.email
    scopes = ["https://www.googleapis.com/auth/cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  # Spot VMs: Google may reclaim one at any time (30 s notice); the group
  # recreates it when capacity returns and its strips are redelivered.
  scheduling {
    preemptible                 = var.spot
    provisioning_model          = var.spot ? "SPOT" : "STANDARD"
    automatic_restart           = !var.spot
    on_host_maintenance         = var.spot ? "TERMINATE" : "MIGRATE"
    instance_termination_action = var.spot ? "DELETE" : null
  }

  metadata = {
    user-data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
      registry_host   = local.registry_host
      collector_image = var.collector_image
    })
    block-project-ssh-keys    = "true"
    enable-oslogin            = "TRUE"
    google-logging-enabled    = "true"
    google-monitoring-enabled = "true"
    serial-port-enable        = "false"

    # Settings read by the unit at start (see cloud-init.yaml.tftpl).
    dsobel-image           = var.image
    dsobel-rabbitmq-addr   = var.rabbitmq_address
    dsobel-rabbitmq-user   = var.rabbitmq_user
    dsobel-redis-url       = var.state_store_url
    dsobel-redis-bytes-url = var.bytes_store_url
    dsobel-redis-auth      = var.store_auth ? "true" : "false"
    dsobel-rabbitmq-secret = google_secret_manager_secret.rabbitmq_password.id
    dsobel-redis-secret    = google_secret_manager_secret.redis_password.id
    dsobel-settings        = join("\n", [for k in sort(keys(local.settings)) : "${k}=${local.settings[k]}"])
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_health_check" "worker" {
  name                = "${var.name}-worker-health"
  check_interval_sec  = 10
  timeout_sec         = 5
  healthy_threshold   = 2
  unhealthy_threshold = 6

  http_health_check {
    port         = 9090
    request_path = "/healthz"
  }

  log_config {
    enable = true
  }
}

resource "google_compute_region_instance_group_manager" "workers" {
  name                      = "${var.name}-workers"
  base_instance_name        = "${var.name}-worker"
  region                    = var.region
  distribution_policy_zones = length(var.zones) > 0 ? var.zones : null

  version {
    instance_template = google_compute_instance_template.worker.self_link_unique
  }

  update_policy {
    type                         = "PROACTIVE"
    minimal_action               = "REPLACE"
    instance_redistribution_type = "PROACTIVE"
    # At least the number of zones (a regional group's rule); 3 when the
    # zones are left to Google.
    max_surge_fixed       = max(3, length(var.zones))
    max_unavailable_fixed = 0
    replacement_method    = "SUBSTITUTE"
  }

  auto_healing_policies {
    health_check      = google_compute_health_check.worker.id
    initial_delay_sec = 180
  }

  lifecycle {
    ignore_changes = [target_size]
  }

  depends_on = [
    google_secret_manager_secret_iam_member.worker_rabbitmq,
    google_secret_manager_secret_iam_member.worker_redis,
    google_artifact_registry_repository_iam_member.worker_pull,
    google_storage_bucket_iam_member.worker_batch,
  ]
}

resource "google_compute_region_autoscaler" "workers" {
  name   = "${var.name}-workers"
  region = var.region
  target = google_compute_region_instance_group_manager.workers.id

  # Two signals; the group takes the larger recommendation. CPU, and the
  # queue backlog as KEDA uses it for the pods: strips ready in the RabbitMQ
  # work queue (the broker's own per-queue metric, scraped into Managed
  # Prometheus by the PodMonitoring "rabbitmq-queues"), one VM per strips_per_vm.
  # It is a per-group metric: the filter selects the one series of the one
  # broker.
  autoscaling_policy {
    min_replicas    = var.min_replicas
    max_replicas    = var.max_replicas
    cooldown_period = 120

    cpu_utilization {
      target = var.cpu_target
    }

    metric {
      name                       = "prometheus.googleapis.com/rabbitmq_detailed_queue_messages_ready/gauge"
      filter                     = "resource.type = \"prometheus_target\" AND resource.labels.namespace = \"dsobel\" AND resource.labels.job = \"rabbitmq-queues\" AND metric.labels.queue = \"${local.queue}\""
      single_instance_assignment = var.strips_per_vm
    }

    scale_in_control {
      time_window_sec = 600
      max_scaled_in_replicas {
        fixed = 1
      }
    }
  }
}

# ---------------------------------------------------------------- firewall

resource "google_compute_firewall" "worker_health" {
  name        = "${var.name}-worker-allow-health"
  network     = var.network
  description = "Google health checks to the worker's /healthz (autohealing)."
  direction   = "INGRESS"
  priority    = 1000

  source_ranges = local.health_check_ranges
  target_tags   = [local.tag]

  allow {
    protocol = "tcp"
    ports    = ["9090"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "worker_iap_ssh" {
  count = var.enable_iap_ssh ? 1 : 0

  name        = "${var.name}-worker-allow-iap-ssh"
  network     = var.network
  description = "SSH through Identity-Aware Proxy only (OS Login)."
  direction   = "INGRESS"
  priority    = 1000

  source_ranges = local.iap_range
  target_tags   = [local.tag]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "worker_deny_ingress" {
  name        = "${var.name}-worker-deny-ingress"
  network     = var.network
  description = "Nothing else may connect to a worker VM."
  direction   = "INGRESS"
  priority    = 65000

  source_ranges = ["0.0.0.0/0"]
  target_tags   = [local.tag]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
