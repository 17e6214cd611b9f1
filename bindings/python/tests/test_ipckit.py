"""Tests of the ctypes binding, run by `meson test` (suite 'python') with
IPCKIT_LIB set to the built library and IPCKIT_CAT to the built ipckit-cat
(the C process on the other end of the cross-language tests).

    IPCKIT_LIB=build/libipckit.so IPCKIT_CAT=build/tools/ipckit-cat \\
        PYTHONPATH=bindings/python python3 -m unittest discover -s bindings/python/tests -v
"""

import asyncio
import errno
import itertools
import os
import selectors
import shutil
import subprocess
import tempfile
import threading
import unittest

import ipckit

CAT = os.environ.get("IPCKIT_CAT")
T = 10000  # ms: generous bound on every wait; only stops a hang
_seq = itertools.count()
_tmp = tempfile.mkdtemp(prefix="ipckit-py-")


def url_for(scheme):
    """A URL of scheme that no other test (or test run) uses."""
    n = f"{os.getpid()}-{next(_seq)}"
    return {"unix": f"unix://{_tmp}/{n}.sock", "tcp": "tcp://127.0.0.1:0",
            "shm": f"shm://@ipckit-py-{n}", "mq": f"mq:///ipckit-py-{n}",
            "fifo": f"fifo://{_tmp}/{n}"}[scheme]


def have(scheme):
    return scheme in ipckit.backends()


def small(scheme):
    """Options for scheme: mq channels get small queues, so that tests
    running at once stay within the per-user limit (RLIMIT_MSGQUEUE)."""
    return {"max_msg": 4096, "capacity": 4} if scheme == "mq" else {}


def tearDownModule():
    shutil.rmtree(_tmp, ignore_errors=True)


class Basics(unittest.TestCase):
    def test_version_and_backends(self):
        self.assertEqual(ipckit.version().count("."), 2)
        self.assertIn("unix", ipckit.backends())
        info = ipckit.backend_info("unix")
        self.assertEqual(info["backend"], "unix")
        self.assertTrue(info["caps"] & ipckit.CAP_LISTEN)

    def test_errors_are_oserrors_with_errno(self):
        with self.assertRaises(ipckit.Error) as cm:
            ipckit.open("nosuch://x")
        self.assertIsInstance(cm.exception, OSError)
        self.assertEqual(cm.exception.errno, errno.EPROTONOSUPPORT)
        with self.assertRaises(ipckit.Error) as cm:
            ipckit.open("unix://relative")
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        with self.assertRaises(ipckit.Error) as cm:
            ipckit.open(url_for("unix"), connect_timeout_ms=-1)  # one try
        self.assertIn(cm.exception.errno, (errno.ECONNREFUSED, errno.ENOENT))
        with self.assertRaises(ipckit.Error) as cm:
            ipckit.backend_info("nosuch")
        self.assertEqual(cm.exception.errno, errno.EPROTONOSUPPORT)

    def test_bad_options(self):
        with self.assertRaises(TypeError):
            ipckit.pair("unix", nosuch=1)
        with self.assertRaises(ValueError):
            ipckit.pair("unix", wait="sometimes")

    def test_closed_channel(self):
        a, b = ipckit.pair("unix")
        a.close()
        a.close()  # twice is fine
        self.assertTrue(a.closed)
        with self.assertRaises(ipckit.Error) as cm:
            a.send(b"x")
        self.assertEqual(cm.exception.errno, errno.EBADF)
        with self.assertRaises(ipckit.Error) as cm:
            b.recv(T)
        self.assertEqual(cm.exception.errno, errno.EPIPE)
        b.close()


