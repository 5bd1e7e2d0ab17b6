# shellcheck shell=bash
# A throw-away Dovecot for recording golden answers: its own config, base_dir, Maildir
# and passwd-file in a temporary directory, listening on 127.0.0.1 on a free high port;
# no system service is touched. Sourced by testdata/dovecot/record.sh,
# testdata/dovecot/extensions/record.sh,
# testdata/dovecot/condstore.sh and scripts/record-dovecot-quota.sh, not run.
#
# golden_dovecot_start NAME USER PASSWORD [EXTRA_FIELDS [CONF]] — installs Debian's
# dovecot-imapd when missing; starts Dovecot (instance NAME) with one passwd-file user
# (PLAIN password, home in the temporary directory, EXTRA_FIELDS after the home: e.g.
# userdb_quota_rule=…) and CONF appended to the configuration; waits for the listener.
# Sets GOLDEN_TMP (the directory) and GOLDEN_PORT. Dovecot is stopped and the directory
# removed on exit (Dovecot's log is printed first when the script fails).

golden_dovecot_start() {
    local name=$1 user=$2 password=$3 extra=${4:-} conf_extra=${5:-}
    if ! command -v dovecot >/dev/null 2>&1; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-imapd
    fi
    GOLDEN_TMP="$(mktemp -d /tmp/pluto-dovecot.XXXXXX)"
    trap golden_dovecot_cleanup EXIT
    GOLDEN_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
    local tmp=$GOLDEN_TMP port=$GOLDEN_PORT
    mkdir -p "$tmp/run" "$tmp/state" "$tmp/home/$user"
    # The login processes run as dovenull and must reach the sockets in base_dir.
    chmod 755 "$tmp"
    # Mail processes may not run as root: the mailbox belongs to nobody.
    chown nobody:nogroup "$tmp/home/$user"
    echo "$user:{PLAIN}$password::::$tmp/home/$user::$extra" > "$tmp/passwd"
    cat > "$tmp/dovecot.conf" <<CONF
base_dir = $tmp/run
state_dir = $tmp/state
instance_name = $name-$port
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
$conf_extra
CONF
    dovecot -c "$tmp/dovecot.conf"
    for _ in $(seq 1 50); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break
        sleep 0.1
    done
}

golden_dovecot_cleanup() {
    local status=$?
    if [ "$status" -ne 0 ] && [ -f "$GOLDEN_TMP/dovecot.log" ]; then
        echo "dovecot log:" >&2
        tail -n 30 "$GOLDEN_TMP/dovecot.log" >&2
    fi
    doveadm -c "$GOLDEN_TMP/dovecot.conf" stop >/dev/null 2>&1 || true
    rm -rf "$GOLDEN_TMP"
}
