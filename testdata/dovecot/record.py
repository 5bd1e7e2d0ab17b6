#!/usr/bin/env python3
"""APPEND the corpus to a running Dovecot and record its FETCH answers (see record.sh).

Usage: record.py PORT CORPUS_MBOX OUTDIR

Output files, both a sequence of frames "=== <fields...> <LEN>\n" + LEN bytes + "\n":
  messages.txt  frames "=== <uid> <len>": the exact message bytes APPENDed (CRLF).
  fetch.txt     frames "=== <uid> <item> <kind> <len>":
                  item  BODYSTRUCTURE | ENVELOPE | BODY | BODY[<section>]
                  kind  imap   the item's value exactly as Dovecot wrote it (literals inline)
                        bytes  the section's content (decoded from Dovecot's string)
                        crc32  a large section: "<length> <crc32 as 8 hex digits>"
                        nil    Dovecot answered NIL (empty payload)
"""
import re
import socket
import sys
import zlib

PORT, MBOX, OUT = int(sys.argv[1]), sys.argv[2], sys.argv[3]

ITEMS = ["BODYSTRUCTURE", "ENVELOPE", "BODY"]
SECTIONS = ["HEADER", "TEXT", "1", "1.MIME", "2", "2.MIME", "1.1", "1.2", "2.1",
            "2.HEADER", "2.TEXT", "2.1.MIME", "2.2", "3", "9", "1.9",
            "HEADER.FIELDS (FROM SUBJECT MESSAGE-ID)",
            "HEADER.FIELDS.NOT (RECEIVED FROM TO DATE)",
            "HEADER.FIELDS (X-NOT-THERE)",
            "2.HEADER.FIELDS (subject date)"]
INLINE_LIMIT = 4096

# Hand-written edge cases, appended after the generated corpus (LF here, CRLF on APPEND).
EXTRA = [
    # no MIME headers at all, group syntax, empty subject, quoted names with escapes
    """From: "Doe, \\"JD\\" John" <john@example.com>
To: undisclosed-recipients:;
Cc: Friends: alice@example.com, Bob <bob@example.org>;, carol@example.net
Subject:
Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)
Message-ID: <edge.1@example.com>

Plain body without MIME headers.
""",
    # no body and no blank line
    """From: nobody@example.com
Subject: headers only
""",
    # missing From/Date, Sender and Reply-To present, source route, comments
    """Sender: Secretary <secretary@example.com>
Reply-To: <@relay.example.net:list@example.org>
To: "Zed" <zed@example.com> (a comment), (only comment) raw@example.com
Subject: =?utf-8?q?caf=C3=A9?= time
In-Reply-To: <parent@example.com>
Message-ID: <edge.3@example.com>
MIME-Version: 1.0
Content-Type: TEXT/HTML; CHARSET=UTF-8; Format=Flowed
Content-ID: <id3@example.com>
Content-Description: an html body
Content-Language: en, de
Content-Location: http://example.com/x
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==
Content-Disposition: inline; filename="a b.html"

<p>hi</p>
""",
    # multipart without boundary parameter, unknown encoding
    """From: a@example.com
Subject: broken multipart
MIME-Version: 1.0
Content-Type: multipart/mixed
Content-Transfer-Encoding: x-unknown

--x
Content-Type: text/plain

never a part
--x--
""",
    # RFC 2231 continuations, nested multipart inside message/rfc822, preamble, epilogue
    """From: a@example.com
To: b@example.com
Subject: rfc2231 and nesting
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

preamble
--outer
Content-Type: application/octet-stream;
 name*0="long";
 name*1="name.bin"
Content-Disposition: attachment; filename*0*=utf-8''%C3%A9t%C3%A9; filename*1=".txt"
Content-Transfer-Encoding: base64

AAECAwQ=
--outer
Content-Type: message/rfc822

From: inner@example.com
Subject: inner
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain

inner text
--inner
Content-Type: text/enriched

<bold>x</bold>
--inner--
--outer
Content-Type: multipart/digest; boundary="dig"

--dig

From: digest1@example.com
Subject: digest part

digest body
--dig--
--outer--
epilogue
""",
    # 8-bit header (raw UTF-8), 8bit body, empty parameter value, no final newline
    "From: Jürgen Müller <j@example.com>\nSubject: Grüße aus Köln\nMIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8; empty=\"\"\nContent-Transfer-Encoding: 8bit\n\nGrüße",
    # empty multipart (boundary never appears), message/rfc822 with empty body
    """From: a@example.com
Subject: empty parts
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="nothere"

no boundary lines at all
""",
    # duplicate fields: which one wins, for ENVELOPE and for Content-Type
    """From: first@example.com
From: second@example.com
Subject: first subject
Subject: second subject
Date: Tue, 1 Aug 2023 10:00:00 +0200
Date: Wed, 2 Aug 2023 10:00:00 +0200
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: base64
Content-Transfer-Encoding: 7bit

PGI+
""",
    # LF-heavy folding, tabs and odd spacing in unstructured fields, address oddities
    """From:   "Spaced   Name"   <spaced@example.com>  
To: user-without-domain, <>, "" <empty@example.com>, Name Only
Subject: folded\tsubject
 with  continuation
Message-ID:
 <folded@example.com>
In-Reply-To: <a@example.com> (comment)
Date:
  Thu, 3 Aug 2023 11:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=b1

--b1
Content-Type: text/plain; charset="us-ascii"; format=flowed; delsp=yes

text
--b1
Content-Type: text/html
Content-Disposition: inline
Content-Language: fr

<p>html</p>

--b1--
""",
    # comments everywhere, name from a trailing comment, encoded group name, odd params
    """From: a@example.com (Comment Name), (lead) b@example.com
To: =?utf-8?q?Gr=C3=BCppe?=: x@example.com;, Empty Group:;
Cc: "many \\\"quotes\\\"\\\" here" <q@example.com>
Subject:    	
Date: Fri, 4 Aug 2023 12:00:00 +0000   
No colon line here
MIME-Version: 1.0
Content-Type: (comment) MULTIPART/Mixed (another); BOUNDARY="bb"; x-8bit="cafÃ©"; x-q="a\\\"b\\\"c\\\"d\\\"e\\\"f"

--bb
Content-Type: multipart/related; boundary="b"

--b
Content-Type: text
Content-Transfer-Encoding: (c) QUOTED-PRINTABLE (c)

invalid content type, no subtype
--b
Content-Type: MESSAGE/RFC822; name=fwd.eml
Content-Description: folded
 description

Subject: inner without blank line
--b
Content-Type: message/partial; id="abc"; number=1; total=2

partial data
--bb
Content-Type: text/plain; charset=us-ascii
Content-ID:
Content-Disposition: attachment; filename=x.txt; size=12
Content-Language: en-US

text with long line xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
--bb
Content-Type: multipart/mixed; boundary="inner-missing-close"

--inner-missing-close
Content-Type: text/plain

never closed
--bb--
""",
    # a boundary that is a prefix of the inner one, whitespace after boundaries
    """From: a@example.com
Subject: prefix boundaries
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="=_p"

--=_p   
Content-Type: multipart/alternative; boundary="=_p2"

--=_p2
Content-Type: text/plain

one
--=_p2
Content-Type: text/html

<b>two</b>
--=_p2--   
trailing epilogue of inner
--=_p
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64
--=_p--
""",
    """From: a@example.com
Subject: empty attached message
MIME-Version: 1.0
Content-Type: message/rfc822

""",
]


