#!/usr/bin/env bash
# PostgreSQL's own ceiling for the statements the server sends, and for the alternatives
# suggested in BENCHMARKS.md (see pg-designs.py). Works on a copy of the seeded benchmark
# database (newsapi_bench_designs), which it may change (an extra expression index, index options);
# the copy is dropped at the end unless KEEP_DESIGN_DB=1. Needs `make bench` to have run, and no
# server connected to newsapi_bench (the copy is made with CREATE DATABASE … TEMPLATE).
#   bash scripts/bench/investigations/postgres-designs/pg-designs.sh
#   ROUNDS (3) DUR (10) WARM (3) CONNS (64) ONLY (S1,S4,S3)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/bench/lib.sh
source "$HERE/../../lib.sh"
ensure_tools
ensure_postgres
"${PSQL[@]}" -d "$BENCH_DB" -Atc "SELECT count(*) FROM bench.news_text" >/dev/null 2>&1 || die "run make bench first"
DESIGN_DB=${BENCH_DB}_designs
log "copying $BENCH_DB to $DESIGN_DB"
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DESIGN_DB WITH (FORCE)" \
    -c "CREATE DATABASE $DESIGN_DB TEMPLATE $BENCH_DB"
"${PSQL[@]}" -d "$DESIGN_DB" <<'SQL'
DELETE FROM news WHERE author_id IN (SELECT user_id FROM user_credentials);
CREATE TABLE bench.news_ids AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM news;
CREATE UNIQUE INDEX ON bench.news_ids (n);
CREATE UNIQUE INDEX IF NOT EXISTS news_text_n_idx ON bench.news_text (n);
CREATE TABLE bench.sessions AS
    SELECT row_number() OVER (ORDER BY id) AS n, user_id, id AS family_id FROM refresh_families;
CREATE UNIQUE INDEX ON bench.sessions (n);
VACUUM ANALYZE;
SQL
"${PSQL[@]}" -d "$DESIGN_DB" -Atc "SELECT 1 FROM information_schema.columns WHERE table_name = 'news' AND column_name = 'search'" |
    grep -q 1 || die "news has no stored search column: these experiments expect the migrations of 92b16e4 or later"
export DESIGN_DB DB_HOST DB_PORT DB_USER
python3 "$HERE/pg-designs.py"
[[ ${KEEP_DESIGN_DB:-0} == 1 ]] || "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DESIGN_DB WITH (FORCE)"
