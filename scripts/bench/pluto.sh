# shellcheck shell=bash
# pluto serve and the 3-node replicated cluster (2 workers + 1 storage + a gateway),
# release builds, on loopback. Sourced, not run. The cluster is set up as
# cluster-tests/src/cluster.rs does it, minus the fault proxies.

# Limits raised for 5,000 sessions from one address.
export PLUTO_LIMITS__MAX_CONNECTIONS_PER_IP=20000
export PLUTO_LIMITS__MAX_CONNECTIONS=20000

# serve_start DIR IMAP_PORT IMAPS_PORT — DIR/users must exist. Sets SERVE_PID.
serve_start() {
    local dir=$1 imap=$2 imaps=$3
    "$PLUTO" serve --data-dir "$dir" --imap "127.0.0.1:$imap" --imaps "127.0.0.1:$imaps" \
        >>"$dir/serve.log" 2>&1 &
    SERVE_PID=$!
    remember_pid "$SERVE_PID"
    wait_port "127.0.0.1:$imap" 60 || die "pluto serve did not start; see $dir/serve.log"
    wait_port "127.0.0.1:$imaps" 60 || die "pluto serve (TLS) did not start"
}

# cluster_start DIR IMAP_PORT USERS_FILE — sets CLUSTER_PIDS (nodes, then gateway).
cluster_start() {
    local dir=$1 imap=$2 users=$3 name role id=0 store repl
    mkdir -p "$dir"
    "$PLUTO" pki --out "$dir/pki" gw1 worker1 worker2 storage1 >/dev/null
    {
        printf '[cluster]\npki_dir = "%s"\nack = "replica"\n' "$dir/pki"
        for name in worker1 worker2 storage1; do
            id=$((id + 1))
            role=worker
            [[ $name == storage* ]] && role=storage
            store=$(free_port)
            repl=$(free_port)
            printf '\n[[cluster.nodes]]\nname = "%s"\nrole = "%s"\nid = %d\n' "$name" "$role" "$id"
            printf 'store = "127.0.0.1:%s"\nlisten_store = "127.0.0.1:%s"\n' "$store" "$store"
            printf 'replication = "127.0.0.1:%s"\nlisten_replication = "127.0.0.1:%s"\n' "$repl" "$repl"
        done
    } >"$dir/cluster.toml"
    CLUSTER_PIDS=()
    for name in worker1 worker2 storage1; do
        role=worker
        [[ $name == storage* ]] && role=storage
        PLUTO_CLUSTER__NAME=$name PLUTO_DATA_DIR="$dir/$name" \
            "$PLUTO" "$role" --config "$dir/cluster.toml" >>"$dir/$name.log" 2>&1 &
        CLUSTER_PIDS+=($!)
        remember_pid $!
    done
    PLUTO_CLUSTER__NAME=gw1 PLUTO_DATA_DIR="$dir/gw1" PLUTO_AUTH__USERS_FILE="$users" \
        "$PLUTO" gateway --config "$dir/cluster.toml" --imap "127.0.0.1:$imap" --imaps "" \
        >>"$dir/gw1.log" 2>&1 &
    CLUSTER_PIDS+=($!)
    remember_pid $!
    wait_port "127.0.0.1:$imap" 60 || die "the cluster gateway did not start; see $dir/gw1.log"
    local i
    for ((i = 0; i < 300; i++)); do
        if PLUTO_CLUSTER__NAME=gw1 "$PLUTO" cluster status --config "$dir/cluster.toml" 2>/dev/null |
            awk '$3 == "yes" && $4 == "yes" { n++ } END { exit !(n == 3) }'; then
            # The gateway's own prober notices within one probe interval.
            sleep 1.5
            return 0
        fi
        sleep 0.1
    done
    die "the cluster did not become ready; see $dir/*.log"
}
