/*
 * inproc/inproc.c - channels between threads of one process, like ZeroMQ's and
 * nng's inproc transports: the same contract as the other backends, with
 * rings in private memory instead of a kernel mechanism.
 *
 * URL: inproc://name (1..255 bytes, no '/'). Names live in this process
 * only: a table of endpoints (the one piece of global state a backend
 * holds here, as a name space must), locked by reg_mu. A server or a
 * listener registers its name at open (-EADDRINUSE while one holds it); a
 * client finds it, creates the channel's shared core and puts it in the
 * endpoint's backlog (-ECONNREFUSED while the name is absent, retried for
 * connect_timeout_ms; a full backlog is retried too). The server's first
 * call takes it and unregisters the name: a channel is a pair.
 *
 * Each direction is a byte ring (capacity, default 1 MiB, a power of two)
 * of 8-byte-aligned records: u32 length, u32 kind, then the payload
 * (DATA), or a pointer to a heap copy for messages above a quarter of the
 * ring (HEAP, so that any message up to max_msg passes whatever the ring
 * size; heap bytes in flight count against capacity), or padding to the
 * end of the ring (PAD) so that every record is contiguous: zero-copy
 * reserve and peek point straight into the ring (or at the heap copy).
 * The ring's indices are guarded by one mutex per direction, taken by the
 * writer to publish and by the reader to consume (one sending and one
 * receiving thread per end); a heap message is copied outside it.
 *
 * Waiting follows `wait`: spin watches a per-direction change counter
 * until the deadline, block sleeps on a condition variable at once,
 * adaptive spins IP_SPIN_NS first (on a machine with more than one CPU).
 * ipc_fd is an eventfd per end, kept signalled exactly while a record or
 * end-of-stream waits in its receive direction (or, on a server not yet
 * attached, while a client waits in its backlog); it costs nothing until
 * ipc_fd is first called.
 *
 * Peer close: a closed writer leaves what it sent to be read, then -EPIPE;
 * a closed reader makes sends -EPIPE at once. There is no death without
 * close between threads. After fork() a child's copies of inproc channels
 * are unusable (IPC_CAP_PROCESS is not set); closing them frees memory.
 */
#include "backends/inproc/inproc.h"
#include "posix/fdio.h"

#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static inline int ip_ready(ipc_chan *c, ipc_deadline *dl)
{
	if (__builtin_expect(atomic_load_explicit(&IP(c)->ready, memory_order_acquire), 1))
		return 0;
	return ipc__ip_attach(c, dl);
}

static int ip_send(ipc_chan *c, const void *msg, size_t len, ipc_deadline *dl)
{
	struct ip_chan *ic = IP(c);
	int r = ip_ready(c, dl);
	if (r < 0)
		return r;
	struct dir *d = &ic->k->d[ic->side];
	if (len > atomic_load_explicit(&c->peer_max, memory_order_relaxed))
		return -EMSGSIZE;
	bool heap;
	unsigned char *p;
	void *copy = NULL;
	if (len > d->size / 4) {
		if (!(copy = ipc__malloc(len)))
			return -ENOMEM; /* (before anything is queued) */
		memcpy(copy, msg, len);
	}
	if ((r = ipc__ip_send_room(ic, d, len, &heap, dl, &p)) < 0) {
		free(copy);
		return r;
	}
	if (heap) {
		memcpy(p + IP_HDR, &copy, sizeof(copy));
	} else if (len) {
		/* (the reader never looks beyond head: copying under the lock
		 * only delays it by the copy) */
		memcpy(p + IP_HDR, msg, len);
	}
	ipc__ip_publish(d, (uint32_t)len, heap ? REC_HEAP : REC_DATA, heap ? len : 0);
	return 0;
}

static int ip_send_reserve(ipc_chan *c, size_t len, void **buf, ipc_deadline *dl)
{
	struct ip_chan *ic = IP(c);
	int r = ip_ready(c, dl);
	if (r < 0)
		return r;
	struct dir *d = &ic->k->d[ic->side];
	if (len > atomic_load_explicit(&c->peer_max, memory_order_relaxed))
		return -EMSGSIZE;
	if (len > d->size / 4) {
		/* a heap message: the reservation is the message */
		if (!(ic->resv_heap = ipc__malloc(len ? len : 1)))
			return -ENOMEM;
		*buf = ic->resv_heap;
	} else {
		bool heap;
		unsigned char *p;
		if ((r = ipc__ip_send_room(ic, d, len, &heap, dl, &p)) < 0)
			return r;
		pthread_mutex_unlock(&d->mu);
		/* (the room stays ours: we are the only writer) */
		*buf = p + IP_HDR;
	}
	ic->resv_len = len;
	ic->resv_dl = *dl;
	return 0;
}

