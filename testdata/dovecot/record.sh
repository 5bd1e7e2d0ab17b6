#!/usr/bin/env bash
# Records Dovecot's answers (ENVELOPE, BODY, BODYSTRUCTURE, BODY[section]) for the shared
# corpus plus a few hand-written edge cases, as golden files for pluto-mime's tests.
#
# Usage: bash testdata/dovecot/record.sh [COUNT [OUTDIR]]   (run as root; default COUNT=120,
#        OUTDIR = this directory; 120 keeps the committed files under ~5 MB)
#
# Dovecot runs from a throw-away directory with its own config, base_dir, Maildir and
# passwd-file, listening on 127.0.0.1 on a free high port; no system service is touched.
# Output (next to this script): messages.txt (the exact bytes APPENDed) and fetch.txt
# (Dovecot's answers), both in the framed format described in record.py.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
count="${1:-120}"
out="${2:-$here}"
mkdir -p "$out"
corpus_gen="${PLUTO_CORPUS_GEN:-$here/../corpus/gen_mbox.py}"

if ! command -v dovecot >/dev/null 2>&1; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-imapd
fi

tmp="$(mktemp -d /tmp/pluto-dovecot.XXXXXX)"
conf="$tmp/dovecot.conf"
cleanup() {
    status=$?
    if [ "$status" -ne 0 ] && [ -f "$tmp/dovecot.log" ]; then
        echo "dovecot log:" >&2
        tail -n 30 "$tmp/dovecot.log" >&2
    fi
    doveadm -c "$conf" stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
mkdir -p "$tmp/run" "$tmp/state" "$tmp/home/pluto"
# The login processes run as dovenull and must reach the sockets in base_dir.
chmod 755 "$tmp"
# Mail processes may not run as root: the mailbox belongs to nobody.
chown nobody:nogroup "$tmp/home/pluto"
echo "pluto:{PLAIN}pluto::::$tmp/home/pluto::" > "$tmp/passwd"

cat > "$conf" <<CONF
base_dir = $tmp/run
state_dir = $tmp/state
instance_name = pluto-golden-$port
log_path = $tmp/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
first_valid_gid = 1
mail_uid = nobody
mail_gid = nogroup
mail_location = maildir:$tmp/home/%u/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN $tmp/passwd
}
userdb {
  driver = passwd-file
  args = $tmp/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
CONF

python3 "$corpus_gen" "$tmp/corpus.mbox" "$count" >/dev/null
dovecot -c "$conf"
# wait for the listener
for _ in $(seq 1 50); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break
    sleep 0.1
done
dovecot --version > "$out/dovecot-version.txt"
python3 "$here/record.py" "$port" "$tmp/corpus.mbox" "$out"
echo "recorded into $out (dovecot $(cat "$out/dovecot-version.txt"))"
