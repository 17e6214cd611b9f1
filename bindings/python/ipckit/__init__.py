"""ipckit for Python: one message API over Linux IPC mechanisms, through
ctypes (standard library only, no build step).

    import ipckit
    with ipckit.open("unix:///tmp/demo.sock", server=True) as srv:
        msg = srv.recv(timeout_ms=5000)      # one whole message, as bytes
        srv.send(b"re: " + msg)

    with ipckit.open("unix:///tmp/demo.sock") as cli:   # client
        cli.send(b"hello")
        print(cli.recv(timeout_ms=5000))

Timeouts are in milliseconds: -1 waits forever, 0 never blocks. Every
failure raises ipckit.Error, an OSError whose .errno is the errno value
(errno.ETIMEDOUT, errno.EPIPE when the peer closed, ...). fileno() gives a
level-triggered descriptor for selectors and asyncio's add_reader.

The shared library is found, in this order, at $IPCKIT_LIB, next to this
package (libipckit.so*), or by ctypes.util.find_library("ipckit").
"""

import ctypes
import ctypes.util
import errno as _errno
import glob
import os

__all__ = ["Error", "Channel", "Listener", "open", "pair", "listen", "backends",
           "backend_info", "version", "WAIT_ADAPTIVE", "WAIT_BLOCK", "WAIT_SPIN",
           "CAP_RELIABLE", "CAP_CROSS_HOST", "CAP_ZERO_COPY", "CAP_LISTEN",
           "CAP_UNRELATED", "CAP_PAIR", "CAP_ABSTRACT", "CAP_PROCESS"]

# Values of include/ipckit.h.
_SERVER, _CLIENT = 1, 2
WAIT_ADAPTIVE, WAIT_BLOCK, WAIT_SPIN = 0, 1, 2
CAP_RELIABLE, CAP_CROSS_HOST, CAP_ZERO_COPY, CAP_LISTEN = 1, 2, 4, 8
CAP_UNRELATED, CAP_PAIR, CAP_ABSTRACT, CAP_PROCESS = 16, 32, 64, 128
_WAITS = {"adaptive": WAIT_ADAPTIVE, "block": WAIT_BLOCK, "spin": WAIT_SPIN}


class Error(OSError):
    """An ipckit call failed; .errno is the (positive) errno value and
    .strerror ipckit's description of it."""


class _Opts(ctypes.Structure):
    _fields_ = [("max_msg", ctypes.c_size_t), ("capacity", ctypes.c_size_t),
                ("wait", ctypes.c_int), ("connect_timeout_ms", ctypes.c_int),
                ("mode", ctypes.c_uint)]


class _Info(ctypes.Structure):
    _fields_ = [("backend", ctypes.c_char_p), ("url", ctypes.c_char_p),
                ("max_msg", ctypes.c_size_t), ("caps", ctypes.c_uint)]


def _find_library():
    path = os.environ.get("IPCKIT_LIB")
    if path:
        return path
    here = os.path.dirname(os.path.abspath(__file__))
    local = sorted(glob.glob(os.path.join(here, "libipckit.so*")))
    if local:
        return local[0]
    found = ctypes.util.find_library("ipckit")
    if found:
        return found
    raise ImportError("ipckit: libipckit not found: set IPCKIT_LIB to its path, put "
                      "libipckit.so next to the ipckit package, or install it "
                      "(meson install; ldconfig)")


def _load():
    lib = ctypes.CDLL(_find_library(), use_errno=False)  # CDLL releases the GIL
    p = ctypes.c_void_p
    pp = ctypes.POINTER(ctypes.c_void_p)
    sz = ctypes.c_size_t
    i = ctypes.c_int
    protos = {
        "ipc_open": (i, [pp, ctypes.c_char_p, i, ctypes.POINTER(_Opts)]),
        "ipc_pair": (i, [ctypes.c_char_p, pp, pp, ctypes.POINTER(_Opts)]),
        "ipc_send": (i, [p, p, sz, i]),
        "ipc_recv": (ctypes.c_ssize_t, [p, p, sz, i]),
        "ipc_recv_peek": (ctypes.c_ssize_t, [p, pp, i]),
        "ipc_recv_release": (i, [p]),
        "ipc_close": (i, [p]),
        "ipc_fd": (i, [p]),
        "ipc_info_get": (i, [p, ctypes.POINTER(_Info)]),
        "ipc_listen": (i, [pp, ctypes.c_char_p, ctypes.POINTER(_Opts)]),
        "ipc_accept": (i, [p, pp, i]),
        "ipc_listener_close": (i, [p]),
        "ipc_listener_fd": (i, [p]),
        "ipc_listener_url": (ctypes.c_char_p, [p]),
        "ipc_backend_info": (i, [ctypes.c_char_p, ctypes.POINTER(_Info)]),
        "ipc_strerror": (ctypes.c_char_p, [i]),
        "ipc_backends": (ctypes.POINTER(ctypes.c_char_p), []),
        "ipc_version": (ctypes.c_char_p, []),
    }
    for name, (res, args) in protos.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    return lib


_lib = _load()


def _check(r, what):
    """Raise Error for a negative return value; return r otherwise."""
    if r < 0:
        msg = _lib.ipc_strerror(int(r)).decode()
        raise Error(-r, msg if not what else f"{what}: {msg}")
    return r


