/*
 * ipckit.h - one message API over Linux IPC mechanisms.
 *
 * Every function returns >= 0 on success and a negative errno value on
 * failure (-EINVAL, -EPIPE, ...); ipc_strerror() describes any such value.
 * A failed call has no side effects. Handles are opaque. Closing NULL is a
 * no-op. Timeouts are in milliseconds: -1 waits forever, 0 never blocks
 * (-EAGAIN when it would), > 0 gives up with -ETIMEDOUT. EINTR is retried
 * internally with the remaining time. No call ever raises SIGPIPE (for
 * pipe and fifo channels: as long as SIGPIPE is not changed from SIG_IGN
 * back to a handler or SIG_DFL while the channel is open; see
 * docs/backends/fifo.md).
 *
 * Endpoints are named by URL, "scheme://address?key=value&...":
 *   tcp://host:port  tcp://[::1]:port   udp://host:port
 *   unix:///abs/path unix://@abstract   fifo:///abs/path
 *   pipe://R,W (inherited descriptors)  mq:///name
 *   shm:///abs/path  shm://@name
 * Query keys are the ipc_opts fields: max_msg, capacity (sizes take K, M,
 * G), wait=adaptive|block|spin, connect_timeout_ms, mode (octal).
 * See docs/api.md for the full contract.
 */
#ifndef IPCKIT_H
#define IPCKIT_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(IPC_BUILDING) && defined(__GNUC__)
#define IPC_API __attribute__((visibility("default")))
#else
#define IPC_API
#endif

#define IPC_VERSION_MAJOR 0
#define IPC_VERSION_MINOR 1
#define IPC_VERSION_PATCH 0

/* One connected, bidirectional message channel between two processes. */
typedef struct ipc_chan ipc_chan;
/* A server endpoint that accepts many channels (tcp, unix, shm). */
typedef struct ipc_listener ipc_listener;

/* ipc_open flags: exactly one of them. */
enum { IPC_SERVER = 1, IPC_CLIENT = 2 };

/* How a blocked call waits, on every backend: BLOCK sleeps in the kernel at
 * once; SPIN never sleeps (non-blocking calls, or the shm ring, polled until
 * the deadline); ADAPTIVE polls for a short while, then sleeps. Each
 * backend's default for ADAPTIVE is documented in docs/backends/. */
enum { IPC_WAIT_ADAPTIVE = 0, IPC_WAIT_BLOCK = 1, IPC_WAIT_SPIN = 2 };

/* Options. A zeroed struct (or NULL) means the default for every field;
 * URL query parameters override the struct. */
typedef struct ipc_opts {
	size_t max_msg;          /* largest message either way; default 16 MiB,
	                            capped by the backend (udp 65507, mq: the
	                            kernel's msgsize_max). Asking explicitly for
	                            more than the backend can carry: -EMSGSIZE. */
	size_t capacity;         /* bytes buffered per direction (shm ring,
	                            socket/pipe buffer); for mq the queue depth
	                            in messages. 0 = the mechanism's default. */
	int wait;                /* IPC_WAIT_* */
	int connect_timeout_ms;  /* client: how long to wait for the server to
	                            appear; 0 = the default (5000); < 0 = one
	                            try (in the URL, connect_timeout_ms=0 is
	                            one try). */
	int spin_us;             /* wait=adaptive: how long to poll before
	                            sleeping; 0 = the backend's default. */
	unsigned mode;           /* permission bits of created files and names;
	                            default 0600. */
} ipc_opts;

/*
 * Open one end of a channel named by url. flags is IPC_SERVER or IPC_CLIENT.
 * A server creates the endpoint and returns at once; its first send/recv
 * waits (within that call's timeout) for the client. A client retries until
 * the server appears or connect_timeout_ms passes.
 * Errors: -EINVAL (malformed URL, bad query, bad flags, NULL), -EPROTONOSUPPORT
 * (unknown or not compiled-in scheme), -ENAMETOOLONG, -EADDRINUSE (a live
 * server holds the URL), -ECONNREFUSED / -ENOENT (client, one try),
 * -ETIMEDOUT (client, no server within connect_timeout_ms), -EMSGSIZE
 * (max_msg or capacity above what the mechanism allows), or the errno of
 * the failing system call.
 */
