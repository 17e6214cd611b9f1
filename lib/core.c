/*
 * core.c - the public API: argument checks, option resolution, deadlines,
 * dispatch to the backends, zero-copy emulation, errors and metadata.
 * This file is the only caller of backend ops (lib/backend.h).
 */
#include "backend.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Registration: a static table, one entry per compiled-in backend. */
static const struct ipc_backend *const backends[] = {
#if IPC_HAVE_TCP
	&ipc__backend_tcp,
#endif
#if IPC_HAVE_UDP
	&ipc__backend_udp,
#endif
#if IPC_HAVE_UNIX
	&ipc__backend_unix,
#endif
#if IPC_HAVE_FIFO
	&ipc__backend_fifo,
#endif
#if IPC_HAVE_PIPE
	&ipc__backend_pipe,
#endif
#if IPC_HAVE_MQ
	&ipc__backend_mq,
#endif
#if IPC_HAVE_SHM
	&ipc__backend_shm,
#endif
	NULL
};

static const char *const backend_names[] = {
#if IPC_HAVE_TCP
	"tcp",
#endif
#if IPC_HAVE_UDP
	"udp",
#endif
#if IPC_HAVE_UNIX
	"unix",
#endif
#if IPC_HAVE_FIFO
	"fifo",
#endif
#if IPC_HAVE_PIPE
	"pipe",
#endif
#if IPC_HAVE_MQ
	"mq",
#endif
#if IPC_HAVE_SHM
	"shm",
#endif
	NULL
};

const struct ipc_backend *ipc__backend_find(const char *scheme, size_t len)
{
	for (size_t i = 0; backends[i]; i++)
		if (strlen(backends[i]->scheme) == len && !memcmp(backends[i]->scheme, scheme, len))
			return backends[i];
	return NULL;
}

int64_t ipc__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

pid_t ipc__getpid(void)
{
	return getpid();
}

int64_t ipc__dl_at(ipc_deadline *d)
{
	if (d->ms < 0)
		return INT64_MAX;
	if (d->at == 0)
		d->at = ipc__now_ns() + (int64_t)d->ms * 1000000;
	return d->at;
}

ipc_deadline ipc__dl_in(int ms)
{
	ipc_deadline d = IPC_DL_INIT(ms);
	(void)ipc__dl_at(&d);
	return d;
}

ipc_deadline ipc__dl_slice(ipc_deadline *d, int ms)
{
	if (d->ms == 0)
		return *d;
	ipc_deadline s = ipc__dl_in(ms);
	if (d->ms > 0 && ipc__dl_at(d) < s.at)
		s.at = d->at;
	return s;
}

bool ipc__expired(ipc_deadline *d)
{
	if (d->ms < 0)
		return false;
	if (d->ms == 0)
		return true;
	return ipc__now_ns() >= ipc__dl_at(d);
}

int ipc__mutex_lock_dl(pthread_mutex_t *m, ipc_deadline *dl)
{
	int r;
	if (ipc__dl_forever(dl)) {
		r = pthread_mutex_lock(m);
	} else if ((r = pthread_mutex_trylock(m)) == EBUSY && !ipc__dl_nowait(dl)) {
		int64_t at = ipc__dl_at(dl);
#if defined(__SANITIZE_THREAD__)
		/* ThreadSanitizer (gcc 12) does not intercept clocklock and then
		 * reports the unlock as unpaired: use timedlock, whose
		 * CLOCK_REALTIME deadline a clock step could stretch, in
		 * TSan builds only */
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		int64_t rt = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec + (at - ipc__now_ns());
		struct timespec ts = { (time_t)(rt / 1000000000), (long)(rt % 1000000000) };
		r = pthread_mutex_timedlock(m, &ts);
#else
		struct timespec ts = { (time_t)(at / 1000000000), (long)(at % 1000000000) };
		r = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
#endif
	}
	if (r == EBUSY || r == ETIMEDOUT)
		return ipc__timeout_err(dl);
	return -r;
}

