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
  description = "Reserved internal IP of the Redis internal load balancer."
  value       = google_compute_address.redis_ilb.address
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
