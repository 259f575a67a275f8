#!/usr/bin/env bash
# Creates the gitignored Secret env files of a Kubernetes overlay with fresh
# random passwords, consistent across rabbitmq.env, redis.env and app.env.
#   scripts/gen-secrets.sh gke        (make secrets OVERLAY=gke)
# Refuses to overwrite existing files. The API key is on: the public site
# answers the API only with it.
set -euo pipefail
overlay=${1:-gke}
dir="$(cd "$(dirname "$0")/.." && pwd)/deploy/k8s/overlays/$overlay/secrets"
[ -d "$dir" ] || { echo "no such overlay secrets dir: $dir" >&2; exit 2; }
for f in rabbitmq.env redis.env app.env; do
  if [ -e "$dir/$f" ]; then
    echo "$dir/$f exists; not overwriting (delete it first to rotate)" >&2
    exit 1
  fi
done
rand() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
umask 077
rabbit=$(rand)
redis=$(rand)
api=$(rand)
cat >"$dir/rabbitmq.env" <<EOT
RABBITMQ_DEFAULT_USER=dsobel
RABBITMQ_DEFAULT_PASS=$rabbit
EOT
cat >"$dir/redis.env" <<EOT
REDIS_PASSWORD=$redis
EOT
cat >"$dir/app.env" <<EOT
DSOBEL_AMQP_URL=amqp://dsobel:$rabbit@rabbitmq.dsobel.svc.cluster.local:5672/%2f
# The state store (records, claims) and the bytes store (uploads, results): the two
# in-cluster Redis roles, one password. The Memorystore variant replaces both at deploy time.
DSOBEL_REDIS_URL=redis://:$redis@redis.dsobel.svc.cluster.local:6379/0
DSOBEL_REDIS_BYTES_URL=redis://:$redis@redis-bytes.dsobel.svc.cluster.local:6379/0
# The API (upload, status, result, events) requires \`Authorization: Bearer <key>\`
# (or ?access_token=<key>); the web page asks for it once. Comment out to open it.
DSOBEL_API_KEY=$api
EOT
echo "wrote $dir/{rabbitmq,redis,app}.env (mode 600)"
echo "API key (enter it in the page's \"API key\" box; also in app.env): $api"
