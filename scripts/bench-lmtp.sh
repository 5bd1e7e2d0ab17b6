#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# LMTP delivery into pluto, measured against Dovecot's LMTP, side by side (issue 15).
#
# Starts, on loopback ports: a self-contained Dovecot (own config and base dir,
# `protocols = imap lmtp`, Maildir, the same users in a passwd-file), `pluto serve`
# with LMTP, and the replicated cluster (2 workers + 1 storage + gateway, ack =
# replica) delivering into the gateway's LMTP port — set up exactly as
# scripts/bench-vs-dovecot.sh does. Runs `pluto-bench lmtp` against each, for each
# recipient count; every run counts every user's INBOX over IMAP before and after and
# fails unless each grew by exactly the copies answered 250. With STRACE=1, a short
# run per server under `strace -c -f` counts fsyncs per delivery. Also measures each
# server's CPU time per delivery (/proc, all its processes). Prints the tables, with
# ratios to Dovecot. Release builds. Every process it starts is stopped on exit.
#
# Knobs (environment): DURATION=20 (s per run), CLIENTS=4 (LMTP connections),
# USERS=10, RECIPIENTS="1 5" (recipients per message, each run's N different users),
# DOVECOT_FSYNC=always|optimized, SERVERS="dovecot pluto cluster", STRACE=0|1,
# STRACE_MESSAGES=200, KEEP=1 (keep the servers' data and logs), BUILD_PLUTO=0 (use
# target/release/pluto as it is), OUT=DIR (reports; default target/bench-lmtp/<time>).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"
# shellcheck source=bench/dovecot.sh
source "$ROOT/scripts/bench/dovecot.sh"
# shellcheck source=bench/pluto.sh
source "$ROOT/scripts/bench/pluto.sh"

DURATION=${DURATION:-20}
CLIENTS=${CLIENTS:-4}
USERS=${USERS:-10}
RECIPIENTS=${RECIPIENTS:-1 5}
DOVECOT_FSYNC=${DOVECOT_FSYNC:-always}
SERVERS=${SERVERS:-dovecot pluto cluster}
STRACE=${STRACE:-0}
STRACE_MESSAGES=${STRACE_MESSAGES:-200}
OUT=${OUT:-$ROOT/target/bench-lmtp/$(date +%Y%m%d-%H%M%S)}

for r in $RECIPIENTS; do
    [[ $r =~ ^[1-9][0-9]*$ && $r -le $USERS ]] ||
        die "RECIPIENTS: $r is not a count from 1 to USERS ($USERS)"
done
if [[ $STRACE == 1 ]] && ! command -v strace >/dev/null 2>&1; then
    die "STRACE=1 needs strace (apt-get install strace)"
fi

dovecot_install dovecot-lmtpd
bench_prepare pluto-bench-lmtp

declare -A IMAP LMTP PIDS
if [[ " $SERVERS " == *" dovecot "* ]]; then
    IMAP[dovecot]=127.0.0.1:$(free_port)
    LMTP[dovecot]=127.0.0.1:$(free_port)
    dovecot_start "$WORK/dovecot" "${IMAP[dovecot]##*:}" "$WORK/pluto/users" "${LMTP[dovecot]##*:}"
    PIDS[dovecot]=$DOVECOT_PID
fi
if [[ " $SERVERS " == *" pluto "* ]]; then
    IMAP[pluto]=127.0.0.1:$(free_port)
    LMTP[pluto]=127.0.0.1:$(free_port)
    serve_start "$WORK/pluto" "${IMAP[pluto]##*:}" "$(free_port)" "${LMTP[pluto]##*:}"
    PIDS[pluto]=$SERVE_PID
fi
if [[ " $SERVERS " == *" cluster "* ]]; then
    IMAP[cluster]=127.0.0.1:$(free_port)
    LMTP[cluster]=127.0.0.1:$(free_port)
    log "starting the cluster (2 workers, 1 storage, gateway)"
    cluster_start "$WORK/cluster" "${IMAP[cluster]##*:}" "$WORK/pluto/users" "${LMTP[cluster]##*:}"
    PIDS[cluster]="${CLUSTER_PIDS[*]}"
fi

# CPU seconds (user + system, children reaped included) of the processes given and all
# their descendants.
cpu_seconds() {
    local p ticks=0 t
    # shellcheck disable=SC2046
    for p in $(descendants "$@" | grep -v '^-p$'); do
        # Fields after the ")" of the command name: utime is the 12th, then stime,
        # cutime, cstime.
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }') || continue
        ticks=$((ticks + ${t:-0}))
    done
    awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# The server's processes and all their descendants, as strace -p arguments.
