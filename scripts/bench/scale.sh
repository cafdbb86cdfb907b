#!/usr/bin/env bash
# `make bench-scale` (BENCHMARKS.md, "Cost curve"): how the cost of a read, a page deep in the feed,
# a search and a count grows with the table. For each size of SCALE_SIZES (10000,100000,1000000) a
# database of its own, BENCH_DB_<size>, seeded with scripts/bench/seed.sql (SEED_NEWS = the size),
# and a release server on it (ports BENCH_PORT, BENCH_PORT+1, …: at most five sizes); then
# driver/scale.py runs every scenario against every size, sizes interleaved, ROUNDS (1) times,
# and driver/scale_plot.py draws the curve (matplotlib, pinned in plot-requirements.txt, in a venv
# under target/venv/bench-plot).
#
# Results: target/bench/scale/results.{json,md} and scale.png; SCALE_PLOT_OUT=docs/img/scale.png
# copies the plot there too. The databases are kept: REUSE_SEED=1 reuses those already seeded.
#
# Settings (environment): SCALE_SIZES, BENCH_DB (newsapi_scale: the prefix of the databases),
# BENCH_PORT (3180), SIGNERS (4: accounts whose tokens the requests carry), SCALE_PLOT_OUT, and
# those of lib.sh and the driver (DUR 10, WARM 3, ROUNDS 1, CONNS 64, QUIET_MAX, ONLY, SKIP_BUILD).
# Quick try-out: SCALE_SIZES=2000,20000 DUR=2 WARM=1 QUIET_MAX=0 make bench-scale
export BENCH_DB=${BENCH_DB:-newsapi_scale}
export SIGNERS=${SIGNERS:-4}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/lib/venv.sh
source tests/lib/venv.sh

SCALE_OUT=$ROOT/target/bench/scale
export SCALE_SIZES=${SCALE_SIZES:-10000,100000,1000000}
IFS=, read -r -a SIZES <<<"$SCALE_SIZES"
((${#SIZES[@]} >= 1 && ${#SIZES[@]} <= 5)) || die "SCALE_SIZES takes one to five sizes (one port each)"
PORTS=()
for i in "${!SIZES[@]}"; do
    [[ ${SIZES[$i]} =~ ^[1-9][0-9]*$ && ${SIZES[$i]} -ge 100 ]] || die "SCALE_SIZES: '${SIZES[$i]}' is not a size (>= 100)"
    PORTS+=($((PORT + i)))
done
DB_PREFIX=$BENCH_DB

ensure_tools
check_ports "${PORTS[@]}"
ensure_postgres
build
ensure_venv target/venv/bench-plot "$BENCH/plot-requirements.txt"
server_env

for i in "${!SIZES[@]}"; do
    SEED_NEWS=${SIZES[$i]}
    BENCH_DB=${DB_PREFIX}_$SEED_NEWS
    BENCH_URL=${BENCH_URL%/*}/$BENCH_DB
    OUT=$SCALE_OUT/$SEED_NEWS
    t0=$SECONDS
    fresh_database
    seed_s=$((SECONDS - t0))
    # The texts stay in bench.news_text for compare.sh's LoopBack anchor; nothing here reads them
    # (2 GB at a million news).
    "${PSQL[@]}" -d "$BENCH_DB" -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS bench.news_text"
    start_newsapi newsapi "${PORTS[$i]}" "$BCRYPT_COST"
    python3 "$BENCH/accounts.py" --base "http://127.0.0.1:${PORTS[$i]}" --style newsapi \
        --prefix signer --count "$SIGNERS" --creds "$OUT/creds.tsv" --tokens "$OUT/tokens.txt"
    NEWS=$SEED_NEWS DB=$BENCH_DB BASE="http://127.0.0.1:${PORTS[$i]}" PID=$(cat "$OUT/newsapi.pid") \
        SEED_S=$seed_s DB_HOST=$DB_HOST DB_PORT=$DB_PORT DB_USER=$DB_USER OUT=$OUT python3 - <<'PY'
import json, os
e = os.environ
o = e["OUT"]
json.dump({"news": int(e["NEWS"]), "db": e["DB"], "base": e["BASE"], "pid": int(e["PID"]),
           "seed_s": int(e["SEED_S"]), "db_host": e["DB_HOST"], "db_port": int(e["DB_PORT"]),
           "db_user": e["DB_USER"],
           "files": {"ids": f"{o}/ids.txt", "tokens": f"{o}/tokens.txt", "words": f"{o}/words.txt"}},
          open(f"{o}/target.json", "w"), indent=1)
PY
done

SOURCE_COMMIT=$(git rev-parse --short HEAD)
export SOURCE_COMMIT
log "running the scenarios at ${SCALE_SIZES} news (DUR=${DUR:-10} s, WARM=${WARM:-3} s, ROUNDS=${ROUNDS:-1})"
python3 "$BENCH/driver/scale.py" run "$SCALE_OUT"
target/venv/bench-plot/bin/python "$BENCH/driver/scale_plot.py" "$SCALE_OUT/results.json" "$SCALE_OUT/scale.png"
if [[ -n ${SCALE_PLOT_OUT:-} ]]; then
    mkdir -p "$(dirname "$SCALE_PLOT_OUT")"
    cp "$SCALE_OUT/scale.png" "$SCALE_PLOT_OUT"
    echo "plot copied to $SCALE_PLOT_OUT"
fi
echo
echo "results: target/bench/scale/results.json (table: results.md, plot: scale.png)"
