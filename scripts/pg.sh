#!/usr/bin/env bash
# Makes a PostgreSQL server available for development and tests.
#
#   scripts/pg.sh          start (or reuse) the server; print the admin URL
#   scripts/pg.sh stop     stop the project-local cluster if it is running
#   scripts/pg.sh clean    stop it and delete its data directory
#   scripts/pg.sh status   tell whether the project-local cluster runs
#
# `start` prints exactly one line on stdout: a DATABASE_URL pointing at the
# maintenance database `postgres`. Everything else goes to stderr.
#
# If DATABASE_URL is set it is printed unchanged: the caller brings its own
# server. Otherwise a cluster local to this checkout is used:
#   data dir  $PROJECT_ROOT/.local/pgdata
#             (/tmp/ecommerce-pg-<hash>/pgdata when running as root and the
#             `postgres` user cannot reach the checkout)
#   port      $PGPORT_LOCAL, default 54329, on 127.0.0.1 only, no unix socket
#   auth      trust, superuser `postgres`
set -euo pipefail

# Keep stdout for the URL only.
exec 3>&1 1>&2

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PGPORT_LOCAL:-54329}"
LOCAL_DIR="$PROJECT_ROOT/.local"
PG_USER=postgres

log() { printf 'pg.sh: %s\n' "$*"; }
die() {
    printf 'pg.sh: error: %s\n' "$*"
    exit 1
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# Closes every descriptor above stderr in the current (sub)shell. pg_ctl
# start leaves a postmaster behind that would otherwise inherit them: our
# stdout copy (fd 3) would keep a caller's `$(scripts/pg.sh)` waiting for EOF
# forever, and the lock (fd 9) would stay held.
close_extra_fds() {
    local fd
    exec 3>&- 9>&-
    for fd in "/proc/$BASHPID/fd"/*; do
        fd="${fd##*/}"
        if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then
            eval "exec $fd>&-"
        fi
    done
}

# Runs a command as the `postgres` system user when we are root, else as us.
# The working directory is `/` so the command never trips over a cwd that
# `postgres` cannot read.
as_pg() {
    (
        cd /
        close_extra_fds
        if ! is_root; then
            exec "$@"
        elif command -v runuser >/dev/null 2>&1; then
            exec runuser -u "$PG_USER" -- "$@"
        else
            exec su "$PG_USER" -s /bin/sh -c "$(printf '%q ' "$@")"
        fi
    )
}

short_hash() {
    if command -v sha256sum >/dev/null 2>&1; then
        printf '%s' "$1" | sha256sum | cut -c1-12
    else
        printf '%s' "$1" | cksum | cut -d' ' -f1
    fi
}

FALLBACK_BASE="/tmp/ecommerce-pg-$(short_hash "$PROJECT_ROOT")"

# ---------------------------------------------------------------- binaries ---

has_server_bins() { [[ -x "$1/initdb" && -x "$1/pg_ctl" ]]; }

find_bindir() {
    local dir best=""
    # Highest Debian-style versioned install first.
    while IFS= read -r dir; do
        if has_server_bins "$dir"; then best="$dir"; fi
    done < <(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V)
    if [[ -n "$best" ]]; then
        printf '%s\n' "$best"
        return 0
    fi
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -n "$dir" ]] && has_server_bins "$dir"; then
            printf '%s\n' "$dir"
            return 0
        fi
    fi
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

install_postgres() {
    command -v apt-get >/dev/null 2>&1 ||
        die "PostgreSQL server binaries not found and apt-get is unavailable; install PostgreSQL (initdb, pg_ctl) or set DATABASE_URL"
    local sudo=()
    if ! is_root; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            die "PostgreSQL server binaries not found; install the 'postgresql' package (needs root) or set DATABASE_URL"
        fi
    fi
    log "PostgreSQL server binaries not found; installing the 'postgresql' package"
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
}

ensure_bindir() {
    if ! BINDIR="$(find_bindir)"; then
        install_postgres
        BINDIR="$(find_bindir)" || die "PostgreSQL server binaries still not found after installing 'postgresql'"
    fi
}

# Client tools live next to the server on Debian; elsewhere take them from PATH.
pg_tool() {
    if [[ -x "$BINDIR/$1" ]]; then
        printf '%s\n' "$BINDIR/$1"
    else
        command -v "$1" || die "$1 not found"
    fi
}

# ----------------------------------------------------------- data location ---

