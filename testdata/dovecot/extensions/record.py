#!/usr/bin/env python3
"""Replay an extension script against a running IMAP server and record its answers.

Usage: record.py PORT USER PASSWORD SCRIPT > GOLDEN

SCRIPT holds one IMAP command per line after a setup the test suite makes the same
way. Lines starting with `#` are comments. For esearch.script (replayed by
gateway/tests/imap_esearch.rs): mailbox `es` with 7 messages (`Subject: m1` … `m7`,
`\\Flagged` on 2, 3 and 5), selected. For list.script (gateway/tests/
imap_list_extended.rs; recorded by record-list.sh): after a new user's INBOX, Drafts,
Sent, Trash, Junk and Archive, the mailboxes of RFC 5258's examples: Fruit, Fruit/Apple,
Fruit/Banana, Tofu, Vegetable, Vegetable/Broccoli, Vegetable/Corn; subscribed are INBOX,
the five others a new user has (whether or not the store subscribes them itself),
Fruit/Banana, Fruit/Peach (created, subscribed, deleted: a subscription to no mailbox),
Vegetable and Vegetable/Broccoli (no parent
that is no mailbox: pluto's CREATE makes the parents, Dovecot's does not); INBOX gets
three messages (the first `\\Seen`), Fruit/Banana one (`\\Deleted`).

The output has, for every command, `C: command`, then `S: line` for each untagged
line and `S: STATUS [CODE]` for the tagged one (its text left out: every server words
it its own way; of a response code only its name). For list.script the untagged
lines are normalised, the same way on both sides: sorted by mailbox, each LIST line
with the STATUS line after it (the RFCs fix no order and Dovecot lists in directory
order), and the values of UIDVALIDITY and HIGHESTMODSEQ, each server's own, become `N`. gateway/tests/imap_esearch.rs,
imap_objectid_preview.rs and imap_list_extended.rs replay the scripts on pluto and compare.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from imap_session import Session, tagged  # noqa: E402

PORT, USER, PASSWORD, SCRIPT = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
session = Session(PORT)
command = session.command


def list_normalised(lines):
    groups = []
    for line in lines:
        line = re.sub(r"(UIDVALIDITY|HIGHESTMODSEQ) \d+", r"\1 N", line)
        if line.startswith("* STATUS ") and groups:
            groups[-1].append(line)
        else:
            groups.append([line])
    groups.sort(key=lambda g: g[0].rsplit('"/" ', 1)[-1])
    return [line for group in groups for line in group]


def esearch_setup():
    command("c", "CREATE es")
    for i in range(1, 8):
        flags = " (\\Flagged)" if i in (2, 3, 5) else ""
        body = f"Subject: m{i}\r\nFrom: a@example.com\r\n\r\nbody {i}\r\n".encode()
        command(f"a{i}", f"APPEND es{flags}", body)
    command("s", "SELECT es")


def list_setup():
    for name in ["Fruit", "Fruit/Apple", "Fruit/Banana", "Fruit/Peach", "Tofu", "Vegetable",
                 "Vegetable/Broccoli", "Vegetable/Corn"]:
        command("c", f"CREATE {name}")
    for name in ["INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive", "Fruit/Banana",
                 "Fruit/Peach", "Vegetable", "Vegetable/Broccoli"]:
        command("s", f"SUBSCRIBE {name}")
    command("d", "DELETE Fruit/Peach")
    for i in range(1, 4):
        flags = " (\\Seen)" if i == 1 else ""
        body = f"Subject: m{i}\r\nFrom: a@example.com\r\n\r\nbody {i}\r\n".encode()
        command("a", f"APPEND INBOX{flags}", body)
    command("a", "APPEND Fruit/Banana (\\Deleted)", b"Subject: b\r\n\r\nbanana\r\n")


_, login = command("l", f'LOGIN {USER} "{PASSWORD}"')
if tagged(login) != "OK" and not tagged(login).startswith("OK "):
    raise SystemExit(f"login failed: {login}")
is_list = os.path.basename(SCRIPT) == "list.script"
(list_setup if is_list else esearch_setup)()
session.replay(SCRIPT, list_normalised if is_list else (lambda lines: lines))
command("o", "LOGOUT")
