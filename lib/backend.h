/*
 * backend.h - the private interface between the core (lib/core.c) and the
 * backends (lib/backends/<name>.c).
 *
 * The core is the only caller of backend ops. It owns argument checks,
 * the conversion of timeouts to deadlines, the max_msg check on send, the
 * emulation of the zero-copy calls for backends that leave them NULL, and
 * the allocation of the per-channel state (chan_size bytes at c->priv,
 * zeroed, 64-byte aligned). A NULL op means "not supported": the core
 * answers -ENOTSUP (or emulates, where noted).
 *
 * Deadlines: every op that may wait takes an ipc_deadline *, one per API
 * call: the caller's timeout (-1 forever, 0 never block: -EAGAIN when it
 * would, > 0: -ETIMEDOUT when it passes), turned into an absolute
 * CLOCK_MONOTONIC time only when the call first has to wait (ipc__dl_at),
 * so a call that never waits never reads the clock. Everything one call
 * does shares its deadline through the pointer. Ops retry EINTR themselves
 * with the remaining time (lib/posix helpers do).
 *
 * Lifecycle: every backend's init is called on each fresh channel (zeroed
 * priv) before open, pair or accept; init makes the state closable
 * (descriptors -1, ...) and cannot fail, and after any failure of open,
 * pair or accept the core calls close, so backends write one release path
 * instead of unwinding by hand.
 */
#ifndef IPC_BACKEND_H
#define IPC_BACKEND_H

#include "config.h"
#include "fault.h"
#include "ipckit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct ipc_deadline {
	int ms;     /* the caller's timeout: -1 forever, 0 never block, > 0 */
	int64_t at; /* absolute CLOCK_MONOTONIC ns; 0 until first needed */
} ipc_deadline;
/* A deadline for a timeout in ms (not anchored yet). */
#define IPC_DL_INIT(ms_) ((ipc_deadline){ .ms = (ms_) < 0 ? -1 : (ms_), .at = 0 })
/* Pointers to fresh block-scope deadlines, for calls made by the library
 * itself ("wait forever", "do not wait"). */
#define IPC_FOREVER (&(ipc_deadline){ .ms = -1 })
#define IPC_NOWAIT (&(ipc_deadline){ .ms = 0 })

/* Default option values (docs/design.md). */
#define IPC_DEFAULT_MAX_MSG ((size_t)16 << 20)
#define IPC_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define IPC_DEFAULT_MODE 0600u

/* Bits of ipc_cfg.set: which options the caller gave explicitly. */
enum {
	IPC_SET_MAX_MSG = 1,
	IPC_SET_CAPACITY = 2,
	IPC_SET_WAIT = 4,
	IPC_SET_CONNECT_TIMEOUT = 8,
	IPC_SET_MODE = 16,
	IPC_SET_SPIN = 32,
};

/* Effective options: ipc_opts merged with the URL query, defaults filled. */
typedef struct ipc_cfg {
	size_t max_msg;         /* default IPC_DEFAULT_MAX_MSG (the backend caps it
	                           in open when not IPC_SET_MAX_MSG) */
	size_t capacity;        /* 0 = mechanism default */
	int wait;               /* IPC_WAIT_* */
	int connect_timeout_ms; /* >= 0 */
	int spin_us;            /* >= 0; 0 = the backend's default */
	unsigned mode;          /* permission bits, <= 0777 */
	unsigned set;           /* IPC_SET_* */
} ipc_cfg;

/* How a scheme's address is parsed by the core (lib/url.c). */
enum ipc_addr_kind {
	IPC_ADDR_HOSTPORT, /* host:port or [v6]:port; port 0..65535 */
	IPC_ADDR_PATH,     /* /abs/path or @abstract */
	IPC_ADDR_FSPATH,   /* /abs/path only */
	IPC_ADDR_MQNAME,   /* /name, no further '/' */
	IPC_ADDR_FDS,      /* R,W: two inherited descriptor numbers */
	IPC_ADDR_NAME,     /* an opaque name: 1..255 bytes, no '/' (in path) */
	IPC_ADDR_NONE,     /* only from ipc_pair */
};

/* A parsed URL. */
typedef struct ipc_url {
	char scheme[16];
	char addr[4096];   /* the address as written (between :// and ?) */
	/* IPC_ADDR_HOSTPORT */
	char host[256];    /* without brackets */
	int port;
	/* IPC_ADDR_PATH / FSPATH / MQNAME / NAME: the path or name; for @name,
	 * abstract is true and path holds the name without '@'. */
	char path[4096];
	bool abstract;
	/* IPC_ADDR_FDS */
	int rfd, wfd;
	ipc_cfg cfg;
} ipc_url;

struct ipc_backend;

/* A channel. Everything but priv is core-owned; backends read cfg and
 * owner, may set url (resolved form, malloc'd; the core frees it), max_msg,
 * peer_max and need_len. */