int ipc__remaining_ms(ipc_deadline *dl)
{
	if (dl->ms < 0)
		return -1;
	if (dl->ms == 0)
		return 0;
	int64_t left = ipc__dl_at(dl) - ipc__now_ns();
	if (left <= 0)
		return 0;
	int64_t ms = (left + 999999) / 1000000; /* round up: never wake early */
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

#ifdef IPC_FAULT_INJECTION
/* Test builds: the n-th request of a kind fails (lib/fault.h). */
static struct {
	atomic_long calls, failed, nth;
	atomic_bool sticky;
} faults[IPC_FAULT_KINDS] = {
	[IPC_FAULT_MEM] = { .nth = -1 }, [IPC_FAULT_FD] = { .nth = -1 },
	[IPC_FAULT_THREAD] = { .nth = -1 },
};

bool ipc__fault_hit(enum ipc_fault_kind kind)
{
	long n = atomic_fetch_add(&faults[kind].calls, 1);
	long nth = atomic_load(&faults[kind].nth);
	if (nth < 0 || n < nth || (n > nth && !atomic_load(&faults[kind].sticky)))
		return false;
	atomic_fetch_add(&faults[kind].failed, 1);
	return true;
}

void ipc__fault_arm(enum ipc_fault_kind kind, long nth, bool sticky)
{
	atomic_store(&faults[kind].nth, -1);
	atomic_store(&faults[kind].calls, 0);
	atomic_store(&faults[kind].failed, 0);
	atomic_store(&faults[kind].sticky, sticky);
	atomic_store(&faults[kind].nth, nth);
}

long ipc__fault_count(enum ipc_fault_kind kind)
{
	return atomic_load(&faults[kind].calls);
}

long ipc__fault_failed(enum ipc_fault_kind kind)
{
	return atomic_load(&faults[kind].failed);
}
#endif

/* Resolve max_msg against the mechanism's limit: an explicit request above
 * it is refused, the default is capped. */
static int backend_limit(const struct ipc_backend *be, size_t *limit)
{
	if (!be->limit) {
		*limit = be->max_msg_limit;
		return 0;
	}
	return be->limit(limit);
}

static int resolve_max(const struct ipc_backend *be, ipc_cfg *cfg, size_t *max)
{
	size_t limit;
	int r = backend_limit(be, &limit);
	if (r < 0)
		return r;
	if (cfg->max_msg > limit) {
		if (cfg->set & IPC_SET_MAX_MSG)
			return -EMSGSIZE;
		cfg->max_msg = limit;
	}
	*max = cfg->max_msg;
	return 0;
}

/* A fresh channel, made closable by the backend's init. */
static ipc_chan *chan_alloc(const struct ipc_backend *be, const ipc_cfg *cfg, size_t max)
{
	void *p = NULL;
	size_t sz = sizeof(ipc_chan) + be->chan_size;
	if (ipc__fault_hit(IPC_FAULT_MEM) || posix_memalign(&p, 64, sz) != 0)
		return NULL;
	memset(p, 0, sz);
	ipc_chan *c = p;
	c->be = be;
	c->cfg = *cfg;
	c->max_msg = max;
	c->owner = getpid();
	if (be->init)
		be->init(c);
	return c;
}

static void chan_free(ipc_chan *c)
{
	free(c->url);
	free(c->zc_sbuf);
	free(c->zc_rbuf);
	free(c);
}

/* After a failed open, pair or accept: undo it (see Lifecycle in
 * backend.h). */
static void chan_discard(ipc_chan *c)
{
	if (!c)
		return;
	if (c->be->init)
		c->be->close(c);
	chan_free(c);
}

static bool valid_timeout(int t)
{
	return t >= -1;
}

int ipc_open(ipc_chan **out, const char *url, int flags, const ipc_opts *opts)
{
	if (!out || !url || (flags != IPC_SERVER && flags != IPC_CLIENT))
		return -EINVAL;
	ipc_url *u = ipc__malloc(sizeof(*u));
	if (!u)
		return -ENOMEM;
	const struct ipc_backend *be = NULL;
	ipc_chan *c = NULL;
	char *defurl = NULL;
	size_t max;
	int r = ipc__url_parse(u, url, opts, &be);
	if (r < 0)
		goto out;
	if ((r = resolve_max(be, &u->cfg, &max)) < 0)
		goto out;
	if (!be->open) {
		r = -ENOTSUP;
		goto out;
	}
	/* Everything that can fail is done before the backend reaches its
	 * peer: a client that connected and then gave up would be taken for
	 * the server's peer. */
	if (!(defurl = ipc__url_format(u->scheme, "%s", u->addr)) ||
	    !(c = chan_alloc(be, &u->cfg, max))) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = be->open(c, u, flags)) < 0) {
		chan_discard(c);
		c = NULL;
		goto out;
	}
	if (!c->url) {
		c->url = defurl;
		defurl = NULL;
	}
	*out = c;
	r = 0;
out:
	free(defurl);
	free(u);
	return r;
}

