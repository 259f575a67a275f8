output "instance_group" {
  description = "Regional managed instance group of the worker VMs."
  value       = google_compute_region_instance_group_manager.workers.instance_group
}

output "instance_group_manager" {
  description = "Name of the managed instance group (gcloud compute instance-groups managed ...)."
  value       = google_compute_region_instance_group_manager.workers.name
}

output "service_account" {
  description = "Service account of the worker VMs."
  value       = google_service_account.worker.email
}

output "rabbitmq_password_secret" {
  description = "Secret Manager secret the VMs read the RabbitMQ password from (add a version with gcloud)."
  value       = google_secret_manager_secret.rabbitmq_password.secret_id
}

output "redis_password_secret" {
  description = "Secret Manager secret the VMs read the Redis password from (add a version with gcloud)."
  value       = google_secret_manager_secret.redis_password.secret_id
}
