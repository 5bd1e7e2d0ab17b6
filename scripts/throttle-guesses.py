#!/usr/bin/env python3
# N (default 40) parallel wrong-password LOGINs for user alice from one address, against
# `pluto serve` on 127.0.0.1:PORT; prints when each was answered and how.
# Usage: scripts/throttle-guesses.py PORT [N]
import socket, sys, threading, time
port = int(sys.argv[1]); n = int(sys.argv[2]) if len(sys.argv) > 2 else 40
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port)); s.recv(4096); socks.append(s)
out = []
start = time.monotonic()
def go(s):
    s.sendall(b"a1 LOGIN alice wrong\r\n")
    buf = b""
    while b"\r\n" not in buf:
        d = s.recv(4096)
        if not d: break
        buf += d
    out.append((time.monotonic() - start, buf.split(b"\r\n")[0].decode()))
ts = [threading.Thread(target=go, args=(s,)) for s in socks]
[t.start() for t in ts]; [t.join() for t in ts]
out.sort()
checked = [t for t, l in out if "AUTHENTICATIONFAILED" in l]
refused = [t for t, l in out if "UNAVAILABLE" in l]
print(f"{n} parallel guesses: {len(checked)} checked, answered at " + ", ".join(f"{t:.1f}" for t in checked) + " s")
print(f"{len(refused)} refused at once (max {max(refused) if refused else 0:.2f} s)")
