# shellcheck shell=bash
# Shared helpers for the dev scripts: find DATABASE_URL the same way the server
# does (environment first, then .env, then the default) and split it up.
#
# Source this file from a script whose working directory is the repo root.
# After `load_database_url` these variables are set:
#   DATABASE_URL DB_USER DB_PASS DB_HOST DB_PORT DB_NAME
# and PGPASSWORD is exported when the URL carries a password.

DEFAULT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/newsapi"

# Print the value of KEY from a dotenv file (first occurrence wins, like
# dotenvy, which never overrides a variable that is already set).
dotenv_get() {
    local file=$1 key=$2 line value
    [[ -f $file ]] || return 1
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line%$'\r'}
        line=${line#"${line%%[![:space:]]*}"}          # trim leading blanks
        [[ $line == export[[:space:]]* ]] && line=${line#export} && line=${line#"${line%%[![:space:]]*}"}
        [[ $line == "$key"=* ]] || continue
        value=${line#"$key"=}
        value=${value%"${value##*[![:space:]]}"}        # trim trailing blanks
        if [[ $value == \"*\" || $value == \'*\' ]]; then
            value=${value:1:${#value}-2}
        fi
        printf '%s\n' "$value"
        return 0
    done <"$file"
    return 1
}

url_decode() {
    local s=${1//+/ }
    printf '%b' "${s//%/\\x}"
}

# Split postgres://user[:pass]@host[:port]/db[?params]
parse_database_url() {
    local url=$1 rest userinfo hostport
    case $url in
        postgres://* | postgresql://*) rest=${url#*://} ;;
        *)
            echo "error: DATABASE_URL must look like postgres://user[:pass]@host:port/db (got '${url%%://*}://…')" >&2
            return 1
            ;;
    esac
    rest=${rest%%\?*}
    if [[ $rest == */* ]]; then
        DB_NAME=${rest#*/}
        rest=${rest%%/*}
    else
        DB_NAME=""
    fi
    if [[ $rest == *@* ]]; then
        userinfo=${rest%@*}
        hostport=${rest##*@}
    else
        userinfo=""
        hostport=$rest
    fi
    if [[ $userinfo == *:* ]]; then
        DB_USER=$(url_decode "${userinfo%%:*}")
        DB_PASS=$(url_decode "${userinfo#*:}")
    else
        DB_USER=$(url_decode "$userinfo")
        DB_PASS=""
    fi
    if [[ $hostport == \[*\]* ]]; then               # [::1]:5432
        DB_HOST=${hostport#\[}
        DB_HOST=${DB_HOST%%\]*}
        hostport=${hostport#*\]}
        DB_PORT=${hostport#:}
    elif [[ $hostport == *:* ]]; then
        DB_HOST=${hostport%%:*}
        DB_PORT=${hostport#*:}
    else
        DB_HOST=$hostport
        DB_PORT=""
    fi
    DB_HOST=${DB_HOST:-127.0.0.1}
    DB_PORT=${DB_PORT:-5432}
    DB_USER=${DB_USER:-$(id -un)}                     # libpq default: OS user
    DB_NAME=$(url_decode "${DB_NAME:-newsapi}")
    if ! [[ $DB_PORT =~ ^[0-9]+$ ]]; then
        echo "error: DATABASE_URL has an invalid port '$DB_PORT'" >&2
        return 1
    fi
}

load_database_url() {
    if [[ -z ${DATABASE_URL:-} ]]; then
        DATABASE_URL=$(dotenv_get .env DATABASE_URL || true)
    fi
    DATABASE_URL=${DATABASE_URL:-$DEFAULT_DATABASE_URL}
    parse_database_url "$DATABASE_URL"
    if [[ -n $DB_PASS ]]; then
        export PGPASSWORD=$DB_PASS
    fi
    export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5}
}

# URL of the maintenance database on the same server (credentials kept).
server_url() {
    local auth=${DATABASE_URL#*://}
    auth=${auth%%/*}
    printf 'postgres://%s/postgres\n' "$auth"
}

# Put the PostgreSQL binaries of the highest installed server version on PATH
# (after the system ones), so initdb/pg_ctl/pg_isready are found on Debian.
add_pg_bin_to_path() {
    local dir best=""
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x $dir/initdb ]] || continue
        if [[ -z $best ]] || [[ $(printf '%s\n%s\n' "$best" "$dir" | sort -V | tail -1) == "$dir" ]]; then
            best=$dir
        fi
    done
    if [[ -n $best && :$PATH: != *:"$best":* ]]; then
        PATH="$PATH:$best"
    fi
}