IPC_API int ipc_open(ipc_chan **out, const char *url, int flags, const ipc_opts *opts);

/*
 * Send one message, whole or not at all. Zero-length messages are legal.
 * 0 means the whole message will be delivered while both ends stay open,
 * whatever this process does next: when a stream write is cut by the
 * deadline after part of the message went out, the library keeps the rest
 * and writes it in the background (a later send waits for it within its own
 * timeout; ipc_close lingers up to 1 s for it). -EAGAIN / -ETIMEDOUT mean
 * nothing of this message will arrive and the channel stays usable.
 * The first send waits (within its timeout) for the peer's handshake, so
 * that every send honours the peer's max_msg.
 * Errors: -EMSGSIZE (len above this end's or the peer's max_msg), -EPIPE
 * (peer gone), -EAGAIN (timeout 0 and it would block), -ETIMEDOUT, -EPROTO
 * (channel broken), -ENOMEM (nothing was sent), -EBUSY (a zero-copy
 * reservation is outstanding).
 */
IPC_API int ipc_send(ipc_chan *c, const void *msg, size_t len, int timeout_ms);

/*
 * Receive exactly one message into buf; returns its length.
 * If cap is smaller than the next message: -EMSGSIZE, and the message stays
 * queued (ipc_recv_peek returns its length without a buffer). After the
 * peer closed or died, messages already delivered are returned first,
 * then -EPIPE. -EPROTO when the peer broke the protocol (the channel is
 * then closed for good).
 */
IPC_API ssize_t ipc_recv(ipc_chan *c, void *buf, size_t cap, int timeout_ms);

/* Close a channel and free it; NULL is a no-op. Always returns 0. Lingers
 * up to 1 s while the tail of a sent message is still being written. In a
 * forked child that inherited the channel it closes descriptors only: the
 * names and the peer's view stay with the process that opened it. */
IPC_API int ipc_close(ipc_chan *c);

/*
 * Two connected ends in one process, ready for fork() on every backend
 * with IPC_CAP_PROCESS (inproc ends stay in this process). Backends with
 * IPC_CAP_PAIR support it; -ENOTSUP on the others (fifo).
 */
IPC_API int ipc_pair(const char *scheme, ipc_chan **a, ipc_chan **b, const ipc_opts *opts);

/*
 * A listener accepts any number of clients on one URL (backends with
 * IPC_CAP_LISTEN; -ENOTSUP on the others). ipc_accept waits up to
 * timeout_ms for a client whose handshake is complete; a client that has
 * connected but not yet said hello is kept for a later call (timeout 0
 * never drops it). ipc_listener_close in a forked child that inherited the
 * listener closes descriptors only: the names stay with their creator.
 */
IPC_API int ipc_listen(ipc_listener **out, const char *url, const ipc_opts *opts);
IPC_API int ipc_accept(ipc_listener *l, ipc_chan **out, int timeout_ms);
IPC_API int ipc_listener_close(ipc_listener *l);
/*
 * A descriptor for poll/epoll that is readable (level-triggered) while
 * ipc_accept(l, &c, 0) would not return -EAGAIN: a client is waiting or
 * its hello has arrived. Owned by the listener: do not read or close it.
 */
IPC_API int ipc_listener_fd(const ipc_listener *l);
/* The listener's resolved URL (tcp port 0 -> the real port); NULL if l is NULL. */
IPC_API const char *ipc_listener_url(const ipc_listener *l);

typedef struct ipc_msg {
	const void *data;
	size_t len;
} ipc_msg;

/*
 * Send n messages in order, coalescing them into as few system calls as
 * fit. Returns how many were sent (each whole, with ipc_send's meaning of
 * "sent"); a negative error only when none was.
 */
IPC_API int ipc_sendv(ipc_chan *c, const ipc_msg *msgs, size_t n, int timeout_ms);

typedef struct ipc_buf {
	void *data;  /* where the message goes */
	size_t cap;  /* its size */
	size_t len;  /* set on return: the message's length */
} ipc_buf;