struct ipc_chan {
	const struct ipc_backend *be;
	ipc_cfg cfg;
	size_t max_msg;   /* this end's limit both ways; the core refuses larger
	                     sends, receives treat a larger frame as -EPROTO */
	_Atomic size_t peer_max; /* the peer's announced max_msg, 0 until known;
	                     sends above it are the backend's -EMSGSIZE */
	pid_t owner;      /* the process that opened (or accepted, or paired)
	                     the channel: only it removes names or writes a
	                     pending tail at close (ipc__owned) */
	char *url;        /* resolved URL for ipc_info (malloc'd, may be NULL) */
	size_t need_len;  /* set by recv when it returns -EMSGSIZE: the length
	                     of the waiting message (0 if unknown) */
	/* core: emulated zero-copy */
	unsigned char *zc_sbuf;
	size_t zc_scap, zc_sres;
	int zc_stimeout;  /* reserve's timeout, applied by an emulated commit */
	bool zc_reserved;
	unsigned char *zc_rbuf;
	size_t zc_rcap;
	ssize_t zc_rlen;
	bool zc_peeked;
	/* backend state, be->chan_size bytes, zeroed, 64-byte aligned */
	_Alignas(64) unsigned char priv[];
};

struct ipc_listener {
	const struct ipc_backend *be;
	ipc_cfg cfg;
	pid_t owner;      /* the process that created it (see ipc_chan.owner) */
	char *url;
	_Alignas(64) unsigned char priv[];
};

struct ipc_backend {
	const char *scheme;
	enum ipc_addr_kind addr_kind;
	unsigned caps;            /* IPC_CAP_* */
	size_t chan_size;         /* bytes of per-channel state at c->priv */
	size_t listener_size;     /* bytes of per-listener state at l->priv */
	size_t max_msg_limit;     /* largest message the mechanism can carry;
	                             0 = ask limit() */

	/* Largest message the mechanism can carry right now (mq reads the
	 * kernel limit) into *out: 0, or -errno when it cannot be read (the
	 * caller reports that error). NULL: max_msg_limit. */
	int (*limit)(size_t *out);

	/* Make a zeroed channel closable (see Lifecycle above). Required. */
	void (*init)(ipc_chan *c);

	/* Open one end. flags is IPC_SERVER or IPC_CLIENT. c->cfg is filled
	 * and c->max_msg already resolved and checked against the limit.
	 * Server: create the endpoint and return at once (the peer is awaited
	 * by the first send/recv). Client: retry until the server appears or
	 * cfg.connect_timeout_ms passes (-ETIMEDOUT; with 0, one try:
	 * -ECONNREFUSED or -ENOENT). On failure the core calls close() (see
	 * Lifecycle), which must leave nothing behind. */
	int (*open)(ipc_chan *c, const ipc_url *u, int flags);

	/* Two connected ends in this process; on failure the core calls
	 * close() for both (see Lifecycle). */
	int (*pair)(ipc_chan *a, ipc_chan *b);

	/* Send one whole message (len <= c->max_msg, checked by the core;
	 * len above c->peer_max is the backend's -EMSGSIZE, and a first send
	 * waits within dl for the peer's handshake to learn it). 0 only when
	 * the whole message will be delivered (a tail cut by dl is written by
	 * lib/tail.c); -EAGAIN/-ETIMEDOUT only when nothing of it will be.
	 * 0, -EPIPE, -EAGAIN, -ETIMEDOUT, -EPROTO, -EMSGSIZE, -ENOMEM, or an
	 * errno. */
	int (*send)(ipc_chan *c, const void *msg, size_t len, ipc_deadline *dl);

	/* Send msgs in order; returns the count sent (each whole), or an
	 * error when none was. NULL: the core loops over send(). */
	int (*sendv)(ipc_chan *c, const ipc_msg *msgs, size_t n, ipc_deadline *dl);

	/* Receive one message. Returns its length, -EMSGSIZE when it is larger
	 * than cap (the message stays queued; set c->need_len when known),
	 * -EPIPE after the peer closed and everything delivered was returned,
	 * -EAGAIN, -ETIMEDOUT, -EPROTO. */
	ssize_t (*recv)(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl);

	/* Receive up to n messages already waiting, waiting within dl only for
	 * the first; each bufs[i].len set. Returns the count (>= 1) or, when
	 * none was received, recv's error. A message larger than its buffer
	 * stops the batch and stays queued. NULL: the core loops over recv(). */
	int (*recvv)(ipc_chan *c, ipc_buf *bufs, size_t n, ipc_deadline *dl);

	/* The pollable descriptor of ipc_fd (level-triggered from the first
	 * call; readable while recv would not block, messages that arrived
	 * earlier included). Created on first call, owned by the channel. */
	int (*fd)(ipc_chan *c);

	/* Zero-copy, all four or none (NULL: the core emulates with a copy). */
	int (*send_reserve)(ipc_chan *c, size_t len, void **buf, ipc_deadline *dl);
	int (*send_commit)(ipc_chan *c, size_t len);
	ssize_t (*recv_peek)(ipc_chan *c, const void **msg, ipc_deadline *dl);
	int (*recv_release)(ipc_chan *c);

