#!/usr/bin/env python3
"""resp_talk.py PORT — holds raw RESP conversations for the specs.

Reads steps from stdin, one JSON array a line, and prints one JSON line for
each reply read. Steps:
  ["open", NAME]              connect (NAME "a" is opened at start)
  ["open", NAME, RCVBUF]      ... with a small receive buffer (a slow reader)
  ["send", NAME, ARG, ...]    send one command (multibulk)
  ["read", NAME, N]           read N replies; each printed as
                              {"c": NAME, "r": REPLY}; on timeout
                              {"c": NAME, "timeout": true} and the rest skipped
  ["eof", NAME, SECS]         read until the server closes: {"c": NAME, "eof": true}
                              (replies read meanwhile are printed too); SECS
                              (default 10) bounds each wait
  ["close", NAME]
  ["wait_file", PATH, TEXT]   wait (at most 30 s) until the file holds TEXT:
                              {"c": "file", "found": true|false}
Replies as JSON: status "+OK", error "-ERR ...", integer a number, bulk a
string, nil "(nil)", array a list. Every read waits at most 10 s.
"""
import json
import socket
import sys
import time

TIMEOUT = 10.0


class Conn:
    def __init__(self, port, rcvbuf=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.connect(("127.0.0.1", port))
        self.s.settimeout(TIMEOUT)
        self.buf = b""

    def fill(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        i = self.buf.index(b"\r\n")
        ln, self.buf = self.buf[:i], self.buf[i + 2:]
        return ln

    def exact(self, n):
        while len(self.buf) < n + 2:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        ln = self.line()
        t, rest = ln[:1], ln[1:].decode("utf-8", "replace")
        if t == b"+":
            return "+" + rest
        if t == b"-":
            return "-" + rest
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return "(nil)" if n < 0 else self.exact(n).decode("utf-8", "replace")
        if t == b"*":
            n = int(rest)
            return "(nil)" if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError("not RESP: %r" % ln)


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode() if isinstance(a, str) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def main():
    port = int(sys.argv[1])
    conns = {"a": Conn(port)}
    for raw in sys.stdin:
        raw = raw.strip()
        if not raw:
            continue
        step = json.loads(raw)
        op, name = step[0], step[1]
        if op == "open":
            conns[name] = Conn(port, step[2] if len(step) > 2 else None)
        elif op == "send":
            conns[name].s.sendall(encode(step[2:]))
        elif op == "read":
            for _ in range(step[2]):
                try:
                    r = conns[name].reply()
                except (socket.timeout, EOFError) as e:
                    print(json.dumps({"c": name, "timeout": True, "why": repr(e)}), flush=True)
                    break
                print(json.dumps({"c": name, "r": r}), flush=True)
        elif op == "eof":
            if len(step) > 2:
                conns[name].s.settimeout(step[2])
            try:
                while True:
                    print(json.dumps({"c": name, "r": conns[name].reply()}), flush=True)
            except (EOFError, ConnectionResetError):
                print(json.dumps({"c": name, "eof": True}), flush=True)
            except socket.timeout:
                print(json.dumps({"c": name, "timeout": True}), flush=True)
        elif op == "wait_file":
            deadline, found = time.monotonic() + 30, False
            while not found and time.monotonic() < deadline:
                with open(name, "rb") as f:
                    found = step[2].encode() in f.read()
                if not found:
                    time.sleep(0.05)
            print(json.dumps({"c": "file", "found": found}), flush=True)
        elif op == "close":
            conns.pop(name).s.close()


if __name__ == "__main__":
    main()
