#!/usr/bin/env bash
# Where a request's CPU goes inside the server: runs the release binary under
# `valgrind --tool=callgrind` (which counts instructions, so the figures hold on a busy machine),
# drives one scenario through it at low concurrency, and prints the functions by inclusive cost.
#
#   bash scripts/bench/investigations/profile/profile.sh [SCENARIO]   S1 (default), S2, S4 or S6
#
# Needs the seeded benchmark database of `make bench` (it is reused as it is; the accounts made
# here sign up at BCRYPT_COST=4, sign-in is not what is profiled). Output: target/bench/profile/.
# Settings: PROFILE_DUR (30 s of load), PROFILE_CONNS (4), BIN_OVERRIDE (another binary),
# SERVER_LD_PRELOAD (e.g. another allocator), PROFILE_TAG (a name for the output directory).
# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib.sh"
SCEN=${1:-S1}
PDIR=$OUT/profile${PROFILE_TAG:+-$PROFILE_TAG}
PROFILE_PORT=$((PORT + 5))
BIN=${BIN_OVERRIDE:-$BIN}
mkdir -p "$PDIR"
command -v valgrind >/dev/null 2>&1 || as_root apt-get install -y -q valgrind
ensure_tools
check_ports "$PROFILE_PORT"
ensure_postgres
"${PSQL[@]}" -d "$BENCH_DB" -Atc "SELECT count(*) FROM news" >/dev/null 2>&1 || die "run make bench first (no $BENCH_DB)"
server_env
export DATABASE_URL=$BENCH_URL LISTEN_ADDR=127.0.0.1:$PROFILE_PORT BCRYPT_COST=4
rm -f "$PDIR"/callgrind.out.*
env ${SERVER_LD_PRELOAD:+LD_PRELOAD=$SERVER_LD_PRELOAD} \
    valgrind --tool=callgrind --callgrind-out-file="$PDIR/callgrind.out.%p" \
    "$BIN" >"$PDIR/server.log" 2>&1 &
VPID=$!
STARTED_PIDS+=("$VPID")
for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$PROFILE_PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$VPID" 2>/dev/null || { cat "$PDIR/server.log" >&2; die "the server exited"; }
    sleep 0.1
done
python3 "$BENCH/accounts.py" --base "http://127.0.0.1:$PROFILE_PORT" --style newsapi \
    --prefix "profile-$$-" --count 4 --creds "$PDIR/creds.tsv" --tokens "$PDIR/tokens.txt"
python3 "$BENCH/bad-token.py" >"$PDIR/bad-token.txt"
"${PSQL[@]}" -d "$BENCH_DB" -Atc "COPY (SELECT id FROM news ORDER BY id LIMIT 20000) TO STDOUT" >"$PDIR/ids.txt"
case $SCEN in
    S1) script=read-one.lua ;;
    S2) script=list.lua ;;
    S4) script=create.lua ;;
    S6) script=read-one.lua; export BAD_TOKEN; BAD_TOKEN=$(cat "$PDIR/bad-token.txt") ;;
    *) die "unknown scenario $SCEN" ;;
esac
export BENCH_LUA_DIR=$BENCH/scenarios IDS_FILE=$PDIR/ids.txt TOKENS_FILE=$PDIR/tokens.txt OUT=$PDIR/wrk.json
rm -f "$PDIR/wrk.json"
# Warm up uninstrumented (pool connections, prepared statements), then count.
wrk -t1 -c"${PROFILE_CONNS:-4}" -d5s -s "$BENCH/scenarios/$script" "http://127.0.0.1:$PROFILE_PORT" >/dev/null
rm -f "$PDIR/wrk.json"
callgrind_control --zero "$VPID" >/dev/null
wrk -t1 -c"${PROFILE_CONNS:-4}" -d"${PROFILE_DUR:-30}s" -s "$BENCH/scenarios/$script" "http://127.0.0.1:$PROFILE_PORT" >"$PDIR/wrk.txt"
callgrind_control --dump=measured "$VPID" >/dev/null
kill "$VPID"
wait "$VPID" || true
REQS=$(python3 -c "import json;print(json.loads(open('$PDIR/wrk.json').read().split()[-1])['requests'])")
OUTF=$PDIR/callgrind.out.$VPID.1 # the dump made right after the measured load
[[ -f $OUTF ]] || die "no callgrind dump at $OUTF"
callgrind_annotate --inclusive=yes "$OUTF" >"$PDIR/inclusive.txt" 2>/dev/null
callgrind_annotate "$OUTF" >"$PDIR/exclusive.txt" 2>/dev/null
TOTAL=$(grep -m1 "PROGRAM TOTALS" "$PDIR/exclusive.txt" | awk '{gsub(",","",$1); print $1}')
echo "$SCEN: $REQS requests, $TOTAL instructions: $((TOTAL / REQS)) per request" | tee "$PDIR/summary.txt"
echo "inclusive: $PDIR/inclusive.txt   exclusive (self): $PDIR/exclusive.txt"
