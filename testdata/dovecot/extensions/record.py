#!/usr/bin/env python3
"""Replay an extension script against a running IMAP server and record its answers.

Usage: record.py PORT USER PASSWORD SCRIPT > GOLDEN

SCRIPT (e.g. esearch.script) holds one IMAP command per line after a setup the
test suite makes the same way: mailbox `es` with 7 messages (`Subject: m1` … `m7`,
`\\Flagged` on 2, 3 and 5), selected. Lines starting with `#` are comments.

The output has, for every command, `C: command`, then `S: line` for each untagged
line and `S: STATUS [CODE]` for the tagged one (its text left out: every server words
it its own way; of a response code only its name). gateway/tests/imap_esearch.rs replays SCRIPT on pluto and compares.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from imap_session import Session, tagged  # noqa: E402

PORT, USER, PASSWORD, SCRIPT = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
session = Session(PORT)
command = session.command

_, login = command("l", f'LOGIN {USER} "{PASSWORD}"')
if tagged(login) != "OK" and not tagged(login).startswith("OK "):
    raise SystemExit(f"login failed: {login}")
command("c", "CREATE es")
for i in range(1, 8):
    flags = " (\\Flagged)" if i in (2, 3, 5) else ""
    body = f"Subject: m{i}\r\nFrom: a@example.com\r\n\r\nbody {i}\r\n".encode()
    command(f"a{i}", f"APPEND es{flags}", body)
command("s", "SELECT es")
session.replay(SCRIPT)
command("o", "LOGOUT")
