#!/usr/bin/env bash
# Proof of behaviour without a cluster: the release binary run as the cluster
# runs it, with the settings of the Kubernetes ConfigMap
# (deploy/k8s/base/config.yaml), against a local RabbitMQ (127.0.0.1:5672,
# guest/guest) and Redis (127.0.0.1:6379, no password):
#   one `dsobel serve` and N `dsobel worker` processes, one job through
#   (upload -> strips over RabbitMQ -> results in Redis -> one PNG back; the
#   state in database 0, the bytes in database 1),
#   then SIGTERM to every process, each of which must exit 0.
#
#   deploy/local/run-stack.sh [--image PATH] [--workers N] [--timeout SECONDS]
#
# DSOBEL_BIN selects the binary (default target/release/dsobel). Without
# --image a small PNG is generated (python3 standard library only). Each run
# uses its own queue name, so runs never collide; its queues are deleted at
# the end when rabbitmqctl is available.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DSOBEL_BIN=${DSOBEL_BIN:-$ROOT/target/release/dsobel}
CONFIGMAP="$ROOT/deploy/k8s/base/config.yaml"
IMAGE=""
WORKERS=2
TIMEOUT=60

while [ $# -gt 0 ]; do
  case $1 in
    --image) IMAGE=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

log() { printf '[run-stack] %s\n' "$*"; }
die() { printf '[run-stack] FAIL: %s\n' "$*" >&2; exit 1; }

[ -x "$DSOBEL_BIN" ] || die "no executable at DSOBEL_BIN=$DSOBEL_BIN (build with: cargo build --release --locked)"
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "--workers must be a positive number"
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
tcp_open 5672 || die "RabbitMQ does not answer on 127.0.0.1:5672"
tcp_open 6379 || die "Redis does not answer on 127.0.0.1:6379"

WORK=$(mktemp -d)
declare -a PIDS=()
declare -a NAMES=()

QUEUE="dsobel.strips.test-$RANDOM$RANDOM-$$"

