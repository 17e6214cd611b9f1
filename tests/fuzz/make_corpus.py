#!/usr/bin/env python3
"""Write the seed corpora of the libFuzzer targets into tests/fuzz/corpus/.

    python3 tests/fuzz/make_corpus.py        (from the source root)

The seeds are checked in; this script says how each was made and rewrites
them (files it does not name, such as regression inputs, are left alone).
Each target's input layout is described at the top of its .c file; the
stream bytes are those of docs/protocol.md, the ring records those of
lib/backends/shm/ring.h.
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def hello(max_msg=4096, magic=b"IPCK", version=1, length=16, reserved=0):
    return magic + struct.pack("<HHII", version, length, max_msg, reserved)


def frame(payload):
    return struct.pack("<I", len(payload)) + payload


def frames(*payloads):
    return b"".join(frame(p) for p in payloads)


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- fuzz_url: one URL of every form, with query keys ----
URLS = {
    "tcp": "tcp://127.0.0.1:5555",
    "tcp6": "tcp://[::1]:0?max_msg=64K&connect_timeout_ms=250",
    "tcp-name": "tcp://localhost:80?wait=block",
    "udp": "udp://127.0.0.1:9999?max_msg=1200",
    "udp6": "udp://[::1]:1",
    "unix": "unix:///tmp/ipckit.sock?mode=0660",
    "unix-abstract": "unix://@ipckit-abstract?capacity=1M",
    "fifo": "fifo:///tmp/ipckit.fifo?wait=spin&spin_us=50",
    "pipe": "pipe://3,4",
    "pipe-query": "pipe://10,11?capacity=128K&max_msg=1G",
    "mq": "mq:///ipckit-q?capacity=10&max_msg=8192",
    "shm": "shm:///dev/shm/ipckit?capacity=4M&wait=adaptive",
    "shm-abstract": "shm://@ipckit-shm?mode=0600&connect_timeout_ms=0",
    "inproc": "inproc://ipckit-inproc?capacity=64K",
}
for name, url in URLS.items():
    write("url", name, url.encode())

# ---- fuzz_frame: byte 0 = cap index (data[0] % 6 into {0,1,7,64,4096,65536})
# | 0x80 for a valid hello in front; then the stream bytes ----
CAP4096_HELLO = 0x82   # 130 % 6 == 4, bit 7: hello given
CAP64_RAW = 0x03       # 3 % 6 == 3, no hello: the input carries it
write("frame", "frames", bytes([CAP4096_HELLO]) + frames(b"hello", b"", b"abc", b"x" * 100))
write("frame", "hello-and-frames", bytes([CAP64_RAW]) + hello(64) + frames(b"ping", b"y" * 70))
write("frame", "torn-frame", bytes([CAP4096_HELLO]) + frames(b"whole") + struct.pack("<I", 50) + b"cut")
write("frame", "oversized", bytes([CAP4096_HELLO]) + struct.pack("<I", 0x10000) + b"z" * 8)
write("frame", "bad-hello", bytes([CAP64_RAW]) + hello(64, version=2) + frames(b"a"))

# ---- fuzz_shm_ring: u8 ring size selector (4096 << n % 3), u64 head, the
# ring's bytes, then u64 head updates. Records: u32 len, u32 total
# (0xFFFFFFFF in a continuation), payload padded to 8 ----
CONT = 0xFFFFFFFF


def rec(payload, total=None):
    total = len(payload) if total is None else total
    pad = (-len(payload)) % 8
    return struct.pack("<II", len(payload), total) + payload + b"\0" * pad


ring = rec(b"hello") + rec(b"") + rec(b"abc")
write("shm_ring", "records", bytes([0]) + struct.pack("<Q", len(ring)) + ring)
frag = rec(b"ABCD", total=10) + rec(b"EFGH", total=CONT) + rec(b"IJ", total=CONT)
write("shm_ring", "fragmented", bytes([0]) + struct.pack("<Q", len(frag)) + frag)
# head updates after the ring's 4096 bytes: the writer publishes more later
ring2 = (rec(b"one") + rec(b"two")).ljust(4096, b"\0")
write("shm_ring", "head-updates",
      bytes([0]) + struct.pack("<Q", 16) + ring2 + struct.pack("<QQ", 32, 32))
bad = struct.pack("<II", 5000, 5000)
write("shm_ring", "corrupt-len", bytes([0]) + struct.pack("<Q", 16) + bad + b"\0" * 8)

# ---- fuzz_chan: byte 0 config, byte 1 (k | wait << 4 | fd first 0x40),
# k op bytes, the peer's bytes (see fuzz_chan.c) ----
OWN_4096_HELLO_ANY = 0x1D   # own max 4096, valid hello, its max_msg 2^32-1
OWN_64_RAW = 0x00           # own max 64, no hello: the peer's bytes carry it
BIG_20000 = 0x40            # a 20000-byte frame after the hello
RECV, RECVV, PEEK, PEEK_REL, REL, SEND, POLL, RECV0 = range(8)


def op(call, tmo=0, size=4):
    """tmo index {0, -1, 1000, 0}; size index {0,1,7,64,4096,20000,70000,131072}"""
    return call | tmo << 3 | size << 5


def chan(cfg, ops, peer, wait=0, fd_first=False):
    assert len(ops) < 16
    return bytes([cfg, len(ops) | wait << 4 | (0x40 if fd_first else 0)]) + bytes(ops) + peer


write("chan", "recv-frames",
      chan(OWN_4096_HELLO_ANY, [op(RECV), op(RECV, 1, 3)], frames(b"hello", b"", b"abc" * 30)))
write("chan", "every-call",
      chan(OWN_4096_HELLO_ANY,
           [op(RECVV, 0, 3), op(PEEK), op(PEEK), op(REL), op(SEND, 0, 3), op(POLL),
            op(PEEK_REL, 2), op(RECV0), op(RECV, 1, 1)],
           frames(b"a", b"bb", b"", b"c" * 64, b"d" * 200, b"e"), fd_first=True))
write("chan", "raw-hello",
      chan(OWN_64_RAW, [op(RECV, 0, 3), op(SEND, 0, 2)], hello(64) + frames(b"x" * 64, b"y")))
write("chan", "large",
      chan(OWN_4096_HELLO_ANY | 0x2 | BIG_20000,  # own max 100000
           [op(RECV, 0, 4), op(RECV, 1, 5), op(RECVV, 0, 5)], frames(b"after" * 10, b"z")))
write("chan", "torn",
      chan(OWN_4096_HELLO_ANY, [op(RECV), op(PEEK_REL)], frames(b"ok") + struct.pack("<I", 9) + b"torn"))
write("chan", "oversized",
      chan(OWN_4096_HELLO_ANY, [op(RECV, 1, 7), op(SEND)], frames(b"ok") + struct.pack("<I", 5000)))
write("chan", "bad-hello",
      chan(OWN_64_RAW, [op(SEND, 0, 1), op(RECV)], hello(64, reserved=1) + frames(b"q")))
write("chan", "spin-block",
      chan(OWN_4096_HELLO_ANY, [op(RECV, 1), op(RECVV, 2, 2)], frames(b"s" * 10, b"t" * 7, b"u"),
           wait=2))
