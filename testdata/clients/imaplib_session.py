#!/usr/bin/env python3
"""A realistic Python imaplib session against a running pluto, over STARTTLS or implicit TLS.

Usage:
  imaplib_session.py --mode starttls|imaps --port PORT --cafile DATA_DIR/tls/cert.pem \
                     --user NAME --password PASSWORD [--host 127.0.0.1]

Run by gateway/tests/clients_python.rs against a fresh data dir (the mailboxes start
empty). Every step checks the server's answer; the first mismatch exits with status 1
and a message naming the step, the expectation and what the server said. Exit 0 means
the whole session went as a mail client expects.

The certificate is verified for real (the server's self-signed cert is the only trust
anchor, and the host name 127.0.0.1 must match its SAN), so a TLS problem fails the run.
"""
import argparse
import imaplib
import re
import socket
import ssl
import sys
import time

STEP = "start"


def step(name):
    global STEP
    STEP = name
    print(f"-- {name}", flush=True)


def fail(msg):
    print(f"FAIL in step '{STEP}': {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def ok(result, what):
    """imaplib returns (typ, data); typ must be OK."""
    typ, data = result
    check(typ == "OK", f"{what}: expected OK, got {typ} {data!r}")
    return data


def message(subject, body, extra_headers=(), msgid=None):
    msgid = msgid or f"<{re.sub(r'[^A-Za-z0-9]', '', subject)}.{time.time_ns()}@example.com>"
    headers = [
        "From: Alice Example <alice@example.com>",
        "To: Bob Example <bob@example.org>",
        f"Subject: {subject}",
        "Date: Tue, 14 May 2024 09:30:00 +0200",
        f"Message-ID: {msgid}",
        "MIME-Version: 1.0",
        *extra_headers,
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def big_body(size):
    """About `size` bytes of base64-looking lines with CRLF endings, deterministic."""
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n"
    lines = []
    n = 0
    i = 0
    while n < size:
        l = b"%06d" % i + line[6:]
        lines.append(l)
        n += len(l)
        i += 1
    return b"".join(lines)


def parse_fetch(data):
    """imaplib FETCH data -> list of (meta bytes, literal bytes or None)."""
    out = []
    for item in data:
        if isinstance(item, tuple):
            out.append((item[0], item[1]))
        elif item is not None and item != b")":
            out.append((item, None))
    return out


def uid_of(meta):
    m = re.search(rb"UID (\d+)", meta)
    check(m is not None, f"no UID in FETCH response {meta!r}")
    return int(m.group(1))


def flags_of(meta):
    m = re.search(rb"FLAGS \(([^)]*)\)", meta)
    check(m is not None, f"no FLAGS in FETCH response {meta!r}")
    return set(m.group(1).decode().split())


def code(data, name):
    """The arguments of response code [NAME ...] in a tagged response text."""
    text = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
    m = re.search(r"\[" + name + r" ([^\]]*)\]", text)
    check(m is not None, f"expected [{name} ...] in {text!r}")
    return m.group(1).split()


def expand(uid_set):
    """'1:3,7' -> [1, 2, 3, 7]"""
    out = []
    for part in uid_set.split(","):
        lo, _, hi = part.partition(":")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def connect(args, ctx):
    if args.mode == "imaps":
        return imaplib.IMAP4_SSL(args.host, args.port, ssl_context=ctx, timeout=30)
    m = imaplib.IMAP4(args.host, args.port, timeout=30)
    step("CAPABILITY before STARTTLS")
    check("STARTTLS" in m.capabilities, f"STARTTLS not offered: {m.capabilities}")
    step("STARTTLS")
    ok(m.starttls(ssl_context=ctx), "STARTTLS")
    check(isinstance(m.sock, ssl.SSLSocket), "socket is not TLS after STARTTLS")
    check("STARTTLS" not in m.capabilities,
          f"STARTTLS still offered after TLS is up: {m.capabilities}")
    return m


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["starttls", "imaps"], required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--big-bytes", type=int, default=1024 * 1024,
                   help="size of the large message (default 1 MiB; smaller for bisecting)")
    args = p.parse_args()

    ctx = ssl.create_default_context(cafile=args.cafile)  # verifies chain and host name

    step("connect")
    m = connect(args, ctx)
    check(isinstance(m.sock, ssl.SSLSocket), "not on TLS")
    print(f"   TLS: {m.sock.version()} {m.sock.cipher()[0]}")

    step("CAPABILITY")
    caps = ok(m.capability(), "CAPABILITY")[-1].decode().upper().split()
    for cap in ["IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "LITERAL+", "NAMESPACE", "SPECIAL-USE"]:
        check(cap in caps, f"{cap} missing from CAPABILITY {caps}")

    step("LOGIN")
    ok(m.login(args.user, args.password), "LOGIN")
    check(m.state == "AUTH", f"imaplib state {m.state} after LOGIN")

    step("NAMESPACE")
    ns = ok(m.namespace(), "NAMESPACE")[0]
    check(b'"/"' in ns, f"personal namespace should use '/' as separator: {ns!r}")

    step("LIST")
    boxes = ok(m.list(), "LIST")
    names = {}
    for line in boxes:
        mm = re.match(rb'\(([^)]*)\) (?:"[^"]*"|NIL) "?([^"]*)"?$', line)
        check(mm is not None, f"unparsable LIST line {line!r}")
        names[mm.group(2).decode()] = set(mm.group(1).decode().split())
    for name, use in [("INBOX", None), ("Drafts", "\\Drafts"), ("Sent", "\\Sent"),
                      ("Trash", "\\Trash"), ("Junk", "\\Junk"), ("Archive", "\\Archive")]:
        check(name in names, f"{name} missing from LIST {sorted(names)}")
        if use:
            check(use in names[name], f"{name} lacks {use}: {names[name]}")

    step("CREATE a nested folder and LIST it")
    ok(m.create("Projects/2024"), "CREATE Projects/2024")
    listed = ok(m.list('""', "Projects*"), "LIST Projects*")
    text = b"\n".join(l for l in listed if l)
    check(b"Projects/2024" in text, f"Projects/2024 not listed: {listed!r}")
    ok(m.subscribe("Projects/2024"), "SUBSCRIBE")
    lsub = ok(m.lsub('""', "*"), "LSUB")
    check(any(l and b"Projects/2024" in l for l in lsub), f"not in LSUB: {lsub!r}")

    step("SELECT INBOX (empty)")
    data = ok(m.select("INBOX"), "SELECT INBOX")
    check(data == [b"0"], f"fresh INBOX should have 0 messages, SELECT said {data!r}")
    uidvalidity = int(m.untagged_responses.get("UIDVALIDITY", [b"0"])[-1])
    check(uidvalidity > 0, "SELECT gave no UIDVALIDITY")

    step("APPEND four messages")
    tag = str(time.time_ns())
    msgs = [
        message(f"plain {tag}", b"Hello Bob,\r\n\r\nthe meeting is at 10.\r\n\r\nAlice\r\n"),
        message(f"seen utf8 {tag}",
                "Grüße aus Köln — ça va? 日本語\r\n".encode("utf-8"),
                ["Content-Type: text/plain; charset=utf-8",
                 "Content-Transfer-Encoding: 8bit"]),
        message(f"multipart {tag}",
                b"--XYZ\r\nContent-Type: text/plain\r\n\r\npart one\r\n"
                b"--XYZ\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n--XYZ--\r\n",
                ['Content-Type: multipart/mixed; boundary="XYZ"']),
        message(f"big {tag}", big_body(args.big_bytes),
                ["Content-Type: text/plain; charset=us-ascii"]),
    ]
    check(len(msgs[3]) >= args.big_bytes, "the big message is not big")
    append_flags = [None, "(\\Seen)", "($Label1)", None]
    uids = []
    for i, (raw, flags) in enumerate(zip(msgs, append_flags)):
        try:
            result = m.append("INBOX", flags, imaplib.Time2Internaldate(time.time()), raw)
        except (imaplib.IMAP4.abort, OSError) as e:
            fail(f"connection lost during APPEND #{i + 1} of a {len(raw)}-byte message "
                 f"(the server closed it while the literal was being sent?): {e}")
        data = ok(result, f"APPEND #{i + 1} ({len(raw)} bytes)")
        v, u = code(data, "APPENDUID")
        check(int(v) == uidvalidity, f"APPENDUID validity {v} != UIDVALIDITY {uidvalidity}")
        uids.append(int(u))
    check(uids == sorted(uids) and len(set(uids)) == 4, f"APPENDUIDs not increasing: {uids}")

    step("NOOP sees the new messages")
    ok(m.noop(), "NOOP")
    typ, exists = m.response("EXISTS")
    check(exists and exists[-1] == b"4", f"expected * 4 EXISTS after appends, got {exists!r}")

    step("FETCH FLAGS ENVELOPE RFC822.SIZE")
    data = ok(m.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE ENVELOPE)"), "UID FETCH envelope")
    items = parse_fetch(data)
    check(len(items) == 4, f"expected 4 FETCH responses, got {len(items)}: {data!r}")
    for (meta, _), raw, uid, flags in zip(items, msgs, uids, append_flags):
        check(uid_of(meta) == uid, f"UID order: {meta!r} vs {uid}")
        size = int(re.search(rb"RFC822.SIZE (\d+)", meta).group(1))
        check(size == len(raw), f"UID {uid}: RFC822.SIZE {size} != appended {len(raw)} bytes")
        subject = re.search(rb"Subject: ([^\r\n]*)", raw).group(1)
        check(b'"' + subject + b'"' in meta, f"ENVELOPE lacks subject {subject!r}: {meta[:300]!r}")
        check(b'"Alice Example" NIL "alice" "example.com"' in meta,
              f"ENVELOPE from address wrong: {meta[:400]!r}")
        want = {flags.strip("()")} if flags else set()
        got = flags_of(meta) - {"\\Recent"}
        check(got == want, f"UID {uid}: flags {got} != {want}")

    step("FETCH BODY.PEEK[] returns the appended bytes")
    for raw, uid in zip(msgs, uids):
        data = ok(m.uid("FETCH", str(uid), "(BODY.PEEK[])"), f"UID FETCH {uid} BODY.PEEK[]")
        items = [x for x in parse_fetch(data) if x[1] is not None]
        check(len(items) == 1, f"expected one literal for UID {uid}: {data!r}"[:500])
        body = items[0][1]
        if body != raw:
            at = next((i for i, (a, b) in enumerate(zip(body, raw)) if a != b), min(len(body), len(raw)))
            fail(f"UID {uid}: BODY[] differs from the appended bytes "
                 f"({len(body)} vs {len(raw)} bytes, first difference at {at}: "
                 f"{body[at:at + 40]!r} vs {raw[at:at + 40]!r})")

    step("BODY.PEEK did not set \\Seen; partial and section fetch")
    data = ok(m.uid("FETCH", str(uids[0]), "(FLAGS)"), "FETCH FLAGS")
    check("\\Seen" not in flags_of(parse_fetch(data)[0][0]), "BODY.PEEK[] set \\Seen")
    data = ok(m.uid("FETCH", str(uids[3]), "(BODY.PEEK[TEXT]<0.20>)"), "partial FETCH")
    lit = [x[1] for x in parse_fetch(data) if x[1] is not None]
    check(lit == [msgs[3].split(b"\r\n\r\n", 1)[1][:20]], f"BODY[TEXT]<0.20> wrong: {lit!r}")
    data = ok(m.uid("FETCH", str(uids[2]), "(BODY.PEEK[2])"), "section FETCH")
    lit = [x[1] for x in parse_fetch(data) if x[1] is not None]
    check(lit == [b"AAECAwQFBgcICQ=="], f"BODY[2] of the multipart wrong: {lit!r}")

    step("SEARCH")
    def search(*criteria):
        data = ok(m.uid("SEARCH", *criteria), f"UID SEARCH {criteria}")
        return sorted(int(x) for x in data[0].split())
    check(search("ALL") == uids, f"SEARCH ALL {search('ALL')} != {uids}")
    check(search("SEEN") == [uids[1]], f"SEARCH SEEN: {search('SEEN')}")
    check(search("UNSEEN") == [uids[0], uids[2], uids[3]], f"SEARCH UNSEEN: {search('UNSEEN')}")
    check(search("SUBJECT", f'"multipart {tag}"') == [uids[2]], "SEARCH SUBJECT")
    check(search("LARGER", str(len(msgs[3]) - 1)) == [uids[3]], "SEARCH LARGER")
    check(search("KEYWORD", "$Label1") == [uids[2]], "SEARCH KEYWORD")
    check(search("BODY", '"meeting is at 10"') == [uids[0]], "SEARCH BODY")
    got = search("FROM", "alice", "NOT", "SEEN", "SMALLER", "1000")
    check(got == [uids[0], uids[2]], f"SEARCH FROM alice NOT SEEN SMALLER 1000: {got}")
    got = search("OR", "SEEN", "KEYWORD", "$Label1")
    check(got == [uids[1], uids[2]], f"SEARCH OR SEEN KEYWORD $Label1: {got}")

    step("STORE")
    data = ok(m.uid("STORE", str(uids[0]), "+FLAGS", "(\\Flagged)"), "STORE +FLAGS")
    check(any(b"\\Flagged" in (x[0]) for x in parse_fetch(data)),
          f"STORE should answer with the new FLAGS: {data!r}")
    ok(m.uid("STORE", str(uids[1]), "-FLAGS.SILENT", "(\\Seen)"), "STORE -FLAGS.SILENT")
    check(search("FLAGGED") == [uids[0]], "SEARCH FLAGGED after STORE")
    check(search("SEEN") == [], "\\Seen not removed by STORE -FLAGS")

    step("COPY to Archive")
    m.untagged_responses.pop("COPYUID", None)
    ok(m.uid("COPY", f"{uids[0]},{uids[2]}", "Archive"), "UID COPY")
    # imaplib files the tagged response's code under its name.
    copyuid = m.untagged_responses.pop("COPYUID", [])
    check(len(copyuid) == 1, f"expected one [COPYUID ...] in the tagged OK, got {copyuid!r}")
    _, src, dst = copyuid[0].decode().split()
    check(expand(src) == [uids[0], uids[2]], f"COPYUID source set {src}")
    check(len(expand(dst)) == 2, f"COPYUID destination set {dst}")
    data = ok(m.status("Archive", "(MESSAGES UIDNEXT)"), "STATUS Archive")
    check(b"MESSAGES 2" in data[0], f"Archive should hold 2 messages: {data!r}")

    step("UID MOVE to Trash")
    data = ok(m.uid("MOVE", str(uids[3]), "Trash"), "UID MOVE")
    expunged = m.untagged_responses.pop("EXPUNGE", [])
    check(expunged == [b"4"], f"UID MOVE should EXPUNGE message 4, got {expunged!r}")
    check(search("ALL") == uids[:3], f"after MOVE INBOX holds {search('ALL')}")
    data = ok(m.status("Trash", "(MESSAGES)"), "STATUS Trash")
    check(b"MESSAGES 1" in data[0], f"Trash should hold 1 message: {data!r}")

    step("the moved message is intact in Trash")
    ok(m.select("Trash", readonly=True), "EXAMINE Trash")
    data = ok(m.fetch("1", "(BODY.PEEK[])"), "FETCH in Trash")
    lit = [x[1] for x in parse_fetch(data) if x[1] is not None]
    check(lit == [msgs[3]], "moved message bytes differ")
    ok(m.select("INBOX"), "SELECT INBOX again")

    step("STORE \\Deleted + EXPUNGE")
    ok(m.uid("STORE", str(uids[1]), "+FLAGS.SILENT", "(\\Deleted)"), "STORE \\Deleted")
    m.untagged_responses.pop("EXPUNGE", None)
    data = ok(m.expunge(), "EXPUNGE")
    check(data == [b"2"], f"EXPUNGE should report message 2, got {data!r}")
    check(search("ALL") == [uids[0], uids[2]], f"after EXPUNGE: {search('ALL')}")

    step("IDLE sees a message appended by another session")
    other = imaplib.IMAP4_SSL(args.host, args.port, ssl_context=ctx, timeout=30) \
        if args.mode == "imaps" else None
    if other is None:
        other = imaplib.IMAP4(args.host, args.port, timeout=30)
        other.starttls(ssl_context=ctx)
    ok(other.login(args.user, args.password), "second session LOGIN")
    idle_tag = m._new_tag()
    m.send(idle_tag + b" IDLE\r\n")
    cont = m.readline()
    check(cont.startswith(b"+"), f"IDLE continuation expected, got {cont!r}")
    ok(other.append("INBOX", None, None, message(f"pushed {tag}", b"via IDLE\r\n")),
       "APPEND from the second session")
    m.sock.settimeout(10)
    pushed = None
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            line = m.readline()
        except socket.timeout:
            break
        check(line != b"", "connection closed during IDLE")
        if re.match(rb"\* \d+ EXISTS", line):
            pushed = line
            break
    check(pushed == b"* 3 EXISTS\r\n", f"expected '* 3 EXISTS' during IDLE, got {pushed!r}")
    m.send(b"DONE\r\n")
    while True:
        line = m.readline()
        check(line != b"", "connection closed after DONE")
        if line.startswith(idle_tag + b" "):
            check(line.startswith(idle_tag + b" OK"), f"IDLE ended with {line!r}")
            break
    m.sock.settimeout(30)
    typ, _ = other.logout()
    check(typ == "BYE", f"second session LOGOUT got {typ}")
    check(len(search("ALL")) == 3, f"after IDLE: {search('ALL')}")

    step("CLOSE, DELETE folder, LOGOUT")
    ok(m.close(), "CLOSE")
    ok(m.delete("Projects/2024"), "DELETE Projects/2024")
    typ, data = m.logout()
    check(typ == "BYE", f"LOGOUT should get BYE, got {typ} {data!r}")
    print("imaplib session OK")


if __name__ == "__main__":
    try:
        main()
    except imaplib.IMAP4.error as e:
        fail(f"imaplib error: {e}")
    except (OSError, ssl.SSLError) as e:
        fail(f"{type(e).__name__}: {e}")