descendants() {
    local p
    for p in "$@"; do
        printf -- '-p\n%s\n' "$p"
        # shellcheck disable=SC2046
        descendants $(ps -o pid= --ppid "$p")
    done
}

COMMON=(--users "$USERS" --corpus-mbox "$WORK/corpus.mbox" --clients "$CLIENTS")
LOAD_BEFORE=$(uptime)
for r in $RECIPIENTS; do
    for s in $SERVERS; do
        log "LMTP, $r recipient(s) per message, into $s (${LMTP[$s]}), $DURATION s"
        # shellcheck disable=SC2086
        cpu_before=$(cpu_seconds ${PIDS[$s]})
        "$BENCH" lmtp --label "$s" --addr "${LMTP[$s]}" --verify-imap "${IMAP[$s]}" \
            "${COMMON[@]}" --recipients "$r" --duration "$DURATION" \
            --json "$OUT/lmtp-${r}rcpt-$s.json" >"$OUT/lmtp-${r}rcpt-$s.txt"
        # shellcheck disable=SC2086
        cpu_after=$(cpu_seconds ${PIDS[$s]})
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["lmtp"]["deliveries"]; c=float(sys.argv[3])-float(sys.argv[2]); print("| %s | %s | %.1f | %d | %.3f |" % (sys.argv[4], sys.argv[5], c, d, 1000*c/max(d,1)))' \
            "$OUT/lmtp-${r}rcpt-$s.json" "$cpu_before" "$cpu_after" "$s" "$r" >>"$OUT/cpu.md"
        cat "$OUT/lmtp-${r}rcpt-$s.txt"
    done
done
LOAD_AFTER=$(uptime)

if [[ $STRACE == 1 ]]; then
    for r in $RECIPIENTS; do
        for s in $SERVERS; do
            log "strace: $STRACE_MESSAGES messages, $r recipient(s), one connection, into $s"
            # shellcheck disable=SC2086
            mapfile -t attach < <(descendants ${PIDS[$s]})
            strace -f -c -o "$OUT/strace-${r}rcpt-$s.txt" \
                -e trace=fsync,fdatasync,sync_file_range,syncfs,msync,rename,renameat,renameat2,link,linkat \
                "${attach[@]}" 2>/dev/null &
            spid=$!
            sleep 2
            "$BENCH" lmtp --label "$s" --addr "${LMTP[$s]}" --users "$USERS" \
                --corpus-mbox "$WORK/corpus.mbox" --clients 1 --recipients "$r" \
                --max-messages "$STRACE_MESSAGES" --duration 600 --quiet \
                --json "$OUT/strace-run-${r}rcpt-$s.json" >/dev/null
            sleep 1
            kill -INT "$spid"
            wait "$spid" || true
            # calls per message and per delivered copy, from strace's summary table.
            awk -v s="$s" -v r="$r" -v m="$STRACE_MESSAGES" \
                '$NF ~ /^(fsync|fdatasync|sync_file_range|syncfs|msync|rename|renameat|renameat2|link|linkat)$/ {
                    printf "| %s | %d | %s | %d | %.2f | %.2f |\n", s, r, $NF, $4, $4 / m, $4 / (m * r)
                }' "$OUT/strace-${r}rcpt-$s.txt" >>"$OUT/strace.md"
        done
    done
fi

{
    echo "LMTP delivery: pluto vs Dovecot $(dovecot --version | cut -d' ' -f1) — $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, kernel $(uname -r)"
    echo "DURATION=$DURATION CLIENTS=$CLIENTS USERS=$USERS RECIPIENTS=\"$RECIPIENTS\" DOVECOT_FSYNC=$DOVECOT_FSYNC"
    echo "load before: $LOAD_BEFORE"
    echo "load after:  $LOAD_AFTER"
    echo
    reports=()
    for r in $RECIPIENTS; do
        for s in $SERVERS; do reports+=("$OUT/lmtp-${r}rcpt-$s.json"); done
    done
    "$BENCH" compare --base dovecot "${reports[@]}"
    echo
    echo "| server | rcpt/msg | server CPU s | deliveries | CPU ms per delivery |"
    echo "|---|---:|---:|---:|---:|"
    cat "$OUT/cpu.md"
    if [[ -f $OUT/strace.md ]]; then
        echo
        echo "| server | rcpt/msg | syscall | calls | per message | per copy |"
        echo "|---|---:|---|---:|---:|---:|"
        cat "$OUT/strace.md"
    fi
} | tee "$OUT/table.md"
