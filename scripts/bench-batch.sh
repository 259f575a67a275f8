#!/usr/bin/env bash
# Batches against HTTP uploads, on the same workers in one run: N one-megabyte JPEGs from
# SeaweedFS to SeaweedFS with `dsobel batch`, and N uploads of the same JPEG with `dsobel bench`
# (closed loop, waiting for each result), through WORKERS worker processes on the local
# RabbitMQ and Redis. Prints each path's throughput, their ratio, the Redis traffic per batch
# item (bytes in and out of Redis, from INFO stats) and the backend's CPU per batch item (from
# /proc). Nothing else should use the local Redis while it runs.
#
# Each worker process is capped at CPU_CAP of a core in a CPU control group of its own (as root;
# cgroup v1 or v2), as if it were a small machine of its own: the workers then bind both paths,
# not the object store, Redis and the backend sharing this machine's cores with them (on a
# cloud, the bucket is not on the workers' machines). CPU_CAP=0 runs them uncapped.
#
#   scripts/bench-batch.sh                    # N=1000 WORKERS=2 CONCURRENCY=8
#   N=200 scripts/bench-batch.sh              # a quicker run
#
# Settings: DSOBEL_BIN (default target/release/dsobel), N, WORKERS, CPU_CAP (default 0.5),
# CONCURRENCY (HTTP clients),
# DSOBEL_SEAWEEDFS_PORT (default 18333; the server takes the ten ports after it too).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${DSOBEL_BIN:-target/release/dsobel}
n=${N:-1000}
workers=${WORKERS:-2}
concurrency=${CONCURRENCY:-8}
cpu_cap=${CPU_CAP:-0.5}
export DSOBEL_SEAWEEDFS_PORT=${DSOBEL_SEAWEEDFS_PORT:-18333}
work=$(mktemp -d /tmp/dsobel-bench-batch.XXXXXX)
export DSOBEL_SEAWEEDFS_DIR=$work/seaweedfs
pids=()
groups=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.5
  for group in "${groups[@]}"; do rmdir "$group" 2>/dev/null || true; done
  bash scripts/seaweedfs.sh stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

[ -x "$bin" ] || { echo "no dsobel binary at $bin (cargo build --release)" >&2; exit 1; }
eval "$(bash scripts/seaweedfs.sh start bench-in bench-out)"
filer=http://127.0.0.1:$((DSOBEL_SEAWEEDFS_PORT + 6))
"$bin" gen-image --size 1mb --output "$work/one.jpg"
echo "putting $n copies of a $(stat -c %s "$work/one.jpg")-byte JPEG into s3://bench-in" >&2
seq -f "%05g" 1 "$n" | xargs -P 8 -I{} curl -fsS -o /dev/null -X PUT --data-binary @"$work/one.jpg" \
  "$filer/buckets/bench-in/photos/img-{}.jpg"

export DSOBEL_AMQP_URL=${DSOBEL_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export DSOBEL_REDIS_URL=${DSOBEL_REDIS_URL:-redis://127.0.0.1:6379/}
export DSOBEL_QUEUE=dsobel-bench-batch-$$ DSOBEL_NAMESPACE=dsobelbenchbatch$$
export DSOBEL_BATCH_STORES=s3://bench-in,s3://bench-out RUST_LOG=warn
# Puts process $1 in a CPU group of its own capped at $cpu_cap of a core.
cap() {
  [ "$cpu_cap" = 0 ] && return
  local period=100000 quota group
  quota=$(awk -v c="$cpu_cap" 'BEGIN { printf "%d", c * 100000 }')
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    group=/sys/fs/cgroup/dsobel-bench-batch-$$-$1
    echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    mkdir "$group" && echo "$quota $period" >"$group/cpu.max"
  else
    group=/sys/fs/cgroup/cpu/dsobel-bench-batch-$$-$1
    mkdir "$group" && echo "$period" >"$group/cpu.cfs_period_us" && echo "$quota" >"$group/cpu.cfs_quota_us"
  fi
  echo "$1" >"$group/cgroup.procs"
  groups+=("$group")
}
for i in $(seq 1 "$workers"); do
  "$bin" worker --workers 1 --prefetch 1 >"$work/worker-$i.log" 2>&1 &
  pids+=($!)
  cap $!
done
"$bin" serve --listen 127.0.0.1:0 --address-file "$work/address" --max-queued-jobs 100000 >"$work/serve.log" 2>&1 &
serve_pid=$!
pids+=("$serve_pid")
for _ in $(seq 1 100); do [ -s "$work/address" ] && break; sleep 0.2; done
url=http://$(cat "$work/address")

redis_io() {
  redis-cli -u "$DSOBEL_REDIS_URL" info stats | tr -d '\r' |
    awk -F: '/^total_net_input_bytes|^total_net_output_bytes/ { sum += $2 } END { print sum }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ticks_per_sec=$(getconf CLK_TCK)

echo "HTTP uploads: $n of the same JPEG, $concurrency clients" >&2
"$bin" bench --url "$url" --image "$work/one.jpg" --concurrency "$concurrency" --requests "$n" \
  --workers-label "$workers" >"$work/http.txt" 2>&1
http_rate=$(awk -v w="$workers" '$1 == w && $2 == "one.jpg" { print $7 }' "$work/http.txt")
failed=$(awk -v w="$workers" '$1 == w && $2 == "one.jpg" { print $6 }' "$work/http.txt")
if [ -z "$http_rate" ] || [ "$failed" != 0 ]; then
  cat "$work/http.txt" >&2
  echo "the HTTP run failed" >&2
  exit 1
fi

echo "batch: s3://bench-in/photos -> s3://bench-out/edges" >&2
io_before=$(redis_io)
cpu_before=$(cpu_ticks "$serve_pid")
started=$(date +%s.%N)
"$bin" batch s3://bench-in/photos s3://bench-out/edges --server "$url" --quiet | tee "$work/batch.txt" >&2
batch_secs=$(echo "$(date +%s.%N) - $started" | bc -l)
io_after=$(redis_io)
cpu_after=$(cpu_ticks "$serve_pid")

awk -v n="$n" -v http="$http_rate" -v bs="$batch_secs" -v io=$((io_after - io_before)) \
  -v cpu=$((cpu_after - cpu_before)) -v hz="$ticks_per_sec" -v w="$workers" -v capped="$cpu_cap" 'BEGIN {
  batch = n / bs
  printf "workers %d (each capped at %s of a core), %d one-megabyte JPEGs\n", w, capped, n
  printf "HTTP uploads   %7.1f images/s\n", http
  printf "batch          %7.1f images/s  (%.2f x the uploads)\n", batch, batch / http
  printf "Redis traffic  %7.0f bytes per batch item (in and out)\n", io / n
  printf "backend CPU    %7.3f ms per batch item\n", cpu / hz * 1000 / n
}'
