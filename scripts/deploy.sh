#!/usr/bin/env bash
# End-to-end deployment to Google Cloud, in the order of the pipelines:
#   1   cluster      Terraform deploy/terraform/cluster (VPC, GKE, node pools, registry)
#   1.1 infra        RabbitMQ and Redis (kubectl apply, components rabbitmq and redis)
#   1.2 apps         build and push the images, roll out backend, worker, frontend
#   2   workers      Terraform deploy/terraform/workers (worker VMs on the internal LBs)
#
#   scripts/deploy.sh [all|cluster|infra|images|apps|backend|worker|frontend|workers|destroy]
#
# Needs: gcloud (logged in), terraform >= 1.6, kubectl, docker (with buildx).
# Settings (environment):
#   GCP_PROJECT     project id (required)
#   GCP_REGION      default us-central1
#   TF_STATE_BUCKET default ${GCP_PROJECT}-dsobel-tfstate (created if missing)
#   IMAGE_TAG       default: current git commit
#   DSOBEL_DOMAIN   optional: serve HTTPS on this domain (Google-managed certificate)
#   K8S_OVERLAY     gke (default) or gke-keda (KEDA must be installed)
#   AUTO_APPROVE    1 to skip Terraform's confirmation (CI)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

: "${GCP_PROJECT:?set GCP_PROJECT to your project id}"
GCP_REGION=${GCP_REGION:-us-central1}
TF_STATE_BUCKET=${TF_STATE_BUCKET:-${GCP_PROJECT}-dsobel-tfstate}
IMAGE_TAG=${IMAGE_TAG:-$(git rev-parse --short=12 HEAD)}
K8S_OVERLAY=${K8S_OVERLAY:-gke}
DSOBEL_DOMAIN=${DSOBEL_DOMAIN:-}
NAMESPACE=dsobel
TF_APPROVE=()
[ "${AUTO_APPROVE:-0}" = 1 ] && TF_APPROVE=(-auto-approve)

log() { printf '\n==> %s\n' "$*"; }

need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null || { echo "missing tool: $c" >&2; exit 1; }
  done
}

state_bucket() {
  if ! gcloud storage buckets describe "gs://$TF_STATE_BUCKET" --project "$GCP_PROJECT" >/dev/null 2>&1; then
    log "creating Terraform state bucket gs://$TF_STATE_BUCKET"
    gcloud storage buckets create "gs://$TF_STATE_BUCKET" --project "$GCP_PROJECT" \
      --location "$GCP_REGION" --uniform-bucket-level-access --public-access-prevention
    gcloud storage buckets update "gs://$TF_STATE_BUCKET" --versioning
  fi
}

tf() { # tf STACK terraform-args...
  local stack=$1
  shift
  terraform -chdir="deploy/terraform/$stack" "$@"
}

tf_init() {
  state_bucket
  tf "$1" init -input=false -reconfigure \
    -backend-config="bucket=$TF_STATE_BUCKET" -backend-config="prefix=dsobel/$1"
}

cluster_vars() {
  local v=(-var "project_id=$GCP_PROJECT" -var "region=$GCP_REGION")
  [ -n "${GCP_ZONES:-}" ] && v+=(-var "node_zones=$GCP_ZONES")
  [ -n "${GITHUB_REPOSITORY_FOR_WIF:-}" ] && v+=(-var "github_repository=$GITHUB_REPOSITORY_FOR_WIF")
  printf '%s\n' "${v[@]}"
}

out() { tf cluster output -raw "$1"; }

deploy_cluster() {
  need terraform gcloud
  log "1: cluster (deploy/terraform/cluster)"
  tf_init cluster
  mapfile -t vars < <(cluster_vars)
  tf cluster apply -input=false "${TF_APPROVE[@]}" "${vars[@]}"
}

credentials() {
  need gcloud kubectl
  tf_init cluster >/dev/null
  gcloud container clusters get-credentials "$(out cluster_name)" \
    --region "$(out region)" --project "$GCP_PROJECT" --dns-endpoint
}

registry() { tf_init cluster >/dev/null; out artifact_registry; }

# Image names as the gke overlay writes them (placeholders replaced at deploy time).
PLACEHOLDER_REGISTRY=us-central1-docker.pkg.dev/my-gcp-project/dsobel