static int ip_send_commit(ipc_chan *c, size_t len)
{
	struct ip_chan *ic = IP(c);
	struct dir *d = &ic->k->d[ic->side];
	if (ic->resv_heap) {
		void *m = ic->resv_heap;
		ic->resv_heap = NULL;
		bool heap;
		unsigned char *p;
		int r = ipc__ip_send_room(ic, d, ic->resv_len, &heap, &ic->resv_dl, &p);
		if (r < 0) {
			free(m);
			return r;
		}
		memcpy(p + IP_HDR, &m, sizeof(m));
		ipc__ip_publish(d, (uint32_t)len, REC_HEAP, len);
		return 0;
	}
	pthread_mutex_lock(&d->mu);
	if (d->rclosed) {
		pthread_mutex_unlock(&d->mu);
		return -EPIPE;
	}
	ipc__ip_publish(d, (uint32_t)len, REC_DATA, 0);
	return 0;
}

static ssize_t ip_recv(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl)
{
	struct ip_chan *ic = IP(c);
	int r = ip_ready(c, dl);
	if (r < 0)
		return r;
	if (ic->peeked)
		return -EBUSY;
	struct dir *d = &ic->k->d[1 - ic->side];
	uint32_t hdr[2];
	unsigned char *p;
	if ((r = ipc__ip_recv_rec(ic, d, hdr, &p, dl)) < 0)
		return r;
	if (hdr[0] > cap) {
		pthread_mutex_unlock(&d->mu);
		c->need_len = hdr[0];
		return -EMSGSIZE;
	}
	const unsigned char *m = ipc__ip_rec_data(hdr, p);
	if (hdr[0])
		memcpy(buf, m, hdr[0]);
	if (hdr[1] == REC_HEAP)
		free((void *)m);
	ipc__ip_consume(d, hdr);
	return (ssize_t)hdr[0];
}

static ssize_t ip_recv_peek(ipc_chan *c, const void **msg, ipc_deadline *dl)
{
	struct ip_chan *ic = IP(c);
	int r = ip_ready(c, dl);
	if (r < 0)
		return r;
	struct dir *d = &ic->k->d[1 - ic->side];
	uint32_t hdr[2];
	unsigned char *p;
	if ((r = ipc__ip_recv_rec(ic, d, hdr, &p, dl)) < 0)
		return r;
	pthread_mutex_unlock(&d->mu);
	/* (the record stays at the tail, in place, until release: the
	 * writer never overwrites what lies between tail and head) */
	*msg = ipc__ip_rec_data(hdr, p);
	ic->peeked = true;
	return (ssize_t)hdr[0];
}

static int ip_recv_release(ipc_chan *c)
{
	struct ip_chan *ic = IP(c);
	struct dir *d = &ic->k->d[1 - ic->side];
	uint32_t hdr[2];
	pthread_mutex_lock(&d->mu);
	memcpy(hdr, d->ring + (d->tail & (d->size - 1)), sizeof(hdr));
	if (hdr[1] == REC_HEAP)
		free((void *)ipc__ip_rec_data(hdr, d->ring + (d->tail & (d->size - 1))));
	ic->peeked = false;
	ipc__ip_consume(d, hdr);
	return 0;
}

/* --------------------------------------------------------- ipc_fd, open */

static int ip_fd(ipc_chan *c)
{
	struct ip_chan *ic = IP(c);
	pthread_mutex_lock(&ic->alock);
	if (ic->evfd < 0) {
		int fd = ipc__eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0) {
			pthread_mutex_unlock(&ic->alock);
			return fd;
		}
		ic->evfd = fd;
		if (ic->ep) {
			pthread_mutex_lock(&ic->ep->mu);
			ic->ep->evfd = fd;
			ic->ep->ev_on = false;
			ipc__ip_ep_ev(ic->ep);
			pthread_mutex_unlock(&ic->ep->mu);
		}
		ipc__ip_bind_evfd(ic);
	}
	pthread_mutex_unlock(&ic->alock);
	return ic->evfd;
}

static void ip_init(ipc_chan *c)
{
	struct ip_chan *ic = IP(c);
	ic->evfd = -1;
	if (c->cfg.wait == IPC_WAIT_SPIN)
		ic->spin_ns = -1;
	else if (c->cfg.wait == IPC_WAIT_ADAPTIVE && sysconf(_SC_NPROCESSORS_ONLN) > 1)
		ic->spin_ns = IP_SPIN_NS;
	ic->alock_init = pthread_mutex_init(&ic->alock, NULL) == 0;
}

static int check_capacity(const ipc_cfg *cfg)
{
	return cfg->capacity > IP_MAX_RING ? -EMSGSIZE : 0;
}

