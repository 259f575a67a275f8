#!/usr/bin/env bash
# End-to-end deployment to Google Cloud, in the order of the pipelines:
#   1   cluster      Terraform deploy/terraform/cluster (APIs, VPC, GKE, node pools, registry,
#                    dashboard and alerts, optional budget)
#   1.1 infra        RabbitMQ and the two Redis roles (kubectl apply, components rabbitmq
#                    and redis; with Memorystore, RabbitMQ only)
#   1.2 apps         build and push the images, roll out backend, worker, frontend
#   2   workers      Terraform deploy/terraform/workers (worker VMs on the internal LBs)
#
#   scripts/deploy.sh [all|cluster|infra|images|image-dsobel|image-web|apps|backend|worker|frontend|workers|destroy]
#
# Needs: gcloud (logged in), terraform >= 1.9, kubectl, docker (with buildx).
# Settings (environment):
#   GCP_PROJECT         project id (required)
#   GCP_REGION          default us-central1
#   GCP_ZONES           zones of the node pools and worker VMs, comma separated
#                       (e.g. europe-west1-b,europe-west1-c); default: two zones of the region
#   GCP_SPOT            1: app node pool and worker VMs on Spot VMs (cheaper, can be reclaimed)
#   GCP_BILLING_ACCOUNT billing account id (XXXXXX-XXXXXX-XXXXXX): create a budget alert
#   BUDGET_AMOUNT       monthly budget in the billing account's currency (default 100)
#   ALERT_EMAIL         e-mail address that receives the monitoring alerts
#   TF_STATE_BUCKET     default ${GCP_PROJECT}-dsobel-tfstate (created if missing)
#   IMAGE_TAG           default: current git commit
#   GCP_STORE           in-cluster (default) or memorystore: where the store runs
#                       (docs/deploy.md#store-roles). Once applied it sticks: a later run
#                       without GCP_STORE keeps what the cluster stack has
#   GCP_BATCH_BUCKETS   batch buckets, a Terraform map (the cluster stack's batch_buckets),
#                       e.g. '{"my-photos" = {writable = false}, "my-edges" = {}}'; sticks
#                       like GCP_STORE; '{}' removes them (created buckets stay, with
#                       their objects)
#   DSOBEL_DOMAIN       HTTPS on this domain (Google-managed certificate). Default: the
#                       sslip.io name of the reserved IP (WEB-IP-WITH-DASHES.sslip.io);
#                       "off" serves plain HTTP only
#   K8S_OVERLAY         gke (default) or gke-keda (KEDA must be installed)
#   AUTO_APPROVE        1 to skip Terraform's confirmation (CI)
# Any other Terraform variable can be set as TF_VAR_name (e.g. TF_VAR_app_machine_type).
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

# vCPUs the default sizes need at their minimum (2 infra e2-standard-2, 2 app
# e2-standard-4, 1 worker VM e2-standard-4) plus one surge node for upgrades.
MIN_VCPUS=20

log() { printf '\n==> %s\n' "$*"; }

need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null || { echo "missing tool: $c" >&2; exit 1; }
  done
}