int ipc_pair(const char *scheme, ipc_chan **a, ipc_chan **b, const ipc_opts *opts)
{
	if (!scheme || !a || !b)
		return -EINVAL;
	const struct ipc_backend *be = ipc__backend_find(scheme, strlen(scheme));
	if (!be)
		return -EPROTONOSUPPORT;
	if (!be->pair)
		return -ENOTSUP;
	ipc_cfg cfg;
	size_t max;
	int r = ipc__cfg_init(&cfg, opts);
	if (r < 0 || (r = resolve_max(be, &cfg, &max)) < 0)
		return r;
	ipc_chan *ca = chan_alloc(be, &cfg, max), *cb = chan_alloc(be, &cfg, max);
	if (!ca || !cb) {
		chan_discard(ca);
		chan_discard(cb);
		return -ENOMEM;
	}
	if ((r = be->pair(ca, cb)) < 0) {
		chan_discard(ca);
		chan_discard(cb);
		return r;
	}
	*a = ca;
	*b = cb;
	return 0;
}

int ipc_close(ipc_chan *c)
{
	if (!c)
		return 0;
	c->be->close(c);
	chan_free(c);
	return 0;
}

int ipc_send(ipc_chan *c, const void *msg, size_t len, int timeout_ms)
{
	if (!c || (!msg && len) || !valid_timeout(timeout_ms))
		return -EINVAL;
	if (len > c->max_msg)
		return -EMSGSIZE;
	if (c->zc_reserved)
		return -EBUSY;
	ipc_deadline dl = IPC_DL_INIT(timeout_ms);
	return c->be->send(c, msg, len, &dl);
}

ssize_t ipc_recv(ipc_chan *c, void *buf, size_t cap, int timeout_ms)
{
	if (!c || (!buf && cap) || !valid_timeout(timeout_ms))
		return -EINVAL;
	if (c->zc_peeked)
		return -EBUSY;
	if (cap > SSIZE_MAX)
		cap = SSIZE_MAX;
	c->need_len = 0;
	ipc_deadline dl = IPC_DL_INIT(timeout_ms);
	return c->be->recv(c, buf, cap, &dl);
}

int ipc_recvv(ipc_chan *c, ipc_buf *bufs, size_t n, int timeout_ms)
{
	if (!c || (!bufs && n) || !valid_timeout(timeout_ms))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!bufs[i].data && bufs[i].cap)
			return -EINVAL;
	if (c->zc_peeked)
		return -EBUSY;
	if (n == 0)
		return 0;
	if (n > INT_MAX)
		n = INT_MAX;
	c->need_len = 0;
	ipc_deadline dl = IPC_DL_INIT(timeout_ms);
	if (c->be->recvv)
		return c->be->recvv(c, bufs, n, &dl);
	/* one wait for the first, then whatever is already there */
	size_t got = 0;
	for (; got < n; got++) {
		size_t cap = bufs[got].cap > SSIZE_MAX ? SSIZE_MAX : bufs[got].cap;
		ssize_t r = c->be->recv(c, bufs[got].data, cap, got ? IPC_NOWAIT : &dl);
		if (r < 0) {
			if (got == 0)
				return (int)r;
			break;
		}
		bufs[got].len = (size_t)r;
	}
	return (int)got;
}

int ipc_sendv(ipc_chan *c, const ipc_msg *msgs, size_t n, int timeout_ms)
{
	if (!c || (!msgs && n) || !valid_timeout(timeout_ms))
		return -EINVAL;
	if (c->zc_reserved)
		return -EBUSY;
	if (n > INT_MAX)
		n = INT_MAX;
	/* send the valid prefix; the first bad message is reported only when
	 * nothing precedes it */
	size_t k = 0;
	while (k < n && msgs[k].len <= c->max_msg && (msgs[k].data || !msgs[k].len))
		k++;
	if (k == 0 && n > 0)
		return msgs[0].len > c->max_msg ? -EMSGSIZE : -EINVAL;
	if (k == 0)
		return 0;
	ipc_deadline dl = IPC_DL_INIT(timeout_ms);
	if (c->be->sendv)
		return c->be->sendv(c, msgs, k, &dl);
	int sent = 0;
	for (size_t i = 0; i < k; i++) {
		int r = c->be->send(c, msgs[i].data, msgs[i].len, &dl);
		if (r < 0)
			return sent ? sent : r;
		sent++;
	}
	return sent;
}

int ipc_fd(const ipc_chan *c)
{
	if (!c)
		return -EINVAL;
	if (!c->be->fd)
		return -ENOTSUP;
	return c->be->fd((ipc_chan *)c);
}

/* Zero-copy: true on backends that provide the ops; otherwise one copy
 * through a buffer owned by the channel. */
