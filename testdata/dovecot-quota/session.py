#!/usr/bin/env python3
"""One fixed IMAP QUOTA session (RFC 9208), run against any server; prints the exchange.

Usage: session.py PORT USER PASSWORD

The user must have a STORAGE limit of 8 KiB and a MESSAGE limit of 4 (Dovecot's
`userdb_quota_rule=*:storage=8K:messages=4`, read by both Dovecot and pluto) and an
empty INBOX. scripts/record-dovecot-quota.sh records Dovecot's answers with it into
testdata/dovecot-quota/dovecot.txt; gateway/tests/imap_quota_dovecot.rs runs it against
pluto and compares.

Output, one step after another:
  === <MODE> <command as sent, literal data left out>
  S: <each line the server sent for it, untagged and tagged, CRLF removed>
MODE says how much of the answer RFC 9208 fixes, and so what the test compares:
  same    the untagged QUOTA/QUOTAROOT/STATUS data and the tagged status and code
  status  the tagged status (OK/NO/BAD) only: the untagged data is the server's own
          (SELECT's, CAPABILITY's), or the response code is optional
  differs recorded, not compared: Dovecot 2.3 implements RFC 2087, and RFC 9208 added
          what it answers otherwise (the test names each)
"""
import socket
import sys

PORT, USER, PASSWORD = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def message(n, size):
    """A message of exactly `size` octets (CRLF line ends)."""
    head = (f"From: a@example.com\r\nTo: b@example.org\r\nSubject: quota {n}\r\n"
            f"Message-ID: <quota.{n}@example.com>\r\n\r\n")
    body = ""
    while len(head) + len(body) + 2 < size:
        body += "x" * min(70, size - len(head) - len(body) - 4) + "\r\n"
    text = (head + body).encode()
    text += b"y" * (size - len(text) - 2) + b"\r\n"
    assert len(text) == size, (n, size, len(text))
    return text


class Session:
    def __init__(self):
        self.sock = socket.create_connection(("127.0.0.1", PORT), timeout=30)
        self.buf = b""
        self.tag = 0
        self.line()  # greeting

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def run(self, mode, command, literal=None):
        self.tag += 1
        tag = f"q{self.tag}"
        shown = command if literal is None else f"{command} {{{len(literal)}}}"
        print(f"=== {mode} {shown}")
        if literal is None:
            self.sock.sendall(f"{tag} {command}\r\n".encode())
        else:
            self.sock.sendall(f"{tag} {command} {{{len(literal)}}}\r\n".encode())
            first = self.line()
            if not first.startswith("+"):
                print(f"S: {first}")
                return
            self.sock.sendall(literal + b"\r\n")
        while True:
            got = self.line()
            print(f"S: {got}")
            if got.startswith(tag + " "):
                return


s = Session()
s.run("status", f'LOGIN {USER} "{PASSWORD}"')
s.run("status", "CAPABILITY")
s.run("same", "GETQUOTAROOT INBOX")
s.run("same", 'GETQUOTA "User quota"')
s.run("status", 'GETQUOTA "no such root"')
s.run("differs", "GETQUOTAROOT nosuchbox")
s.run("same", "APPEND INBOX", message(1, 1000))
s.run("same", "APPEND INBOX", message(2, 2000))
s.run("same", "GETQUOTAROOT INBOX")
# Past STORAGE: 3000 + 6000 octets > 8 KiB.
s.run("same", "APPEND INBOX", message(3, 6000))
s.run("same", "APPEND INBOX", message(4, 1000))
s.run("same", "APPEND INBOX", message(5, 1000))
# Past MESSAGE: a fifth message.
s.run("same", "APPEND INBOX", message(6, 100))
s.run("same", 'GETQUOTA "User quota"')
s.run("status", 'SETQUOTA "User quota" (STORAGE 100)')
s.run("same", 'GETQUOTA "User quota"')
s.run("differs", "STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)")
s.run("status", "SELECT INBOX")
s.run("status", "STORE 1 +FLAGS.SILENT (\\Deleted)")
s.run("differs", "STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)")
s.run("same", 'GETQUOTA "User quota"')
s.run("status", "EXPUNGE")
s.run("same", 'GETQUOTA "User quota"')
s.run("same", "APPEND INBOX", message(7, 100))
s.run("same", "GETQUOTAROOT INBOX")
s.run("status", "LOGOUT")
