#!/usr/bin/env bash
# Records Dovecot's answers to the extension scripts here (*.script) as golden files
# (*.golden) for gateway/tests/imap_esearch.rs and imap_objectid_preview.rs;
# list.script, which needs Dovecot set up like a new pluto user, is recorded by
# record-list.sh. Run as root; Dovecot runs from a throw-away directory on a free
# loopback port (scripts/dovecot-golden.sh), no system service is touched.
#
# Usage: bash testdata/dovecot/extensions/record.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../../../scripts/dovecot-golden.sh
source "$here/../../../scripts/dovecot-golden.sh"
golden_dovecot_start pluto-golden-ext golden golden
for script in "$here"/*.script; do
    [[ $(basename "$script") == list.script ]] && continue
    golden="${script%.script}.golden"
    {
        echo "# Dovecot $(dovecot --version | cut -d' ' -f1)'s answers to $(basename "$script"), recorded by record.sh"
        python3 "$here/record.py" "$GOLDEN_PORT" golden golden "$script"
    } > "$golden"
    echo "wrote $golden"
done