static int ip_open(ipc_chan *c, const ipc_url *u, int flags)
{
	struct ip_chan *ic = IP(c);
	int r = check_capacity(&c->cfg);
	if (r < 0 || !ic->alock_init)
		return r < 0 ? r : -ENOMEM;
	if (flags == IPC_SERVER)
		return ipc__ip_ep_register(&ic->ep, u->path, false, c->max_msg);
	struct connect_try t = { .name = u->path, .cap = c->cfg.capacity, .max_msg = c->max_msg };
	if ((r = ipc__retry(c->cfg.connect_timeout_ms, ipc__ip_connect_try, &t)) < 0)
		return r;
	atomic_store(&c->peer_max, t.peer_max);
	ic->k = t.k;
	ic->side = 1;
	atomic_store(&ic->ready, true);
	return 0;
}

static int ip_pair(ipc_chan *a, ipc_chan *b)
{
	if (!IP(a)->alock_init || !IP(b)->alock_init)
		return -ENOMEM;
	int r = check_capacity(&a->cfg);
	struct core *k;
	if (r < 0 || (r = ipc__ip_core_new(&k, a->cfg.capacity, 0)) < 0)
		return r;
	IP(a)->k = IP(b)->k = k;
	IP(b)->side = 1;
	atomic_store(&IP(a)->ready, true);
	atomic_store(&IP(b)->ready, true);
	atomic_store(&a->peer_max, a->max_msg);
	atomic_store(&b->peer_max, b->max_msg);
	if (!(a->url = ipc__url_format("inproc", "pair:%p", (void *)k)) ||
	    !(b->url = ipc__url_format("inproc", "pair:%p", (void *)k)))
		return -ENOMEM;
	return 0;
}

static void ip_close(ipc_chan *c)
{
	struct ip_chan *ic = IP(c);
	if (ic->ep && ipc__owned(c->owner))
		ipc__ip_ep_unregister(ic->ep);
	ic->ep = NULL;
	if (ic->k && ipc__owned(c->owner)) {
		ipc__ip_core_close_side(ic->k, ic->side);
		ipc__ip_core_unref(ic->k);
	}
	ic->k = NULL;
	free(ic->resv_heap);
	ic->resv_heap = NULL;
	ipc__close_fd(&ic->evfd);
	if (ic->alock_init)
		pthread_mutex_destroy(&ic->alock);
	ic->alock_init = false;
}

/* ------------------------------------------------------------ listener */

static int ip_listen(ipc_listener *l, const ipc_url *u)
{
	IPL(l)->evfd = -1;
	int r = check_capacity(&l->cfg);
	return r < 0 ? r : ipc__ip_ep_register(&IPL(l)->ep, u->path, true, l->cfg.max_msg);
}

static int ip_accept(ipc_listener *l, ipc_chan *c, ipc_deadline *dl)
{
	struct ip_chan *ic = IP(c);
	if (!ic->alock_init)
		return -ENOMEM;
	struct core *k;
	int r = ipc__ip_ep_take(IPL(l)->ep, ic, dl, &k);
	if (r < 0)
		return r;
	ic->k = k;
	ic->side = 0;
	atomic_store(&c->peer_max, k->max_msg[1]);
	atomic_store(&ic->ready, true);
	return 0;
}

static int ip_listener_fd(ipc_listener *l)
{
	struct ip_listener *il = IPL(l);
	struct endpoint *e = il->ep;
	pthread_mutex_lock(&e->mu);
	if (il->evfd < 0) {
		int fd = ipc__eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0) {
			pthread_mutex_unlock(&e->mu);
			return fd;
		}
		il->evfd = e->evfd = fd;
		ipc__ip_ep_ev(e);
	}
	pthread_mutex_unlock(&e->mu);
	return il->evfd;
}

static void ip_listener_close(ipc_listener *l)
{
	struct ip_listener *il = IPL(l);
	if (il->ep && ipc__owned(l->owner))
		ipc__ip_ep_unregister(il->ep);
	il->ep = NULL;
	ipc__close_fd(&il->evfd);
}

static int ip_limit(size_t *out)
{
	*out = IP_MAX_MSG;
	return 0;
}

const struct ipc_backend ipc__backend_inproc = {
	.scheme = "inproc",
	.addr_kind = IPC_ADDR_NAME,
	.caps = IPC_CAP_RELIABLE | IPC_CAP_ZERO_COPY | IPC_CAP_LISTEN | IPC_CAP_PAIR,
	.chan_size = sizeof(struct ip_chan),
	.listener_size = sizeof(struct ip_listener),
	.limit = ip_limit,
	.init = ip_init,
	.open = ip_open,
	.pair = ip_pair,
	.send = ip_send,
	.recv = ip_recv,
	.fd = ip_fd,
	.send_reserve = ip_send_reserve,
	.send_commit = ip_send_commit,
	.recv_peek = ip_recv_peek,
	.recv_release = ip_recv_release,
	.close = ip_close,
	.listen = ip_listen,
	.accept = ip_accept,
	.listener_fd = ip_listener_fd,
	.listener_close = ip_listener_close,
};
