"""One IMAP connection for the golden-file recorders (extensions/record.py,
sort/session.py): commands with an optional LITERAL+ literal, answers read up to the
tagged line, and the tagged line in the golden files' form."""
import socket


class Session:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.stream = self.sock.makefile("rb")
        self.stream.readline()

    def command(self, tag, text, literal=None):
        """Sends `tag text` (with `literal` as `{n+}`); returns the untagged lines and
        the tagged one."""
        if literal is None:
            self.sock.sendall(f"{tag} {text}\r\n".encode())
        else:
            self.sock.sendall(f"{tag} {text} {{{len(literal)}+}}\r\n".encode() + literal + b"\r\n")
        lines = []
        while True:
            line = self.stream.readline().decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                raise SystemExit(f"connection closed during {text!r}")
            if line.startswith(tag + " "):
                return lines, line
            lines.append(line)

    def replay(self, script_path, normalise=lambda lines: lines):
        """Prints `C: command`, `S: line` per untagged line (passed through `normalise`)
        and `S: ` + tagged() for every command of the script (one a line, `#` comments)."""
        with open(script_path) as script:
            for n, text in enumerate(line.rstrip("\n") for line in script):
                if not text or text.startswith("#"):
                    continue
                lines, last = self.command(f"t{n}", text)
                print(f"C: {text}")
                for line in normalise(lines):
                    print(f"S: {line}")
                print(f"S: {tagged(last)}")


def tagged(line):
    """The status and a response code's name: its data (COPYUID's UIDVALIDITY…) and the
    text are the server's own."""
    words = line.split(" ", 2)
    status = words[1]
    rest = words[2] if len(words) > 2 else ""
    if rest.startswith("["):
        name = rest[1:].split("]")[0].split(" ")[0]
        return f"{status} [{name}]"
    return status
