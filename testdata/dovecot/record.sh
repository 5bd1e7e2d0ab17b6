#!/usr/bin/env bash
# Records Dovecot's answers (ENVELOPE, BODY, BODYSTRUCTURE, BODY[section]) for the shared
# corpus plus a few hand-written edge cases, as golden files for pluto-mime's tests.
#
# Usage: bash testdata/dovecot/record.sh [COUNT [OUTDIR]]   (run as root; default COUNT=120,
#        OUTDIR = this directory; 120 keeps the committed files under ~5 MB)
#
# Dovecot runs from a throw-away directory with its own config, base_dir, Maildir and
# passwd-file, listening on 127.0.0.1 on a free high port (scripts/dovecot-golden.sh);
# no system service is touched.
# Output (next to this script): messages.txt (the exact bytes APPENDed) and fetch.txt
# (Dovecot's answers), both in the framed format described in record.py.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
count="${1:-120}"
out="${2:-$here}"
mkdir -p "$out"
corpus_gen="${PLUTO_CORPUS_GEN:-$here/../corpus/gen_mbox.py}"

# shellcheck source=../../scripts/dovecot-golden.sh
source "$here/../../scripts/dovecot-golden.sh"
golden_dovecot_start pluto-golden pluto pluto
python3 "$corpus_gen" "$GOLDEN_TMP/corpus.mbox" "$count" >/dev/null
dovecot --version > "$out/dovecot-version.txt"
python3 "$here/record.py" "$GOLDEN_PORT" "$GOLDEN_TMP/corpus.mbox" "$out"
echo "recorded into $out (dovecot $(cat "$out/dovecot-version.txt"))"
