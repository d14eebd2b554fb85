#!/usr/bin/env bash
# `make drill`: installs haproxy when missing, starts the local PostgreSQL
# (scripts/pg.sh) unless DATABASE_URL names one, builds the release binaries and runs
# the drill (crates/drill) against deploy/haproxy.cfg. Bounded: about a minute of load.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then "$@"; else sudo "$@"; fi
}
if ! command -v haproxy >/dev/null 2>&1 && [[ ! -x /usr/sbin/haproxy ]]; then
    echo "drill: installing haproxy"
    as_root apt-get update
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y --no-install-recommends haproxy
fi
# Debian's package starts its own HAProxy as a service; the drill runs its own.
DRILL_HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
export DRILL_HAPROXY

DRILL_ADMIN_URL="$(scripts/pg.sh)"
export DRILL_ADMIN_URL
cargo build --release --locked -p bootstrap --bin ecommerce -p drill --bin drill
ulimit -n 65536 2>/dev/null || true
exec timeout 600 "${CARGO_TARGET_DIR:-target}/release/drill"
