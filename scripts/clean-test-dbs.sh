#!/usr/bin/env bash
# Drop databases left behind by the test suite (newsapi_test_%) and by
# scripts/with-test-server.sh (newsapi_e2e_%) on the server
# of DATABASE_URL (or TEST_DATABASE_URL's server when that is set).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/database-url.sh
source scripts/lib/database-url.sh

if [[ -n ${TEST_DATABASE_URL:-} ]]; then
    DATABASE_URL=$TEST_DATABASE_URL
fi
load_database_url
add_pg_bin_to_path

psql_admin() {
    psql -X -w -q -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d postgres -v ON_ERROR_STOP=1 "$@"
}

list=$(psql_admin -Atc "select datname from pg_database where datname like 'newsapi\_test\_%' or datname like 'newsapi\_e2e\_%' order by 1")
dbs=()
if [[ -n $list ]]; then
    mapfile -t dbs <<<"$list"
fi
if ((${#dbs[@]} == 0)); then
    echo "clean-test-dbs: no newsapi_test_* or newsapi_e2e_* databases on $DB_HOST:$DB_PORT"
    exit 0
fi
for db in "${dbs[@]}"; do
    psql_admin -c "drop database if exists \"${db//\"/\"\"}\" with (force)"
done
echo "clean-test-dbs: dropped ${#dbs[@]} database(s) on $DB_HOST:$DB_PORT"
