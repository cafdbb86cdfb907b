#!/usr/bin/env bash
# Make sure a PostgreSQL server answers at the host/port of DATABASE_URL
# (environment, else .env, else postgres://postgres@127.0.0.1:5432/newsapi)
# and that the database it names exists.
#
# In order, until something answers:
#   1. a server is already running            -> nothing to do
#   2. a Debian cluster serves that port       -> pg_ctlcluster ... start
#   3. no server binaries installed at all     -> apt-get install postgresql, then 2.
#   4. last resort: a project-local cluster with trust auth
#      (target/pgdata, or /var/tmp/newsapi-pgdata run as `postgres` when root).
# Idempotent; prints a single line when everything is already fine.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/database-url.sh
source scripts/lib/database-url.sh

load_database_url
add_pg_bin_to_path

WAIT_SECS=30
IS_ROOT=false
[[ $(id -u) -eq 0 ]] && IS_ROOT=true

log() { printf 'postgres: %s\n' "$*"; }
die() {
    printf 'postgres: error: %s\n' "$*" >&2
    exit 1
}

as_root() {
    if $IS_ROOT; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

is_local_host() {
    case $DB_HOST in
        127.* | localhost | ::1 | 0.0.0.0 | /*) return 0 ;;
        *) return 1 ;;
    esac
}

is_ready() {
    command -v pg_isready >/dev/null 2>&1 &&
        pg_isready -q -h "$DB_HOST" -p "$DB_PORT" -t 2 >/dev/null 2>&1
}

wait_ready() {
    local i
    for ((i = 0; i < WAIT_SECS; i++)); do
        is_ready && return 0
        sleep 1
    done
    is_ready
}

# "VERSION CLUSTER" of the Debian cluster configured for $DB_PORT, if any.
debian_cluster() {
    [[ -d /etc/postgresql ]] && [[ -n $(ls -A /etc/postgresql 2>/dev/null) ]] || return 1
    command -v pg_ctlcluster >/dev/null 2>&1 || return 1
    local ver name port _rest
    if command -v pg_lsclusters >/dev/null 2>&1; then
        while read -r ver name port _rest; do
            if [[ $port == "$DB_PORT" ]]; then
                echo "$ver $name"
                return 0
            fi
        done < <(pg_lsclusters -h 2>/dev/null)
        return 1
    fi
    ver=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf "%f\n" | sort -V | head -1)
    [[ -d /etc/postgresql/$ver/main ]] || return 1
    echo "$ver main"
}

start_debian_cluster() {
    local cluster out
    cluster=$(debian_cluster) || return 1
    log "not answering at $DB_HOST:$DB_PORT; starting Debian cluster ${cluster/ //}"
    # shellcheck disable=SC2086 # $cluster is "VERSION NAME"
    if ! out=$(as_root pg_ctlcluster --skip-systemctl-redirect $cluster start 2>&1); then
        # "already running" is fine (it may still be starting up); anything
        # else is reported and we move on to the next option.
        if [[ $out != *"already running"* ]]; then
            printf '%s\n' "$out" >&2
            return 1
        fi
    fi
    wait_ready
}

server_binaries_installed() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1
}

install_postgres() {
    command -v apt-get >/dev/null 2>&1 || {
        log "no PostgreSQL server installed and no apt-get; cannot install one"
        return 1
    }
    log "no PostgreSQL server installed; installing postgresql with apt-get"
    if ! as_root apt-get update -q >/dev/null ||
        ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql postgresql-contrib >/dev/null; then
        log "apt-get install postgresql failed"
        return 1
    fi
    add_pg_bin_to_path
}

ensure_postgres_user() {
    id postgres >/dev/null 2>&1 && return 0
    log "creating system user postgres"
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
}

# Last resort: our own cluster, trust auth, listening on $DB_HOST:$DB_PORT.
start_local_cluster() {
    local initdb pg_ctl data logfile
    initdb=$(command -v initdb || true)
    pg_ctl=$(command -v pg_ctl || true)
    [[ -n $initdb && -n $pg_ctl ]] || die "no initdb/pg_ctl found (looked on PATH and in /usr/lib/postgresql/*/bin)"

    local run=()
    if $IS_ROOT; then
        # initdb and pg_ctl refuse to run as root: use the postgres OS user and
        # a directory it can reach.
        ensure_postgres_user
        run=(runuser -u postgres --)
        data=/var/tmp/newsapi-pgdata
        logfile=/var/tmp/newsapi-pgdata.log
    else
        data=$PWD/target/pgdata
        logfile=$PWD/target/pgdata.log
    fi

    if [[ ! -f $data/PG_VERSION ]]; then
        log "initialising a project-local cluster in $data"
        mkdir -p "$data"
        chmod 700 "$data"
        if $IS_ROOT; then chown postgres: "$data"; fi
        (cd /tmp && "${run[@]}" "$initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null) ||
            die "initdb -D $data failed"
    fi
    touch "$logfile"
    if $IS_ROOT; then chown postgres: "$logfile"; fi

    log "starting project-local cluster $data on $DB_HOST:$DB_PORT (log: $logfile)"
    (cd /tmp && "${run[@]}" "$pg_ctl" -D "$data" -l "$logfile" -w -t "$WAIT_SECS" \
        -o "-p $DB_PORT -k /tmp -c listen_addresses=$DB_HOST" start >/dev/null) || {
        tail -n 20 "$logfile" >&2 || true
        die "pg_ctl start failed for $data (see $logfile)"
    }
    wait_ready
}

psql_admin() {
    psql -X -w -q -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d postgres -v ON_ERROR_STOP=1 "$@"
}

# On a fresh Debian cluster TCP connections need a password; allow trust on
# loopback (only done when connecting actually fails with a password error).
fix_debian_auth() {
    local cluster ver name hba tmp
    $IS_ROOT || return 1
    cluster=$(debian_cluster) || return 1
    read -r ver name <<<"$cluster"
    hba=/etc/postgresql/$ver/$name/pg_hba.conf
    [[ -f $hba ]] || return 1
    if grep -q '^# added by newsapi scripts/ensure-postgres.sh' "$hba"; then
        return 1 # rules already there; a second copy would not help
    fi
    log "password authentication failed for $DB_USER@$DB_HOST:$DB_PORT;" \
        "prepending loopback trust rules to $hba and reloading"
    tmp=$(mktemp)
    {
        echo "# added by newsapi scripts/ensure-postgres.sh: trust loopback TCP connections"
        echo "host    all    all    127.0.0.1/32    trust"
        echo "host    all    all    ::1/128         trust"
        cat "$hba"
    } >"$tmp"
    cat "$tmp" >"$hba" # keep owner and mode of the original file
    rm -f "$tmp"
    pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload
    sleep 1
}

# --- 1..4: get something to answer ------------------------------------------
if ! is_ready; then
    is_local_host || die "nothing answers at $DB_HOST:$DB_PORT and it is not a local address; start that server yourself"

    started=false
    if start_debian_cluster; then
        started=true
    elif ! server_binaries_installed; then
        if install_postgres && { is_ready || start_debian_cluster; }; then
            started=true
        fi
    fi
    if ! $started && ! is_ready; then
        server_binaries_installed || die "no PostgreSQL server available and it could not be installed"
        start_local_cluster || true
    fi
    is_ready || die "PostgreSQL never answered at $DB_HOST:$DB_PORT (waited ${WAIT_SECS}s)"
fi

command -v psql >/dev/null 2>&1 || die "psql not found (install postgresql-client)"

# --- can we log in? ---------------------------------------------------------
if ! err=$(psql_admin -Atc 'select 1' 2>&1 >/dev/null); then
    case $err in
        *"password authentication failed"* | *"no password supplied"* | *"fe_sendauth"*)
            if fix_debian_auth && err=$(psql_admin -Atc 'select 1' 2>&1 >/dev/null); then
                :
            else
                die "cannot log in as $DB_USER at $DB_HOST:$DB_PORT: $err"
            fi
            ;;
        *) die "cannot log in as $DB_USER at $DB_HOST:$DB_PORT: $err" ;;
    esac
fi

# --- does the database exist? -----------------------------------------------
exists=$(psql_admin -Atc "select 1 from pg_database where datname = '${DB_NAME//\'/\'\'}'") ||
    die "could not query pg_database at $DB_HOST:$DB_PORT"
if [[ $exists != 1 ]]; then
    createdb -w -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -- "$DB_NAME" ||
        die "createdb $DB_NAME failed"
    log "created database $DB_NAME"
fi

log "ready at $DB_HOST:$DB_PORT, database $DB_NAME"
