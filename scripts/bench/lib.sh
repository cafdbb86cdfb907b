# shellcheck shell=bash
# Shared steps of scripts/bench/bench.sh (`make bench`) and scripts/bench/compare.sh
# (`make bench-compare`). Source it from either; it changes to the repository root.
#
# Settings (environment):
#   SEED_USERS (10000) SEED_NEWS (100000)  size of the seed
#   BCRYPT_COST (12)                       the production server's cost; a second server runs at 10
#   DATABASE_POOL_SIZE (16)                the servers' pool size
#   BENCH_RUST_LOG (info, as shipped)      the servers' RUST_LOG
#   SERVER_LD_PRELOAD                      e.g. an allocator to try (libjemalloc.so.2)
#   BENCH_PORT (3180)                      first of five ports used on 127.0.0.1
#   BENCH_DB (newsapi_bench)               the benchmark database (dropped and re-created)
#   REUSE_SEED=1                           keep an already seeded benchmark database
#   SKIP_BUILD=1                           use target/release/newsapi as it is
#   SIGNERS (16)                           accounts created through POST /signup
# and those of driver/run.py (DUR, WARM, ROUNDS, CONNS, SIGNIN_CONNS, QUIET_LIMIT, QUIET_MAX, ONLY, …).

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# rustup installs cargo into ~/.cargo/bin, which non-login shells may not have.
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"

BENCH=$ROOT/scripts/bench
OUT=$ROOT/target/bench
BIN=$ROOT/target/release/newsapi
PORT=${BENCH_PORT:-3180}
NEWSAPI_PORT=$PORT
NEWSAPI_C10_PORT=$((PORT + 1))
NEWSAPI_STARTUP_PORT=$((PORT + 2))
ANCHOR_PORT=$((PORT + 3))
ANCHOR_STARTUP_PORT=$((PORT + 4))
BENCH_DB=${BENCH_DB:-newsapi_bench}
PGBENCH_DB=${BENCH_DB}_pgbench
SEED_USERS=${SEED_USERS:-10000}
SEED_NEWS=${SEED_NEWS:-100000}
BCRYPT_COST=${BCRYPT_COST:-12}
POOL=${DATABASE_POOL_SIZE:-16}
SIGNERS=${SIGNERS:-16}
STARTED_PIDS=()

log() { printf '\n== %s\n' "$*"; }
die() {
    printf 'bench: error: %s\n' "$*" >&2
    exit 1
}

cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else return 1; fi
}

