#!/usr/bin/env bash
# `make bench-cluster` (BENCHMARKS.md, "Replicas and read replicas"): S1 and S2 of the benchmark
# (the same wrk scripts, token, 64 connections) through Debian's nginx with deploy/nginx.conf in
# front of 1, 2 and 3 replicas of the release build (the upstream list is all that changes), and
# straight to one replica without nginx; then S1 and S2 against a server whose DATABASE_READ_URL is
# a streaming standby, and against the same server without it. ROUNDS (3) short rounds per point,
# interleaved; medians. Results: target/bench/cluster/results.{json,md}.
#
# It never uses the PostgreSQL of DATABASE_URL: a primary of its own (initdb, on a free port, in a
# temporary directory, as the postgres user when run as root), seeded with scripts/bench/seed.sql,
# and a standby made of it with `pg_basebackup -R`; both are stopped and removed on exit, whatever
# happens, as are the servers and nginx (driver/cluster.py).
#
# Settings (environment): SEED_NEWS (100000) and SEED_USERS (10000) as in `make bench`, DUR (5 s),
# WARM (2 s), ROUNDS (3), CONNS (64), DATABASE_POOL_SIZE (16), BENCH_RUST_LOG (info, as shipped),
# QUIET_MAX (10 s: how long a run waits for other processes to calm down), SKIP_BUILD=1 (use
# target/release/newsapi as it is). ~11 min with the default seed on a busy 2-core VM (~1 min of it seeding).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/lib/apt.sh
source tests/lib/apt.sh

OUT=$ROOT/target/bench/cluster
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
export SEED_NEWS SEED_USERS
export DUR=${DUR:-5} WARM=${WARM:-2} ROUNDS=${ROUNDS:-3} QUIET_MAX=${QUIET_MAX:-10}
PGDIR=""

as_pg() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

stop_postgres() {
    local d
    [[ -n $PGDIR && -d $PGDIR ]] || return 0
    for d in "$PGDIR/standby" "$PGDIR/primary"; do
        if [[ -f $d/postmaster.pid ]]; then
            as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
        fi
    done
    rm -rf "$PGDIR"
}
on_exit() {
    local status=$?
    cleanup
    stop_postgres
    exit "$status"
}
trap on_exit EXIT

ensure_tools
ensure_debian_package bench-cluster nginx /usr/sbin/nginx --no-install-recommends
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building the release binary (cargo build --release)"
    cargo build --release --bin newsapi
fi
[[ -x $BIN ]] || die "$BIN is missing"
mkdir -p "$OUT"

log "a PostgreSQL primary of our own, seeded with $SEED_NEWS news, and a streaming standby of it"
PGDIR=$(mktemp -d /tmp/newsapi-bench-cluster.XXXXXX)
chmod 755 "$PGDIR"
if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$PGDIR"; fi
PRIMARY_PORT=$(free_port)
STANDBY_PORT=$(free_port)
settings() {
    printf "\nport = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n" "$1" "$PGDIR"
    # Room for 4 servers x 16 pooled connections, psql and the walsender; otherwise Debian's
    # defaults (shared_buffers 128MB, fsync on).
    printf "max_connections = 150\nwal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n"
}
as_pg "$PGBIN/initdb" -U postgres --auth=trust -E UTF8 --no-sync -D "$PGDIR/primary" >/dev/null
settings "$PRIMARY_PORT" | as_pg tee -a "$PGDIR/primary/postgresql.conf" >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGDIR/primary" -l "$PGDIR/primary.log" -w -t 60 start >/dev/null
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE newsapi_bench"
PRIMARY_URL="postgres://postgres@127.0.0.1:$PRIMARY_PORT/newsapi_bench"
STANDBY_URL="postgres://postgres@127.0.0.1:$STANDBY_PORT/newsapi_bench"
(cd "$OUT" && DATABASE_URL=$PRIMARY_URL JWT_SECRET=migrate-only-0123456789abcdef0123456789 RUST_LOG=warn "$BIN" migrate)
t0=$SECONDS
"${PSQL[@]}" -d newsapi_bench -v users="$SEED_USERS" -v news="$SEED_NEWS" -f "$BENCH/seed.sql"
"${PSQL[@]}" -d newsapi_bench -c "VACUUM ANALYZE"
echo "seeded in $((SECONDS - t0)) s"
"${PSQL[@]}" -d newsapi_bench -Atc "COPY (SELECT id FROM news ORDER BY id) TO STDOUT" >"$OUT/ids.txt"
as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -R -X stream -c fast --no-sync \
    -D "$PGDIR/standby"
settings "$STANDBY_PORT" | as_pg tee -a "$PGDIR/standby/postgresql.conf" >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGDIR/standby" -l "$PGDIR/standby.log" -w -t 60 start >/dev/null
for _ in $(seq 1 100); do
    n=$(psql -X -At -h 127.0.0.1 -p "$STANDBY_PORT" -U postgres -d newsapi_bench -c "SELECT count(*) FROM news" 2>/dev/null || true)
    [[ $n == "$SEED_NEWS" ]] && break
    sleep 0.2
done
[[ $n == "$SEED_NEWS" ]] || die "the standby did not catch up ($n news)"
echo "standby on 127.0.0.1:$STANDBY_PORT has the $n news"

server_env
export PRIMARY_URL STANDBY_URL OUT BIN NGINX_BIN=/usr/sbin/nginx
export PG_PIDFILES="$PGDIR/primary/postmaster.pid:$PGDIR/standby/postmaster.pid"
export SOURCE_COMMIT
SOURCE_COMMIT=$(git rev-parse --short HEAD)
log "running (DUR=$DUR s, WARM=$WARM s, ROUNDS=$ROUNDS, CONNS=${CONNS:-64})"
python3 "$BENCH/driver/cluster.py"
