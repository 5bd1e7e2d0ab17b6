#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what the tests need when it is
# missing (isync for the mbsync test, python3 for the imaplib test and the corpus),
# then runs `cargo test --workspace`. Extra arguments go to cargo test.
#
# Tests that need PostgreSQL or Redis run when PLUTO_TEST_POSTGRES_URL /
# PLUTO_TEST_REDIS_URL are set, and print that they were skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v mbsync >/dev/null 2>&1 || missing+=(isync)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
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

exec cargo test --workspace "$@"