/*
 * Receive up to n messages that are already waiting, waiting within
 * timeout_ms only for the first. Returns how many were received (>= 1),
 * each in bufs[i] with bufs[i].len set. A message larger than its buffer
 * stops the batch and stays queued: the messages before it are returned,
 * or -EMSGSIZE when it is the first. Errors as ipc_recv, only when nothing
 * was received.
 */
IPC_API int ipc_recvv(ipc_chan *c, ipc_buf *bufs, size_t n, int timeout_ms);

/*
 * A descriptor for poll/epoll that is readable (level-triggered, from the
 * first call on) exactly while ipc_recv would return without blocking: a
 * message, EOF or an error waits, including messages that arrived before
 * ipc_fd was first called. On a server still waiting for its peer it is
 * readable once the peer's first message (or its hello, which lets the
 * next call complete the rendezvous) has arrived. Owned by the channel: do
 * not read it or close it.
 */
IPC_API int ipc_fd(const ipc_chan *c);

/*
 * Zero-copy send: ipc_send_reserve returns 0 with *buf pointing at room
 * for len bytes (errors as ipc_send; -EBUSY if a reservation is already
 * outstanding); fill it, then ipc_send_commit with the final length
 * (<= len; 0 is a zero-length message), which returns as ipc_send would.
 * A commit longer than the reservation is -EINVAL and the reservation
 * stays. ipc_send on the channel in between gives -EBUSY. True zero-copy
 * on shm (buf points into the shared ring); other backends copy once.
 * *buf stays valid until ipc_send_commit or ipc_close.
 */
IPC_API int ipc_send_reserve(ipc_chan *c, size_t len, void **buf, int timeout_ms);
IPC_API int ipc_send_commit(ipc_chan *c, size_t len);

/*
 * Zero-copy receive: *msg points at the next message (length returned)
 * until ipc_recv_release. The next ipc_recv / ipc_recv_peek before release
 * returns the same message again (peek) or -EBUSY (recv). On shm the
 * message is read in place in the ring. Also the way to learn the length
 * of a message that ipc_recv refused with -EMSGSIZE.
 */
IPC_API ssize_t ipc_recv_peek(ipc_chan *c, const void **msg, int timeout_ms);
IPC_API int ipc_recv_release(ipc_chan *c);

typedef struct ipc_info {
	const char *backend; /* "tcp", "shm", ... */
	const char *url;     /* the resolved URL (tcp port 0 -> the real port);
	                        NULL from ipc_backend_info */
	size_t max_msg;      /* channel: the largest message that can be sent
	                        and received (the smaller of the two ends'
	                        limits once the peer's is known); from
	                        ipc_backend_info: the largest max_msg a
	                        channel of this backend can be opened with */
	unsigned caps;       /* IPC_CAP_* */
} ipc_info;

enum {
	IPC_CAP_RELIABLE = 1,   /* no loss, no duplication, no reordering */
	IPC_CAP_CROSS_HOST = 2, /* can reach another machine */
	IPC_CAP_ZERO_COPY = 4,  /* reserve/commit and peek/release copy nothing */
	IPC_CAP_LISTEN = 8,     /* ipc_listen / ipc_accept supported */
	IPC_CAP_UNRELATED = 16, /* peers need not share a parent (a URL names them) */
	IPC_CAP_PAIR = 32,      /* ipc_pair supported */
	IPC_CAP_ABSTRACT = 64,  /* @name addresses (no file; same uid only) */
	IPC_CAP_PROCESS = 128   /* the ends may live in different processes */
};

/* Fill *out; the strings live as long as the channel. */
IPC_API int ipc_info_get(const ipc_chan *c, ipc_info *out);
/* Caps and limits of a compiled-in backend, without opening anything:
 * -EPROTONOSUPPORT for an unknown scheme, or the errno of reading a kernel
 * limit (mq). out->url is NULL; the strings are static. */
IPC_API int ipc_backend_info(const char *scheme, ipc_info *out);
/* A message for any value the API returns (0, or a negative errno). */
IPC_API const char *ipc_strerror(int err);
/* NULL-terminated list of compiled-in schemes. */
IPC_API const char *const *ipc_backends(void);
/* "0.1.0" */
IPC_API const char *ipc_version(void);

#ifdef __cplusplus
}
#endif
#endif /* IPCKIT_H */
