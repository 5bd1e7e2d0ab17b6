#!/usr/bin/env bash
# QRESYNC resync by imapflow against a full resync, pluto beside Dovecot in one run
# (issue 14's benchmark): INBOX with MESSAGES messages, synced once, then CHANGES
# changes by another session (40% flags, 30% expunges, 30% appends); imapflow
# (`qresync: true`) resyncs with SELECT (QRESYNC …) plus a fetch of the new UIDs, and a
# second client fetches every UID's flags. Bytes both ways, commands and time of each,
# counted by a proxy in front of the server (scripts/bench/qresync.cjs).
#
# Usage: [PLUTO_BIN=…] [MESSAGES=10000] [CHANGES=100] scripts/bench-qresync.sh
# Needs node and npm (imapflow is installed into a temporary directory), and root for
# Dovecot (Debian's dovecot-imapd, installed when missing; scripts/dovecot-golden.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MESSAGES="${MESSAGES:-10000}"
CHANGES="${CHANGES:-100}"
PLUTO_BIN="${PLUTO_BIN:-$ROOT/target/release/pluto}"
[ -x "$PLUTO_BIN" ] || PLUTO_BIN="$ROOT/target/debug/pluto"
[ -x "$PLUTO_BIN" ] || { echo "build pluto first (cargo build --release -p pluto-gateway)" >&2; exit 1; }

# shellcheck source=dovecot-golden.sh
source "$ROOT/scripts/dovecot-golden.sh"
golden_dovecot_start pluto-qresync bench bench
work="$GOLDEN_TMP/pluto"
mkdir -p "$work/npm"
npm install --silent --prefix "$work/npm" imapflow@1 >/dev/null
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
echo bench | "$PLUTO_BIN" user add bench --data-dir "$work/data" >/dev/null
"$PLUTO_BIN" serve --data-dir "$work/data" --imap "127.0.0.1:$port" --imaps "" --lmtp "" \
    >"$work/serve.log" 2>&1 &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true; golden_dovecot_cleanup' EXIT
for _ in $(seq 1 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break
    sleep 0.1
done
run() {
    NODE_PATH="$work/npm/node_modules" node "$ROOT/scripts/bench/qresync.cjs" 127.0.0.1 "$1" bench bench "$MESSAGES" "$CHANGES"
}
echo "pluto ($("$PLUTO_BIN" --version 2>/dev/null || echo "$PLUTO_BIN")): $(run "$port")"
echo "dovecot $(dovecot --version | cut -d' ' -f1): $(run "$GOLDEN_PORT")"
