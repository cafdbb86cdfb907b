#!/usr/bin/env bash
# Measures server settings against each other without touching the code (pool size, RUST_LOG,
# an allocator through LD_PRELOAD, tokio worker threads, another build of the binary); see
# knobs.py for the arguments. Reuses the seeded database of `make bench`.
#   bash scripts/bench/investigations/settings-ab/knobs.sh --scenario S1 --config 'base:' \
#       --config 'pool32:DATABASE_POOL_SIZE=32'
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/bench/lib.sh
source "$HERE/../../lib.sh"
ensure_tools
ensure_postgres
"${PSQL[@]}" -d "$BENCH_DB" -Atc "SELECT count(*) FROM news" >/dev/null 2>&1 || die "run make bench first (no $BENCH_DB)"
[[ -s $OUT/ids.txt && -s $OUT/words.txt ]] || die "run make bench first (no $OUT/ids.txt)"
server_env
export DATABASE_URL=$BENCH_URL BCRYPT_COST DB_HOST DB_PORT DB_USER BENCH_DB
python3 "$HERE/knobs.py" "$@"
