#!/usr/bin/env bash
# Records Dovecot's answers to the extension scripts here (*.script) as golden files
# (*.golden) for gateway/tests/imap_esearch.rs and imap_objectid_preview.rs. Run as
# root; Dovecot runs from a throw-away directory on a free loopback port
# (scripts/bench/dovecot.sh), no system service is touched.
#
# Usage: bash testdata/dovecot/extensions/record.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
DOVECOT_FSYNC=optimized
# shellcheck source=../../../scripts/bench/lib.sh
source "$root/scripts/bench/lib.sh"
# shellcheck source=../../../scripts/bench/dovecot.sh
source "$root/scripts/bench/dovecot.sh"
dovecot_install

tmp="$(mktemp -d /tmp/pluto-dovecot-ext.XXXXXX)"
chmod 755 "$tmp"
cleanup() {
    [[ -f "$tmp/dc/dovecot.log" ]] && tail -n 5 "$tmp/dc/dovecot.log" >&2
    doveadm -c "$tmp/dc/dovecot.conf" stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
echo 'golden:{PLAIN}golden' > "$tmp/users"
dovecot_start "$tmp/dc" "$port" "$tmp/users"
sed -i 's/scheme=ARGON2ID/scheme=PLAIN/' "$tmp/dc/dovecot.conf"
doveadm -c "$tmp/dc/dovecot.conf" reload
sleep 1
for script in "$here"/*.script; do
    golden="${script%.script}.golden"
    {
        echo "# Dovecot $(dovecot --version | cut -d' ' -f1)'s answers to $(basename "$script"), recorded by record.sh"
        python3 "$here/record.py" "$port" golden golden "$script"
    } > "$golden"
    log "wrote $golden"
done