# The digest reference of IMAGE:IMAGE_TAG in the registry (deploy by digest,
# not by tag); empty when that image was not built for this tag.
image_ref() {
  local digest
  digest=$(gcloud artifacts docker images describe "$1:$IMAGE_TAG" --format='value(image_summary.digest)' 2>/dev/null || true)
  [ -n "$digest" ] && echo "$1@$digest"
  return 0
}

# Writes a kustomization that layers deploy-time values over the overlay:
# image digests, the reserved internal LB IPs, the Ingress address and
# (optionally) the HTTPS domain. Prints its directory.
render_dir() {
  local dir reg img ref
  dir=$(mktemp -d)
  reg=$(registry)
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources: [$ROOT/deploy/k8s/overlays/$K8S_OVERLAY]"
    [ -n "$DSOBEL_DOMAIN" ] && echo "components: [$ROOT/deploy/k8s/components/gke-https]"
    echo "images:"
    for img in dsobel dsobel-web; do
      ref=$(image_ref "$reg/$img")
      [ -n "$ref" ] && echo "  - {name: $PLACEHOLDER_REGISTRY/$img, newName: $reg/$img, digest: ${ref#*@}}"
    done
    echo "patches:"
    echo "  - target: {kind: Service, name: rabbitmq-internal}"
    echo "    patch: '[{\"op\": \"add\", \"path\": \"/spec/loadBalancerIP\", \"value\": \"$(out rabbitmq_ilb_ip)\"}]'"
    echo "  - target: {kind: Service, name: redis-internal}"
    echo "    patch: '[{\"op\": \"add\", \"path\": \"/spec/loadBalancerIP\", \"value\": \"$(out redis_ilb_ip)\"}]'"
    echo "  - target: {kind: Ingress, name: frontend}"
    echo "    patch: '[{\"op\": \"replace\", \"path\": \"/metadata/annotations/kubernetes.io~1ingress.global-static-ip-name\", \"value\": \"$(out web_address_name)\"}]'"
    if [ -n "$DSOBEL_DOMAIN" ]; then
      echo "  - target: {kind: ManagedCertificate, name: frontend}"
      echo "    patch: '[{\"op\": \"replace\", \"path\": \"/spec/domains/0\", \"value\": \"$DSOBEL_DOMAIN\"}]'"
    fi
  } >"$dir/kustomization.yaml"
  echo "$dir"
}

check_secrets() {
  local f
  for f in rabbitmq redis app; do
    [ -f "deploy/k8s/overlays/gke/secrets/$f.env" ] || {
      echo "deploy/k8s/overlays/gke/secrets/$f.env is missing: run 'make secrets' first" >&2
      exit 1
    }
  done
}

# kubectl apply of the rendered stack, limited to some components.
apply_components() { # apply_components "rabbitmq,redis"
  local dir
  dir=$(render_dir)
  kubectl kustomize "$dir" | kubectl apply --server-side --field-manager=dsobel-deploy \
      -l "app.kubernetes.io/component in (shared,$1)" -f -
  rm -rf "$dir"
}

deploy_infra() {
  log "1.1: RabbitMQ and Redis"
  check_secrets
  credentials
  apply_components "rabbitmq,redis"
  kubectl -n "$NAMESPACE" rollout status statefulset/rabbitmq --timeout=10m
  kubectl -n "$NAMESPACE" rollout status statefulset/redis --timeout=5m
}

build_image() { # build_image dsobel|dsobel-web
  need docker gcloud
  local reg file
  reg=$(registry)
  case $1 in
    dsobel) file=deploy/docker/dsobel.Dockerfile ;;
    dsobel-web) file=deploy/docker/nginx.Dockerfile ;;
    *) echo "unknown image $1" >&2; exit 2 ;;
  esac
  log "image $reg/$1:$IMAGE_TAG (also tagged :main)"
  gcloud auth configure-docker "${reg%%/*}" --quiet
  docker buildx build --platform linux/amd64 -f "$file" \
    -t "$reg/$1:$IMAGE_TAG" -t "$reg/$1:main" --push .
}

build_images() {
  build_image dsobel
  build_image dsobel-web
}

deploy_app() { # deploy_app backend|worker|frontend
  local app=$1 kind=deployment
  check_secrets
  credentials
  apply_components "$app"
  kubectl -n "$NAMESPACE" rollout status "$kind/$app" --timeout=10m
}

