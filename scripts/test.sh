#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what the tests need when it is
# missing (isync for the mbsync test, postfix for the MTA tests, python3 for the imaplib
# and LMTP tests and the corpus), then runs `cargo test --workspace` and the CRDT's
# mutation test (`cargo test -p pluto-crdt --features mutations --test mutations`). Extra
# arguments go to the first, `cargo test --workspace`.
#
# Tests that need PostgreSQL or Redis run when PLUTO_TEST_POSTGRES_URL /
# PLUTO_TEST_REDIS_URL are set, and print that they were skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v mbsync >/dev/null 2>&1 || missing+=(isync)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# Postfix's binaries are in /usr/sbin, which a non-login PATH may lack.
[ -x /usr/sbin/postfix ] || command -v postfix >/dev/null 2>&1 || missing+=(postfix)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]} (install them, e.g. apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

cargo test --workspace "$@"
# The CRDT simulator against deliberate bugs (test-only feature, never in the product).
exec cargo test -p pluto-crdt --features mutations --test mutations
