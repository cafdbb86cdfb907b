# shellcheck shell=bash
# A pg_auto_failover formation on loopback, for the failover suite (tests/failover/run.sh) and as
# the commands docs/deploy.md ("PostgreSQL failover") shows: a monitor and two data nodes, each a
# `pg_autoctl ... --run` service of its own, as the `postgres` user (pg_autoctl refuses root), in a
# temporary directory, on free ports. Source it; set FAILOVER_DIR first.
#
#   cluster_start            monitor + node1 (primary) + node2 (synchronous standby), database newsapi
#   cluster_primary_port     the port of the node the monitor says is primary
#   cluster_kill NODE        SIGKILL the node's pg_autoctl and PostgreSQL (a host that died)
#   cluster_stop             stop everything, remove the directory

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
CLUSTER_USER=${CLUSTER_USER:-postgres}

declare -A CLUSTER_PORT=() CLUSTER_PID=()

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The prefix that runs a command as the cluster's user with pg_autoctl's state (its XDG
# directories) inside FAILOVER_DIR.
as_pg_prefix() {
    AS_PG=()
    if [[ $(id -u) -eq 0 ]]; then
        AS_PG=(runuser -u "$CLUSTER_USER" --)
    fi
    AS_PG+=(env HOME="$FAILOVER_DIR" XDG_CONFIG_HOME="$FAILOVER_DIR/config"
        XDG_DATA_HOME="$FAILOVER_DIR/share" XDG_RUNTIME_DIR="$FAILOVER_DIR/run"
        PATH="$PG_BIN:$PATH" PGHOST=127.0.0.1)
}

as_pg() {
    local AS_PG
    as_pg_prefix
    "${AS_PG[@]}" "$@"
}

monitor_url() {
    echo "postgres://autoctl_node@127.0.0.1:${CLUSTER_PORT[monitor]}/pg_auto_failover?sslmode=disable"
}

# psql on the monitor's database (as the monitor's superuser).
monitor_sql() {
    as_pg psql -X -q -At -h 127.0.0.1 -p "${CLUSTER_PORT[monitor]}" -U "$CLUSTER_USER" \
        -d pg_auto_failover -v ON_ERROR_STOP=1 -c "$1"
}

# Starts `pg_autoctl ... --run` for NAME in a session of its own (so that its process group is
# the node's whole process tree), logging to FAILOVER_DIR/NAME.log.
start_service() {
    local name=$1 AS_PG
    shift
    as_pg_prefix
    setsid "${AS_PG[@]}" "$@" >"$FAILOVER_DIR/$name.log" 2>&1 </dev/null &
    CLUSTER_PID[$name]=$!
    # Killing it is the point: no "Killed" notice from the shell.
    disown "${CLUSTER_PID[$name]}"
}

wait_for() {
    local what=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "failover: $what not within $secs s" >&2
            return 1
        fi
        sleep 0.5
    done
}

# The state the monitor reports for NODE (e.g. primary, secondary, wait_primary).
node_state() {
    monitor_sql "select reportedstate || '|' || goalstate from pgautofailover.node where nodename = '$1'"
}

# Whether every NODE=STATE holds, as reported to and intended by the monitor.
states_are() {
    local pair
    for pair in "$@"; do
        [[ $(node_state "${pair%%=*}") == "${pair#*=}|${pair#*=}" ]] || return 1
    done
}

# One CHECKPOINT on NODE, then whether COMMAND... holds.
checkpoint_until() {
    local node=$1
    shift
    as_pg psql -X -q -h 127.0.0.1 -p "${CLUSTER_PORT[$node]}" -d postgres -c checkpoint 2>/dev/null
    "$@"
}

cluster_start() {
    mkdir -p "$FAILOVER_DIR"/{config,share,run}
    if [[ $(id -u) -eq 0 ]]; then
        chown -R "$CLUSTER_USER" "$FAILOVER_DIR"
    fi
    CLUSTER_PORT[monitor]=$(free_port)
    CLUSTER_PORT[node1]=$(free_port)
    CLUSTER_PORT[node2]=$(free_port)

    # The monitor: a PostgreSQL with the pgautofailover extension that decides every failover.
    start_service monitor pg_autoctl create monitor --pgctl "$PG_BIN/pg_ctl" \
        --pgdata "$FAILOVER_DIR/monitor" --pgport "${CLUSTER_PORT[monitor]}" \
        --hostname 127.0.0.1 --auth trust --no-ssl --run
    wait_for "the monitor" 60 monitor_sql "select 1" || return 1
    # Notice a dead node within seconds rather than the defaults' 20 s and more: probe every
    # second, give up on a node after 2 s without an answer or a report from its keeper; and
    # promote the standby 3 s (default 30 s) after telling the lost primary to demote. A shorter
    # demote timeout cannot lose an acknowledged write here: the old primary commits only once
    # its synchronous standby has the commit, and that standby stopped replicating from it before
    # its promotion (docs/deploy.md, "PostgreSQL failover").
    monitor_sql "alter system set pgautofailover.health_check_period = 1000" &&
        monitor_sql "alter system set pgautofailover.health_check_timeout = 1000" &&
        monitor_sql "alter system set pgautofailover.health_check_max_retries = 1" &&
        monitor_sql "alter system set pgautofailover.health_check_retry_delay = 500" &&
        monitor_sql "alter system set pgautofailover.node_considered_unhealthy_timeout = 2000" &&
        monitor_sql "alter system set pgautofailover.primary_demote_timeout = 3000" &&
        monitor_sql "select pg_reload_conf()" >/dev/null || return 1

    local node
    for node in node1 node2; do
        start_service "$node" pg_autoctl create postgres --pgctl "$PG_BIN/pg_ctl" \
            --pgdata "$FAILOVER_DIR/$node" --pgport "${CLUSTER_PORT[$node]}" --listen 127.0.0.1 \
            --hostname 127.0.0.1 --name "$node" --dbname newsapi --monitor "$(monitor_url)" \
            --auth trust --no-ssl --replication-quorum true --candidate-priority 50 --run
        # One at a time: the first node to register becomes the primary.
        if [[ $node == node1 ]]; then
            wait_for "node1 as primary" 90 states_are node1=single || return 1
        fi
    done
    # Acknowledged commits are on both nodes: with number_sync_standbys 0 (the default for two
    # data nodes) and node2 in the replication quorum, the monitor sets node1's
    # synchronous_standby_names to 'ANY 1 (node2)', and the primary waits for node2 at every commit.
    # node2 clones node1 with pg_basebackup, which waits for a spread checkpoint (minutes on an
    # idle server); an immediate CHECKPOINT on node1 hurries it along.
    wait_for "synchronous replication" 120 \
        checkpoint_until node1 states_are node1=primary node2=secondary || return 1
    [[ $(as_pg psql -X -At -h 127.0.0.1 -p "${CLUSTER_PORT[node1]}" -d newsapi \
        -c "show synchronous_standby_names") == "ANY 1 ("* ]] || {
        echo "failover: node1 has no synchronous standby" >&2
        return 1
    }
}

cluster_primary_port() {
    monitor_sql "select nodeport from pgautofailover.node where reportedstate in ('primary', 'wait_primary', 'single') and goalstate = reportedstate"
}

# Every descendant of PID.
descendants() {
    local child
    for child in $(pgrep -P "$1"); do
        echo "$child"
        descendants "$child"
    done
}

cluster_kill() {
    local name=$1 pid postmaster root pids=() _
    pid=${CLUSTER_PID[$name]:-}
    # The whole tree at once, gathered first: PostgreSQL's children are process-group leaders of
    # their own, and some (the logger, the monitor's workers) outlive a killed postmaster.
    for _ in 1 2; do
        postmaster=$(head -n 1 "$FAILOVER_DIR/$name/postmaster.pid" 2>/dev/null) || true
        pids=()
        for root in $pid $postmaster; do
            # Only while it is still this node's (a pid is reused once its process is gone).
            tr '\0' ' ' 2>/dev/null <"/proc/$root/cmdline" | grep -qF "$FAILOVER_DIR/$name " ||
                continue
            pids+=("$root")
            pids+=($(descendants "$root"))
        done
        ((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
    done
}

cluster_stop() {
    local name
    for name in node2 node1 monitor; do
        [[ -n ${CLUSTER_PID[$name]:-} ]] || continue
        cluster_kill "$name"
    done
    if [[ -n ${FAILOVER_DIR:-} && -d $FAILOVER_DIR ]]; then
        rm -rf "$FAILOVER_DIR"
    fi
}
