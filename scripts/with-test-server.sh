#!/usr/bin/env bash
# Run a command against a live newsapi server on a database of its own:
#
#   scripts/with-test-server.sh COMMAND [ARGS...]
#
# 1. creates a fresh database newsapi_e2e_<random> on the PostgreSQL server of
#    DATABASE_URL (environment, else .env, else the default; see
#    scripts/lib/database-url.sh);
# 2. builds target/debug/newsapi (a no-op when it is up to date; set
#    NEWSAPI_BIN to use another binary) and starts it on a free loopback port
#    with a random JWT_SECRET, BCRYPT_COST=4 and sign-in throttle limits raised
#    far above what a test run reaches (SIGNIN_MAX_FAILURES and
#    SIGNIN_MAX_FAILURES_PER_IP; export your own values to override them);
#    so is the sign-up limit (SIGNIN_MAX_FAILURES_PER_ACCOUNT, SIGNUP_MAX_PER_IP),
#    since every request of a suite comes from one address;
# 3. creates an admin account with `newsapi create-admin`;
# 4. waits for GET /readyz, then runs COMMAND with these variables exported:
#      BASE_URL        http://127.0.0.1:<port>
#      ADMIN_EMAIL     the admin's email
#      ADMIN_PASSWORD  the admin's password
#      E2E_DATABASE_URL the database the server uses
#      NEWSAPI_BIN     the server binary
# 5. on exit, whatever happens, stops the server and drops the database.
#
# The server's log goes to target/e2e/server-<database>.log (printed when the
# command fails). The exit status is COMMAND's.
set -euo pipefail

if (($# == 0)); then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/database-url.sh
source scripts/lib/database-url.sh
load_database_url
add_pg_bin_to_path

log() { printf 'with-test-server: %s\n' "$*" >&2; }

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

psql_admin() {
    psql -X -w -q -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d postgres -v ON_ERROR_STOP=1 "$@"
}

# A port nothing listens on now (the kernel picks it; a race with another
# process is possible but harmless: the server then fails to bind and we say so).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

db_name="newsapi_e2e_$(random_hex 6)"
server_pid=""
log_file="$ROOT/target/e2e/server-$db_name.log"
mkdir -p "$ROOT/target/e2e"

cleanup() {
    local status=$? server_status
    if [[ -n $server_pid ]] && ! kill -0 "$server_pid" 2>/dev/null; then
        server_status=0
        wait "$server_pid" 2>/dev/null || server_status=$?
        log "the server (pid $server_pid) had already exited, with status $server_status"
        ((status != 0)) || status=1
        server_pid=""
    fi
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    psql_admin -c "drop database if exists \"$db_name\" with (force)" >/dev/null 2>&1 ||
        log "could not drop database $db_name (make clean-test-dbs drops leftovers)"
    if ((status != 0)) && [[ -s $log_file ]]; then
        log "the command failed ($status); last lines of the server log $log_file:"
        tail -n 40 "$log_file" >&2 || true
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z ${NEWSAPI_BIN:-} ]]; then
    if [[ -z $(command -v cargo) ]]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    cargo build --quiet --bin newsapi
    NEWSAPI_BIN="$ROOT/target/debug/newsapi"
fi
[[ -x $NEWSAPI_BIN ]] || {
    log "no server binary at $NEWSAPI_BIN"
    exit 1
}

psql_admin -c "create database \"$db_name\""
auth=${DATABASE_URL#*://}
auth=${auth%%/*}
port=$(free_port)

export DATABASE_URL="postgres://$auth/$db_name"
export E2E_DATABASE_URL=$DATABASE_URL
export JWT_SECRET
JWT_SECRET=$(random_hex 32)
export BCRYPT_COST=4
export LISTEN_ADDR="127.0.0.1:$port"
export SIGNIN_MAX_FAILURES=${SIGNIN_MAX_FAILURES:-1000000}
export SIGNIN_MAX_FAILURES_PER_IP=${SIGNIN_MAX_FAILURES_PER_IP:-1000000}
export SIGNIN_MAX_FAILURES_PER_ACCOUNT=${SIGNIN_MAX_FAILURES_PER_ACCOUNT:-1000000}
export SIGNUP_MAX_PER_IP=${SIGNUP_MAX_PER_IP:-1000000}
export RUST_LOG=${E2E_RUST_LOG:-warn}
export NEWSAPI_BIN
export BASE_URL="http://127.0.0.1:$port"
export ADMIN_EMAIL="admin-$(random_hex 4)@example.com"
export ADMIN_PASSWORD="admin-$(random_hex 12)"

# The admin command migrates the database first.
printf '%s\n' "$ADMIN_PASSWORD" | "$NEWSAPI_BIN" create-admin --email "$ADMIN_EMAIL" 2>>"$log_file"

"$NEWSAPI_BIN" serve >>"$log_file" 2>&1 &
server_pid=$!

ready=false
for _ in $(seq 1 150); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        log "the server exited during start-up; its log:"
        cat "$log_file" >&2
        exit 1
    fi
    if curl -fsS -o /dev/null --max-time 2 "$BASE_URL/readyz" 2>/dev/null; then
        ready=true
        break
    fi
    sleep 0.2
done
$ready || {
    log "the server did not become ready at $BASE_URL within 30 s"
    exit 1
}
log "server ready at $BASE_URL (database $db_name)"

"$@"