def split_mbox(data):
    msgs = []
    for chunk in re.split(rb"(?m)^From [^\n]*\n", data):
        if not chunk:
            continue
        # the generator ends every message with one separating blank line
        if chunk.endswith(b"\n\n"):
            chunk = chunk[:-1]
        msgs.append(chunk)
    return msgs


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""
        self.n = 0
        self.readline()  # greeting

    def readline(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError
            self.buf += d
        i = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def readn(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self):
        """one full response (line plus literals), raw"""
        out = b""
        while True:
            line = self.readline()
            out += line
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if not m:
                return out
            out += self.readn(int(m.group(1)))

    def cmd(self, text, literal=None):
        self.n += 1
        tag = b"T%d" % self.n
        if literal is None:
            self.sock.sendall(tag + b" " + text + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + text + b" {%d}\r\n" % len(literal))
            cont = self.response()
            assert cont.startswith(b"+"), cont
            self.sock.sendall(literal + b"\r\n")
        untagged = []
        while True:
            r = self.response()
            if r.startswith(tag + b" "):
                if not r.startswith(tag + b" OK"):
                    raise RuntimeError(r)
                return untagged
            untagged.append(r)


def parse_string(v):
    """returns (bytes or None for NIL, rest)"""
    if v.startswith(b"NIL"):
        return None, v[3:]
    if v.startswith(b'"'):
        out, i = b"", 1
        while v[i:i + 1] != b'"':
            if v[i:i + 1] == b"\\":
                i += 1
            out += v[i:i + 1]
            i += 1
        return out, v[i + 1:]
    m = re.match(rb"~?\{(\d+)\}\r\n", v)
    n = int(m.group(1))
    return v[m.end():m.end() + n], v[m.end() + n:]


def main():
    msgs = [crlf(m) for m in split_mbox(open(MBOX, "rb").read())]
    msgs += [crlf(m.encode("utf-8")) for m in EXTRA]
    c = Conn(PORT)
    c.cmd(b"LOGIN pluto pluto")
    c.cmd(b"SELECT INBOX")
    for m in msgs:
        c.cmd(b"APPEND INBOX", m)
    c.cmd(b"SELECT INBOX")
    with open(f"{OUT}/messages.txt", "wb") as f:
        for uid, m in enumerate(msgs, 1):
            f.write(b"=== %d %d\n" % (uid, len(m)) + m + b"\n")
    with open(f"{OUT}/fetch.txt", "wb") as f:
        def frame(uid, item, kind, payload):
            f.write(b"=== %d %s %s %d\n" % (uid, item.encode(), kind.encode(), len(payload)) + payload + b"\n")

        for uid in range(1, len(msgs) + 1):
            for item in ITEMS:
                (r,) = c.cmd(b"UID FETCH %d (%s)" % (uid, item.encode()))
                prefix = b"* %d FETCH (UID %d %s " % (uid, uid, item.encode())
                assert r.startswith(prefix) and r.endswith(b")\r\n"), r[:200]
                frame(uid, item, "imap", r[len(prefix):-3])
            for sec in SECTIONS:
                (r,) = c.cmd(b"UID FETCH %d (BODY.PEEK[%s])" % (uid, sec.encode()))
                m = re.match(rb"\* \d+ FETCH \(UID \d+ BODY\[[^\]]*\] ", r)
                assert m, r[:200]
                value, rest = parse_string(r[m.end():])
                assert rest == b")\r\n", rest[:100]
                item = "BODY[%s]" % sec.replace(" ", "_")
                if value is None:
                    frame(uid, item, "nil", b"")
                elif len(value) <= INLINE_LIMIT:
                    frame(uid, item, "bytes", value)
                else:
                    frame(uid, item, "crc32", b"%d %08x" % (len(value), zlib.crc32(value)))
    c.cmd(b"LOGOUT")
    print(f"recorded {len(msgs)} messages")


main()
