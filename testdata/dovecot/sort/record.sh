#!/usr/bin/env bash
# Records Dovecot's answers to sort.script (SORT, SORT=DISPLAY, THREAD) on the
# mailboxes session.py sets up (the test corpus and edge/) as sort.golden, which
# gateway/tests/imap_sort.rs compares pluto's answers with. Run as root; Dovecot runs
# from a throw-away directory on a free loopback port (scripts/dovecot-golden.sh), no
# system service is touched.
#
# Usage: bash testdata/dovecot/sort/record.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
# shellcheck source=../../../scripts/dovecot-golden.sh
source "$root/scripts/dovecot-golden.sh"
golden_dovecot_start pluto-sort-golden golden golden
{
    echo "# Dovecot $(dovecot --version | cut -d' ' -f1)'s answers to sort.script, recorded by record.sh"
    python3 "$here/session.py" "$GOLDEN_PORT" golden golden
} > "$here/sort.golden.new"
mv "$here/sort.golden.new" "$here/sort.golden"
echo "wrote $here/sort.golden"
