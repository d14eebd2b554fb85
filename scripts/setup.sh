#!/usr/bin/env bash
# Installs the developer tools the checks of `make test` use, once: the diesel CLI
# (PostgreSQL only) for the schema-drift check and cargo-machete for the
# unused-dependency check; and, as root, the German locale a fault test gives the
# database server (its messages must not decide anything). Idempotent: a tool already
# at its pinned version is kept.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DIESEL_CLI_VERSION=2.3.14
CARGO_MACHETE_VERSION=0.9.2

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

has_version() { # command version
    command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -qF "$2"
}

if ! has_version diesel "$DIESEL_CLI_VERSION"; then
    if ! { pkg-config --exists libpq 2>/dev/null || [[ -e /usr/include/postgresql/libpq-fe.h ]]; }; then
        echo "setup: installing libpq-dev for the diesel CLI"
        as_root apt-get update
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y libpq-dev
    fi
    echo "setup: installing diesel_cli $DIESEL_CLI_VERSION"
    cargo install diesel_cli --version "$DIESEL_CLI_VERSION" --no-default-features --features postgres --locked
fi

if ! has_version cargo-machete "$CARGO_MACHETE_VERSION"; then
    echo "setup: installing cargo-machete $CARGO_MACHETE_VERSION"
    cargo install cargo-machete --version "$CARGO_MACHETE_VERSION" --locked
fi

# The test server speaks German in one fault test; without the locale the test says it
# skipped. Only installed as root (CI), never with sudo behind a developer's back.
TEST_LOCALE=de_DE.UTF-8
if ! locale -a 2>/dev/null | grep -qix 'de_DE.utf8'; then
    if [[ "$(id -u)" -eq 0 ]]; then
        echo "setup: generating the locale $TEST_LOCALE"
        if [[ ! -e /etc/locale.gen ]] || ! command -v locale-gen >/dev/null 2>&1; then
            apt-get update
            DEBIAN_FRONTEND=noninteractive apt-get install -y locales
        fi
        sed -i "s/^# *\($TEST_LOCALE UTF-8\)/\1/" /etc/locale.gen
        grep -qx "$TEST_LOCALE UTF-8" /etc/locale.gen || echo "$TEST_LOCALE UTF-8" >>/etc/locale.gen
        locale-gen >/dev/null
    else
        echo "setup: no $TEST_LOCALE locale (run as root to generate it); the localized-server test will skip"
    fi
fi

echo "setup: diesel $(diesel --version | head -n1 | awk '{print $2}'), cargo-machete $CARGO_MACHETE_VERSION"