int ipc_send_reserve(ipc_chan *c, size_t len, void **buf, int timeout_ms)
{
	if (!c || !buf || !valid_timeout(timeout_ms))
		return -EINVAL;
	if (len > c->max_msg)
		return -EMSGSIZE;
	if (c->zc_reserved)
		return -EBUSY;
	if (c->be->send_reserve) {
		ipc_deadline dl = IPC_DL_INIT(timeout_ms);
		int r = c->be->send_reserve(c, len, buf, &dl);
		if (r < 0)
			return r;
	} else {
		if (len > c->zc_scap || !c->zc_sbuf) {
			unsigned char *nb = ipc__realloc(c->zc_sbuf, len ? len : 1);
			if (!nb)
				return -ENOMEM;
			c->zc_sbuf = nb;
			c->zc_scap = len ? len : 1;
		}
		*buf = c->zc_sbuf;
		c->zc_stimeout = timeout_ms;
	}
	c->zc_sres = len;
	c->zc_reserved = true;
	return 0;
}

int ipc_send_commit(ipc_chan *c, size_t len)
{
	if (!c || !c->zc_reserved || len > c->zc_sres)
		return -EINVAL;
	c->zc_reserved = false;
	if (c->be->send_commit)
		return c->be->send_commit(c, len);
	ipc_deadline dl = IPC_DL_INIT(c->zc_stimeout);
	return c->be->send(c, c->zc_sbuf, len, &dl);
}

ssize_t ipc_recv_peek(ipc_chan *c, const void **msg, int timeout_ms)
{
	if (!c || !msg || !valid_timeout(timeout_ms))
		return -EINVAL;
	ipc_deadline dl = IPC_DL_INIT(timeout_ms);
	if (c->be->recv_peek) {
		ssize_t r = c->be->recv_peek(c, msg, &dl);
		if (r >= 0)
			c->zc_peeked = true;
		return r;
	}
	if (c->zc_peeked) {
		*msg = c->zc_rbuf;
		return c->zc_rlen;
	}
	for (;;) {
		c->need_len = 0;
		ssize_t r = c->be->recv(c, c->zc_rbuf, c->zc_rcap, &dl);
		if (r == -EMSGSIZE) {
			size_t want = c->need_len ? c->need_len : c->max_msg;
			if (want <= c->zc_rcap)
				want = c->max_msg; /* cannot happen unless need_len lied */
			if (want <= c->zc_rcap)
				return -EPROTO;
			unsigned char *nb = ipc__realloc(c->zc_rbuf, want);
			if (!nb)
				return -ENOMEM;
			c->zc_rbuf = nb;
			c->zc_rcap = want;
			continue;
		}
		if (r < 0)
			return r;
		c->zc_rlen = r;
		c->zc_peeked = true;
		*msg = c->zc_rbuf ? (const void *)c->zc_rbuf : (const void *)"";
		return r;
	}
}

int ipc_recv_release(ipc_chan *c)
{
	if (!c || !c->zc_peeked)
		return -EINVAL;
	c->zc_peeked = false;
	if (c->be->recv_release)
		return c->be->recv_release(c);
	return 0;
}

static void listener_free(ipc_listener *l)
{
	free(l->url);
	free(l);
}

int ipc_listen(ipc_listener **out, const char *url, const ipc_opts *opts)
{
	if (!out || !url)
		return -EINVAL;
	ipc_url *u = ipc__malloc(sizeof(*u));
	if (!u)
		return -ENOMEM;
	const struct ipc_backend *be = NULL;
	ipc_listener *l = NULL;
	size_t max;
	void *p = NULL;
	int r = ipc__url_parse(u, url, opts, &be);
	if (r < 0)
		goto out;
	if (!be->listen) {
		r = -ENOTSUP;
		goto out;
	}
	if ((r = resolve_max(be, &u->cfg, &max)) < 0)
		goto out;
	u->cfg.max_msg = max;
	if (ipc__fault_hit(IPC_FAULT_MEM) ||
	    posix_memalign(&p, 64, sizeof(*l) + be->listener_size) != 0) {
		r = -ENOMEM;
		goto out;
	}
	memset(p, 0, sizeof(*l) + be->listener_size);
	l = p;
	l->be = be;
	l->cfg = u->cfg;
	l->owner = getpid();
	if ((r = be->listen(l, u)) < 0) {
		listener_free(l);
		goto out;
	}
	if (!l->url && !(l->url = ipc__url_format(u->scheme, "%s", u->addr))) {
		be->listener_close(l);
		listener_free(l);
		r = -ENOMEM;
		goto out;
	}
	*out = l;
	r = 0;
out:
	free(u);
	return r;
}

