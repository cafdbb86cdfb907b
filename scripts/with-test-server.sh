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
#    so are the sign-up limit (SIGNIN_MAX_FAILURES_PER_ACCOUNT, SIGNUP_MAX_PER_IP)
#    and the account-mail limit per client address (ACCOUNT_MAIL_MAX_PER_IP),
#    since every request of a suite comes from one address;
# 3. starts a real SMTP server (tests/mail/sink.sh, aiosmtpd) on a free port,
#    keeping each mail it accepts as a JSON file in a temporary directory, and
#    points the server at it (SMTP_URL, PUBLIC_BASE_URL=BASE_URL, and
#    MAIL_OUTBOX_DIR in a temporary directory, never in the repository);
# 4. creates an admin account with `newsapi create-admin`;
# 5. waits for GET /readyz, then runs COMMAND with these variables exported:
#      BASE_URL        http://127.0.0.1:<port>
#      ADMIN_EMAIL     the admin's email
#      ADMIN_PASSWORD  the admin's password
#      E2E_DATABASE_URL the database the server uses
#      NEWSAPI_BIN     the server binary
#      MAIL_SINK_DIR   where the SMTP server writes each mail it accepts, as
#                      000001.json, 000002.json, ... with the keys rcpt_tos,
#                      from, to, subject, body (decoded text) and raw
# 6. on exit, whatever happens, stops the server and the SMTP server, drops the
#    database and removes the mail directories.
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
sink_pid=""
mail_dir=""
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
    if [[ -n $sink_pid ]]; then
        kill -TERM "$sink_pid" 2>/dev/null || true
        wait "$sink_pid" 2>/dev/null || true
    fi
    if [[ -n $mail_dir ]]; then
        rm -rf "$mail_dir"
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
export ACCOUNT_MAIL_MAX_PER_IP=${ACCOUNT_MAIL_MAX_PER_IP:-1000000}
export RUST_LOG=${E2E_RUST_LOG:-warn}
export NEWSAPI_BIN
export BASE_URL="http://127.0.0.1:$port"
export ADMIN_EMAIL="admin-$(random_hex 4)@example.com"
export ADMIN_PASSWORD="admin-$(random_hex 12)"

# The SMTP server: it prints `listening on PORT` once it accepts connections.
mail_dir=$(mktemp -d "${TMPDIR:-/tmp}/newsapi-e2e-mail.XXXXXX")
export MAIL_SINK_DIR="$mail_dir/received"
export MAIL_OUTBOX_DIR="$mail_dir/outbox"
mkdir -p "$MAIL_SINK_DIR"
: >"$mail_dir/sink.out" # before the background job opens it, so that sed finds it
bash tests/mail/sink.sh "$MAIL_SINK_DIR" >>"$mail_dir/sink.out" 2>>"$log_file" &
sink_pid=$!
smtp_port=""
for _ in $(seq 1 600); do
    if ! kill -0 "$sink_pid" 2>/dev/null; then
        log "the SMTP server exited during start-up; see $log_file"
        exit 1
    fi
    smtp_port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$mail_dir/sink.out")
    [[ -z $smtp_port ]] || break
    sleep 0.2
done
[[ -n $smtp_port ]] || {
    log "the SMTP server did not start within 120 s"
    exit 1
}
export SMTP_URL="smtp://127.0.0.1:$smtp_port"
export PUBLIC_BASE_URL=$BASE_URL
log "SMTP server on port $smtp_port, mails in $MAIL_SINK_DIR"

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
