#!/usr/bin/env bash
# `make loadtest`: installs what the load benchmark needs and is missing (Debian's wrk,
# pgbench and psql from PostgreSQL's packages, a font for the plot), starts the local
# PostgreSQL (scripts/pg.sh) unless DATABASE_URL names one, builds the release binaries
# and runs the benchmark. LOADTEST_* variables tune it; see docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then "$@"; else sudo "$@"; fi
}
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v pgbench >/dev/null 2>&1 || missing+=(postgresql)
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
if ((${#missing[@]})); then
    echo "loadtest: installing ${missing[*]}"
    as_root apt-get update
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y --no-install-recommends "${missing[@]}"
fi

LOADTEST_ADMIN_URL="$(scripts/pg.sh)"
export LOADTEST_ADMIN_URL
cargo build --release --locked -p bootstrap --bin ecommerce -p loadtest --bin loadtest
# Each wrk connection and each pooled connection is a descriptor.
ulimit -n 65536 2>/dev/null || true
exec "${CARGO_TARGET_DIR:-target}/release/loadtest"