class Pairs(unittest.TestCase):
    def each_scheme(self, fn):
        for scheme in ("unix", "tcp", "shm", "pipe", "mq"):
            if have(scheme):
                with self.subTest(scheme=scheme):
                    fn(scheme)

    def test_messages(self):
        def run(scheme):
            a, b = ipckit.pair(scheme, **small(scheme))
            with a, b:
                big = os.urandom(100_000 if scheme == "mq" else 1 << 20)
                if scheme == "mq":
                    big = big[:b.info()["max_msg"]]
                for msg in (b"hello", b"", bytearray(b"\x00\xff"), memoryview(b"mv"), big):
                    # From a thread: a big message may not fit the buffers whole.
                    t = threading.Thread(target=a.send, args=(msg, T))
                    t.start()
                    self.assertEqual(b.recv(T), bytes(msg))
                    t.join()
                b.send(b"back", T)
                self.assertEqual(a.recv(T), b"back")
                with self.assertRaises(ipckit.Error) as cm:
                    b.recv(0)
                self.assertEqual(cm.exception.errno, errno.EAGAIN)
                with self.assertRaises(ipckit.Error) as cm:
                    b.recv(50)
                self.assertEqual(cm.exception.errno, errno.ETIMEDOUT)
        self.each_scheme(run)

    def test_fork(self):
        def run(scheme):
            a, b = ipckit.pair(scheme, **small(scheme))
            pid = os.fork()
            if pid == 0:  # child: echo until the parent closes
                a.close()
                try:
                    while True:
                        b.send(b.recv(T), T)
                except ipckit.Error as e:
                    os._exit(0 if e.errno == errno.EPIPE else 1)
                os._exit(2)
            b.close()
            for i in range(100):
                a.send(b"%d" % i, T)
                self.assertEqual(a.recv(T), b"%d" % i)
            a.close()
            _, status = os.waitpid(pid, 0)
            self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.each_scheme(run)


class Urls(unittest.TestCase):
    def test_server_and_client_threads(self):
        for scheme in ("unix", "tcp", "shm", "mq", "fifo"):
            if not have(scheme):
                continue
            with self.subTest(scheme=scheme):
                srv = ipckit.open(url_for(scheme), server=True, **small(scheme))
                url = srv.info()["url"]

                def serve():
                    with srv:
                        while True:
                            try:
                                srv.send(b"re: " + srv.recv(T), T)
                            except ipckit.Error:
                                return

                t = threading.Thread(target=serve)
                t.start()
                with ipckit.open(url, connect_timeout_ms=T, **small(scheme)) as cli:
                    for word in (b"one", b"two"):
                        cli.send(word, T)
                        self.assertEqual(cli.recv(T), b"re: " + word)
                t.join(30)
                self.assertFalse(t.is_alive())

    def test_listener_with_selectors(self):
        for scheme in ("unix", "tcp", "shm"):
            if not have(scheme):
                continue
            with self.subTest(scheme=scheme), ipckit.listen(url_for(scheme)) as lst:
                try:
                    lfd = lst.fileno()
                except ipckit.Error as e:
                    self.assertEqual(e.errno, errno.ENOTSUP)
                    continue  # no listener descriptor on this backend yet
                clients = [ipckit.open(lst.url, connect_timeout_ms=T) for _ in range(3)]
                sel = selectors.DefaultSelector()
                sel.register(lfd, selectors.EVENT_READ, None)
                chans = []
                while len(chans) < len(clients):  # accept them all from the selector
                    self.assertTrue(sel.select(T / 1000), "no client became acceptable")
                    try:
                        ch = lst.accept(0)
                    except ipckit.Error as e:
                        if e.errno != errno.EAGAIN:  # a hello still on its way
                            raise
                        continue
                    chans.append(ch)
                    sel.register(ch, selectors.EVENT_READ, ch)
                sel.unregister(lfd)
                senders = [threading.Thread(target=c.send, args=(b"client %d" % i, T))
                           for i, c in enumerate(clients)]
                for t in senders:
                    t.start()
                served = 0
                while served < len(clients):
                    events = sel.select(T / 1000)
                    self.assertTrue(events, "no message became readable")
                    for key, _ in events:
                        try:
                            msg = key.data.recv(0)
                        except ipckit.Error as e:
                            # A fresh channel's descriptor is readable once
                            # for the peer's hello (unix, tcp): recv(0) then
                            # finds no message. Level-triggered: wait again.
                            if e.errno != errno.EAGAIN:
                                raise
                            continue
                        key.data.send(msg.upper(), T)
                        sel.unregister(key.data)
                        served += 1
                for t in senders:
                    t.join()
                for i, c in enumerate(clients):
                    self.assertEqual(c.recv(T), b"CLIENT %d" % i)
                    c.close()
                for ch in chans:
                    ch.close()
                sel.close()