# Picks PGDATA (and LOGFILE next to it). As root the server runs as
# `postgres`, which must be able to traverse to the checkout; if it cannot,
# the cluster lives under /tmp instead.
choose_datadir() {
    local base="$LOCAL_DIR"
    if is_root; then
        id -u "$PG_USER" >/dev/null 2>&1 ||
            die "running as root but there is no '$PG_USER' system user (install the postgresql package or set DATABASE_URL)"
        if ! as_pg test -x "$PROJECT_ROOT" 2>/dev/null; then
            base="$FALLBACK_BASE"
            log "user '$PG_USER' cannot traverse $PROJECT_ROOT; using $base"
        fi
    fi
    PGBASE="$base"
    PGDATA_DIR="$base/pgdata"
    LOGFILE="$base/postgres.log"
}

prepare_dirs() {
    mkdir -p "$PGBASE"
    if [[ "$PGBASE" == "$FALLBACK_BASE" ]]; then chmod 700 "$PGBASE"; fi
    if [[ ! -d "$PGDATA_DIR" ]]; then
        mkdir -p "$PGDATA_DIR"
        chmod 700 "$PGDATA_DIR"
    fi
    if is_root; then
        chown "$PG_USER:" "$PGBASE"
        # Only the top of the data dir; an initialised cluster already
        # belongs to postgres and may be large.
        chown "$PG_USER:" "$PGDATA_DIR"
        if [[ -f "$PGDATA_DIR/PG_VERSION" ]]; then
            local owner
            owner="$(stat -c %U "$PGDATA_DIR/PG_VERSION")"
            if [[ "$owner" != "$PG_USER" ]]; then
                log "data dir files are owned by $owner; handing them to $PG_USER"
                chown -R "$PG_USER:" "$PGDATA_DIR"
            fi
        fi
    fi
}

# ----------------------------------------------------------------- cluster ---

