#!/usr/bin/env bash
# A local Redis Cluster of three masters and three replicas, from the installed redis-server,
# for tests and trials on one machine.
#
#   scripts/redis-cluster.sh start DIR BASE_PORT [--password PW] [--tls CERT_DIR] [--node-timeout MS]
#   scripts/redis-cluster.sh stop DIR
#
# start: six redis-server processes on 127.0.0.1, ports BASE_PORT to BASE_PORT+5 (each with its
#   cluster bus port, +10000), their files under DIR/<port>/ (redis.conf, redis.pid, redis.log,
#   nodes.conf). `redis-cli --cluster create ... --cluster-replicas 1` joins them; the script
#   waits until every node reports `cluster_state:ok` with all 16384 slots and every master
#   has its replica in sync, then prints the seed list for DSOBEL_REDIS_URL on its last line:
#   redis://127.0.0.1:BASE_PORT,redis://127.0.0.1:BASE_PORT+1,redis://127.0.0.1:BASE_PORT+2
#   (rediss:// with --tls, with the password in each URL with --password).
#   --tls CERT_DIR: the nodes speak only TLS (clients, replication and the cluster bus) with
#     CERT_DIR/server.crt and CERT_DIR/server.key; clients are not asked for certificates;
#     clients trust CERT_DIR/ca.crt (for dsobel: SSL_CERT_FILE=CERT_DIR/ca.crt).
#   --node-timeout MS: cluster-node-timeout (default 2000: a killed master's replica takes
#     over within a few seconds).
#   Nothing is persisted (no RDB, no AOF); `cluster-require-full-coverage no` lets the other
#   shards serve while one shard has no master.
# stop: stops every node started under DIR (nothing else) and waits until they are gone.
set -euo pipefail

usage() {
  sed -n '4,5p' "$0" >&2
  exit 2
}

[ $# -ge 2 ] || usage
command=$1
dir=$2
shift 2

stop_nodes() {
  local pids=() pidfile pid
  for pidfile in "$dir"/*/redis.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  done
}

case "$command" in
  stop)
    stop_nodes
    exit 0
    ;;
  start) ;;
  *) usage ;;
esac

[ $# -ge 1 ] || usage
base=$1
shift
password=""
tls_dir=""
node_timeout=2000
while [ $# -gt 0 ]; do
  case "$1" in
    --password) password=$2; shift 2 ;;
    --tls) tls_dir=$(cd "$2" && pwd); shift 2 ;;
    --node-timeout) node_timeout=$2; shift 2 ;;
    *) usage ;;
  esac
done
case "$base" in
  '' | *[!0-9]*) echo "BASE_PORT must be a number" >&2; exit 2 ;;
esac
if [ "$base" -lt 1024 ] || [ "$base" -gt 55530 ]; then
  echo "BASE_PORT must be between 1024 and 55530 (the cluster bus uses BASE_PORT+10000 and up)" >&2
  exit 2
fi
command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 3; }
command -v redis-cli >/dev/null || { echo "redis-cli is not installed" >&2; exit 3; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
ports=()
for i in 0 1 2 3 4 5; do ports+=($((base + i))); done

# redis-cli with the connection options of this cluster.
cli() {
  local port=$1
  shift
  local options=(-h 127.0.0.1 -p "$port")
  [ -n "$password" ] && options+=(-a "$password" --no-auth-warning)
  [ -n "$tls_dir" ] && options+=(--tls --cacert "$tls_dir/ca.crt")
  redis-cli "${options[@]}" "$@"
}

for port in "${ports[@]}"; do
  node_dir="$dir/$port"
  mkdir -p "$node_dir"
  rm -f "$node_dir/nodes.conf" "$node_dir/redis.pid"
  {
    echo "bind 127.0.0.1"
    echo "daemonize yes"
    echo "dir $node_dir"
    echo "pidfile $node_dir/redis.pid"
    echo "logfile $node_dir/redis.log"
    echo "save \"\""
    echo "appendonly no"
    echo "cluster-enabled yes"
    echo "cluster-config-file nodes.conf"
    echo "cluster-node-timeout $node_timeout"
    echo "cluster-require-full-coverage no"
    if [ -n "$password" ]; then
      echo "requirepass $password"
      echo "masterauth $password"
    fi
    if [ -n "$tls_dir" ]; then
      echo "port 0"
      echo "tls-port $port"
      echo "tls-cert-file $tls_dir/server.crt"
      echo "tls-key-file $tls_dir/server.key"
      echo "tls-ca-cert-file $tls_dir/ca.crt"
      echo "tls-auth-clients no"
      echo "tls-replication yes"
      echo "tls-cluster yes"
    else
      echo "port $port"
    fi
  } >"$node_dir/redis.conf"
  if ! redis-server "$node_dir/redis.conf"; then
    echo "redis-server did not start on port $port (see $node_dir/redis.log)" >&2
    stop_nodes
    exit 1
  fi
done

# Every node answers before the cluster is formed.
for port in "${ports[@]}"; do
  for attempt in $(seq 1 100); do
    cli "$port" ping 2>/dev/null | grep -q PONG && break
    if [ "$attempt" -eq 100 ]; then
      echo "the node on port $port does not answer (see $dir/$port/redis.log)" >&2
      stop_nodes
      exit 1
    fi
    sleep 0.1
  done
done

addresses=()
for port in "${ports[@]}"; do addresses+=("127.0.0.1:$port"); done
create=(--cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes)
if ! cli "${ports[0]}" "${create[@]}" >"$dir/create.log" 2>&1; then
  echo "redis-cli --cluster create failed (see $dir/create.log)" >&2
  stop_nodes
  exit 1
fi

# Ready: every node sees the whole cluster ok, and every master has a replica in sync.
ready() {
  local port info masters=0 synced=0
  for port in "${ports[@]}"; do
    info=$(cli "$port" cluster info 2>/dev/null) || return 1
    grep -q '^cluster_state:ok' <<<"$info" || return 1
    grep -q '^cluster_slots_ok:16384' <<<"$info" || return 1
    grep -q '^cluster_known_nodes:6' <<<"$info" || return 1
    info=$(cli "$port" info replication 2>/dev/null) || return 1
    if grep -q '^role:master' <<<"$info"; then
      masters=$((masters + 1))
      grep -q '^slave0:.*state=online' <<<"$info" && synced=$((synced + 1))
    fi
  done
  [ "$masters" -eq 3 ] && [ "$synced" -eq 3 ]
}
for attempt in $(seq 1 300); do
  ready && break
  if [ "$attempt" -eq 300 ]; then
    echo "the cluster did not become ready within 60 s (logs under $dir)" >&2
    stop_nodes
    exit 1
  fi
  sleep 0.2
done

scheme=redis
[ -n "$tls_dir" ] && scheme=rediss
auth=""
[ -n "$password" ] && auth=":$password@"
seeds=""
for port in "${ports[@]:0:3}"; do
  seeds+="${seeds:+,}$scheme://${auth}127.0.0.1:$port"
done
echo "$seeds"