class EventLoops(unittest.TestCase):
    def test_fileno_is_level_triggered(self):
        a, b = ipckit.pair("shm" if have("shm") else "unix")
        with a, b, selectors.DefaultSelector() as sel:
            sel.register(b, selectors.EVENT_READ)
            self.assertEqual(sel.select(0), [])
            a.send(b"x", T)
            a.send(b"y", T)
            self.assertTrue(sel.select(T / 1000))
            b.recv(0)
            self.assertTrue(sel.select(0), "one message still waits")
            b.recv(0)
            self.assertEqual(sel.select(0), [])

    def test_asyncio_add_reader(self):
        async def main():
            a, b = ipckit.pair("unix")
            got, done = [], asyncio.get_running_loop().create_future()

            def readable():
                while True:
                    try:
                        got.append(b.recv(0))
                    except ipckit.Error as e:
                        if e.errno == errno.EAGAIN:
                            break
                        raise
                if len(got) == 10 and not done.done():
                    done.set_result(None)

            loop = asyncio.get_running_loop()
            loop.add_reader(b.fileno(), readable)
            sender = threading.Thread(target=lambda: [a.send(b"%d" % i, T) for i in range(10)])
            sender.start()
            await asyncio.wait_for(done, T / 1000)
            loop.remove_reader(b.fileno())
            sender.join()
            a.close()
            b.close()
            return got

        self.assertEqual(asyncio.run(main()), [b"%d" % i for i in range(10)])


@unittest.skipUnless(CAT, "IPCKIT_CAT not set: no C peer")
class WithC(unittest.TestCase):
    """Python and a C process (ipckit-cat) on the two ends of one channel."""

    def schemes(self):
        return [s for s in ("unix", "tcp", "shm") if have(s)]

    def test_python_server_c_client(self):
        for scheme in self.schemes():
            with self.subTest(scheme=scheme), ipckit.open(url_for(scheme), server=True) as srv:
                url = srv.info()["url"]
                cat = subprocess.Popen([CAT, "--client", url, "--send", "--recv", "--format",
                                        "line"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE)
                try:
                    cat.stdin.write(b"from c\nsecond\n")
                    cat.stdin.close()
                    for want in (b"from c", b"second"):
                        self.assertEqual(srv.recv(T), want)
                        srv.send(want[::-1], T)
                    out, err = cat.stdout.read(), cat.stderr.read()
                    cat.wait(timeout=60)
                finally:
                    cat.kill()
                    cat.wait()
                self.assertEqual(cat.returncode, 0, err)
                self.assertEqual(out, b"c morf\ndnoces\n")

    def test_c_server_python_client(self):
        for scheme in self.schemes():
            with self.subTest(scheme=scheme):
                url = url_for(scheme)
                cat = subprocess.Popen([CAT, "--server", url, "--echo", "--timeout", str(T * 3)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                try:
                    if url.endswith(":0"):  # tcp port 0: the server tells its port
                        line = cat.stderr.readline().decode()
                        self.assertTrue(line.startswith("ipckit-cat: serving "), line)
                        url = line.split()[-1]
                    with ipckit.open(url, connect_timeout_ms=T) as cli:
                        for msg in (b"ping", b"", os.urandom(300_000)):
                            cli.send(msg, T)
                            self.assertEqual(cli.recv(T), msg)
                    self.assertEqual(cat.wait(timeout=60), 0)
                finally:
                    cat.kill()
                    cat.wait()
                    cat.stderr.close()


if __name__ == "__main__":
    unittest.main()
