#!/usr/bin/env bash
# Records Dovecot's answers to a scripted CONDSTORE/QRESYNC session (condstore.py), the
# reference for the cases where RFC 7162 allows several answers (see
# gateway/tests/imap_condstore.rs and imap_qresync.rs).
#
# Usage: bash testdata/dovecot/condstore.sh [OUTDIR]   (run as root; OUTDIR = this directory)
#
# Dovecot runs from a throw-away directory with its own config, base_dir, Maildir and
# passwd-file, listening on 127.0.0.1 on a free high port; no system service is touched.
# Output: condstore.txt, the session as sent and answered (modseqs as Dovecot gave them).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
mkdir -p "$out"

# shellcheck source=../../scripts/dovecot-golden.sh
source "$here/../../scripts/dovecot-golden.sh"
golden_dovecot_start pluto-golden pluto pluto
python3 "$here/condstore.py" "$GOLDEN_PORT" > "$out/condstore.txt"
echo "recorded into $out/condstore.txt (dovecot $(dovecot --version))"
