#!/usr/bin/env bash
# make cluster-test: three replicas of the release build on one fresh database behind Debian's
# nginx (installed with apt-get when /usr/sbin/nginx is missing), configured from deploy/nginx.conf;
# tests/cluster/suite.py then drives them through nginx only; and one more replica through Debian's
# pgbouncer (installed likewise), configured from deploy/pgbouncer.ini. See docs/deploy.md.
#
# Creates the database newsapi_e2e_cluster_<random> on DATABASE_URL's server and drops it on exit,
# whatever happens; the suite stops every process it started.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
# shellcheck source=tests/lib/apt.sh
source tests/lib/apt.sh
# shellcheck source=tests/lib/venv.sh
source tests/lib/venv.sh
# shellcheck source=scripts/lib/database-url.sh
source scripts/lib/database-url.sh
load_database_url
add_pg_bin_to_path

ensure_debian_package cluster nginx /usr/sbin/nginx --no-install-recommends
/usr/sbin/nginx -v 2>&1
ensure_debian_package cluster pgbouncer /usr/sbin/pgbouncer --no-install-recommends
/usr/sbin/pgbouncer --version | sed -n 1p
ensure_venv target/venv/cluster tests/cluster/requirements.txt

if [[ -z ${NEWSAPI_BIN:-} ]]; then
    if [[ -z $(command -v cargo) ]]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    cargo build --quiet --release --bin newsapi
    NEWSAPI_BIN="$ROOT/target/release/newsapi"
fi
export NEWSAPI_BIN NGINX_BIN=/usr/sbin/nginx PGBOUNCER_BIN=/usr/sbin/pgbouncer

psql_admin() {
    psql -X -w -q -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d postgres -v ON_ERROR_STOP=1 "$@"
}
db_name="newsapi_e2e_cluster_$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')"
cleanup() {
    local status=$?
    psql_admin -c "drop database if exists \"$db_name\" with (force)" >/dev/null 2>&1 ||
        echo "cluster: could not drop database $db_name (make clean-test-dbs drops leftovers)" >&2
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
psql_admin -c "create database \"$db_name\""
auth=${DATABASE_URL#*://}
auth=${auth%%/*}
export CLUSTER_DATABASE_URL="postgres://$auth/$db_name"
# The replicas migrate at start-up, concurrently; migrate once first so that they find it done.
DATABASE_URL=$CLUSTER_DATABASE_URL JWT_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d " \n") "$NEWSAPI_BIN" migrate

# The systemd unit of docs/deploy.md is one systemd accepts (with the binary where it is here).
if command -v systemd-analyze >/dev/null; then
    unit_dir=$(mktemp -d)
    sed "s|/usr/local/bin/newsapi|$NEWSAPI_BIN|" deploy/newsapi.service >"$unit_dir/newsapi.service"
    status=0
    systemd-analyze verify "$unit_dir/newsapi.service" || status=$?
    rm -rf "$unit_dir"
    if ((status != 0)); then
        echo "cluster: 0 passed, 1 failed (systemd-analyze verify deploy/newsapi.service)"
        exit 1
    fi
    echo "cluster: systemd-analyze verify deploy/newsapi.service: ok"
fi

cd tests/cluster
"$ROOT/target/venv/cluster/bin/python" suite.py