def _opts(kw):
    if not kw:
        return None
    o = _Opts()
    for key, value in kw.items():
        if key == "wait" and isinstance(value, str):
            if value not in _WAITS:
                raise ValueError(f"wait={value!r}: want one of {sorted(_WAITS)}")
            value = _WAITS[value]
        if key not in dict(_Opts._fields_):
            raise TypeError(f"unknown option {key!r}: the options are "
                            + ", ".join(f for f, _ in _Opts._fields_))
        setattr(o, key, value)
    return ctypes.byref(o)


def _info_dict(info):
    return {"backend": info.backend.decode() if info.backend else None,
            "url": info.url.decode() if info.url else None,
            "max_msg": info.max_msg, "caps": info.caps}


class _Handle:
    """What Channel and Listener share: the C handle, closed once (also on
    garbage collection), and use as a context manager."""

    _kind = "handle"
    _closer = None  # the name of the C function that frees the handle

    def __init__(self, handle):
        self._h = handle

    def _handle(self):
        if not self._h:
            raise Error(_errno.EBADF, f"{self._kind} is closed")
        return self._h

    def close(self):
        if self._h:
            h, self._h = self._h, None
            getattr(_lib, self._closer)(h)

    @property
    def closed(self):
        return not self._h

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class Channel(_Handle):
    """One connected, bidirectional message channel. Use it from one
    sending and one receiving thread at most."""

    _kind, _closer = "channel", "ipc_close"
    _RECV_START = 64 * 1024

    def __init__(self, handle):
        super().__init__(handle)
        self._buf = ctypes.create_string_buffer(self._RECV_START)

    def send(self, data, timeout_ms=-1):
        """Send one message (bytes-like), whole or not at all."""
        if not isinstance(data, bytes):
            data = bytes(data)
        _check(_lib.ipc_send(self._handle(), data, len(data), timeout_ms), "send")

    def recv(self, timeout_ms=-1):
        """Receive one whole message and return it as bytes."""
        h = self._handle()
        n = _lib.ipc_recv(h, self._buf, len(self._buf), timeout_ms)
        if n == -_errno.EMSGSIZE:  # larger than our buffer: read it in place
            ptr = ctypes.c_void_p()
            n = _check(_lib.ipc_recv_peek(h, ctypes.byref(ptr), timeout_ms), "recv")
            data = ctypes.string_at(ptr, n)
            _lib.ipc_recv_release(h)
            if n <= 16 * 1024 * 1024:
                self._buf = ctypes.create_string_buffer(n)
            return data
        _check(n, "recv")
        return ctypes.string_at(self._buf, n)

    def fileno(self):
        """A descriptor that is readable while recv() would not block."""
        return _check(_lib.ipc_fd(self._handle()), "fileno")

    def info(self):
        """{'backend', 'url', 'max_msg', 'caps'} of this channel."""
        info = _Info()
        _check(_lib.ipc_info_get(self._handle(), ctypes.byref(info)), "info")
        return _info_dict(info)

    def __repr__(self):
        if not self._h:
            return "<ipckit.Channel closed>"
        return f"<ipckit.Channel {self.info()['url']}>"


class Listener(_Handle):
    """A server endpoint that accepts any number of clients (tcp, unix, shm)."""

    _kind, _closer = "listener", "ipc_listener_close"

    def accept(self, timeout_ms=-1):
        """The next client whose handshake is complete, as a Channel."""
        h = ctypes.c_void_p()
        _check(_lib.ipc_accept(self._handle(), ctypes.byref(h), timeout_ms), "accept")
        return Channel(h)

    def fileno(self):
        """A descriptor that is readable while accept(0) would not block
        (Error ENOTSUP where the backend has none yet)."""
        return _check(_lib.ipc_listener_fd(self._handle()), "fileno")

    @property
    def url(self):
        """The resolved URL (tcp port 0 becomes the real port)."""
        return _lib.ipc_listener_url(self._handle()).decode()


def open(url, server=False, **opts):  # noqa: A001 - the API's own name
    """Open one end of the channel named by url. Options: max_msg,
    capacity, wait ('adaptive', 'block', 'spin'), connect_timeout_ms, mode;
    query parameters in the URL override them."""
    h = ctypes.c_void_p()
    _check(_lib.ipc_open(ctypes.byref(h), url.encode(), _SERVER if server else _CLIENT,
                         _opts(opts)), url)
    return Channel(h)


def pair(scheme="unix", **opts):
    """Two connected channels in this process, ready for os.fork()."""
    a, b = ctypes.c_void_p(), ctypes.c_void_p()
    _check(_lib.ipc_pair(scheme.encode(), ctypes.byref(a), ctypes.byref(b), _opts(opts)),
           f"pair({scheme!r})")
    return Channel(a), Channel(b)


def listen(url, **opts):
    """A Listener on url."""
    h = ctypes.c_void_p()
    _check(_lib.ipc_listen(ctypes.byref(h), url.encode(), _opts(opts)), url)
    return Listener(h)


def backends():
    """The schemes compiled into the library."""
    arr = _lib.ipc_backends()
    out = []
    while arr[len(out)]:
        out.append(arr[len(out)].decode())
    return out


def backend_info(scheme):
    """{'backend', 'url' (None), 'max_msg', 'caps'} of a compiled-in backend."""
    info = _Info()
    _check(_lib.ipc_backend_info(scheme.encode(), ctypes.byref(info)), scheme)
    return _info_dict(info)


def version():
    return _lib.ipc_version().decode()
