#!/usr/bin/env bash
# Runs a pluto cluster as local processes on loopback: the topology of
# docker-compose.yml (gateways gw1 and gw2, workers worker1 and worker2, storage
# storage1) without Docker. Everything it makes lives in one state directory:
# certificates (pki/), the cluster configuration (cluster.toml), the users file,
# one data directory, one log and one pid file per process.
#
#   scripts/cluster.sh [start] [--debug] [--dir DIR] [--gateways 1|2]
#   scripts/cluster.sh stop    [--dir DIR]
#   scripts/cluster.sh status  [--dir DIR]
#
# Environment (all optional):
#   PLUTO_CLUSTER_DIR        state directory (default ./pluto-cluster)
#   PLUTO_CLUSTER_PORT_BASE  ports are BASE+offset (default 2000): gw1 IMAP BASE+143,
#                            IMAPS BASE+993 and LMTP BASE+24, gw2 BASE+144, BASE+994 and
#                            BASE+25, worker1 store and
#                            replication BASE+701/702, worker2 BASE+703/704, storage1
#                            BASE+705/706
#   PLUTO_CLUSTER_GATEWAYS   1 or 2 (default 2)
#   PLUTO_CLUSTER_USER       the demo user (default demo)
#   PLUTO_CLUSTER_PASSWORD   its password (default: a random one, printed once)
#   PLUTO_CLUSTER_POSTGRES_URL  use PostgreSQL for logins (default: the users file)
#   PLUTO_CLUSTER_REDIS_URL     share the failed-login throttle through Redis
#   PLUTO_CLUSTER_WAIT       seconds to wait for the cluster (default 90)
#   PLUTO_BIN                a pluto binary to use instead of building one
#
# `status` exits 0 only when every node is reachable and caught up.

set -euo pipefail

ROOT=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
HOST=127.0.0.1
NODES=(worker1 worker2 storage1)

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# --- arguments -----------------------------------------------------------------------

