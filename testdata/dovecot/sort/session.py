#!/usr/bin/env python3
"""Set up two mailboxes on a running IMAP server, replay sort.script, print the answers.

Usage: session.py PORT USER PASSWORD > sort.golden

Setup (gateway/tests/imap_sort.rs makes the same one on pluto):
- `corpus`: the first CORPUS messages of `testdata/corpus/gen_mbox.py` (LF turned into
  CRLF), appended in order, message i (from 0) with the internal date
  2024-01-01 00:00:00 +0000 plus ((i * 37) % 97) hours, so ARRIVAL differs from the
  mailbox order and has ties;
- `edge`: the files of edge/ in name order (CRLF), message i with the internal date
  2024-02-01 00:00:00 +0000 plus ((i * 5) % 7) hours.

Output, per command of the script: `C: command`, `S: line` for each untagged line,
`S: STATUS [CODE]` for the tagged one (its text left out, of a code its name only).
"""
import datetime
import os
import subprocess
import sys
import tempfile

CORPUS = 300
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
from imap_session import Session, tagged  # noqa: E402

PORT, USER, PASSWORD = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def internal_date(base, hours):
    t = base + datetime.timedelta(hours=hours)
    return t.strftime("%d-%b-%Y %H:%M:%S +0000")


def crlf(data):
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def corpus_messages():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "corpus.mbox")
        subprocess.run([sys.executable, os.path.join(ROOT, "testdata/corpus/gen_mbox.py"),
                        out, str(CORPUS)], check=True, stdout=subprocess.DEVNULL)
        with open(out, "rb") as f:
            mbox = f.read()
    messages = []
    for chunk in mbox.split(b"\nFrom ")[0:]:
        body = chunk.split(b"\n", 1)[1]
        messages.append(body[:-1] if body.endswith(b"\n\n") else body)
    return messages


session = Session(PORT)
command = session.command

_, login = command("l", f'LOGIN {USER} "{PASSWORD}"')
if not tagged(login).startswith("OK"):
    raise SystemExit(f"login failed: {login}")
command("c1", "CREATE corpus")
base = datetime.datetime(2024, 1, 1)
for i, message in enumerate(corpus_messages()):
    _, done = command(f"a{i}", f'APPEND corpus () "{internal_date(base, (i * 37) % 97)}"', crlf(message))
    if not tagged(done).startswith("OK"):
        raise SystemExit(f"append {i}: {done}")
command("c2", "CREATE edge")
base = datetime.datetime(2024, 2, 1)
for i, name in enumerate(sorted(os.listdir(os.path.join(HERE, "edge")))):
    with open(os.path.join(HERE, "edge", name), "rb") as f:
        message = crlf(f.read())
    _, done = command(f"e{i}", f'APPEND edge () "{internal_date(base, (i * 5) % 7)}"', message)
    if not tagged(done).startswith("OK"):
        raise SystemExit(f"append {name}: {done}")
session.replay(os.path.join(HERE, "sort.script"))
command("o", "LOGOUT")
