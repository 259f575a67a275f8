#!/usr/bin/env bash
# The benchmark matrix of the performance report: image size x concurrency x worker processes,
# plus the embedded mode, on this machine, against the local RabbitMQ and Redis.
#   scripts/bench-matrix.sh                    (1mb,10mb x 1,4,16 clients x 1,2,4 workers, 5 s a cell)
#   DURATION=2 SIZES=1mb CONCURRENCY=1,4 WORKERS=1,2 scripts/bench-matrix.sh
#   scripts/bench-matrix.sh --tasks-per-worker 2      (extra flags go to `bench matrix`)
# Writes bench-out/matrix.csv, bench-out/plots/*.png and the processes' logs in bench-out/logs/
# (bench-out/ is gitignored). Every cell is bounded in time; all processes stop at the end.
# Without RabbitMQ and Redis on 127.0.0.1 only the embedded row runs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out=${OUT:-bench-out}
duration=${DURATION:-5}
sizes=${SIZES:-1mb,10mb}
concurrency=${CONCURRENCY:-1,4,16}
workers=${WORKERS:-1,2,4}

cargo build --release --bin dsobel
dsobel=target/release/dsobel
bench=("$dsobel" bench matrix)

reachable() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
extra=()
if ! reachable 5672 || ! reachable 6379; then
  echo "RabbitMQ (5672) or Redis (6379) is not reachable on 127.0.0.1: running the embedded row only" >&2
  extra+=(--no-distributed)
fi

size_flags=()
IFS=',' read -ra size_list <<<"$sizes"
for s in "${size_list[@]}"; do size_flags+=(--size "$s"); done

mkdir -p "$out"
exec "${bench[@]}" --bin "$dsobel" "${size_flags[@]}" --concurrency "$concurrency" --workers "$workers" \
  --duration "$duration" --warmup 1 --timeout 120 --csv "$out/matrix.csv" --plot-dir "$out/plots" \
  "${extra[@]}" "$@"
