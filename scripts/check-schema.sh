#!/usr/bin/env bash
# Fails when crates/adapter-postgres/src/schema.rs is not what `diesel print-schema`
# generates from the migrations. Needs DATABASE_URL naming a PostgreSQL server (any
# database on it) and the diesel CLI, which `make setup` installs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${DATABASE_URL:?DATABASE_URL must name a PostgreSQL server}"
SCHEMA=crates/adapter-postgres/src/schema.rs

if ! command -v diesel >/dev/null 2>&1; then
    echo "check-schema: the diesel CLI is missing; run 'make setup'" >&2
    exit 1
fi

scratch="ecommerce_schema_check_$$"
base="${DATABASE_URL%%\?*}"
base="${base%/*}"
admin_url="$base/postgres"
scratch_url="$base/$scratch"
generated="$(mktemp)"
cleanup() {
    rm -f "$generated"
    psql "$admin_url" -qc "DROP DATABASE IF EXISTS $scratch WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql "$admin_url" -qc "CREATE DATABASE $scratch" >/dev/null
# --locked-schema: apply the migrations without rewriting schema.rs.
diesel migration run --database-url "$scratch_url" --migration-dir migrations --locked-schema >/dev/null
diesel print-schema --database-url "$scratch_url" > "$generated"

if ! diff -u "$SCHEMA" "$generated"; then
    echo "check-schema: $SCHEMA differs from 'diesel print-schema' (above); regenerate it with:" >&2
    echo "  diesel print-schema --database-url <migrated database> > $SCHEMA" >&2
    exit 1
fi
echo "check-schema: $SCHEMA matches the migrations"