ACTION=start
PROFILE=release
STATE_DIR=${PLUTO_CLUSTER_DIR:-pluto-cluster}
GATEWAYS=${PLUTO_CLUSTER_GATEWAYS:-2}
if [[ $# -gt 0 && $1 != -* ]]; then
    ACTION=$1
    shift
fi
while [[ $# -gt 0 ]]; do
    case $1 in
    --debug) PROFILE=debug ;;
    --release) PROFILE=release ;;
    --dir)
        [[ $# -ge 2 ]] || die "--dir needs a directory"
        STATE_DIR=$2
        shift
        ;;
    --gateways)
        [[ $# -ge 2 ]] || die "--gateways needs 1 or 2"
        GATEWAYS=$2
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument $1 (try --help)" ;;
    esac
    shift
done
[[ $GATEWAYS == 1 || $GATEWAYS == 2 ]] || die "gateways must be 1 or 2, not $GATEWAYS"
GATEWAY_NAMES=(gw1)
[[ $GATEWAYS == 2 ]] && GATEWAY_NAMES+=(gw2)

BASE=${PLUTO_CLUSTER_PORT_BASE:-2000}
if ! [[ $BASE =~ ^[0-9]+$ ]] || ((BASE < 1 || BASE + 994 > 65535)); then
    die "PLUTO_CLUSTER_PORT_BASE must be a number from 1 to 64541, not $BASE"
fi
WAIT=${PLUTO_CLUSTER_WAIT:-90}
[[ $WAIT =~ ^[0-9]+$ ]] || die "PLUTO_CLUSTER_WAIT must be a number of seconds"

if [[ $ACTION == start ]]; then
    mkdir -p -- "$STATE_DIR" || die "cannot create $STATE_DIR"
fi
if [[ -d $STATE_DIR ]]; then
    STATE_DIR=$(cd -P -- "$STATE_DIR" && pwd)
elif [[ $STATE_DIR != /* ]]; then
    STATE_DIR=$PWD/$STATE_DIR
fi
# Paths go into TOML literal strings, which cannot hold a single quote.
[[ $STATE_DIR != *"'"* && $STATE_DIR != *$'\n'* ]] ||
    die "the state directory's path may not contain a quote or a newline"
CONFIG=$STATE_DIR/cluster.toml
PIDS=$STATE_DIR/pids

# --- ports ---------------------------------------------------------------------------

imap_port() { # gw1 → BASE+143, gw2 → BASE+144
    echo $((BASE + 142 + ${1#gw}))
}
imaps_port() {
    echo $((BASE + 992 + ${1#gw}))
}
lmtp_port() { # gw1 → BASE+24, gw2 → BASE+25
    echo $((BASE + 23 + ${1#gw}))
}
store_port() { # worker1 701, worker2 703, storage1 705
    case $1 in
    worker1) echo $((BASE + 701)) ;;
    worker2) echo $((BASE + 703)) ;;
    storage1) echo $((BASE + 705)) ;;
    esac
}
replication_port() {
    echo $(($(store_port "$1") + 1))
}
role_of() {
    case $1 in
    worker*) echo worker ;;
    storage*) echo storage ;;
    esac
}

# --- processes -----------------------------------------------------------------------

# The pid in NAME's pid file when that process is alive and is a pluto process (a
# recycled pid of some other program is never signalled).
live_pid() {
    local file=$PIDS/$1.pid pid
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        local cmdline
        cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
        [[ $cmdline == *pluto* ]] || return 1
    fi
    echo "$pid"
}

all_names() {
    # Stop order: gateways first (their sessions get BYE), storage last.
    local f name
    for name in gw1 gw2 worker1 worker2 storage1; do
        echo "$name"
    done
    # Anything else a previous run left a pid file for.
    for f in "$PIDS"/*.pid; do
        [[ -e $f ]] || continue
        name=$(basename "$f" .pid)
        case $name in gw1 | gw2 | worker1 | worker2 | storage1) ;; *) echo "$name" ;; esac
    done
}

stop_cluster() {
    local name pid stopped=0 deadline
    local -a pids=()
    [[ -d $PIDS ]] || {
        echo "nothing runs from $STATE_DIR"
        return 0
    }
    for name in $(all_names); do
        if pid=$(live_pid "$name"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            stopped=$((stopped + 1))
            echo "stopping $name (pid $pid)"
        fi
    done
    deadline=$((SECONDS + 20))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                echo "pid $pid did not stop in 20 s: SIGKILL" >&2
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.2
        done
    done
    rm -f -- "$PIDS"/*.pid
    echo "stopped $stopped process(es) of $STATE_DIR"
}

# Starts one process in the background: its output goes to NAME.log, its pid to
# pids/NAME.pid. setsid keeps it alive when the terminal that ran this script closes.
spawn() {
    local name=$1
    shift
    local launcher=()
    command -v setsid >/dev/null && launcher=(setsid)
    (
        export PLUTO_CLUSTER__NAME=$name
        export PLUTO_DATA_DIR=$STATE_DIR/$name
        export RUST_LOG=${RUST_LOG:-info}
        exec "${launcher[@]}" "$BIN" "$@" </dev/null >>"$STATE_DIR/$name.log" 2>&1
    ) &
    echo $! >"$PIDS/$name.pid"
}

# `pluto cluster status` as gw1 (its certificate opens the nodes' Store services).
cluster_status() {
    PLUTO_CLUSTER__NAME=gw1 "$BIN" cluster status --config "$CONFIG"
}

# True when the status output says every node is reachable and caught up.
all_caught_up() {
    local out=$1 name
    for name in "${NODES[@]}"; do
        awk -v n="$name" '$1 == n && $3 == "yes" && $4 == "yes" { ok = 1 } END { exit !ok }' \
            <<<"$out" || return 1
    done
}

port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# --- the binary ----------------------------------------------------------------------

# The binary: PLUTO_BIN, else (for stop and status) the one `start` used, else the
# workspace's target/PROFILE/pluto.
find_bin() {
    if [[ -z ${PLUTO_BIN:-} && $ACTION != start && -f $STATE_DIR/pluto-bin ]]; then
        BIN=$(<"$STATE_DIR/pluto-bin")
        return
    fi
    if [[ -n ${PLUTO_BIN:-} ]]; then
        [[ -x $PLUTO_BIN ]] || die "PLUTO_BIN=$PLUTO_BIN is not an executable"
        BIN=$PLUTO_BIN
        return
    fi
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    [[ $target == /* ]] || target=$ROOT/$target
    BIN=$target/$PROFILE/pluto
}

build() {
    [[ -n ${PLUTO_BIN:-} ]] && return
    local flags=()
    [[ $PROFILE == release ]] && flags=(--release)
    echo "building pluto ($PROFILE)…"
    (cd "$ROOT" && cargo build "${flags[@]}" -p pluto-gateway --bin pluto) ||
        die "cargo build failed"
    [[ -x $BIN ]] || die "no pluto binary at $BIN after the build"
}

# --- start ---------------------------------------------------------------------------

write_config() {
    local name role id=0 backend=file
    [[ -n ${PLUTO_CLUSTER_POSTGRES_URL:-} ]] && backend=postgres
    {
        echo "# Written by scripts/cluster.sh at every start; edit the script, not this file."
        echo "data_dir = '$STATE_DIR/data'"
        echo
        echo "[auth]"
        echo "backend = \"$backend\""
        echo "users_file = '$STATE_DIR/users'"
        if [[ $backend == postgres ]]; then
            echo
            echo "[auth.postgres]"
            echo "url = '${PLUTO_CLUSTER_POSTGRES_URL//\'/}'"
        fi
        if [[ -n ${PLUTO_CLUSTER_REDIS_URL:-} ]]; then
            echo
            echo "[throttle]"
            echo "redis_url = '${PLUTO_CLUSTER_REDIS_URL//\'/}'"
        fi
        echo
        echo "[cluster]"
        echo "pki_dir = '$STATE_DIR/pki'"
        echo "ack = \"replica\""
        for name in "${NODES[@]}"; do
            id=$((id + 1))
            role=$(role_of "$name")
            echo
            echo "[[cluster.nodes]]"
            echo "name = \"$name\""
            echo "role = \"$role\""
            echo "id = $id"
            echo "store = \"$HOST:$(store_port "$name")\""
            echo "replication = \"$HOST:$(replication_port "$name")\""
        done
    } >"$CONFIG.tmp"
    mv -f -- "$CONFIG.tmp" "$CONFIG"
}

random_password() {
    # `head` closes the pipe early; that SIGPIPE is expected, not a failure.
    (
        set +o pipefail
        LC_ALL=C tr -dc 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789' </dev/urandom |
            head -c 20
    )
}

# Creates the demo user, or resets its password when PLUTO_CLUSTER_PASSWORD is given.
# Sets PASSWORD_NOTE for the summary.
ensure_user() {
    local user=$1 where exists=no password
    local -a target
    if [[ -n ${PLUTO_CLUSTER_POSTGRES_URL:-} ]]; then
        "$BIN" auth init-postgres --config "$CONFIG" >/dev/null ||
            die "pluto auth init-postgres failed (PLUTO_CLUSTER_POSTGRES_URL=$PLUTO_CLUSTER_POSTGRES_URL)"
        target=(--config "$CONFIG")
        where="PostgreSQL"
    else
        target=(--users-file "$STATE_DIR/users")
        where="$STATE_DIR/users"
    fi
    # grep without -q reads all the list: an early exit would break pluto's pipe.
    if "$BIN" user list "${target[@]}" 2>/dev/null | grep -xF -- "$user" >/dev/null; then
        exists=yes
    fi
    if [[ -n ${PLUTO_CLUSTER_PASSWORD:-} ]]; then
        password=$PLUTO_CLUSTER_PASSWORD
        PASSWORD_NOTE="password: (from PLUTO_CLUSTER_PASSWORD)"
    elif [[ $exists == yes ]]; then
        PASSWORD_NOTE="password: as printed when $user was created (set PLUTO_CLUSTER_PASSWORD to reset it)"
        return
    else
        password=$(random_password)
        PASSWORD_NOTE="password: $password   (shown once; set PLUTO_CLUSTER_PASSWORD to choose one)"
    fi
    if [[ $exists == yes ]]; then
        printf '%s\n' "$password" | "$BIN" user passwd "${target[@]}" "$user" >/dev/null ||
            die "setting the password of $user in $where failed"
    else
        printf '%s\n' "$password" | "$BIN" user add "${target[@]}" "$user" >/dev/null ||
            die "adding $user to $where failed"
    fi
}

tail_logs() {
    local name
    for name in "$@"; do
        [[ -f $STATE_DIR/$name.log ]] || continue
        echo "--- $STATE_DIR/$name.log (last lines)" >&2
        tail -n 15 -- "$STATE_DIR/$name.log" >&2
    done
}

start_cluster() {
    local name running=() port out="" deadline user=${PLUTO_CLUSTER_USER:-demo}
    mkdir -p -- "$STATE_DIR" "$PIDS" || die "cannot create $STATE_DIR"
    for name in $(all_names); do
        live_pid "$name" >/dev/null && running+=("$name")
    done
    [[ ${#running[@]} -eq 0 ]] ||
        die "already running from $STATE_DIR: ${running[*]} (scripts/cluster.sh stop first)"

    find_bin
    build
    echo "$BIN" >"$STATE_DIR/pluto-bin"
    "$BIN" pki --out "$STATE_DIR/pki" gw1 gw2 "${NODES[@]}" >/dev/null || die "pluto pki failed"
    write_config
    ensure_user "$user"

    # Checked after the build, just before the processes bind.
    for name in "${GATEWAY_NAMES[@]}"; do
        for port in $(imap_port "$name") $(imaps_port "$name") $(lmtp_port "$name"); do
            ! port_open "$port" || die "port $HOST:$port is taken (set PLUTO_CLUSTER_PORT_BASE)"
        done
    done
    for name in "${NODES[@]}"; do
        for port in $(store_port "$name") $(replication_port "$name"); do
            ! port_open "$port" || die "port $HOST:$port is taken (set PLUTO_CLUSTER_PORT_BASE)"
        done
    done

    for name in storage1 worker1 worker2; do
        spawn "$name" "$(role_of "$name")" --config "$CONFIG"
    done
    for name in "${GATEWAY_NAMES[@]}"; do
        spawn "$name" gateway --config "$CONFIG" \
            --imap "$HOST:$(imap_port "$name")" --imaps "$HOST:$(imaps_port "$name")" \
            --lmtp "$HOST:$(lmtp_port "$name")"
    done

    echo "waiting for every node to be reachable and caught up (up to ${WAIT} s)…"
    deadline=$((SECONDS + WAIT))
    while :; do
        for name in "${NODES[@]}" "${GATEWAY_NAMES[@]}"; do
            if ! live_pid "$name" >/dev/null; then
                echo "cluster.sh: $name exited during start-up" >&2
                tail_logs "$name"
                stop_cluster >&2
                exit 1
            fi
        done
        local ready=yes
        for name in "${GATEWAY_NAMES[@]}"; do
            port_open "$(imap_port "$name")" || ready=no
        done
        if [[ $ready == yes ]] && out=$(cluster_status 2>/dev/null) && all_caught_up "$out"; then
            # The gateways' health probes (every 0.5 s) see the nodes up within a second.
            sleep 1.5
            break
        fi
        if ((SECONDS >= deadline)); then
            echo "cluster.sh: the cluster was not ready in ${WAIT} s" >&2
            [[ -n $out ]] && echo "$out" >&2
            tail_logs "${NODES[@]}" "${GATEWAY_NAMES[@]}"
            stop_cluster >&2
            exit 1
        fi
        sleep 0.5
    done

    echo
    echo "$out"
    echo
    echo "pluto cluster is up (state, logs and pid files in $STATE_DIR)."
    for name in "${GATEWAY_NAMES[@]}"; do
        echo "  $name: IMAP+STARTTLS $HOST:$(imap_port "$name")   IMAPS $HOST:$(imaps_port "$name")   LMTP $HOST:$(lmtp_port "$name")"
    done
    echo "  user:     $user"
    echo "  $PASSWORD_NOTE"
    echo "Try:   openssl s_client -quiet -connect $HOST:$(imaps_port gw1)"
    echo "       a login $user <password>"
    echo "Status: scripts/cluster.sh status --dir $STATE_DIR"
    echo "Stop:   scripts/cluster.sh stop --dir $STATE_DIR"
}

case $ACTION in
start) start_cluster ;;
stop) stop_cluster ;;
status)
    [[ -f $CONFIG ]] || die "no cluster in $STATE_DIR (no cluster.toml): start one first"
    find_bin
    [[ -x $BIN ]] || die "no pluto binary at $BIN (start builds it; or set PLUTO_BIN)"
    out=$(cluster_status) || die "pluto cluster status failed"
    echo "$out"
    all_caught_up "$out"
    ;;
help) usage ;;
*) die "unknown command $ACTION (start, stop, status)" ;;
esac
