/*
 * rows/row.h - one row kind behind one small vtable. Each file in rows/ holds
 * the kinds of one family with their own state:
 *   ipckit.c   the library through its public API (copying and zero-copy calls)
 *   rawfd.c    the raw system calls of the fd mechanisms: tcp, udp, unix, fifo,
 *              pipe, mq, each the way a programmer writing raw code would call
 *              them (blocking read/recv, no poll before it)
 *   rawshm.c   raw shared-memory mailboxes: spinning, and sleeping on an eventfd
 *   zmq.c      ZeroMQ (PAIR for ping-pong, PUSH/PULL for streams)
 *   nng.c      nng (pair1, push0/pull0)
 * The harness (harness.c, turns.c) calls only these ops; it never asks which
 * kind a row is.
 */
#ifndef BENCH_ROW_H
#define BENCH_ROW_H

#include "../bench.h"

/* How an ipckit row's URL is formed, chosen by plan.c from the backend's
 * caps (and one probe open for path forms). */
enum {
	FORM_INET = 1,     /* scheme://host:0 (IPC_CAP_CROSS_HOST) */
	FORM_ABSTRACT,     /* scheme://@name (IPC_CAP_ABSTRACT) */
	FORM_PATH_TMP,     /* scheme:///tmp/name */
	FORM_PATH_ROOT,    /* scheme:///name (names that may hold no further '/') */
	FORM_NAME,         /* scheme://name */
	FORM_PAIR,         /* ipc_pair before the fork (no IPC_CAP_UNRELATED) */
};

struct kind {
	const char *impl;          /* the rows' impl label */
	size_t prep_size;          /* bytes of c->prep (zeroed), 0 none */
	size_t ep_size;            /* bytes of each e->st (zeroed) */
	bool cross_host;           /* open() exchanges everything over ctl: works
	                              with the echo side on another host */
	int slots;                 /* messages buffered per direction, 0: many */
	/* Leader, before the fork / the echo thread starts: make what both
	 * ends share (pipes, mappings, pairs). NULL: nothing. */
	int (*prepare)(struct chan *c);
	/* Each side, in row order: open this end, exchanging what is needed
	 * over e->ctl; apply c->want. 0 or -errno. */
	int (*open)(struct ep *e);
	/* Close this end (also after a failed open). */
	void (*close)(struct ep *e);
	/* Leader, after both ends are closed: undo prepare. NULL: nothing. */
	void (*cleanup)(struct chan *c);
	/* Remove the names this row may have left (async-signal-safe). */
	void (*unlink)(const struct chan *c);
	/* The largest message this mechanism carries (NULL: no limit). */
	size_t (*limit)(const struct chan *c);
	/* Send one message whole (blocking). */
	int (*send)(struct ep *e, const void *buf, size_t len);
	/* Receive one message: length or -errno; timeout_ms -1 forever, 0
	 * poll (-EAGAIN), > 0 -ETIMEDOUT. */
	ssize_t (*recv)(struct ep *e, void *buf, size_t cap, int timeout_ms);
	/* Optional batch calls (NULL: one message per call). */
	int (*sendv)(struct ep *e, const ipc_msg *m, size_t n);
	int (*recvv)(struct ep *e, ipc_buf *b, size_t n, int timeout_ms);
	/* Optional zero-copy calls: the harness writes and reads in place. */
	int (*reserve)(struct ep *e, size_t len, void **buf);
	int (*commit)(struct ep *e, size_t len);
	ssize_t (*peek)(struct ep *e, const void **msg, int timeout_ms);
	int (*release)(struct ep *e);
	/* Sleep until a message may be waiting or deadline_ns (0: none); NULL
	 * or e->spins: the caller polls recv(..., 0) instead (open loop). */
	int (*wait)(struct ep *e, uint64_t deadline_ns);
	/* A throughput turn starts (on) or ends; NULL: nothing to do. */
	void (*stream)(struct ep *e, bool on);
};

extern const struct kind kind_ipckit, kind_ipckit_zc;
extern const struct kind kind_raw_tcp, kind_raw_udp, kind_raw_unix, kind_raw_fifo,
	kind_raw_pipe, kind_raw_mq;
extern const struct kind kind_raw_spin, kind_raw_eventfd;
#ifdef BENCH_HAVE_ZMQ
extern const struct kind kind_zmq;
#endif
#ifdef BENCH_HAVE_NNG
extern const struct kind kind_nng;
#endif

/* Shared by the row files. */
/* host:port as a URL host ("[v6]" for IPv6). */
void fmt_hostport(char *buf, size_t cap, const char *host, int port);
/* Apply a socket buffer tuning to fd (what SO_*BUF reported, so half is set). */
void tune_socket(int fd, const struct tuning *t);
void tune_pipe(int fd, const struct tuning *t);

/* rows/peer.c: ZeroMQ and nng. Their transport is the row's form:
 * FORM_INET (tcp://) or FORM_PATH_TMP (ipc://). */
struct peer_prep { char name[2][128]; };   /* ipc:// socket files */
/* Queue depth: 1000 messages (ZeroMQ's default high-water mark), fewer for
 * big messages so that about 4 MiB at most wait in user space. */
int peer_queue_depth(size_t size);
/* The URL the serving side binds for socket i (0 pair, 1 push). */
void peer_url(const struct chan *c, const char *lib, int i, bool any_port_star, char *url, size_t cap);
void peer_unlink(const struct chan *c);

#endif