init_cluster() {
    [[ -f "$PGDATA_DIR/PG_VERSION" ]] && return 0
    if [[ -n "$(ls -A "$PGDATA_DIR")" ]]; then
        die "$PGDATA_DIR is not empty but holds no cluster (PG_VERSION missing); remove it with 'scripts/pg.sh clean'"
    fi
    log "initialising a new cluster in $PGDATA_DIR"
    local initdb common
    initdb="$(pg_tool initdb)"
    common=(-D "$PGDATA_DIR" -U postgres --auth=trust --encoding=UTF8)
    if ! as_pg "$initdb" "${common[@]}" --locale=C.UTF-8; then
        log "initdb with --locale=C.UTF-8 failed; retrying with --no-locale"
        # initdb cleans up after itself, but make sure the dir is empty.
        find "$PGDATA_DIR" -mindepth 1 -delete
        as_pg "$initdb" "${common[@]}" --no-locale
    fi
    as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null <<'EOF'

# --- added by scripts/pg.sh: throw-away dev/test cluster, NOT crash safe ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 400
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

# Line N of postmaster.pid (1 = pid, 4 = port), empty if absent.
pidfile_line() {
    local f="$1/postmaster.pid"
    [[ -f "$f" ]] || return 0
    sed -n "${2}p" "$f" | tr -d '[:space:]'
}

# Deletes postmaster.pid when its pid is dead or is not the postmaster of
# this data dir. Pids get reused after a container restart, and pg_ctl alone
# cannot tell such a pid apart from a live server. A postmaster's cwd is its
# data dir, which identifies it; when that cannot be read, any process named
# postgres is given the benefit of the doubt.
clear_stale_pidfile() {
    local dir="$1" pid comm cwd want
    pid="$(pidfile_line "$dir" 1)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    if kill -0 "$pid" 2>/dev/null || [[ -e "/proc/$pid" ]]; then
        comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
        if [[ -z "$comm" || "$comm" == postgres* || "$comm" == postmaster* ]]; then
            cwd="$(readlink -f "/proc/$pid/cwd" 2>/dev/null || true)"
            want="$(readlink -f "$dir")"
            if [[ -z "$cwd" || "$cwd" == "$want" ]]; then
                return 0
            fi
        fi
    fi
    log "removing stale $dir/postmaster.pid (pid $pid is not this cluster's server)"
    rm -f "$dir/postmaster.pid"
}

is_running() {
    local dir="$1"
    [[ -f "$dir/PG_VERSION" ]] || return 1
    clear_stale_pidfile "$dir"
    as_pg "$(pg_tool pg_ctl)" status -D "$dir" >/dev/null 2>&1
}

show_log_tail() {
    if [[ -f "$LOGFILE" ]]; then
        log "last lines of $LOGFILE:"
        tail -n 30 "$LOGFILE" || true
    fi
}

start_cluster() {
    local pg_ctl running_port
    pg_ctl="$(pg_tool pg_ctl)"
    if is_running "$PGDATA_DIR"; then
        running_port="$(pidfile_line "$PGDATA_DIR" 4)"
        if [[ -n "$running_port" && "$running_port" != "$PORT" ]]; then
            log "cluster runs on port $running_port but $PORT is wanted; restarting it"
            as_pg "$pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop
        else
            log "reusing the running cluster in $PGDATA_DIR (port $PORT)"
            return 0
        fi
    fi
    log "starting the cluster in $PGDATA_DIR on 127.0.0.1:$PORT (log: $LOGFILE)"
    if ! as_pg "$pg_ctl" -D "$PGDATA_DIR" -l "$LOGFILE" -w -t 60 \
        -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=''" start; then
        show_log_tail
        die "could not start PostgreSQL (is port $PORT taken? set PGPORT_LOCAL to use another one)"
    fi
}

wait_ready() {
    local pg_isready i
    pg_isready="$(pg_tool pg_isready)"
    for ((i = 0; i < 60; i++)); do
        if "$pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres; then
            return 0
        fi
        sleep 0.5
    done
    show_log_tail
    die "PostgreSQL on 127.0.0.1:$PORT did not accept connections within 30 s"
}

# Serialises concurrent invocations (e.g. two `make` runs racing to initdb).
take_lock() {
    command -v flock >/dev/null 2>&1 || return 0
    mkdir -p "$LOCAL_DIR"
    exec 9>"$LOCAL_DIR/pg.lock"
    flock -w 120 9 || die "timed out waiting for $LOCAL_DIR/pg.lock"
}

# Every data dir this checkout may have used (the /tmp one only as root).
candidate_datadirs() {
    printf '%s\n' "$LOCAL_DIR/pgdata"
    if is_root; then printf '%s\n' "$FALLBACK_BASE/pgdata"; fi
}

stop_dir() {
    local dir="$1"
    if is_running "$dir"; then
        log "stopping the cluster in $dir"
        as_pg "$(pg_tool pg_ctl)" -D "$dir" -m fast -w -t 60 stop
    else
        log "no cluster running in $dir"
    fi
}

# -------------------------------------------------------------- commands ---

cmd_start() {
    if [[ -n "${DATABASE_URL:-}" ]]; then
        printf '%s\n' "$DATABASE_URL" >&3
        return 0
    fi
    ensure_bindir
    take_lock
    choose_datadir
    prepare_dirs
    init_cluster
    start_cluster
    wait_ready
    printf 'postgres://postgres@127.0.0.1:%s/postgres\n' "$PORT" >&3
}

cmd_stop() {
    local dir
    BINDIR="$(find_bindir)" || {
        log "PostgreSQL is not installed; nothing to stop"
        return 0
    }
    take_lock
    while IFS= read -r dir; do
        [[ -f "$dir/PG_VERSION" ]] && stop_dir "$dir"
    done < <(candidate_datadirs)
    return 0
}

cmd_clean() {
    local dir
    cmd_stop
    while IFS= read -r dir; do
        if [[ -e "$dir" ]]; then
            log "removing $dir"
            rm -rf "$dir"
        fi
        rm -f "$(dirname "$dir")/postgres.log"
    done < <(candidate_datadirs)
    if is_root && [[ -d "$FALLBACK_BASE" ]]; then rmdir "$FALLBACK_BASE" 2>/dev/null || true; fi
}

cmd_status() {
    local dir found=1
    BINDIR="$(find_bindir)" || die "PostgreSQL is not installed"
    while IFS= read -r dir; do
        if is_running "$dir"; then
            log "running: $dir (port $(pidfile_line "$dir" 4))"
            found=0
        elif [[ -f "$dir/PG_VERSION" ]]; then
            log "stopped: $dir"
        fi
    done < <(candidate_datadirs)
    return "$found"
}

case "${1:-start}" in
start) cmd_start ;;
stop) cmd_stop ;;
clean) cmd_clean ;;
status) cmd_status ;;
-h | --help | help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
*) die "unknown command '$1' (expected start, stop, clean or status)" ;;
esac
