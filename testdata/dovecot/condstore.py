#!/usr/bin/env python3
"""Drives Dovecot through a CONDSTORE/QRESYNC session and prints every command with its
answer (see condstore.sh). Usage: condstore.py PORT. Two connections: A (the client under
test) and B (another client making changes). Lines: "A> cmd" then the answer lines."""
import socket
import sys

PORT = int(sys.argv[1])


class Conn:
    def __init__(self, name):
        self.name = name
        self.s = socket.create_connection(("127.0.0.1", PORT))
        self.f = self.s.makefile("rb")
        self.n = 0
        self.f.readline()

    def cmd(self, text, literal=None):
        self.n += 1
        tag = f"{self.name}{self.n}"
        print(f"{self.name}> {tag} {text}")
        if literal is not None:
            self.s.sendall(f"{tag} {text} {{{len(literal)}+}}\r\n".encode() + literal + b"\r\n")
        else:
            self.s.sendall(f"{tag} {text}\r\n".encode())
        out = []
        while True:
            line = self.f.readline().decode(errors="replace").rstrip("\r\n")
            print("   " + line)
            out.append(line)
            if line.startswith(tag + " "):
                return out


MSG = b"From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n"
a, b = Conn("A"), Conn("B")
for c in (a, b):
    c.cmd("LOGIN pluto pluto")
for _ in range(5):
    a.cmd("APPEND INBOX", MSG)
a.cmd("SELECT INBOX")
a.cmd("STORE 1 +FLAGS (\\Seen)")
a.cmd("FETCH 1:* (MODSEQ)")
a.cmd("STORE 2 +FLAGS (\\Flagged)")
a.cmd("FETCH 1 (BODY[])")
b.cmd("SELECT INBOX")
b.cmd("STORE 3 +FLAGS (\\Seen)")
a.cmd("STORE 1:5 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Deleted)")
a.cmd("STORE 1:5 (UNCHANGEDSINCE 0) -FLAGS (\\Deleted)")
a.cmd("UID STORE 1:5 (UNCHANGEDSINCE 0) -FLAGS (\\Deleted)")
a.cmd("STORE 1 +FLAGS (\\Seen)")
a.cmd("SEARCH MODSEQ 2")
a.cmd("SEARCH MODSEQ 1000")
a.cmd("EXPUNGE")
a.cmd("ENABLE CONDSTORE")
a.cmd("ENABLE CONDSTORE")
a.cmd("EXPUNGE")
a.cmd("ENABLE QRESYNC")
a.cmd("STORE 4 +FLAGS.SILENT (\\Deleted)")
a.cmd("EXPUNGE")
a.cmd("UNSELECT")
before = a.cmd("STATUS INBOX (UIDVALIDITY HIGHESTMODSEQ)")[0]
uv = before.split("UIDVALIDITY ")[1].split()[0].rstrip(")")
hm = before.split("HIGHESTMODSEQ ")[1].split()[0].rstrip(")")
b.cmd("NOOP")
b.cmd("STORE 1 +FLAGS (\\Answered)")
b.cmd("STORE 2 +FLAGS (\\Deleted)")
b.cmd("EXPUNGE")
b.cmd("APPEND INBOX", MSG)
a.cmd(f"SELECT INBOX (QRESYNC ({uv} {hm}))")
a.cmd(f"SELECT INBOX (QRESYNC ({uv} {hm} 1:2))")
a.cmd(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {hm} VANISHED)")
a.cmd(f"SELECT INBOX (QRESYNC ({uv} {hm} 1:4294967295 (1:2 1:2)))")
a.cmd(f"SELECT INBOX (QRESYNC ({uv} {hm} 1:5 (1:3 1:2)))")
a.cmd(f"SELECT INBOX (QRESYNC ({uv} 1 1:10))")
a.cmd("LOGOUT")
b.cmd("LOGOUT")