cleanup() {
  local i
  for i in "${!PIDS[@]}"; do
    if kill -0 "${PIDS[$i]}" 2>/dev/null; then
      kill -KILL "${PIDS[$i]}" 2>/dev/null || true
    fi
  done
  if command -v rabbitmqctl >/dev/null; then
    rabbitmqctl -q list_queues name 2>/dev/null | grep -F "$QUEUE" | while read -r q; do
      rabbitmqctl -q delete_queue "$q" >/dev/null 2>&1 || true
    done || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

show_logs() {
  local f
  for f in "$WORK"/*.log; do
    [ -e "$f" ] || continue
    echo "---- last lines of $(basename "$f")" >&2
    tail -n 30 "$f" >&2
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- settings: the ConfigMap's data keys, with the hosts overridden for localhost
python3 - "$CONFIGMAP" >"$WORK/env.sh" <<'PY'
import re, shlex, sys
data, seen = False, {}
for line in open(sys.argv[1]):
    if re.match(r"^data:\s*$", line):
        data = True
        continue
    if data:
        if line.strip() == "" or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            break
        m = re.match(r'^\s+([A-Z][A-Z0-9_]*):\s*(?:"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|(\S.*?))\s*$', line)
        if not m:
            sys.exit(f"cannot parse ConfigMap line: {line!r}")
        key = m.group(1)
        val = next(g for g in m.groups()[1:] if g is not None)
        seen[key] = val
if not seen:
    sys.exit("no data keys found in the ConfigMap")
for k, v in seen.items():
    print(f"export {k}={shlex.quote(v)}")
PY
# shellcheck source=/dev/null
. "$WORK/env.sh"
log "settings from $(basename "$CONFIGMAP"): $(sed -n 's/^export \([A-Z0-9_]*\)=.*/\1/p' "$WORK/env.sh" | tr '\n' ' ')"

PORT=$(free_port)
export DSOBEL_LISTEN="127.0.0.1:$PORT"
export DSOBEL_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
export DSOBEL_REDIS_URL="redis://127.0.0.1:6379/0"
# The store's two roles, as the cluster runs them: the bytes (uploads, results)
# in a database of their own on the same local Redis.
export DSOBEL_REDIS_BYTES_URL="redis://127.0.0.1:6379/1"
export DSOBEL_QUEUE="$QUEUE"
unset DSOBEL_API_KEY
# Only the workers serve health endpoints; each gets its own port below.
unset DSOBEL_HEALTH_LISTEN
BASE="http://127.0.0.1:$PORT"
log "queue $DSOBEL_QUEUE, backend on $BASE, $WORKERS worker(s)"

# ---- input image
if [ -z "$IMAGE" ]; then
  IMAGE="$WORK/input.png"
  python3 - "$IMAGE" <<'PY'
import struct, sys, zlib
w, h = 96, 64
rows = []
for y in range(h):
    row = bytearray([0])
    for x in range(w):
        inside = 24 <= x < 72 and 16 <= y < 48
        v = 230 if inside else (x * 2 + y) % 256
        row += bytes((v, 255 - v, (x * y) % 256))
    rows.append(bytes(row))
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
  log "generated a 96x64 PNG"
fi
[ -r "$IMAGE" ] || die "cannot read image $IMAGE"

wait_http() { # wait_http URL SECONDS
  local i
  for ((i = 0; i < $2 * 5; i++)); do
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

start() { # start NAME ARGS...
  local name=$1
  shift
  "$DSOBEL_BIN" "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  NAMES+=("$name")
}

# ---- start the stack
start backend serve
wait_http "$BASE/healthz" 30 || { show_logs; die "backend /healthz did not answer"; }
wait_http "$BASE/readyz" 30 || { show_logs; die "backend /readyz did not become ready (broker/store)"; }
log "backend ready (pid ${PIDS[0]})"

for ((i = 1; i <= WORKERS; i++)); do
  hp=$(free_port)
  DSOBEL_HEALTH_LISTEN="127.0.0.1:$hp" start "worker-$i" worker
  wait_http "http://127.0.0.1:$hp/readyz" 30 || { show_logs; die "worker-$i /readyz did not become ready"; }
  log "worker-$i ready (pid ${PIDS[$i]}, health 127.0.0.1:$hp)"
done
curl -fsS -o /dev/null "$BASE/metrics" || { show_logs; die "backend /metrics failed"; }

# ---- one job through
OUT="$WORK/result.png"
code=$(curl -sS -o "$WORK/upload.body" -D "$WORK/upload.headers" -w '%{http_code}' \
  --max-time $((TIMEOUT + 10)) -F "image=@$IMAGE" "$BASE/upload?wait=30") || { show_logs; die "upload request failed"; }
log "POST /upload?wait=30 -> $code"
case $code in
  200)
    cp "$WORK/upload.body" "$OUT"
    ;;
  202)
    id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/upload.body") \
      || die "202 without an id: $(cat "$WORK/upload.body")"
    log "job $id accepted; polling /status/$id"
    state=""
    for ((i = 0; i < TIMEOUT * 2; i++)); do
      state=$(curl -fsS "$BASE/status/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])') || state=error
      case $state in
        done | failed) break ;;
      esac
      sleep 0.5
    done
    [ "$state" = "done" ] || { show_logs; die "job $id ended in state '$state'"; }
    curl -fsS -o "$OUT" "$BASE/result/$id" || { show_logs; die "GET /result/$id failed"; }
    ;;
  *)
    show_logs
    die "upload answered $code: $(head -c 500 "$WORK/upload.body")"
    ;;
esac

python3 - "$IMAGE" "$OUT" <<'PY' || { show_logs; die "result is not the expected PNG"; }
import struct, sys
out = open(sys.argv[2], "rb").read()
if out[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"no PNG signature: {out[:8]!r}")
w, h = struct.unpack(">II", out[16:24])
src = open(sys.argv[1], "rb").read()
if src[:8] == b"\x89PNG\r\n\x1a\n":
    sw, sh = struct.unpack(">II", src[16:24])
    if (w, h) != (sw, sh):
        sys.exit(f"result is {w}x{h}, input {sw}x{sh}")
print(f"[run-stack] result: PNG {w}x{h}, {len(out)} bytes")
PY

# ---- graceful stop: SIGTERM, every process exits 0
status=0
for i in "${!PIDS[@]}"; do
  kill -TERM "${PIDS[$i]}"
done
for i in "${!PIDS[@]}"; do
  rc=0
  for ((t = 0; t < 60 * 5; t++)); do
    kill -0 "${PIDS[$i]}" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "${PIDS[$i]}" 2>/dev/null; then
    log "${NAMES[$i]} did not exit within 60 s of SIGTERM"
    status=1
    continue
  fi
  wait "${PIDS[$i]}" || rc=$?
  if [ "$rc" -eq 0 ]; then
    log "${NAMES[$i]} exited 0 after SIGTERM"
  else
    log "${NAMES[$i]} exited $rc after SIGTERM"
    status=1
  fi
done
[ $status -eq 0 ] || { show_logs; die "not every process stopped cleanly"; }
log "OK: 1 backend + $WORKERS worker(s) processed a job and stopped cleanly"
