#!/usr/bin/env bash
# `make up`: starts NATS (JetStream) and Redis when none answer at NATS_URL / REDIS_ADDR, then the
# five services from target/release and the dashboard, prints where each listens, and stops
# everything it started on Ctrl-C. Settings come from the environment, as for every service.
#
# With DATABASE_URL, that database is registered and watched. Without it, the embedded demo: a
# local PostgreSQL cluster (pg_stat_statements, HypoPG) with a blog table missing an index and a
# pgbench workload hitting it, registered automatically, so the dashboard shows a problem found,
# fixed, verified and in the ledger within about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=.startupmonkey
LOGS=$STATE/logs
mkdir -p "$LOGS"
# The gateway prints a generated token once, into its log: logs are for this user only.
chmod 700 "$LOGS"
BIN=target/release
NATS_URL=${NATS_URL:-nats://localhost:4222}
REDIS_ADDR=${REDIS_ADDR:-localhost:6379}
export NATS_URL REDIS_ADDR

pids=()
names=()
stopping=0
stop_all() {
  stopping=1
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  echo "stopped: ${names[*]:-nothing}"
}
trap stop_all INT TERM EXIT

# host:port of a URL or address.
host_port() { local x=${1#*://}; x=${x##*@}; echo "${x%%/*}"; }
answers() { local hp=$1; (exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}") 2>/dev/null; }
wait_for() { # name, check command...
  local name=$1; shift
  for _ in $(seq 1 100); do "$@" 2>/dev/null && return 0; sleep 0.1; done
  echo "$name did not come up; see $LOGS/$name.log" >&2
  tail -n 20 "$LOGS/$name.log" >&2 || true
  exit 1
}
start() { # name, command...
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  pids+=("$!"); names+=("$name")
}
need() { command -v "$1" >/dev/null || [ -x "$2" ] || { echo "$1 not found: run 'make up' as root to install it, or apt-get install $3" >&2; exit 1; }; }

nats_hp=$(host_port "$NATS_URL")
if answers "$nats_hp"; then
  echo "NATS:      using $NATS_URL"
else
  need nats-server /usr/sbin/nats-server nats-server
  start nats "$(command -v nats-server || echo /usr/sbin/nats-server)" -a "${nats_hp%:*}" -p "${nats_hp##*:}" -js -sd "$STATE/nats"
  wait_for nats answers "$nats_hp"
  echo "NATS:      started on $NATS_URL (JetStream data in $STATE/nats)"
fi

redis_hp=$(host_port "$REDIS_ADDR")
if answers "$redis_hp"; then
  echo "Redis:     using $REDIS_ADDR"
else
  need redis-server /usr/bin/redis-server redis-server
  mkdir -p "$STATE/redis"
  start redis redis-server --bind "${redis_hp%:*}" --port "${redis_hp##*:}" --appendonly yes --dir "$STATE/redis"
  wait_for redis answers "$redis_hp"
  echo "Redis:     started on $REDIS_ADDR (append-only file in $STATE/redis)"
fi

DEMO=0
if [ -z "${DATABASE_URL:-}" ]; then
  DEMO=1
  # Short cycles, so the demo's fix is found and verified within a minute.
  export COLLECTION_INTERVAL=${COLLECTION_INTERVAL:-5s} SYNC_INTERVAL=${SYNC_INTERVAL:-5s}
  PG_BIN=/usr/lib/postgresql/15/bin
  [ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL 15 is missing: run 'make up' as root to install it, or apt-get install postgresql-15" >&2; exit 1; }
  ls /usr/share/postgresql/15/extension/hypopg.control >/dev/null 2>&1 || { echo "HypoPG is missing: apt-get install postgresql-15-hypopg" >&2; exit 1; }
  DEMO_DIR=$(pwd)/$STATE/demo-pg
  DEMO_PORT=${DEMO_PORT:-5544}
  # PostgreSQL refuses root: as root, its programs run as postgres (runuser passes Ctrl-C on).
  AS_PG=()
  [ "$(id -u)" -eq 0 ] && AS_PG=(runuser -u postgres --)
  mkdir -p "$DEMO_DIR"
  [ "$(id -u)" -eq 0 ] && chown postgres "$DEMO_DIR"
  if [ ! -f "$DEMO_DIR/data/PG_VERSION" ]; then
    "${AS_PG[@]}" "$PG_BIN/initdb" -D "$DEMO_DIR/data" -U postgres --auth=trust -E UTF8 >"$LOGS/demo-initdb.log" 2>&1 \
      || { echo "initdb failed; see $LOGS/demo-initdb.log" >&2; exit 1; }
  fi
  start demo-postgres "${AS_PG[@]}" "$PG_BIN/postgres" -D "$DEMO_DIR/data" -p "$DEMO_PORT" -k "$DEMO_DIR" \
    -c listen_addresses=127.0.0.1 -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top
  wait_for demo-postgres "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$DEMO_PORT"
  psql -X -q -h 127.0.0.1 -p "$DEMO_PORT" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'demo'" | grep -q 1 \
    || psql -X -q -h 127.0.0.1 -p "$DEMO_PORT" -U postgres -d postgres -c "CREATE DATABASE demo"
  psql -X -q -h 127.0.0.1 -p "$DEMO_PORT" -U postgres -d demo -v ON_ERROR_STOP=1 -f scripts/demo/schema.sql >"$LOGS/demo-schema.log" 2>&1 \
    || { echo "the demo schema failed; see $LOGS/demo-schema.log" >&2; exit 1; }
  export DATABASE_URL="postgres://postgres@127.0.0.1:$DEMO_PORT/demo"
  DATABASE_NAME=${DATABASE_NAME:-demo}
  echo "Demo:      PostgreSQL on 127.0.0.1:$DEMO_PORT (database demo, data in $DEMO_DIR)"
fi

for service in knowledge analyser executor collector gateway; do
  [ -x "$BIN/$service" ] || { echo "$BIN/$service is missing: run 'make release'" >&2; exit 1; }
done

health() { curl -fsS -o /dev/null "http://127.0.0.1:$1/health"; }
# Knowledge first (everyone reads it), then the analyser (the collector streams to it).
start knowledge "$BIN/knowledge";  wait_for knowledge health "${KNOWLEDGE_HEALTH_PORT:-8083}"
start analyser "$BIN/analyser";    wait_for analyser health 8081
start executor "$BIN/executor";    wait_for executor health 8082
start collector "$BIN/collector";  wait_for collector health 8080
start gateway "$BIN/gateway";      wait_for gateway health "${PORT:-3001}"
DASHBOARD_PORT=${DASHBOARD_PORT:-3000}
[ -f dashboard/.next/BUILD_ID ] || { echo "the dashboard is not built: run 'make up' (it builds it)" >&2; exit 1; }
start dashboard env GATEWAY_URL="http://127.0.0.1:${PORT:-3001}" NEXT_TELEMETRY_DISABLED=1 \
  bash -c 'cd dashboard && exec node_modules/.bin/next start -H 127.0.0.1 -p "$0"' "$DASHBOARD_PORT"
wait_for dashboard curl -fsS -o /dev/null "http://127.0.0.1:$DASHBOARD_PORT/"

cat <<EOF_INFO

StartupMonkey is running (logs in $LOGS/):
  knowledge  gRPC 127.0.0.1:50053   health http://127.0.0.1:8083/health
  analyser   gRPC 127.0.0.1:50051   health http://127.0.0.1:8081/health
  executor   gRPC 127.0.0.1:50052   health http://127.0.0.1:8082/health
  collector                         health http://127.0.0.1:8080/health
  gateway    http://127.0.0.1:${PORT:-3001}/health
  dashboard  http://127.0.0.1:$DASHBOARD_PORT/
EOF_INFO
TOKEN=${GATEWAY_TOKEN:-$(cat "$STATE/gateway.token" 2>/dev/null || true)}
if [ -n "${DATABASE_URL:-}" ]; then
  # Registered through the gateway; the connection string goes on stdin, never on a command line.
  name=${DATABASE_NAME:-$(basename "${DATABASE_URL%%\?*}")}
  if python3 -c 'import json, os, sys; print(json.dumps({"database_name": sys.argv[1], "connection_string": os.environ["DATABASE_URL"]}))' "$name" \
     | curl -sS -o "$LOGS/register.json" -w '%{http_code}' -X POST \
         -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' --data-binary @- \
         "http://127.0.0.1:${PORT:-3001}/databases" | grep -qE '^(200|201)$'; then
    echo "Watching DATABASE_URL as '$name'."
    if [ "$DEMO" = 1 ]; then
      # The demo starts past onboarding, and its workload begins.
      curl -fsS "http://127.0.0.1:${PORT:-3001}/config" | python3 -c 'import json, sys; c = json.load(sys.stdin); c["onboarding_complete"] = True; print(json.dumps(c))' \
        | curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' --data-binary @- "http://127.0.0.1:${PORT:-3001}/config"
      start demo-workload "$PG_BIN/pgbench" -n -c 2 -j 1 -T 86400 -f scripts/demo/workload.sql -h 127.0.0.1 -p "$DEMO_PORT" -U postgres demo
      echo "Demo:      a workload runs the blog's 'latest posts of a user' query, which has no index yet."
    fi
  else
    echo "DATABASE_URL was not registered: $(cat "$LOGS/register.json" 2>/dev/null)" >&2
  fi
fi
echo "Open http://127.0.0.1:$DASHBOARD_PORT/ and sign in with the token $TOKEN"
echo "Press Ctrl-C to stop."

# Stop everything as soon as any service exits on its own.
wait -n "${pids[@]}" || true
[ "$stopping" = 1 ] || echo "a process exited on its own; see $LOGS/" >&2
