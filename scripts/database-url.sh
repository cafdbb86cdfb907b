#!/usr/bin/env bash
# Print DATABASE_URL as the server resolves it (environment, else .env, else
# the default). With --server, print the URL of the `postgres` maintenance
# database on the same server instead (what the tests get as TEST_DATABASE_URL;
# they create their own newsapi_test_* databases from it).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/database-url.sh
source scripts/lib/database-url.sh

load_database_url
case ${1:-} in
    "") printf '%s\n' "$DATABASE_URL" ;;
    --server) server_url ;;
    *)
        echo "usage: $0 [--server]" >&2
        exit 2
        ;;
esac