# wrk, pgbench and psql, curl, python3: installed from Debian's packages if missing.
ensure_tools() {
    local missing=()
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    { command -v pgbench >/dev/null 2>&1 && command -v psql >/dev/null 2>&1; } || missing+=(postgresql-client)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    if ((${#missing[@]})); then
        log "installing ${missing[*]} with apt-get"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" ||
            { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } ||
            die "could not install ${missing[*]}"
    fi
}

# PostgreSQL up (the project's own script), and psql arguments for its server.
ensure_postgres() {
    bash scripts/ensure-env.sh >/dev/null
    bash scripts/ensure-postgres.sh
    # shellcheck source=scripts/lib/database-url.sh
    source scripts/lib/database-url.sh
    load_database_url
    PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER")
    local base=${DATABASE_URL%%\?*}
    BENCH_URL="${base%/*}/$BENCH_DB"
}

check_ports() {
    local p
    for p in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            die "127.0.0.1:$p is in use; set BENCH_PORT to another first port (five are used)"
        fi
    done
}

build() {
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
        log "building the release binary (cargo build --release)"
        cargo build --release --bin newsapi
    fi
    [[ -x $BIN ]] || die "$BIN is missing"
    log "building scripts/bench/bcrypt-time (times one bcrypt verification)"
    cargo build --release --quiet --manifest-path "$BENCH/bcrypt-time/Cargo.toml" \
        --target-dir "$ROOT/target/bench-tools" --offline 2>/dev/null ||
        cargo build --release --quiet --manifest-path "$BENCH/bcrypt-time/Cargo.toml" \
            --target-dir "$ROOT/target/bench-tools"
}

# A fresh benchmark database: migrations (by the binary), then the seed (scripts/bench/seed.sql).
fresh_database() {
    mkdir -p "$OUT"
    local seeded=""
    if [[ ${REUSE_SEED:-0} == 1 ]]; then
        seeded=$("${PSQL[@]}" -d "$BENCH_DB" -Atc "SELECT count(*) FROM news" 2>/dev/null || true)
    fi
    if [[ -n $seeded && $seeded -ge $SEED_NEWS ]]; then
        log "reusing the seeded database $BENCH_DB ($seeded news); removing the benchmark's own rows"
        # Rows the previous run's sign-ups and creates added; the seed's users have no credentials.
        "${PSQL[@]}" -d "$BENCH_DB" -c "DELETE FROM users WHERE id IN (SELECT user_id FROM user_credentials)" \
            -c "VACUUM ANALYZE news"
    else
        log "creating $BENCH_DB, migrating, seeding $SEED_USERS users and $SEED_NEWS news"
        "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" -c "CREATE DATABASE $BENCH_DB"
        DATABASE_URL=$BENCH_URL RUST_LOG=warn "$BIN" migrate
        local t0=$SECONDS
        "${PSQL[@]}" -d "$BENCH_DB" -v users="$SEED_USERS" -v news="$SEED_NEWS" -f "$BENCH/seed.sql"
        echo "seeded in $((SECONDS - t0)) s"
    fi
    "${PSQL[@]}" -d "$BENCH_DB" -Atc "COPY (SELECT id FROM news ORDER BY id) TO STDOUT" >"$OUT/ids.txt"
    "${PSQL[@]}" -d "$BENCH_DB" -Atc "COPY (SELECT word FROM bench.search_words ORDER BY i) TO STDOUT" >"$OUT/words.txt"
    "${PSQL[@]}" -d "$BENCH_DB" -Atc "SELECT json_build_object(
        'users', (SELECT count(*) FROM users), 'news', (SELECT count(*) FROM news),
        'avg_title_chars', (SELECT round(avg(char_length(title))) FROM news),
        'avg_body_chars', (SELECT round(avg(char_length(body))) FROM news),
        'news_table_mb', (SELECT pg_total_relation_size('news') / 1048576))" >"$OUT/seed.json"
}

pgbench_database() {
    local branches
    branches=$("${PSQL[@]}" -d "$PGBENCH_DB" -Atc "SELECT count(*) FROM pgbench_branches" 2>/dev/null || true)
    if [[ $branches != 10 ]]; then
        log "initialising $PGBENCH_DB for pgbench (scale 10)"
        "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $PGBENCH_DB WITH (FORCE)" -c "CREATE DATABASE $PGBENCH_DB"
        pgbench -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -i -s 10 -q "$PGBENCH_DB" >"$OUT/pgbench-init.txt" 2>&1
    fi
}

# start_newsapi NAME PORT COST: the release binary on the benchmark database, in the background.
start_newsapi() {
    local name=$1 port=$2 cost=$3 pid
    (
        cd "$OUT"
        export DATABASE_URL=$BENCH_URL LISTEN_ADDR=127.0.0.1:$port BCRYPT_COST=$cost
        [[ -n ${SERVER_LD_PRELOAD:-} ]] && export LD_PRELOAD=$SERVER_LD_PRELOAD
        exec "$BIN"
    ) >"$OUT/$name.log" 2>&1 &
    pid=$!
    STARTED_PIDS+=("$pid")
    echo "$pid" >"$OUT/$name.pid"
    for _ in $(seq 1 300); do
        if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
            echo "$name: pid $pid on 127.0.0.1:$port (BCRYPT_COST=$cost)"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { cat "$OUT/$name.log" >&2; die "$name exited"; }
        sleep 0.1
    done
    die "$name did not become ready in 30 s; see $OUT/$name.log"
}

# The servers' settings: exported, so that the driver's timed starts use the same ones. The
# JWT secret is made for this run and written nowhere.
server_env() {
    export JWT_SECRET
    JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
    # Observability as shipped: the access line of every request (RUST_LOG=info, JSON into the
    # server's log file), request ids and /metrics are on while the scenarios run.
    export RUST_LOG=${BENCH_RUST_LOG:-info} ACCESS_TOKEN_TTL_SECS=86400 \
        DATABASE_POOL_SIZE=$POOL DATABASE_POOL_TIMEOUT_MS=${DATABASE_POOL_TIMEOUT_MS:-1000}
    # wrk and the account script are ONE client address standing for many clients: the per-address
    # limits stay on (and cost what they cost), bounded above what the bench sends (2 x SIGNERS
    # sign-ups into one database; SIGNIN_CONNS hashes at once, 16 by default). The sign-in
    # throttle reserves a failure before each password check and refunds it only to a client that
    # is still there: the sign-ins wrk cuts off at the end of every S5 and S7b run (16 each) count
    # as failures of 127.0.0.1 and of their accounts, and with the shipped budgets (100 per
    # address, 10 per account and address, per 15 minutes) a third round found every sign-in
    # refused (2026-12-05 08:36).
    export SIGNUP_MAX_PER_IP=${SIGNUP_MAX_PER_IP:-1000} HASH_QUEUE_MAX_PER_IP=${HASH_QUEUE_MAX_PER_IP:-64} \
        SIGNIN_MAX_FAILURES_PER_IP=${SIGNIN_MAX_FAILURES_PER_IP:-100000} \
        SIGNIN_MAX_FAILURES=${SIGNIN_MAX_FAILURES:-10000} \
        SIGNIN_MAX_FAILURES_PER_ACCOUNT=${SIGNIN_MAX_FAILURES_PER_ACCOUNT:-10000}
}

newsapi_accounts() {
    log "creating $SIGNERS accounts through POST /signup on each server, and signing them in"
    python3 "$BENCH/accounts.py" --base "http://127.0.0.1:$NEWSAPI_PORT" --style newsapi \
        --prefix signer --count "$SIGNERS" --creds "$OUT/creds.tsv" --tokens "$OUT/tokens.txt"
    python3 "$BENCH/accounts.py" --base "http://127.0.0.1:$NEWSAPI_C10_PORT" --style newsapi \
        --prefix signer-c10- --count "$SIGNERS" --creds "$OUT/creds-c10.tsv" --tokens "$OUT/tokens-c10.txt"
    python3 "$BENCH/bad-token.py" >"$OUT/bad-token.txt"
    # Sanity: a token reads a seeded news item; the bad one gets 401.
    local id
    id=$(head -1 "$OUT/ids.txt")
    curl -fsS -o /dev/null -H "Authorization: Bearer $(head -1 "$OUT/tokens.txt")" "http://127.0.0.1:$NEWSAPI_PORT/news/$id"
    [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$OUT/bad-token.txt")" \
        "http://127.0.0.1:$NEWSAPI_PORT/news/$id") == 401 ]] || die "the bad token was not refused"
}