# "a,b c" -> ["a","b","c"] (a Terraform list(string) for -var).
hcl_list() {
  local out="" z
  for z in ${1//,/ }; do
    out+="${out:+,}\"$z\""
  done
  printf '[%s]' "$out"
}

bucket_exists() {
  gcloud storage buckets describe "gs://$TF_STATE_BUCKET" --project "$GCP_PROJECT" >/dev/null 2>&1
}

state_bucket() {
  if ! bucket_exists; then
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

# The store and the batch buckets a run applies: as given, else what the
# cluster stack has (a run without them must not move the store or take the
# apps' bucket access away), else the defaults. Needs tf_init cluster first.
store_setting() {
  if [ -n "${GCP_STORE:-}" ]; then
    echo "$GCP_STORE"
  else
    out store 2>/dev/null || echo in-cluster
  fi
}

batch_setting() {
  local prev
  if [ -n "${GCP_BATCH_BUCKETS:-}" ]; then
    printf '%s' "$GCP_BATCH_BUCKETS"
    return 0
  fi
  prev=$(tf cluster output -json batch_buckets 2>/dev/null | tr -d '\n' || true)
  [[ "$prev" == \{* ]] && printf '%s' "$prev"
  return 0
}

cluster_vars() {
  local v=(-var "project_id=$GCP_PROJECT" -var "region=$GCP_REGION") buckets
  v+=(-var "store=$(store_setting)")
  buckets=$(batch_setting)
  [ -n "$buckets" ] && v+=(-var "batch_buckets=$buckets")
  [ -n "${GCP_ZONES:-}" ] && v+=(-var "node_zones=$(hcl_list "$GCP_ZONES")")
  [ "${GCP_SPOT:-0}" = 1 ] && v+=(-var "app_spot=true")
  [ -n "${GITHUB_REPOSITORY_FOR_WIF:-}" ] && v+=(-var "github_repository=$GITHUB_REPOSITORY_FOR_WIF")
  [ -n "${GCP_BILLING_ACCOUNT:-}" ] && v+=(-var "billing_account=$GCP_BILLING_ACCOUNT" -var "budget_amount=${BUDGET_AMOUNT:-100}")
  [ -n "${ALERT_EMAIL:-}" ] && v+=(-var "alert_email=$ALERT_EMAIL")
  printf '%s\n' "${v[@]}"
}

out() { tf cluster output -raw "$1"; }

# Service Usage and Resource Manager must be on before Terraform can enable
# anything else or read the project's IAM policy; a new project may lack them.
# Compute too, for the quota check below (Terraform would enable it anyway).
bootstrap_apis() {
  gcloud services enable serviceusage.googleapis.com cloudresourcemanager.googleapis.com \
    compute.googleapis.com --project "$GCP_PROJECT"
}

# Warns when the region's CPU quota cannot hold the default sizes.
check_quota() {
  local free
  free=$(gcloud compute regions describe "$GCP_REGION" --project "$GCP_PROJECT" \
    --flatten=quotas --filter='quotas.metric=CPUS' --format='value(quotas.limit,quotas.usage)' 2>/dev/null |
    awk '{printf "%d", $1 - $2}' || true)
  if [ -n "$free" ] && [ "$free" -lt "$MIN_VCPUS" ]; then
    echo "warning: $GCP_REGION has $free vCPUs of CPU quota left; the default sizes need $MIN_VCPUS." >&2
    echo "         Ask for more (IAM & Admin > Quotas, metric CPUS) or use smaller sizes (docs/deploy.md)." >&2
  fi
}

deploy_cluster() {
  need terraform gcloud
  log "1: cluster (deploy/terraform/cluster)"
  bootstrap_apis
  check_quota
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

# The HTTPS domain: DSOBEL_DOMAIN, or the sslip.io name of the reserved
# address (resolves to that address, so a Google-managed certificate can be
# issued for it), or nothing when DSOBEL_DOMAIN=off.
domain() {
  case "$DSOBEL_DOMAIN" in
    off) ;;
    "") echo "$(out web_ip | tr . -).sslip.io" ;;
    *) echo "$DSOBEL_DOMAIN" ;;
  esac
}

# Writes a kustomization that layers deploy-time values over the overlay:
# image digests, the reserved internal LB IPs, the Ingress address, the HTTPS
# domain, and the components of the store and batches the cluster stack was
# applied with (Memorystore's seed lists and subnet, the batch roots). No
# secret goes into it: Memorystore's URLs carry none. Kustomize accepts only
# relative paths, so the directory is made inside deploy/k8s (gitignored) and
# refers to the overlay relatively. Prints its path relative to the
# repository root.
render_dir() {
  local dir reg img ref dom store stores components=()
  reg=$(registry)
  if ! store=$(out store 2>/dev/null); then
    echo "the cluster stack's state has no output 'store': it was applied before the store had two" >&2
    echo "roles. Run 'make cluster' (or 'make deploy') first." >&2
    return 1
  fi
  dir=$(mktemp -d deploy/k8s/.deploy-XXXXXX)
  dom=$(domain)
  stores=$(out batch_stores)
  [ -n "$dom" ] && components+=(../components/gke-https)
  [ "$store" = memorystore ] && components+=(../components/memorystore)
  [ -n "$stores" ] && components+=(../components/batch-gcs)
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources: [../overlays/$K8S_OVERLAY]"
    if [ ${#components[@]} -gt 0 ]; then
      local list
      list=$(IFS=,; echo "${components[*]}")
      echo "components: [${list//,/, }]"
    fi
    echo "images:"
    for img in dsobel dsobel-web; do
      ref=$(image_ref "$reg/$img")
      [ -n "$ref" ] && echo "  - {name: $PLACEHOLDER_REGISTRY/$img, newName: $reg/$img, digest: ${ref#*@}}"
    done
    if [ "$store" = memorystore ]; then
      echo "secretGenerator:"
      echo "  - name: dsobel-app"
      echo "    behavior: merge"
      echo "    literals:"
      echo "      - DSOBEL_REDIS_URL=$(out memorystore_state_seeds)"
      echo "      - DSOBEL_REDIS_BYTES_URL=$(out memorystore_bytes_seeds)"
    fi
    echo "patches:"
    echo "  - target: {kind: Service, name: rabbitmq-internal}"
    echo "    patch: '[{\"op\": \"add\", \"path\": \"/spec/loadBalancerIP\", \"value\": \"$(out rabbitmq_ilb_ip)\"}]'"
    if [ "$store" = memorystore ]; then
      echo "  - target: {kind: NetworkPolicy, name: memorystore-clients}"
      echo "    patch: '[{\"op\": \"replace\", \"path\": \"/spec/egress/0/to/0/ipBlock/cidr\", \"value\": \"$(out store_subnet_cidr)\"}]'"
    else
      echo "  - target: {kind: Service, name: redis-internal}"
      echo "    patch: '[{\"op\": \"add\", \"path\": \"/spec/loadBalancerIP\", \"value\": \"$(out redis_ilb_ip)\"}]'"
      echo "  - target: {kind: Service, name: redis-bytes-internal}"
      echo "    patch: '[{\"op\": \"add\", \"path\": \"/spec/loadBalancerIP\", \"value\": \"$(out redis_bytes_ilb_ip)\"}]'"
    fi
    if [ -n "$stores" ]; then
      echo "  - target: {kind: ConfigMap, name: dsobel-config}"
      echo "    patch: '[{\"op\": \"replace\", \"path\": \"/data/DSOBEL_BATCH_STORES\", \"value\": \"$stores\"}]'"
    fi
    echo "  - target: {kind: Ingress, name: frontend}"
    echo "    patch: '[{\"op\": \"replace\", \"path\": \"/metadata/annotations/kubernetes.io~1ingress.global-static-ip-name\", \"value\": \"$(out web_address_name)\"}]'"
    if [ -n "$dom" ]; then
      echo "  - target: {kind: ManagedCertificate, name: frontend}"
      echo "    patch: '[{\"op\": \"replace\", \"path\": \"/spec/domains/0\", \"value\": \"$dom\"}]'"
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
  # app.env files written before the store had two roles lack the bytes store.
  grep -q '^DSOBEL_REDIS_BYTES_URL=' deploy/k8s/overlays/gke/secrets/app.env || {
    echo "deploy/k8s/overlays/gke/secrets/app.env has no DSOBEL_REDIS_BYTES_URL (the bytes store). Add the line" >&2
    echo "  DSOBEL_REDIS_BYTES_URL=redis://:REDIS_PASSWORD@redis-bytes.dsobel.svc.cluster.local:6379/0" >&2
    echo "with the password of redis.env (and to the DSOBEL_APP_ENV secret of the pipelines)." >&2
    exit 1
  }
}

# kubectl apply of the rendered stack, limited to some components.
RENDER_DIR=""
cleanup() { [ -z "$RENDER_DIR" ] || rm -rf "$RENDER_DIR"; }
trap cleanup EXIT
apply_components() { # apply_components "rabbitmq,redis"
  RENDER_DIR=$(render_dir)
  kubectl kustomize "$RENDER_DIR" | kubectl apply --server-side --field-manager=dsobel-deploy \
      -l "app.kubernetes.io/component in (shared,$1)" -f -
  rm -rf "$RENDER_DIR"
  RENDER_DIR=""
}

deploy_infra() {
  log "1.1: RabbitMQ and the store"
  check_secrets
  credentials
  apply_components "rabbitmq,redis"
  kubectl -n "$NAMESPACE" rollout status statefulset/rabbitmq --timeout=10m
  if [ "$(out store)" = memorystore ]; then
    echo "store: Memorystore for Redis Cluster (Terraform), nothing to roll out"
  else
    kubectl -n "$NAMESPACE" rollout status statefulset/redis --timeout=5m
    kubectl -n "$NAMESPACE" rollout status statefulset/redis-bytes --timeout=5m
  fi
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
  print_url
}

print_url() {
  local dom
  dom=$(domain)
  if [ -n "$dom" ]; then
    echo "frontend: https://$dom/ (the certificate turns Active 15-60 min after the first deploy;"
    echo "          until then http://$(out web_ip)/ redirects to it and the browser reports it unreachable)"
  else
    echo "frontend: http://$(out web_ip)/ (plain HTTP: DSOBEL_DOMAIN=off)"
  fi
  if grep -q '^DSOBEL_API_KEY=' deploy/k8s/overlays/gke/secrets/app.env 2>/dev/null; then
    echo "API key:  DSOBEL_API_KEY in deploy/k8s/overlays/gke/secrets/app.env (the page asks for it once)"
  fi
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

# Inputs of the workers stack from the cluster stack's outputs. For destroy
# ("destroy" as $1) every input falls back to a well-formed placeholder: the
# values do not matter for deleting, and neither the image nor the cluster
# stack may be there any more.
workers_vars() {
  local mode=${1:-apply} reg image zones rabbit network subnet repo state_url bytes_url auth buckets stores
  tf_init cluster >/dev/null || true
  reg=$(out artifact_registry 2>/dev/null || echo "$GCP_REGION-docker.pkg.dev/$GCP_PROJECT/dsobel")
  image=$(image_ref "$reg/dsobel")
  if [ -z "$image" ]; then
    if [ "$mode" = destroy ]; then
      image="$reg/dsobel:absent"
    else
      echo "$reg/dsobel:$IMAGE_TAG is not in the registry: run 'make apps' (or 'make images') first" >&2
      return 1
    fi
  fi
  network=$(out network 2>/dev/null || echo dsobel-vpc)
  subnet=$(out workers_subnetwork 2>/dev/null || echo dsobel-workers)
  rabbit=$(out rabbitmq_ilb_ip 2>/dev/null || echo 0.0.0.0)
  repo=$(out artifact_repository_id 2>/dev/null || echo dsobel)
  # The store: Memorystore's seed lists (no password), or the two in-cluster
  # Redis roles behind their internal load balancers (password from Secret Manager).
  if [ "$(out store 2>/dev/null || echo in-cluster)" = memorystore ]; then
    state_url=$(out memorystore_state_seeds)
    bytes_url=$(out memorystore_bytes_seeds)
    auth=false
  else
    state_url="redis://$(out redis_ilb_ip 2>/dev/null || echo 0.0.0.0):6379/0"
    bytes_url="redis://$(out redis_bytes_ilb_ip 2>/dev/null || echo 0.0.0.0):6379/0"
    auth=true
  fi
  buckets=$(tf cluster output -json batch_buckets 2>/dev/null | tr -d '\n' || true)
  [[ "$buckets" == \{* ]] || buckets='{}'
  stores=$(out batch_stores 2>/dev/null || true)
  if [ -n "${GCP_ZONES:-}" ]; then
    zones=$(hcl_list "$GCP_ZONES")
  else
    zones=$(tf cluster output -json node_zones 2>/dev/null | tr -d ' \n' || true)
    [[ "$zones" == \[* ]] || zones='[]'
  fi
  printf '%s\n' -var "project_id=$GCP_PROJECT" -var "region=$GCP_REGION" \
    -var "network=$network" -var "subnetwork=$subnet" \
    -var "rabbitmq_address=$rabbit:5672" -var "state_store_url=$state_url" \
    -var "bytes_store_url=$bytes_url" -var "store_auth=$auth" \
    -var "batch_buckets=$buckets" -var "batch_stores=$stores" \
    -var "artifact_repository_id=$repo" -var "image=$image" -var "zones=$zones"
  [ "${GCP_SPOT:-0}" = 1 ] && printf '%s\n' -var "spot=true"
  return 0
}

deploy_workers() {
  need terraform gcloud
  log "2: worker VMs (deploy/terraform/workers)"
  check_secrets
  local vars_text
  vars_text=$(workers_vars apply)
  mapfile -t vars <<<"$vars_text"
  tf_init workers
  # Secrets first (empty containers), then their values, then the VMs.
  tf workers apply -input=false "${TF_APPROVE[@]}" "${vars[@]}" \
    -target=google_secret_manager_secret.rabbitmq_password -target=google_secret_manager_secret.redis_password
  push_worker_secrets
  tf workers apply -input=false "${TF_APPROVE[@]}" "${vars[@]}"
}

# Persistent disks the GKE CSI driver made for the RabbitMQ and Redis volumes
# and that outlived the cluster (a namespace deletion that timed out): they
# are billed until deleted.
delete_orphan_disks() {
  local name zone
  while read -r name zone; do
    [ -n "$name" ] || continue
    echo "deleting leftover volume disk $name ($zone)"
    gcloud compute disks delete "$name" --zone "${zone##*/}" --project "$GCP_PROJECT" --quiet || true
  done < <(gcloud compute disks list --project "$GCP_PROJECT" \
    --filter='description~pvc/namespace.*dsobel AND -users:*' --format='value(name,zone)' 2>/dev/null || true)
}

destroy_all() {
  need terraform gcloud kubectl
  log "destroy: worker VMs, Kubernetes objects, cluster"
  if ! bucket_exists; then
    echo "no state bucket gs://$TF_STATE_BUCKET: nothing was deployed with it, nothing to destroy"
    return 0
  fi
  tf_init workers >/dev/null
  if [ -n "$(tf workers state list 2>/dev/null)" ]; then
    local vars_text
    vars_text=$(workers_vars destroy)
    mapfile -t vars <<<"$vars_text"
    tf workers destroy -input=false "${TF_APPROVE[@]}" "${vars[@]}"
  fi
  tf_init cluster >/dev/null
  local kept=""
  if [ -n "$(tf cluster state list 2>/dev/null)" ]; then
    kept=$(out batch_buckets_created 2>/dev/null || true)
    # Delete the namespace first: its Ingress and LoadBalancer Services own
    # forwarding rules, NEGs and firewall rules in the VPC (which would block
    # its deletion), and its PersistentVolumeClaims own disks.
    if credentials >/dev/null 2>&1; then
      kubectl delete namespace "$NAMESPACE" --ignore-not-found --wait=true --timeout=10m || true
    fi
    mapfile -t vars < <(cluster_vars)
    # Deletion protection off first: the GKE cluster's and the Memorystore
    # clusters' (none without Memorystore; targeting them is then a no-op).
    tf cluster apply -input=false "${TF_APPROVE[@]}" "${vars[@]}" -var deletion_protection=false \
      -target=google_container_cluster.this -target=google_redis_cluster.state -target=google_redis_cluster.bytes
    tf cluster destroy -input=false "${TF_APPROVE[@]}" "${vars[@]}" -var deletion_protection=false
  fi
  delete_orphan_disks
  echo "Kept: the state bucket gs://$TF_STATE_BUCKET (state history, a few cents a month) and the"
  echo "enabled APIs. Delete the bucket by hand when no longer needed:"
  echo "  gcloud storage rm -r gs://$TF_STATE_BUCKET"
  if [ -n "$kept" ]; then
    echo "Kept too, with their objects: the batch buckets gs://${kept//,/ gs://} (deploying again"
    echo "needs them with create = false in GCP_BATCH_BUCKETS; delete each with gcloud storage rm -r)."
  fi
}

case "${1:-all}" in
  all)
    deploy_cluster
    deploy_infra
    deploy_apps
    deploy_workers
    log "deployed"
    print_url
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
