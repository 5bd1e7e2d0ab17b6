# shellcheck shell=bash
# pluto serve and the 3-node replicated cluster (2 workers + 1 storage + a gateway),
# release builds, on loopback. Sourced, not run. The cluster is set up as
# cluster-tests/src/cluster.rs does it, minus the fault proxies.

# bench_prepare PREFIX — shared by the benchmark scripts: builds pluto and pluto-bench
# (release; only pluto-bench with BUILD_PLUTO=0), makes OUT and the work directory
# WORK (/var/tmp/PREFIX.XXXXXX, removed on exit unless KEEP is set; every process
# started is stopped), generates the corpus into WORK/corpus.mbox and USERS users
# bench1… with one random password (PLUTO_BENCH_PASSWORD) into WORK/pluto/users.
# Sets TARGET, PLUTO, BENCH, WORK.
bench_prepare() {
    local prefix=$1 i
    local generator=$ROOT/testdata/corpus/gen_mbox.py
    [[ -f $generator ]] || die "the corpus generator $generator is missing"
    TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
    if [[ ${BUILD_PLUTO:-1} == 1 ]]; then
        log "building pluto and pluto-bench (release)"
        (cd "$ROOT" && cargo build --release -p pluto-gateway -p pluto-bench --bin pluto --bin pluto-bench)
    else
        log "building pluto-bench (release); using the pluto binary already in $TARGET/release"
        (cd "$ROOT" && cargo build --release -p pluto-bench --bin pluto-bench)
    fi
    PLUTO=$TARGET/release/pluto
    BENCH=$TARGET/release/pluto-bench

    mkdir -p "$OUT"
    WORK=$(mktemp -d "/var/tmp/$prefix.XXXXXX")
    # Dovecot's unprivileged processes (auth, imap and lmtp as nobody) must reach
    # their files.
    chmod 755 "$WORK"
    trap 'stop_all; [[ -n ${KEEP:-} ]] || rm -rf "$WORK"' EXIT
    log "reports in $OUT, servers' data in $WORK"

    python3 "$generator" "$WORK/corpus.mbox" 400 >/dev/null
    PLUTO_BENCH_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    export PLUTO_BENCH_PASSWORD
    mkdir -p "$WORK/pluto"
    log "creating $USERS users (argon2id)"
    for ((i = 1; i <= USERS; i++)); do
        printf '%s\n' "$PLUTO_BENCH_PASSWORD" |
            "$PLUTO" user add "bench$i" --users-file "$WORK/pluto/users" >/dev/null
    done
}

# Limits raised for 5,000 sessions from one address.
export PLUTO_LIMITS__MAX_CONNECTIONS_PER_IP=20000
export PLUTO_LIMITS__MAX_CONNECTIONS=20000

# serve_start DIR IMAP_PORT IMAPS_PORT [LMTP_PORT] — DIR/users must exist; LMTP is
# off without LMTP_PORT. Sets SERVE_PID.
serve_start() {
    local dir=$1 imap=$2 imaps=$3 lmtp=${4:+127.0.0.1:$4}
    "$PLUTO" serve --data-dir "$dir" --imap "127.0.0.1:$imap" --imaps "127.0.0.1:$imaps" --lmtp "$lmtp" \
        >>"$dir/serve.log" 2>&1 &
    SERVE_PID=$!
    remember_pid "$SERVE_PID"
    wait_port "127.0.0.1:$imap" 60 || die "pluto serve did not start; see $dir/serve.log"
    wait_port "127.0.0.1:$imaps" 60 || die "pluto serve (TLS) did not start"
    [[ -z $lmtp ]] || wait_port "$lmtp" 60 || die "pluto serve's LMTP did not start"
}

# cluster_start DIR IMAP_PORT USERS_FILE [LMTP_PORT] — the gateway takes LMTP on
# LMTP_PORT (off without). Sets CLUSTER_PIDS (nodes, then gateway).
cluster_start() {
    local dir=$1 imap=$2 users=$3 lmtp=${4:+127.0.0.1:$4} name role id=0 store repl
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
        "$PLUTO" gateway --config "$dir/cluster.toml" --imap "127.0.0.1:$imap" --imaps "" --lmtp "$lmtp" \
        >>"$dir/gw1.log" 2>&1 &
    CLUSTER_PIDS+=($!)
    remember_pid $!
    wait_port "127.0.0.1:$imap" 60 || die "the cluster gateway did not start; see $dir/gw1.log"
    [[ -z $lmtp ]] || wait_port "$lmtp" 60 || die "the cluster gateway's LMTP did not start"
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