int ipc_accept(ipc_listener *l, ipc_chan **out, int timeout_ms)
{
	if (!l || !out || !valid_timeout(timeout_ms))
		return -EINVAL;
	/* (allocated before a client is taken: see ipc_open) */
	char *url = l->url ? ipc__strdup(l->url) : NULL;
	ipc_chan *c = (url || !l->url) ? chan_alloc(l->be, &l->cfg, l->cfg.max_msg) : NULL;
	if (!c) {
		free(url);
		return -ENOMEM;
	}
	ipc_deadline dl = IPC_DL_INIT(timeout_ms);
	int r = l->be->accept(l, c, &dl);
	if (r < 0) {
		free(url);
		chan_discard(c);
		return r;
	}
	if (!c->url)
		c->url = url;
	else
		free(url);
	*out = c;
	return 0;
}

int ipc_listener_close(ipc_listener *l)
{
	if (!l)
		return 0;
	l->be->listener_close(l);
	listener_free(l);
	return 0;
}

const char *ipc_listener_url(const ipc_listener *l)
{
	return l ? l->url : NULL;
}

int ipc_listener_fd(const ipc_listener *l)
{
	if (!l)
		return -EINVAL;
	if (!l->be->listener_fd)
		return -ENOTSUP;
	return l->be->listener_fd((ipc_listener *)l);
}

int ipc_info_get(const ipc_chan *c, ipc_info *out)
{
	if (!c || !out)
		return -EINVAL;
	size_t pm = atomic_load_explicit(&((ipc_chan *)c)->peer_max, memory_order_relaxed);
	out->backend = c->be->scheme;
	out->url = c->url;
	out->max_msg = pm && pm < c->max_msg ? pm : c->max_msg;
	out->caps = c->be->caps;
	return 0;
}

int ipc_backend_info(const char *scheme, ipc_info *out)
{
	if (!scheme || !out)
		return -EINVAL;
	const struct ipc_backend *be = ipc__backend_find(scheme, strlen(scheme));
	if (!be)
		return -EPROTONOSUPPORT;
	size_t limit;
	int r = backend_limit(be, &limit);
	if (r < 0)
		return r;
	out->backend = be->scheme;
	out->url = NULL;
	out->max_msg = limit;
	out->caps = be->caps;
	return 0;
}

const char *ipc_strerror(int err)
{
	if (err > 0 || err == INT_MIN)
		return "not an ipckit error value";
	switch (-err) {
	case 0: return "success";
	case EINVAL: return "invalid argument (a NULL or out-of-range value, a malformed URL, "
			    "an unknown option, or a call that does not fit the channel's state)";
	case EPROTONOSUPPORT: return "unknown or not compiled-in scheme";
	case ENOTSUP: return "operation not supported by this backend";
	case ENAMETOOLONG: return "path or name too long for the mechanism";
	case EADDRINUSE: return "endpoint already in use by a live server";
	case ECONNREFUSED: return "no server at this endpoint";
	case ENOENT: return "no such endpoint";
	case ETIMEDOUT: return "timed out";
	case EAGAIN: return "would block (timeout 0)";
	case EMSGSIZE: return "message larger than max_msg or the receive buffer";
	case EPIPE: return "peer closed the channel";
	case EPROTO: return "protocol error: the peer sent bad data; channel closed";
	case EBUSY: return "a zero-copy reservation or peeked message is outstanding";
	case EACCES: return "permission denied";
	case EPERM: return "operation not permitted";
	case EBADF: return "bad file descriptor";
	case ENOMEM: return "out of memory";
	case EMFILE: return "too many open files or queues";
	case ENFILE: return "too many open files in the system";
	case ENOSPC: return "no space left for the endpoint";
	case EEXIST: return "name exists";
	case ENOTSOCK: return "not a socket";
	case ECONNRESET: return "connection reset by peer";
	case EADDRNOTAVAIL: return "address not available";
	case ENETUNREACH: return "network unreachable";
	case EHOSTUNREACH: return "host unreachable";
	case EAFNOSUPPORT: return "address family not supported";
	case ENOTCONN: return "not connected";
	case EINTR: return "interrupted";
	case ELOOP: return "symbolic link in the path refused";
	case ENOTDIR: return "a path component is not a directory";
	case ENXIO: return "no reader on the other end";
	}
	if (err > 0)
		return "not an ipckit error value";
	const char *s = strerrordesc_np(-err);
	return s ? s : "unknown error";
}

const char *const *ipc_backends(void)
{
	return backend_names;
}

const char *ipc_version(void)
{
	return IPC_VERSION_STRING;
}
