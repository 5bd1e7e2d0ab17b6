#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# pluto measured against Dovecot, side by side, on this machine (issue #6).
#
# Starts, on loopback ports: a self-contained Dovecot (own config, Maildir, passwd-file
# holding the same {ARGON2ID} hashes as pluto's users file), `pluto serve` on Maildir,
# and the replicated cluster (2 workers + 1 storage + gateway, ack = replica); runs
# pluto-bench's workloads a–d against each, then the idle-memory measurement (5,000
# IDLE sessions against fresh servers); prints one table with ratios to Dovecot.
# Release builds. Every process it starts is stopped on exit.
#
# Knobs (environment): DURATION=20 (s per workload), CLIENTS=10, USERS=10, FILL=200
# (messages per INBOX), WATCHERS=50 (workload d), IDLE_SESSIONS=5000,
# DOVECOT_FSYNC=always|optimized, WORKLOADS="a b c d", SERVERS="dovecot pluto cluster",
# SKIP_IDLE=1, KEEP=1 (keep the servers' data and logs), BUILD_PLUTO=0 (use $CARGO_TARGET_DIR or target/release/pluto as it is), OUT=DIR (reports; default target/bench-vs-dovecot/<time>).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"
# shellcheck source=bench/dovecot.sh
source "$ROOT/scripts/bench/dovecot.sh"
# shellcheck source=bench/pluto.sh
source "$ROOT/scripts/bench/pluto.sh"

DURATION=${DURATION:-20}
CLIENTS=${CLIENTS:-10}
USERS=${USERS:-10}
FILL=${FILL:-200}
WATCHERS=${WATCHERS:-50}
IDLE_SESSIONS=${IDLE_SESSIONS:-5000}
DOVECOT_FSYNC=${DOVECOT_FSYNC:-always}
WORKLOADS=${WORKLOADS:-a b c d}
SERVERS=${SERVERS:-dovecot pluto cluster}
OUT=${OUT:-$ROOT/target/bench-vs-dovecot/$(date +%Y%m%d-%H%M%S)}


# 5,000 sessions on each side of loopback, plus the servers' own files.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[[ $(ulimit -n) -ge $((IDLE_SESSIONS * 2 + 1000)) ]] ||
    log "warning: ulimit -n is $(ulimit -n); $IDLE_SESSIONS idle sessions may not all open"

dovecot_install
bench_prepare pluto-bench

declare -A ADDR
start_servers() {
    if [[ " $SERVERS " == *" dovecot "* ]]; then
        ADDR[dovecot]=127.0.0.1:$(free_port)
        dovecot_start "$WORK/dovecot" "${ADDR[dovecot]##*:}" "$WORK/pluto/users"
    fi
    if [[ " $SERVERS " == *" pluto "* ]]; then
        ADDR[pluto]=127.0.0.1:$(free_port)
        ADDR[pluto-tls]=127.0.0.1:$(free_port)
        serve_start "$WORK/pluto" "${ADDR[pluto]##*:}" "${ADDR[pluto-tls]##*:}"
    fi
}
start_servers
if [[ " $SERVERS " == *" cluster "* ]]; then
    ADDR[cluster]=127.0.0.1:$(free_port)
    log "starting the cluster (2 workers, 1 storage, gateway)"
    cluster_start "$WORK/cluster" "${ADDR[cluster]##*:}" "$WORK/pluto/users"
fi

COMMON=(--users "$USERS" --corpus-mbox "$WORK/corpus.mbox")
for w in $WORKLOADS; do
    for s in $SERVERS; do
        log "workload $w against $s (${ADDR[$s]}), $DURATION s"
        "$BENCH" run --label "$s" --addr "${ADDR[$s]}" "${COMMON[@]}" --workload "$w" \
            --clients "$CLIENTS" --duration "$DURATION" --fill "$FILL" \
            --watchers "$WATCHERS" --json "$OUT/$w-$s.json" >"$OUT/$w-$s.txt"
        cat "$OUT/$w-$s.txt"
    done
done

if [[ -z ${SKIP_IDLE:-} ]]; then
    # Fresh servers, so that the baseline is a server that has served nothing but
    # the warm-up logins.
    stop_all
    rm -rf "$WORK/dovecot"
    start_servers
    for s in $SERVERS; do
        case $s in
        dovecot) pid=$DOVECOT_PID addr=${ADDR[dovecot]} ;;
        pluto) pid=$SERVE_PID addr=${ADDR[pluto]} ;;
        *) continue ;;
        esac
        log "idle memory: $IDLE_SESSIONS IDLE sessions against $s"
        "$BENCH" idle-memory --label "$s" --addr "$addr" --users "$USERS" \
            --sessions "$IDLE_SESSIONS" --pid "$pid" \
            --json "$OUT/idle-$s.json" | tee "$OUT/idle-$s.txt"
    done
    if [[ " $SERVERS " == *" pluto "* ]]; then
        # A fresh process again: memory the plain sessions freed stays in the
        # allocator and would hide the TLS sessions' cost.
        stop_pid "$SERVE_PID"
        serve_start "$WORK/pluto" "${ADDR[pluto]##*:}" "${ADDR[pluto-tls]##*:}"
        log "idle memory: $IDLE_SESSIONS IDLE sessions against pluto over TLS"
        "$BENCH" idle-memory --label pluto-tls --addr "${ADDR[pluto-tls]}" --tls --insecure \
            --users "$USERS" --sessions "$IDLE_SESSIONS" --pid "$SERVE_PID" \
            --json "$OUT/idle-pluto-tls.json" | tee "$OUT/idle-pluto-tls.txt"
    fi
fi

{
    echo "pluto vs Dovecot $(dovecot --version | cut -d' ' -f1) — $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, kernel $(uname -r)"
    echo "DURATION=$DURATION CLIENTS=$CLIENTS USERS=$USERS FILL=$FILL WATCHERS=$WATCHERS IDLE_SESSIONS=$IDLE_SESSIONS DOVECOT_FSYNC=$DOVECOT_FSYNC"
    echo
    "$BENCH" compare --base dovecot "$OUT"/*.json
} | tee "$OUT/table.md"
