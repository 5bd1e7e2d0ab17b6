#!/usr/bin/env bash
# Records Dovecot's answers to one fixed IMAP QUOTA session (RFC 9208: GETQUOTAROOT,
# GETQUOTA, SETQUOTA, STATUS DELETED/DELETED-STORAGE, APPEND past each limit) as the
# golden file gateway/tests/imap_quota_dovecot.rs compares pluto's answers with.
#
# Usage: scripts/record-dovecot-quota.sh [OUTDIR]   (run as root; OUTDIR defaults to
#        testdata/dovecot-quota)
#
# Dovecot runs from a throw-away directory (own config, base_dir, Maildir, passwd-file)
# on a free loopback port (scripts/dovecot-golden.sh), with its quota plugin: the count driver, virtual sizes (the
# CRLF size, which is what pluto counts), and the user's limits in the passwd-file's
# extra fields in the very syntax pluto reads from its users file
# (userdb_quota_rule=*:storage=8K:messages=4). testdata/dovecot-quota/session.py drives
# the session; its output is written to OUTDIR/dovecot.txt, Dovecot's version to
# OUTDIR/dovecot-version.txt. No system service is touched.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
here="$root/testdata/dovecot-quota"
out="${1:-$here}"
mkdir -p "$out"

# shellcheck source=dovecot-golden.sh
source "$root/scripts/dovecot-golden.sh"
golden_dovecot_start pluto-quota-golden quser quota-pw \
    "userdb_quota_rule=*:storage=8K:messages=4" "$(cat <<'CONF'
mail_plugins = $mail_plugins quota
protocol imap {
  mail_plugins = $mail_plugins imap_quota
}
plugin {
  quota = count:User quota
  quota_vsizes = yes
}
CONF
)"
dovecot --version > "$out/dovecot-version.txt"
python3 "$here/session.py" "$GOLDEN_PORT" quser quota-pw > "$out/dovecot.txt"
echo "recorded into $out/dovecot.txt (dovecot $(cat "$out/dovecot-version.txt"))"