# write_setup: describes everything the driver needs (no secrets) in $OUT/setup.json.
write_setup() {
    OUT=$OUT BIN=$BIN BENCH_DB=$BENCH_DB PGBENCH_DB=$PGBENCH_DB DB_HOST=$DB_HOST DB_PORT=$DB_PORT \
        DB_USER=$DB_USER NEWSAPI_PORT=$NEWSAPI_PORT NEWSAPI_C10_PORT=$NEWSAPI_C10_PORT \
        NEWSAPI_STARTUP_PORT=$NEWSAPI_STARTUP_PORT ANCHOR_PORT=$ANCHOR_PORT \
        ANCHOR_STARTUP_PORT=$ANCHOR_STARTUP_PORT BCRYPT_COST=$BCRYPT_COST POOL=$POOL \
        SEED_NEWS=$SEED_NEWS WITH_ANCHOR=${WITH_ANCHOR:-0} ANCHOR_DIR=${ANCHOR_DIR:-} ANCHOR_DB=${ANCHOR_DB:-} \
        python3 - <<'PY'
import json, os, platform, subprocess
e = os.environ
out = e["OUT"]

def cmd(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, timeout=20).stdout.strip()
    except OSError:
        return None

def pid(name):
    try:
        return int(open(f"{out}/{name}.pid").read())
    except OSError:
        return None

model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))
setup = {
    "machine": {
        "cpus": os.cpu_count(), "cpu_model": model, "mem_gib": round(int(mem) / 1048576),
        "kernel": platform.release(),
        "os": next((l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME")), "?"),
        "postgres": cmd("psql", "-X", "-h", e["DB_HOST"], "-p", e["DB_PORT"], "-U", e["DB_USER"], "-d", e["BENCH_DB"], "-Atc", "SHOW server_version"),
        "wrk": (cmd("sh", "-c", "wrk -v 2>&1 | head -1") or "").split(" [")[0],
        "rustc": cmd("rustc", "--version"),
        "node": cmd("node", "--version"),
    },
    # What was measured: the commit, and the files of the server that differ from it.
    "source": {
        "commit": cmd("git", "-C", os.path.dirname(os.path.dirname(out)), "rev-parse", "--short", "HEAD"),
        "uncommitted": (cmd("git", "-C", os.path.dirname(os.path.dirname(out)), "status", "--porcelain",
                            "src", "migrations", "Cargo.toml", "Cargo.lock") or "").splitlines(),
    },
    "seed": json.load(open(f"{out}/seed.json")),
    "bcrypt_cost": int(e["BCRYPT_COST"]),
    "pool_size": int(e["POOL"]),
    "rust_log": e.get("RUST_LOG"),
    "ld_preload": e.get("SERVER_LD_PRELOAD") or None,
    "tokio_worker_threads": e.get("TOKIO_WORKER_THREADS") or None,
    "bcrypt_tool": f"{os.path.dirname(out)}/bench-tools/release/bcrypt-time",
    "targets": {
        "newsapi": {
            "base": f"http://127.0.0.1:{e['NEWSAPI_PORT']}", "pid": pid("newsapi"), "db": e["BENCH_DB"],
            "bad_token": open(f"{out}/bad-token.txt").read().strip(),
            "files": {"ids": f"{out}/ids.txt", "tokens": f"{out}/tokens.txt",
                      "words": f"{out}/words.txt", "creds": f"{out}/creds.tsv"},
            # The signers' news are the rows S4 and S8 add; the seed's authors have no password.
            "reset": {"db": e["BENCH_DB"],
                      "delete": "DELETE FROM news WHERE author_id IN (SELECT user_id FROM user_credentials)",
                      "vacuum": "VACUUM ANALYZE news"},
        },
        "newsapi_c10": {
            "base": f"http://127.0.0.1:{e['NEWSAPI_C10_PORT']}", "pid": pid("newsapi_c10"), "db": e["BENCH_DB"],
            "files": {"creds": f"{out}/creds-c10.tsv"},
        },
    },
    "pgbench": {"host": e["DB_HOST"], "port": int(e["DB_PORT"]), "user": e["DB_USER"], "db": e["PGBENCH_DB"]},
    "startup": {
        "newsapi": {"cmd": [e["BIN"]], "cwd": out,
                    "env": {"LISTEN_ADDR": f"127.0.0.1:{e['NEWSAPI_STARTUP_PORT']}",
                            "BCRYPT_COST": e["BCRYPT_COST"]},
                    "ready_url": f"http://127.0.0.1:{e['NEWSAPI_STARTUP_PORT']}/readyz"},
    },
}
if e["WITH_ANCHOR"] == "1":
    a = e["ANCHOR_DIR"]
    setup["targets"]["loopback"] = {
        "base": f"http://127.0.0.1:{e['ANCHOR_PORT']}", "pid": int(open(f"{a}/server.pid").read()),
        "db": e["ANCHOR_DB"],
        "bad_token": open(f"{out}/bad-token.txt").read().strip(),
        "files": {"ids": f"{out}/anchor-ids.txt", "tokens": f"{out}/anchor-tokens.txt",
                  "words": f"{out}/words.txt", "creds": f"{out}/anchor-creds.tsv"},
        "reset": {"db": e["ANCHOR_DB"], "delete": f"DELETE FROM newsmodel WHERE id > {int(e['SEED_NEWS'])}",
                  "vacuum": "VACUUM ANALYZE newsmodel"},
    }
    setup["startup"]["loopback"] = {
        "cmd": ["node", "."], "cwd": a,
        "env": {"NODE_ENV": "production", "HOST": "127.0.0.1", "PORT": e["ANCHOR_STARTUP_PORT"],
                "PGHOST": e["DB_HOST"], "PGPORT": e["DB_PORT"], "PGUSER": e["DB_USER"],
                "PGDATABASE": e["ANCHOR_DB"]},
        "ready_url": f"http://127.0.0.1:{e['ANCHOR_STARTUP_PORT']}/ping",
    }
if e.get("WITH_PB") == "1":
    pb = e["PB_DIR"]
    ids = f"{out}/pb-ids.txt"
    setup["targets"]["pocketbase"] = {
        "base": f"http://127.0.0.1:{e['PB_PORT']}", "pid": int(open(f"{pb}/server.pid").read()),
        # Driven by its own wrk script (MODE=...); no PostgreSQL: SQLite runs in its process.
        "script": f"{pb}/bench.lua",
        "bad_token": open(f"{out}/pb-bad-token.txt").read().strip(),
        "files": {"ids": ids, "tokens": f"{out}/pb-tokens.tsv", "creds": f"{out}/pb-creds.tsv"},
        # Seeded rows have rowids 1..N (scripts/bench/pocketbase-seed.py); S4 adds the others.
        "reset": {"sqlite": f"{pb}/pb_data/data.db",
                  "delete": f"DELETE FROM news WHERE rowid > {sum(1 for _ in open(ids))}"},
    }
    setup["machine"]["pocketbase"] = cmd(f"{pb}/.venv/bin/pocketbase", "--version")
    setup["startup"]["pocketbase"] = {
        "cmd": [f"{pb}/.venv/bin/pocketbase", "serve", "--http", f"127.0.0.1:{e['PB_STARTUP_PORT']}",
                "--dir", f"{out}/pb-startup-data", "--migrationsDir", f"{pb}/pb_migrations",
                "--automigrate=false"],
        "cwd": pb, "env": {},
        "ready_url": f"http://127.0.0.1:{e['PB_STARTUP_PORT']}/api/health",
    }
json.dump(setup, open(f"{out}/setup.json", "w"), indent=1)
PY
}

# prepare_newsapi: tools, PostgreSQL, build, database, both servers, accounts, bcrypt timings.
prepare_newsapi() {
    ensure_tools
    check_ports "$NEWSAPI_PORT" "$NEWSAPI_C10_PORT" "$NEWSAPI_STARTUP_PORT" "$ANCHOR_PORT" "$ANCHOR_STARTUP_PORT"
    ensure_postgres
    build
    fresh_database
    pgbench_database
    server_env
    log "starting newsapi (BCRYPT_COST=$BCRYPT_COST) and a second one at BCRYPT_COST=10 on the same database"
    start_newsapi newsapi "$NEWSAPI_PORT" "$BCRYPT_COST"
    start_newsapi newsapi_c10 "$NEWSAPI_C10_PORT" 10
    newsapi_accounts
    export DATABASE_URL=$BENCH_URL
}

run_driver() {
    write_setup
    log "running the scenarios (DUR=${DUR:-10} s, WARM=${WARM:-3} s, ROUNDS=${ROUNDS:-1})"
    python3 "$BENCH/driver/run.py" run --setup "$OUT/setup.json" --out "$OUT/$1"
}
