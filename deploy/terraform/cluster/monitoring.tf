# Dashboard, alert policies and the optional budget. The metrics are the
# Prometheus metrics of backend and worker pods (PodMonitoring objects in
# deploy/k8s/overlays/gke/monitoring.yaml), of the worker VMs (collector in
# deploy/terraform/workers/cloud-init.yaml.tftpl) and of RabbitMQ, all in
# Google Managed Prometheus. Alert conditions are PromQL, so they can be
# created before the first sample arrives.

locals {
  alert_channels = var.alert_email == "" ? [] : [google_monitoring_notification_channel.email[0].id]

  alerts = {
    backlog = {
      name     = "dsobel: queue backlog growing"
      duration = "600s"
      query    = "max(dsobel_queue_depth{job=\"backend\"}) > ${var.backlog_alert_threshold} and deriv(max(dsobel_queue_depth{job=\"backend\"})[15m:1m]) > 0"
      doc      = "More than ${var.backlog_alert_threshold} strips wait in the work queue and the number keeps growing: the workers cannot keep up. Check that worker pods and VMs scale (HPA/KEDA, the worker VM group's autoscaler) and are ready."
    }
    dead_letters = {
      name     = "dsobel: jobs failing (dead-lettered strips)"
      duration = "0s"
      query    = "sum(increase(dsobel_jobs_finished_total{job=\"backend\",outcome=\"failed\"}[10m])) > 0 or max(rabbitmq_detailed_queue_messages{queue=~\".*[.]dead\"}) > 0"
      doc      = "Jobs failed, or strips wait in the dead-letter queue: a strip was delivered too often without success (a crashing worker or an image it cannot process). See the worker logs in Cloud Logging."
    }
    http_5xx = {
      name     = "dsobel: HTTP 5xx rate above 5 %"
      duration = "300s"
      query    = "sum(rate(dsobel_http_requests_total{job=\"backend\",status=~\"5..\",route!~\"/healthz|/readyz|/metrics\"}[5m])) / sum(rate(dsobel_http_requests_total{job=\"backend\",route!~\"/healthz|/readyz|/metrics\"}[5m])) > 0.05"
      doc      = "More than 5 % of the API's answers are server errors (503: Redis or RabbitMQ unavailable or full). Check the backend logs and the RabbitMQ and Redis pods."
    }
    no_workers = {
      name     = "dsobel: no worker consuming"
      duration = "300s"
      query    = "(sum(dsobel_consuming) or vector(0)) < 1"
      doc      = "No worker task (pod or VM) is attached to the queue: uploads are accepted but never processed. Check the worker Deployment, the worker VM group and the RabbitMQ pod."
    }
  }
}

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == "" ? 0 : 1

  display_name = "dsobel alerts"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "dsobel" {
  for_each = local.alerts

  display_name          = each.value.name
  combiner              = "OR"
  notification_channels = local.alert_channels
  user_labels           = local.labels

  conditions {
    display_name = each.value.name
    condition_prometheus_query_language {
      query               = each.value.query
      duration            = each.value.duration
      evaluation_interval = "60s"
    }
  }

  documentation {
    content   = each.value.doc
    mime_type = "text/markdown"
  }

  alert_strategy {
    auto_close = "1800s"
  }

  depends_on = [google_project_service.apis]
}

# The same dashboard can be imported by hand:
#   gcloud monitoring dashboards create --config-from-file=deploy/monitoring/dashboard.json
resource "google_monitoring_dashboard" "dsobel" {
  dashboard_json = file("${path.module}/../../monitoring/dashboard.json")

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------- budget


resource "google_billing_budget" "project" {
  count = var.billing_account == "" ? 0 : 1

  billing_account = var.billing_account
  display_name    = "${var.name} ${var.project_id}"

  budget_filter {
    projects = ["projects/${data.google_project.this.number}"]
  }

  amount {
    specified_amount {
      units = tostring(var.budget_amount)
    }
  }

  threshold_rules {
    threshold_percent = 0.5
  }
  threshold_rules {
    threshold_percent = 0.9
  }
  threshold_rules {
    threshold_percent = 1.0
  }
  threshold_rules {
    threshold_percent = 1.0
    spend_basis       = "FORECASTED_SPEND"
  }

  depends_on = [google_project_service.apis]
}
