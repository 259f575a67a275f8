# The store on Memorystore for Redis Cluster (var.store = "memorystore"): two
# clusters in the VPC's region, reached through Private Service Connect.
#   state  DSOBEL_REDIS_URL: records, claims, pending sets, rate limits. AOF
#          persistence synced every second, a replica per shard.
#   bytes  DSOBEL_REDIS_BYTES_URL: uploads, strip data, PNGs. No persistence;
#          more shards for more rate (docs/deploy.md#capacity).
# Both refuse writes when full (noeviction; Memorystore's default,
# volatile-lru, would silently evict keys of running jobs, since every dsobel
# key has a TTL), and the backend stops taking uploads before that.
#
# Neither has AUTH nor TLS: Memorystore authenticates only with IAM access
# tokens, which the client would have to renew every hour, and its TLS
# certificates come from a per-instance CA the client would have to be given.
# dsobel's client does neither today, so the clusters are reachable only from
# the VPC, through endpoints in a subnet of their own, and the pods' egress
# reaches that subnet only from backend and worker (components/memorystore).
# The rules Memorystore adds are checked by deploy/rehearsal/check_gke_rules.py
# (M1-M12 in docs/deploy.md).

locals {
  memorystore = var.store == "memorystore"

  # "redis://ADDRESS:PORT,...": the seed-list form DSOBEL_REDIS_URL takes for a
  # Redis Cluster. No credentials (no AUTH), no database number (a cluster has
  # only database 0), redis:// because transit encryption is off.
  memorystore_state_seeds = local.memorystore ? join(",", [for e in google_redis_cluster.state[0].discovery_endpoints : "redis://${e.address}:${e.port}"]) : ""
  memorystore_bytes_seeds = local.memorystore ? join(",", [for e in google_redis_cluster.bytes[0].discovery_endpoints : "redis://${e.address}:${e.port}"]) : ""

  memorystore_maintenance = {
    day  = "SUNDAY"
    hour = 2
  }
}

# The endpoints' own subnet: two addresses per cluster. Private Google Access
# is on as for every subnet of the VPC.
resource "google_compute_subnetwork" "store" {
  count = local.memorystore ? 1 : 0

  name                     = "${var.name}-store"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = var.store_subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Memorystore creates its Private Service Connect endpoints itself, in the
# subnets a policy for its service class names, in the same network and region.
# A cluster created before the policy exists fails; hence the depends_on below.
resource "google_network_connectivity_service_connection_policy" "memorystore" {
  count = local.memorystore ? 1 : 0

  name          = "${var.name}-memorystore"
  location      = var.region
  service_class = "gcp-memorystore-redis"
  description   = "Private Service Connect endpoints of the dsobel store (Memorystore for Redis Cluster)."
  network       = google_compute_network.vpc.id
  labels        = local.labels

  psc_config {
    subnetworks = [google_compute_subnetwork.store[0].id]
    # Two endpoints per cluster (discovery and data), two clusters.
    limit = 4
  }

  depends_on = [google_project_service.apis]
}

resource "google_redis_cluster" "state" {
  count = local.memorystore ? 1 : 0

  name          = "${var.name}-state"
  region        = var.region
  shard_count   = var.memorystore_state_shards
  replica_count = var.memorystore_state_replicas
  node_type     = var.memorystore_state_node_type
  labels        = local.labels

  authorization_mode      = "AUTH_MODE_DISABLED"
  transit_encryption_mode = "TRANSIT_ENCRYPTION_MODE_DISABLED"

  psc_configs {
    network = google_compute_network.vpc.id
  }

  zone_distribution_config {
    mode = "MULTI_ZONE"
  }

  persistence_config {
    mode = "AOF"
    aof_config {
      append_fsync = "EVERYSEC"
    }
  }

  redis_configs = {
    "maxmemory-policy" = "noeviction"
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = local.memorystore_maintenance.day
      start_time {
        hours   = local.memorystore_maintenance.hour
        minutes = 0
        seconds = 0
        nanos   = 0
      }
    }
  }

  deletion_protection_enabled = var.deletion_protection

  depends_on = [google_network_connectivity_service_connection_policy.memorystore]
}

resource "google_redis_cluster" "bytes" {
  count = local.memorystore ? 1 : 0

  name          = "${var.name}-bytes"
  region        = var.region
  shard_count   = var.memorystore_bytes_shards
  replica_count = var.memorystore_bytes_replicas
  node_type     = var.memorystore_bytes_node_type
  labels        = local.labels

  authorization_mode      = "AUTH_MODE_DISABLED"
  transit_encryption_mode = "TRANSIT_ENCRYPTION_MODE_DISABLED"

  psc_configs {
    network = google_compute_network.vpc.id
  }

  zone_distribution_config {
    mode = "MULTI_ZONE"
  }

  persistence_config {
    mode = "DISABLED"
  }

  redis_configs = {
    "maxmemory-policy" = "noeviction"
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = local.memorystore_maintenance.day
      start_time {
        hours   = local.memorystore_maintenance.hour
        minutes = 0
        seconds = 0
        nanos   = 0
      }
    }
  }

  deletion_protection_enabled = var.deletion_protection

  depends_on = [google_network_connectivity_service_connection_policy.memorystore]
}
