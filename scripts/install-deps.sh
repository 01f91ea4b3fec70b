#!/usr/bin/env bash
# Installs what `make test` and `make up` need on a Debian machine, and nothing when it is all
# there already. As root it installs missing packages with apt-get; otherwise it names them.
set -euo pipefail

cd "$(dirname "$0")/.."

PACKAGES=(
  postgresql-15          # initdb/pg_ctl for private test clusters; pg_stat_statements ships inside
  postgresql-contrib
  postgresql-15-hypopg   # hypothetical indexes for the index advisor
  mariadb-server         # mariadbd and mariadb-install-db for private MariaDB test servers (the second engine)
  mariadb-client         # the mariadb client the MariaDB test servers are set up with
  pgbouncer              # the connection pooler the executor deploys
  redis-server           # knowledge's store, and the cache the executor deploys
  redis-tools            # redis-cli, for the deployed cache's tests
  nats-server            # the event bus (JetStream)
  protobuf-compiler      # protoc for the contract crate
  libprotobuf-dev        # protoc's well-known types
  docker-compose         # validates docker-compose.yml (no engine needed)
  podman                 # a real Docker Engine API (podman system service) for the executor's docker backend tests
  runc                   # podman's runtime in the tests (crun cannot run here: cgroups in hybrid mode)
  netavark               # podman's container networks (the compose-like network test) ...
  aardvark-dns           # ... where containers find each other by name
  iptables               # netavark's bridge and NAT rules
  python3                # the independent gRPC contract client
  python3-pip
  curl                   # `make up` waits on health endpoints
  libclang-dev           # bindgen, for pg_query (the real PostgreSQL parser in the index advisor)
  chromium               # the dashboard's browser tests (Playwright drives Debian's Chromium)
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
# Debian's postgresql-contrib is a metapackage; hypopg's extension files are what matter.
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "$tool not found: install Node.js 20+ (Debian: nodejs npm)" >&2; exit 1; }
done
for tool in cargo rustc; do
  command -v "$tool" >/dev/null || { echo "$tool not found: install the Rust toolchain (rustup)" >&2; exit 1; }
done
cargo fmt --version >/dev/null 2>&1 || { echo "rustfmt missing: rustup component add rustfmt" >&2; exit 1; }
cargo clippy --version >/dev/null 2>&1 || { echo "clippy missing: rustup component add clippy" >&2; exit 1; }

# Python gRPC tools for the contract test, in a private directory (never the system's packages).
PYDEPS=.startupmonkey/pydeps
if ! PYTHONPATH="$PYDEPS" python3 -c 'import grpc_tools.protoc' 2>/dev/null; then
  echo "installing grpcio-tools into $PYDEPS"
  mkdir -p "$PYDEPS"
  python3 -m pip install --quiet --disable-pip-version-check --target "$PYDEPS" \
    --break-system-packages 'grpcio-tools>=1.60,<2' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check --target "$PYDEPS" 'grpcio-tools>=1.60,<2'
fi
