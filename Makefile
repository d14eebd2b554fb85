# Developer entry points. `make help` lists the targets.
#
# Without DATABASE_URL the targets use a PostgreSQL cluster local to this
# checkout (scripts/pg.sh: 127.0.0.1:$PGPORT_LOCAL, default 54329); with it,
# they use that server instead.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# Each recipe runs in one shell, so `export` and `cd` carry over its lines.
.ONESHELL:
.DEFAULT_GOAL := help

CARGO     ?= cargo
PSQL      ?= psql
PG        := scripts/pg.sh
# Database `make run` creates and uses on the local cluster.
DB_NAME   ?= ecommerce
HTTP_ADDR ?= 127.0.0.1:8080

.PHONY: help setup run test browser-test fuzz-api lint fmt bench loadtest drill db db-stop openapi clean-db

help: ## List the targets
	@echo "Targets:"
	awk 'BEGIN { FS = ":.*## " } /^[a-z][a-zA-Z_-]*:.*## / { printf "  %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	echo
	echo "Set DATABASE_URL to use your own PostgreSQL instead of the local cluster."

run: ## Build, migrate, seed and serve the shop on HTTP_ADDR (default 127.0.0.1:8080)
	@if [[ -n "$${DATABASE_URL:-}" ]]; then
	  echo "Using DATABASE_URL from the environment"
	else
	  admin_url="$$($(PG))"
	  command -v $(PSQL) >/dev/null || { echo "psql not found: install postgresql-client or set DATABASE_URL" >&2; exit 1; }
	  if ! $(PSQL) "$$admin_url" -tAc "SELECT 1 FROM pg_database WHERE datname = '$(DB_NAME)'" | grep -q 1; then
	    echo "Creating database $(DB_NAME)"
	    $(PSQL) "$$admin_url" -qc 'CREATE DATABASE "$(DB_NAME)"'
	  fi
	  export DATABASE_URL="$${admin_url%/*}/$(DB_NAME)"
	fi
	random_hex() { openssl rand -hex "$$1" 2>/dev/null || head -c"$$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
	if [[ -z "$${ADMIN_TOKEN:-}" ]]; then
	  ADMIN_TOKEN="$$(random_hex 16)"
	  export ADMIN_TOKEN
	fi
	if [[ -z "$${AUTH_JWT_SECRET:-}" && -z "$${AUTH_JWT_PUBLIC_KEY_FILE:-}" ]]; then
	  AUTH_JWT_SECRET="$$(random_hex 32)"
	  export AUTH_JWT_SECRET
	fi
	export HTTP_ADDR="$(HTTP_ADDR)"
	$(CARGO) build --release -p bootstrap --bin ecommerce
	bin="$${CARGO_TARGET_DIR:-target}/release/ecommerce"
	"$$bin" migrate
	seeded="$$("$$bin" seed)"
	echo
	echo "=============================================================="
	echo "  Swagger UI:  http://$${HTTP_ADDR}/swagger-ui/"
	echo "  Admin token: $${ADMIN_TOKEN}"
	echo "  Demo users' bearer tokens (Authorize > user_token):"
	grep '^  user ' <<<"$$seeded" || echo "  (none: tokens come from the identity provider)"
	echo "=============================================================="
	echo
	exec "$$bin" serve

setup: ## Install the tools the checks use (diesel CLI, cargo-machete); a no-op once done
	@scripts/setup.sh

test: setup ## Lint, start the DB, check the schema, run every test
	@$(MAKE) --no-print-directory lint
	DATABASE_URL="$$($(PG))"
	export DATABASE_URL
	set -x
	scripts/check-schema.sh
	# The tests open up to ~3000 files (one pool per test database).
	ulimit -n 65536 2>/dev/null || ulimit -n "$$(ulimit -Hn)" 2>/dev/null || true
	$(CARGO) test --workspace --locked

browser-test: ## Drive Swagger UI in headless Chromium (installs chromium and chromedriver if missing)
	@scripts/setup-browser.sh
	DATABASE_URL="$$($(PG))"
	export DATABASE_URL
	$(CARGO) test --locked -p bootstrap --test browser -- --ignored

fuzz-api: ## Fuzz the served API against its OpenAPI document (schemathesis, fixed seed)
	@DATABASE_URL="$$($(PG))"
	export DATABASE_URL
	scripts/fuzz-api.sh

lint: ## fmt check, clippy (-D warnings), rustdoc (-D warnings), layering, unused dependencies
	@set -x
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked
	scripts/check-layering.sh
	$(CARGO) machete

fmt: ## Format the code
	$(CARGO) fmt --all

bench: ## Run the benchmarks against the DB
	@DATABASE_URL="$$($(PG))"
	export DATABASE_URL
	ulimit -n 65536 2>/dev/null || ulimit -n "$$(ulimit -Hn)" 2>/dev/null || true
	$(CARGO) bench --workspace

loadtest: ## Load the release server with wrk beside pgbench's ceiling (~3 min; docs/PERFORMANCE.md)
	@scripts/loadtest.sh

drill: ## Three release instances behind HAProxy (deploy/), rolled and killed under load (~2 min; deploy/README.md)
	@scripts/drill.sh

db: ## Start the local PostgreSQL (if needed) and print its admin URL
	@$(PG)

db-stop: ## Stop the local PostgreSQL
	@$(PG) stop

openapi: ## Regenerate openapi/openapi.json
	UPDATE_OPENAPI=1 $(CARGO) test -p adapter-http --test openapi

clean-db: ## Stop the local PostgreSQL and delete its data
	@$(PG) clean
