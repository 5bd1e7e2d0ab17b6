#!/usr/bin/env python3
"""One LMTP transaction with Python's smtplib.LMTP, a real client, for pluto's tests.

    lmtp_send.py TARGET --from ADDR --rcpt ADDR [--rcpt ADDR ...] [--message FILE]
                 [--mail-option OPT ...] [--mode normal|pipeline|disconnect|raw]
                 [--raw-lines FILE]

TARGET is HOST:PORT or the absolute path of a Unix socket. The message (bytes, sent
as they are: CRLF line ends, 8-bit and NUL bytes kept) comes from FILE. Prints one
JSON object: the LHLO features, the MAIL reply, a reply per RCPT, and after DATA one
reply per accepted recipient (LMTP, RFC 2033 4.2), each as [code, text].

Modes:
  normal      smtplib's own commands, one at a time.
  pipeline    MAIL, every RCPT and DATA written in one send (RFC 2920), then the
              replies read one by one.
  disconnect  after 354, half the message is sent and the connection is closed.
  raw         each line of --raw-lines is sent as a command and its reply read
              (for bad command sequences); no transaction of its own.
"""

import argparse
import json
import smtplib
import sys


def connect(target):
    if target.startswith("/"):
        client = smtplib.LMTP(target, timeout=60)
    else:
        host, port = target.rsplit(":", 1)
        client = smtplib.LMTP(host, int(port), timeout=60)
    code, text = client.ehlo("tester.localhost")
    return client, code, text.decode("utf-8", "replace")


def reply(pair):
    code, text = pair
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [code, text]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--from", dest="sender", default="")
    parser.add_argument("--rcpt", action="append", default=[])
    parser.add_argument("--message")
    parser.add_argument("--mail-option", action="append", default=[])
    parser.add_argument("--mode", default="normal")
    parser.add_argument("--raw-lines")
    args = parser.parse_args()

    client, code, text = connect(args.target)
    out = {"lhlo": [code, text], "features": sorted(client.esmtp_features.keys())}
    message = b""
    if args.message:
        with open(args.message, "rb") as f:
            message = f.read()

    if args.mode == "raw":
        out["raw"] = []
        with open(args.raw_lines, "rb") as f:
            for line in f.read().split(b"\n"):
                if not line:
                    continue
                client.send(line + b"\r\n")
                out["raw"].append(reply(client.getreply()))
        print(json.dumps(out))
        return

    if args.mode == "pipeline":
        opts = "".join(" " + o for o in args.mail_option)
        batch = "MAIL FROM:<%s>%s\r\n" % (args.sender, opts)
        for r in args.rcpt:
            batch += "RCPT TO:<%s>\r\n" % r
        batch += "DATA\r\n"
        client.send(batch.encode())
        out["mail"] = reply(client.getreply())
        out["rcpt"] = [reply(client.getreply()) for _ in args.rcpt]
        data = reply(client.getreply())
        out["data_start"] = data
        accepted = sum(1 for r in out["rcpt"] if r[0] == 250)
        if data[0] == 354:
            q = smtplib._quote_periods(message)
            if q[-2:] != b"\r\n":
                q += b"\r\n"
            client.send(q + b".\r\n")
            out["data"] = [reply(client.getreply()) for _ in range(accepted)]
        client.quit()
        print(json.dumps(out))
        return

    out["mail"] = reply(client.mail(args.sender, args.mail_option))
    out["rcpt"] = [reply(client.rcpt(r)) for r in args.rcpt]
    accepted = sum(1 for r in out["rcpt"] if r[0] == 250)
    if args.mode == "disconnect":
        client.putcmd("data")
        out["data_start"] = reply(client.getreply())
        client.send(message[: len(message) // 2])
        client.sock.close()
        print(json.dumps(out))
        return
    try:
        first = client.data(message)
    except smtplib.SMTPDataError as e:
        out["data_start"] = [e.smtp_code, e.smtp_error.decode("utf-8", "replace")]
        client.quit()
        print(json.dumps(out))
        return
    out["data"] = [reply(first)] + [reply(client.getreply()) for _ in range(accepted - 1)]
    client.quit()
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
