#!/usr/bin/env python3
"""Replay an extension script against a running IMAP server and record its answers.

Usage: record.py PORT USER PASSWORD SCRIPT > GOLDEN

SCRIPT (e.g. esearch.script) holds one IMAP command per line after a setup the
test suite makes the same way: mailbox `es` with 7 messages (`Subject: m1` … `m7`,
`\\Flagged` on 2, 3 and 5), selected. Lines starting with `#` are comments.

The output has, for every command, `C: command`, then `S: line` for each untagged
line and `S: STATUS [CODE]` for the tagged one (its text left out: every server words
it its own way; of a response code only its name). gateway/tests/imap_esearch.rs and
imap_objectid_preview.rs replay SCRIPT on pluto and compare.
"""
import socket
import sys

PORT, USER, PASSWORD, SCRIPT = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

sock = socket.create_connection(("127.0.0.1", PORT))
stream = sock.makefile("rb")
stream.readline()


def command(tag, text, literal=None):
    if literal is None:
        sock.sendall(f"{tag} {text}\r\n".encode())
    else:
        sock.sendall(f"{tag} {text} {{{len(literal)}+}}\r\n".encode() + literal + b"\r\n")
    lines = []
    while True:
        line = stream.readline().decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            raise SystemExit(f"connection closed during {text!r}")
        if line.startswith(tag + " "):
            return lines, line
        lines.append(line)


def tagged(line):
    words = line.split(" ", 2)
    status = words[1]
    rest = words[2] if len(words) > 2 else ""
    if rest.startswith("["):
        # The code's name only: its data (COPYUID's UIDVALIDITY…) is the server's own.
        name = rest[1:].split("]")[0].split(" ")[0]
        return f"{status} [{name}]"
    return status


_, login = command("l", f'LOGIN {USER} "{PASSWORD}"')
if tagged(login) != "OK" and not tagged(login).startswith("OK "):
    raise SystemExit(f"login failed: {login}")
command("c", "CREATE es")
for i in range(1, 8):
    flags = " (\\Flagged)" if i in (2, 3, 5) else ""
    body = f"Subject: m{i}\r\nFrom: a@example.com\r\n\r\nbody {i}\r\n".encode()
    command(f"a{i}", f"APPEND es{flags}", body)
command("s", "SELECT es")
with open(SCRIPT) as script:
    for n, text in enumerate(line.rstrip("\n") for line in script):
        if not text or text.startswith("#"):
            continue
        lines, last = command(f"t{n}", text)
        print(f"C: {text}")
        for line in lines:
            print(f"S: {line}")
        print(f"S: {tagged(last)}")
command("o", "LOGOUT")
