# shellcheck shell=bash
# Helpers shared by scripts/bench-vs-dovecot.sh: ports, waiting, logging, cleanup.
# Sourced, not run.

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench-vs-dovecot: %s\n' "$*" >&2; exit 1; }

# A free TCP port on 127.0.0.1 (the kernel picks it; a tiny race is acceptable here).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port HOST:PORT SECONDS — until something accepts there.
wait_port() {
    local addr=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        if python3 -c 'import socket,sys; h,p=sys.argv[1].rsplit(":",1); socket.create_connection((h,int(p)),0.5).close()' "$addr" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# PIDs this script started, killed (TERM, then KILL) on exit — never anything else.
STARTED_PIDS=()
remember_pid() { STARTED_PIDS+=("$1"); }
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
stop_all() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do stop_pid "$pid"; done
    STARTED_PIDS=()
}
