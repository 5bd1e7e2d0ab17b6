#!/usr/bin/env bash
# Runs one fuzz target for a stated time, the way docs/FUZZING.md's figures were made:
#
#   scripts/fuzz.sh TARGET SECONDS        e.g. scripts/fuzz.sh imap_command 600
#
# Targets: imap_command, store_frames, mime_message, crdt_snapshot (fuzz/fuzz_targets/).
# Needs cargo-fuzz (`cargo install cargo-fuzz`). It uses nightly-only compiler flags;
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. One job, nice'd: the
# sanitizer build compiles every dependency again, which is slow on a small machine.
# The corpus grows in fuzz/corpus/TARGET (not committed); fuzz/seeds/TARGET holds the
# committed seeds; mime_message is seeded from testdata/dovecot/messages.txt.
# A crash is written to fuzz/artifacts/TARGET/; turn it into a regression test in the
# crate that owns the code (see docs/FUZZING.md).
set -euo pipefail
usage="usage: scripts/fuzz.sh TARGET SECONDS"
target=${1:?$usage}
seconds=${2:?$usage}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
[ -f "fuzz_targets/$target.rs" ] || { echo "no fuzz target $target" >&2; exit 2; }
command -v cargo-fuzz >/dev/null 2>&1 || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }

corpus=corpus/$target
mkdir -p "$corpus"
dirs=("$corpus")
[ -d "seeds/$target" ] && dirs+=("seeds/$target")
max_len=4096
if [ "$target" = mime_message ]; then
  max_len=65536
  if [ -z "$(ls -A "$corpus")" ]; then
    # One seed per message of the Dovecot corpus (frames "=== <uid> <len>\n" + bytes).
    python3 - "$root/testdata/dovecot/messages.txt" "$corpus" <<'PY'
import sys
data, out = open(sys.argv[1], "rb").read(), sys.argv[2]
pos = 0
while pos < len(data):
    nl = data.index(b"\n", pos)
    _, uid, length = data[pos:nl].split()
    body = data[nl + 1 : nl + 1 + int(length)]
    if len(body) <= 65536:
        open(f"{out}/dovecot-{uid.decode()}", "wb").write(body)
    pos = nl + 1 + int(length) + 1
PY
  fi
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/fuzz/target}
# No sanitizer by default: pluto forbids unsafe code, and an ASan build is slower to
# make and to run; SANITIZER=address turns it on.
RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz run --sanitizer "${SANITIZER:-none}" "$target" "${dirs[@]}" -- \
  -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1