deploy_apps() {
  log "1.2-1.4: backend, worker, frontend"
  build_images
  deploy_app backend
  deploy_app worker
  deploy_app frontend
  echo "frontend: http://$(out web_ip)/${DSOBEL_DOMAIN:+  (and https://$DSOBEL_DOMAIN/ once the certificate is active)}"
}

push_worker_secrets() {
  local name value
  for name in rabbitmq redis; do
    case $name in
      rabbitmq) value=$(sed -n 's/^RABBITMQ_DEFAULT_PASS=//p' deploy/k8s/overlays/gke/secrets/rabbitmq.env) ;;
      redis) value=$(sed -n 's/^REDIS_PASSWORD=//p' deploy/k8s/overlays/gke/secrets/redis.env) ;;
    esac
    # Add a version only when the value changed.
    if [ "$(gcloud secrets versions access latest --secret "dsobel-$name-password" --project "$GCP_PROJECT" 2>/dev/null || true)" != "$value" ]; then
      printf '%s' "$value" | gcloud secrets versions add "dsobel-$name-password" --project "$GCP_PROJECT" --data-file=-
    fi
  done
}

workers_vars() {
  tf_init cluster >/dev/null
  printf '%s\n' -var "project_id=$GCP_PROJECT" -var "region=$GCP_REGION" \
    -var "network=$(out network)" -var "subnetwork=$(out workers_subnetwork)" \
    -var "rabbitmq_address=$(out rabbitmq_ilb_ip):5672" -var "redis_address=$(out redis_ilb_ip):6379" \
    -var "artifact_repository_id=$(out artifact_repository_id)" \
    -var "image=$(image_ref "$(out artifact_registry)/dsobel")"
  [ -n "${GCP_ZONES:-}" ] && printf '%s\n' -var "zones=$GCP_ZONES"
  return 0
}

deploy_workers() {
  need terraform gcloud
  log "2: worker VMs (deploy/terraform/workers)"
  check_secrets
  mapfile -t vars < <(workers_vars)
  tf_init workers
  # Secrets first (empty containers), then their values, then the VMs.
  tf workers apply -input=false "${TF_APPROVE[@]}" "${vars[@]}" \
    -target=google_secret_manager_secret.rabbitmq_password -target=google_secret_manager_secret.redis_password
  push_worker_secrets
  tf workers apply -input=false "${TF_APPROVE[@]}" "${vars[@]}"
}

destroy_all() {
  need terraform gcloud kubectl
  log "destroy: worker VMs, Kubernetes objects, cluster"
  if tf_init workers >/dev/null && [ -n "$(tf workers state list 2>/dev/null)" ]; then
    mapfile -t vars < <(workers_vars)
    tf workers destroy -input=false "${TF_APPROVE[@]}" "${vars[@]}"
  fi
  tf_init cluster >/dev/null
  if [ -n "$(tf cluster state list 2>/dev/null)" ]; then
    # Delete load balancers first so their forwarding rules do not block the VPC deletion.
    if credentials >/dev/null 2>&1; then
      kubectl delete namespace "$NAMESPACE" --ignore-not-found --wait=true --timeout=10m || true
    fi
    mapfile -t vars < <(cluster_vars)
    tf cluster apply -input=false "${TF_APPROVE[@]}" "${vars[@]}" -var deletion_protection=false \
      -target=google_container_cluster.this
    tf cluster destroy -input=false "${TF_APPROVE[@]}" "${vars[@]}" -var deletion_protection=false
  fi
  echo "The state bucket gs://$TF_STATE_BUCKET is kept (it holds the state history); delete it by hand if wanted."
}

case "${1:-all}" in
  all)
    deploy_cluster
    deploy_infra
    deploy_apps
    deploy_workers
    ;;
  cluster) deploy_cluster ;;
  infra) deploy_infra ;;
  images) build_images ;;
  image-dsobel) build_image dsobel ;;
  image-web) build_image dsobel-web ;;
  apps) deploy_apps ;;
  backend | worker | frontend) deploy_app "$1" ;;
  workers) deploy_workers ;;
  destroy) destroy_all ;;
  *)
    echo "usage: $0 [all|cluster|infra|images|image-dsobel|image-web|apps|backend|worker|frontend|workers|destroy]" >&2
    exit 2
    ;;
esac
