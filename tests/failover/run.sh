#!/usr/bin/env bash
# PostgreSQL failover with nothing lost (issue 14, item 2): a pg_auto_failover formation (a
# monitor, a primary and a synchronous standby; tests/failover/cluster.sh), one release server on
# the multi-host DATABASE_URL, a mixed write load through the API (tests/failover/failover.py), and
# the primary killed with SIGKILL mid-load. The suite checks that writes fail fast with 503 during
# the switch, succeed again on the promoted standby without restarting the server, and that every
# acknowledged write is on the new primary; it prints the unavailability window.
#
#   tests/failover/run.sh      (or: make failover, tests/run-suites.sh failover)
#
# Everything it starts lives in a temporary directory and is stopped on exit, whatever happens.
# It never touches the PostgreSQL of DATABASE_URL. Settings: LOAD_SECS (30), KILL_AFTER_SECS (10),
# WRITERS (6), NEWSAPI_BIN (default: a release build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
# shellcheck source=tests/lib/apt.sh
source tests/lib/apt.sh
# shellcheck source=tests/failover/cluster.sh
source tests/failover/cluster.sh

ensure_debian_package failover postgresql-15-auto-failover /usr/bin/pg_autoctl \
    --no-install-recommends

if [[ -z ${NEWSAPI_BIN:-} ]]; then
    command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
    cargo build --quiet --release --bin newsapi
    NEWSAPI_BIN=$ROOT/target/release/newsapi
fi

FAILOVER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/newsapi-failover.XXXXXX")
work=$(mktemp -d "${TMPDIR:-/tmp}/newsapi-failover-server.XXXXXX")
mkdir -p "$ROOT/target/e2e"
server_log=$ROOT/target/e2e/failover-server.log
: >"$server_log"
server_pid=""
load_pid=""

cleanup() {
    local status=$?
    [[ -z $load_pid ]] || kill -TERM "$load_pid" 2>/dev/null || true
    if [[ -n $server_pid ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if ((status != 0)); then
        echo "failover: failed ($status); last lines of the logs:" >&2
        tail -n 20 "$server_log" "$FAILOVER_DIR"/*.log >&2 2>/dev/null || true
    fi
    cluster_stop
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$SECONDS
cluster_start
echo "failover: formation up in $((SECONDS - started)) s: monitor :${CLUSTER_PORT[monitor]}," \
    "node1 :${CLUSTER_PORT[node1]} (primary), node2 :${CLUSTER_PORT[node2]} (synchronous standby)"

# Both data nodes, in order; the driver keeps the first that accepts writes.
export DATABASE_URL="postgres://$CLUSTER_USER@127.0.0.1:${CLUSTER_PORT[node1]},127.0.0.1:${CLUSTER_PORT[node2]}/newsapi?target_session_attrs=read-write"
export FAILOVER_DATABASE_URL=$DATABASE_URL
export JWT_SECRET
JWT_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export BCRYPT_COST=4
port=$(free_port)
export LISTEN_ADDR="127.0.0.1:$port" BASE_URL="http://127.0.0.1:$port"
export REQUEST_TIMEOUT_SECS=10
export SIGNIN_MAX_FAILURES=1000000 SIGNIN_MAX_FAILURES_PER_IP=1000000
export MAIL_OUTBOX_DIR="$work/mail" RUST_LOG=${E2E_RUST_LOG:-warn}
export ADMIN_EMAIL=failover-admin@example.com
export ADMIN_PASSWORD
ADMIN_PASSWORD=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')

# The server's working directory is its own, so that no .env of the checkout applies.
cd "$work"
printf '%s\n' "$ADMIN_PASSWORD" | "$NEWSAPI_BIN" create-admin --email "$ADMIN_EMAIL" \
    2>>"$server_log"
"$NEWSAPI_BIN" serve >>"$server_log" 2>&1 &
server_pid=$!
cd "$ROOT"
wait_for "the server at $BASE_URL" 30 curl -fsS -o /dev/null --max-time 2 "$BASE_URL/readyz"

export FAILOVER_READY_FILE=$work/ready FAILOVER_KILLED_FILE=$work/killed
export FAILOVER_WINDOW_FILE=$ROOT/target/e2e/failover-window.txt FAILOVER_COUNTS_FILE=$work/counts
export LOAD_SECS=${LOAD_SECS:-30} WRITERS=${WRITERS:-6}
python3 tests/failover/failover.py &
load_pid=$!
wait_for "the load to start" 30 test -s "$FAILOVER_READY_FILE"
sleep "${KILL_AFTER_SECS:-10}"

# The primary's host dies: its pg_autoctl and its PostgreSQL, SIGKILL, no goodbye.
python3 -c 'import time; print(time.time())' >"$FAILOVER_KILLED_FILE"
cluster_kill node1
echo "failover: killed node1 (the primary) at +${KILL_AFTER_SECS:-10} s"

status=0
wait "$load_pid" || status=$?
load_pid=""

# The monitor promoted node2, and the server that served throughout is the one started above.
if states_are node2=wait_primary || states_are node2=primary; then
    echo "ok   the monitor promoted node2 ($(node_state node2))"
    passed=1 failed=0
else
    echo "FAIL node2 is $(node_state node2), not the primary"
    passed=0 failed=1
fi
if kill -0 "$server_pid" 2>/dev/null; then
    echo "ok   the server was never restarted (pid $server_pid)"
    passed=$((passed + 1))
else
    echo "FAIL the server exited"
    failed=$((failed + 1))
fi
if grep -q ' panicked at ' "$server_log"; then
    echo "FAIL the server panicked (see $server_log)"
    failed=$((failed + 1))
fi
if [[ -s $FAILOVER_COUNTS_FILE ]]; then
    read -r load_passed load_failed <"$FAILOVER_COUNTS_FILE"
    passed=$((passed + load_passed)) failed=$((failed + load_failed))
else
    failed=$((failed + 1)) # the load stopped before it could count
fi
echo "failover: $passed passed, $failed failed ($((SECONDS - started)) s)"
((status == 0 && failed == 0))
