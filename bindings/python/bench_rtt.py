#!/usr/bin/env python3
"""bench_rtt.py - round trip of one message between two Python processes:
ipckit (shm with its default adaptive wait and with wait=block, unix) against what a Python user would pick instead,
socket.socketpair() and multiprocessing.Pipe().

    IPCKIT_LIB=build/libipckit.so PYTHONPATH=bindings/python \\
        python3 bindings/python/bench_rtt.py [--rounds 9] [--sizes 64,65536]

Each mechanism has one echo child for the whole run. A round times N round
trips of every (mechanism, size) in turn, the order rotated each round so
that a drift of the machine hits all of them alike; the table gives the
median of the rounds' mean round trip, and the smallest and largest round
in brackets. Not a test: numbers depend on the machine and its load.
"""

import argparse
import multiprocessing
import os
import socket
import statistics
import sys
import time

import ipckit


def recv_exact(sock, view):
    """Read len(view) bytes: the framing a stream socket needs."""
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            raise EOFError
        got += n


class Ipckit:
    def __init__(self, scheme, **opts):
        self.name = f"ipckit {scheme}" + "".join(f" {k}={v}" for k, v in opts.items())
        a, b = ipckit.pair(scheme, **opts)
        self.pid = os.fork()
        if self.pid == 0:
            a.close()
            try:
                while True:
                    b.send(b.recv())
            except ipckit.Error:
                os._exit(0)
        b.close()
        self.chan = a

    def rtt(self, msg, n):
        c = self.chan
        for _ in range(n):
            c.send(msg)
            c.recv()

    def close(self):
        self.chan.close()
        os.waitpid(self.pid, 0)


class SocketPair:
    """socket.socketpair() (AF_UNIX, SOCK_STREAM): a 4-byte length, then the
    payload, read with recv_into into a buffer allocated once."""
    name = "socket.socketpair"

    def __init__(self):
        a, b = socket.socketpair()
        self.pid = os.fork()
        if self.pid == 0:
            a.close()
            buf = bytearray(1 << 20)
            view = memoryview(buf)
            try:
                while True:
                    recv_exact(b, view[:4])
                    size = int.from_bytes(view[:4], "little")
                    recv_exact(b, view[4:4 + size])
                    b.sendall(view[:4 + size])
            except (EOFError, OSError):
                os._exit(0)
        b.close()
        self.sock = a
        self.view = memoryview(bytearray(1 << 20))

    def rtt(self, msg, n):
        s, view = self.sock, self.view
        framed = len(msg).to_bytes(4, "little") + msg
        for _ in range(n):
            s.sendall(framed)
            recv_exact(s, view[:len(framed)])

    def close(self):
        self.sock.close()
        os.waitpid(self.pid, 0)


def _pipe_echo(conn, parent_end):
    parent_end.close()  # or the parent's close would never reach us as EOF
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except (EOFError, OSError):
        pass


class MpPipe:
    """multiprocessing.Pipe() with send_bytes / recv_bytes (no pickling)."""
    name = "multiprocessing.Pipe"

    def __init__(self):
        a, b = multiprocessing.Pipe()
        self.proc = multiprocessing.get_context("fork").Process(target=_pipe_echo, args=(b, a))
        self.proc.start()
        b.close()
        self.conn = a

    def rtt(self, msg, n):
        c = self.conn
        for _ in range(n):
            c.send_bytes(msg)
            c.recv_bytes()

    def close(self):
        self.conn.close()
        self.proc.join()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--sizes", default="64,65536")
    ap.add_argument("--time", type=float, default=0.2, help="seconds per measurement (about)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    mechs = [Ipckit("shm"), Ipckit("shm", wait="block"), Ipckit("unix"), SocketPair(), MpPipe()]
    cells = [(m, s) for m in mechs for s in sizes]
    # Calibrate once: how many round trips fill --time.
    count = {}
    for m, s in cells:
        msg = os.urandom(s)
        m.rtt(msg, 200)  # warm up
        t = time.perf_counter()
        m.rtt(msg, 200)
        per = (time.perf_counter() - t) / 200
        count[(m.name, s)] = max(100, int(args.time / per))
    samples = {(m.name, s): [] for m, s in cells}
    for r in range(args.rounds):
        order = cells[r % len(cells):] + cells[:r % len(cells)]
        for m, s in order:
            msg = os.urandom(s)
            n = count[(m.name, s)]
            t = time.perf_counter()
            m.rtt(msg, n)
            samples[(m.name, s)].append((time.perf_counter() - t) / n * 1e6)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    for m in reversed(mechs):  # later children hold copies of earlier ends
        m.close()

    def cell(name, s):
        v = samples[(name, s)]
        return f"{statistics.median(v):.1f} [{min(v):.1f}-{max(v):.1f}]"

    def label(s):
        return f"{s // 1024} KiB" if s >= 1024 and s % 1024 == 0 else f"{s} B"

    print(f"round trip, microseconds: median of {args.rounds} rounds [min-max]; "
          f"Python {sys.version.split()[0]}, ipckit {ipckit.version()}, {os.cpu_count()} CPUs")
    print()
    print("| mechanism | " + " | ".join(label(s) for s in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for m in mechs:
        print(f"| {m.name} | " + " | ".join(cell(m.name, s) for s in sizes) + " |")


if __name__ == "__main__":
    main()
