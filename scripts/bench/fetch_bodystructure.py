#!/usr/bin/env python3
"""Times FETCH 1:* (UID BODYSTRUCTURE) on a user's INBOX (docs/BENCHMARKS.md).

usage: fetch_bodystructure.py HOST:PORT USER PASSWORD [ROUNDS]
Plain IMAP on loopback (pluto allows LOGIN there without TLS).
"""
import imaplib
import sys
import time


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    host, port = sys.argv[1].rsplit(":", 1)
    user, password = sys.argv[2], sys.argv[3]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    imap = imaplib.IMAP4(host, int(port))
    imap.login(user, password)
    typ, data = imap.select("INBOX")
    if typ != "OK":
        sys.exit(f"SELECT failed: {data}")
    count = int(data[0])
    start = time.perf_counter()
    for _ in range(rounds):
        typ, data = imap.fetch("1:*", "(UID BODYSTRUCTURE)")
        if typ != "OK" or len(data) != count:
            sys.exit(f"FETCH failed or incomplete: {typ} {len(data)} of {count}")
    per = (time.perf_counter() - start) / rounds
    print(f"{count} messages: FETCH 1:* (UID BODYSTRUCTURE) {per * 1000:.1f} ms per command")
    imap.logout()


if __name__ == "__main__":
    main()