	/* Release everything the channel holds (fds, names, memory in priv).
	 * Must be safe on a channel whose open succeeded, whatever happened
	 * after. Does not free c. */
	void (*close)(ipc_chan *c);

	/* Listener ops (NULL: -ENOTSUP). listen sets l->url (resolved). accept
	 * fills a new channel whose priv is zeroed and cfg copied from l; a
	 * client whose hello is incomplete when dl passes stays pending in
	 * the listener. listener_fd: readable while accept would not block.
	 * listener_close removes names only when l->owner is this process. */
	int (*listen)(ipc_listener *l, const ipc_url *u);
	int (*accept)(ipc_listener *l, ipc_chan *c, ipc_deadline *dl);
	int (*listener_fd)(ipc_listener *l);
	void (*listener_close)(ipc_listener *l);
};

/* A channel's or listener's private state, as the backend's type: every
 * backend names its accessor with this (e.g. #define U(c) IPC_PRIV(c,
 * struct unix_chan)). */
#define IPC_PRIV(x, type) ((type *)(void *)(x)->priv)

/* Each backend defines `const struct ipc_backend ipc__backend_<name>`;
 * lib/core.c declares and registers them from IPC_BACKEND_LIST. */

/* lib/url.c: parse url into *u, with u->cfg = defaults, then opts, then the
 * query (which overrides opts); *be is the scheme's backend. Returns 0,
 * -EINVAL, -EPROTONOSUPPORT or -ENAMETOOLONG. */
int ipc__url_parse(ipc_url *u, const char *url, const ipc_opts *opts,
		   const struct ipc_backend **be);
/* cfg = defaults merged with opts (NULL = all defaults); -EINVAL on bad values. */
int ipc__cfg_init(ipc_cfg *cfg, const ipc_opts *opts);
/* lib/core.c: the compiled-in backend for a scheme, or NULL. */
const struct ipc_backend *ipc__backend_find(const char *scheme, size_t len);

/* True in the process that opened c (names and close-time writes are its
 * business only; a forked child's close releases descriptors). */
pid_t ipc__getpid(void);
static inline bool ipc__owned(pid_t owner)
{
	return owner == ipc__getpid();
}

/* lib/core.c: deadline helpers */
int64_t ipc__now_ns(void);
static inline bool ipc__dl_forever(const ipc_deadline *d)
{
	return d->ms < 0;
}
static inline bool ipc__dl_nowait(const ipc_deadline *d)
{
	return d->ms == 0;
}
/* The absolute time of a finite deadline, computed on first use (INT64_MAX
 * for forever, the time of the first use for never-block). */
int64_t ipc__dl_at(ipc_deadline *d);
/* An anchored deadline ms from now. */
ipc_deadline ipc__dl_in(int ms);
/* The earlier of d and ms from now (a slice of a longer wait); never-block
 * stays never-block. ipc__expired(d) tells a real timeout from a slice's. */
ipc_deadline ipc__dl_slice(ipc_deadline *d, int ms);
/* Milliseconds left for poll(): -1 forever, 0 for never-block or passed. */
int ipc__remaining_ms(ipc_deadline *d);
/* True once d passed (always for never-block, never for forever). */
bool ipc__expired(ipc_deadline *d);
/* The error for a wait that ran out: -EAGAIN for never-block, else -ETIMEDOUT. */
static inline int ipc__timeout_err(const ipc_deadline *d)
{
	return d->ms == 0 ? -EAGAIN : -ETIMEDOUT;
}

/*
 * How a blocked call of a kernel backend waits (cfg.wait): the spin time in
 * ns before it sleeps: -1 spin until the deadline (wait=spin), 0 sleep at
 * once (wait=block, or adaptive on a single CPU), else cfg.spin_us, or the
 * backend's default when that is 0. Spinning means trying again without
 * waiting (non-blocking calls), with a pause between tries.
 */
/* The adaptive spin of the kernel backends by default: none. Measured on
 * a 2-vCPU VM (docs/design.md), a 20 us spin cut a 64 B pipe round trip
 * from ~13 to ~2.6 us on a quiet machine, but with other work runnable it
 * made it 5-7x slower than sleeping; wait=spin or spin_us opt in. */
#define IPC_KERNEL_SPIN_NS 0
int ipc__spin_ns(const ipc_cfg *cfg, int default_ns);
static inline void ipc__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* lib/core.c: lock m within dl (a channel's attach lock, which another
 * thread may hold while it waits within its own deadline): 0, or
 * -EAGAIN/-ETIMEDOUT when dl passes first. */
int ipc__mutex_lock_dl(pthread_mutex_t *m, ipc_deadline *dl);

/* Format "scheme://addr" into a malloc'd string (NULL on ENOMEM). */
char *ipc__url_format(const char *scheme, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
