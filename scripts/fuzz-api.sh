#!/usr/bin/env bash
# Fuzzes the served API against its own OpenAPI document with schemathesis: a freshly
# started server on its own database, every check but `positive_data_acceptance`, a
# fixed seed. Fails on any failure. User operations run with a user's token, admin
# operations with the admin token. Needs DATABASE_URL naming a PostgreSQL server (any
# database on it); `make fuzz-api` provides the local one.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${DATABASE_URL:?DATABASE_URL must name a PostgreSQL server}"
SCHEMATHESIS_VERSION=4.32.5
SEED=${FUZZ_SEED:-42}
EXAMPLES=${FUZZ_MAX_EXAMPLES:-25}

if ! st --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
    echo "fuzz-api: installing schemathesis $SCHEMATHESIS_VERSION"
    python3 -m pip install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --locked -p bootstrap --bin ecommerce
bin="${CARGO_TARGET_DIR:-target}/debug/ecommerce"

db="ecommerce_fuzz_$$"
base="${DATABASE_URL%%\?*}"
base="${base%/*}"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export DATABASE_URL="$base/$db" HTTP_ADDR="127.0.0.1:$port" ADMIN_TOKEN="fuzz-admin-token-of-32-characters"
export AUTH_JWT_SECRET="fuzz-secret-of-at-least-thirty-two-bytes" RUST_LOG=error
server=""
cleanup() {
    [[ -n "$server" ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
    psql "$base/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql "$base/postgres" -qc "CREATE DATABASE $db" >/dev/null
"$bin" seed >/dev/null
"$bin" serve &
server=$!
for _ in $(seq 100); do
    curl -fsS "http://$HTTP_ADDR/health/ready" >/dev/null 2>&1 && break
    sleep 0.1
done

schema="http://$HTTP_ADDR/api-docs/openapi.json"
common=(--checks all --exclude-checks positive_data_acceptance --seed "$SEED" --max-examples "$EXAMPLES" --no-color)
echo "fuzz-api: user and public operations, as user 1"
st run "$schema" "${common[@]}" -H "Authorization: Bearer $("$bin" token 1)" --exclude-path-regex '^/api/v1/admin/'
echo "fuzz-api: admin operations, with the admin token"
st run "$schema" "${common[@]}" -H "Authorization: Bearer $ADMIN_TOKEN" --include-path-regex '^/api/v1/admin/'
