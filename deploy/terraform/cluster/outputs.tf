output "cluster_name" {
  description = "GKE cluster name (gcloud container clusters get-credentials NAME --region REGION --dns-endpoint)."
  value       = google_container_cluster.this.name
}

output "region" {
  description = "Region of the cluster and subnets."
  value       = var.region
}

output "node_zones" {
  description = "Zones of the node pools (the worker VMs use the same ones)."
  value       = local.node_zones
}

output "network" {
  description = "VPC name."
  value       = google_compute_network.vpc.name
}

output "workers_subnetwork" {
  description = "Subnet name for the worker VMs (input of deploy/terraform/workers)."
  value       = google_compute_subnetwork.workers.name
}

output "workers_subnet_cidr" {
  description = "CIDR of the worker VM subnet; the only range allowed through the internal load balancers."
  value       = google_compute_subnetwork.workers.ip_cidr_range
}

output "rabbitmq_ilb_ip" {
  description = "Reserved internal IP of the RabbitMQ internal load balancer."
  value       = google_compute_address.rabbitmq_ilb.address
}

output "redis_ilb_ip" {
  description = "Reserved internal IP of the state Redis's internal load balancer (store = \"in-cluster\"); empty with Memorystore."
  value       = local.memorystore ? "" : google_compute_address.redis_ilb[0].address
}

output "web_address_name" {
  description = "Name of the global static address used by the frontend Ingress."
  value       = google_compute_global_address.web.name
}

output "web_ip" {
  description = "Public IP of the frontend (point your DNS record here)."
  value       = google_compute_global_address.web.address
}

output "artifact_registry" {
  description = "Docker registry path for the images: REGISTRY/dsobel and REGISTRY/dsobel-web."
  value       = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "artifact_repository_id" {
  description = "Artifact Registry repository id (input of deploy/terraform/workers)."
  value       = google_artifact_registry_repository.images.repository_id
}

output "node_service_account" {
  description = "Service account of the GKE nodes."
  value       = google_service_account.nodes.email
}

output "workload_identity_provider" {
  description = "Full provider name for google-github-actions/auth (GitHub variable GCP_WORKLOAD_IDENTITY_PROVIDER); empty without github_repository."
  value       = local.github_enabled ? google_iam_workload_identity_pool_provider.github[0].name : ""
}

output "deployer_service_account" {
  description = "Service account the pipelines impersonate (GitHub variable GCP_DEPLOYER_SA); empty without github_repository."
  value       = local.github_enabled ? google_service_account.deployer[0].email : ""
}

output "redis_bytes_ilb_ip" {
  description = "Reserved internal IP of the bytes Redis's internal load balancer (store = \"in-cluster\"); empty with Memorystore."
  value       = local.memorystore ? "" : google_compute_address.redis_bytes_ilb[0].address
}

output "store" {
  description = "Where the store runs: in-cluster or memorystore (scripts/deploy.sh renders the apps for it)."
  value       = var.store
}

output "store_subnet_cidr" {
  description = "Range of the Memorystore endpoints' subnet, the only one backend and worker pods may reach the store in; empty in-cluster."
  value       = local.memorystore ? google_compute_subnetwork.store[0].ip_cidr_range : ""
}

output "memorystore_state_seeds" {
  description = "DSOBEL_REDIS_URL for Memorystore: the state cluster's discovery endpoints as a seed list (redis://ADDRESS:PORT,...); empty in-cluster."
  value       = local.memorystore_state_seeds
}

output "memorystore_bytes_seeds" {
  description = "DSOBEL_REDIS_BYTES_URL for Memorystore: the bytes cluster's discovery endpoints as a seed list; empty in-cluster."
  value       = local.memorystore_bytes_seeds
}

output "batch_stores" {
  description = "DSOBEL_BATCH_STORES: the gs:// roots batches may read and write, comma separated; empty without batch buckets."
  value       = local.batch_stores
}

output "batch_buckets" {
  description = "var.batch_buckets as applied (input of deploy/terraform/workers, and what scripts/deploy.sh keeps when GCP_BATCH_BUCKETS is not set)."
  value       = var.batch_buckets
}

output "batch_buckets_created" {
  description = "The batch buckets this stack created, comma separated (make destroy leaves them and their objects in place and says so)."
  value       = join(",", keys(local.batch_created))
}
