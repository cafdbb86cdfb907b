#!/usr/bin/env bash
# `make bench-compare`: the scenarios of `make bench`, side by side against the LoopBack anchor
# (../shared/anchors/loopback, copied to target/anchor and started there with its own run.sh, on
# the same PostgreSQL, seeded with the very same 100 000 news) and against PostgreSQL alone
# (`pgbench -S -M prepared`). Runs are interleaved scenario by scenario and repeated ROUNDS times
# (default 3); the tables quote medians. Writes target/bench/compare.json (and compare.md).
# Extra settings: ANCHOR_SRC (the anchor's directory), ROUNDS.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export ROUNDS=${ROUNDS:-3}
ANCHOR_SRC=${ANCHOR_SRC:-$ROOT/../shared/anchors/loopback}
ANCHOR_DIR=$ROOT/target/anchor
ANCHOR_DB=${BENCH_DB}_lb

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || die "the LoopBack anchor needs node and npm"
[[ -x $ANCHOR_SRC/run.sh ]] || die "no LoopBack anchor at $ANCHOR_SRC (set ANCHOR_SRC)"

prepare_newsapi

stop_anchor() {
    [[ -f $ANCHOR_DIR/stop.sh ]] && (cd "$ANCHOR_DIR" && ./stop.sh) || true
    cleanup
}
trap stop_anchor EXIT

log "copying the LoopBack anchor to target/anchor (its own directory is read-only)"
mkdir -p "$ANCHOR_DIR"
[[ -f $ANCHOR_DIR/server.pid ]] && (cd "$ANCHOR_DIR" && ./stop.sh) || true
# Sources and scripts only; node_modules and dist are made there by run.sh.
(cd "$ANCHOR_SRC" && find . -path ./node_modules -prune -o -path ./dist -prune -o \
    -path ./bench-results -prune -o -type f -print) |
    while read -r f; do
        mkdir -p "$ANCHOR_DIR/$(dirname "$f")"
        cp -f "$ANCHOR_SRC/$f" "$ANCHOR_DIR/$f"
    done
chmod -R u+w "$ANCHOR_DIR"

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

export WITH_ANCHOR=1 ANCHOR_DIR ANCHOR_DB
run_driver compare.json
echo
echo "results: target/bench/compare.json (table: target/bench/compare.md)"
