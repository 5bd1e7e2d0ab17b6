#!/usr/bin/env bash
# Records Dovecot's answers to list.script (LIST-EXTENDED, RFC 5258; LIST-STATUS,
# RFC 5819; SPECIAL-USE selection, RFC 6154) as list.golden (with record.py), the reference for
# gateway/tests/imap_list_extended.rs. Dovecot runs from a throw-away directory with its
# own config on a free loopback port (scripts/dovecot-golden.sh); no system service is
# touched. Its INBOX namespace is set up like a new pluto user: separator `/`, and
# Drafts, Sent, Trash, Junk and Archive created and subscribed, with their special use
# (subscribed by Dovecot: with `auto = create` its RETURN (SUBSCRIBED) leaves the
# subscriptions record.py adds to them unmarked).
#
# Usage: bash testdata/dovecot/extensions/record-list.sh   (run as root)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../../../scripts/dovecot-golden.sh
source "$here/../../../scripts/dovecot-golden.sh"
golden_dovecot_start pluto-list golden golden "" "$(cat <<'CONF'
namespace inbox {
  inbox = yes
  separator = /
  mailbox Drafts {
    auto = subscribe
    special_use = \Drafts
  }
  mailbox Sent {
    auto = subscribe
    special_use = \Sent
  }
  mailbox Trash {
    auto = subscribe
    special_use = \Trash
  }
  mailbox Junk {
    auto = subscribe
    special_use = \Junk
  }
  mailbox Archive {
    auto = subscribe
    special_use = \Archive
  }
}
CONF
)"
{
    echo "# Dovecot $(dovecot --version | cut -d' ' -f1)'s answers to list.script, recorded by record-list.sh"
    python3 "$here/record.py" "$GOLDEN_PORT" golden golden "$here/list.script"
} > "$here/list.golden"
echo "wrote $here/list.golden"
