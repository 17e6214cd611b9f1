/*
 * inproc.c - channels between threads of one process, like ZeroMQ's and
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
#include "backend.h"
#include "posix/fdio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define IP_DEFAULT_CAPACITY ((size_t)1 << 20)
#define IP_MIN_RING ((size_t)4096)
#define IP_MAX_RING ((size_t)1 << 30)
#define IP_MAX_MSG ((size_t)1 << 30)
#define IP_SPIN_NS 50000
#define IP_BACKLOG 128
#define IP_HDR 8u

enum { REC_DATA = 1, REC_HEAP = 2, REC_PAD = 3 };

/* One direction: written by one end, read by the other. */
struct dir {
	pthread_mutex_t mu;
	pthread_cond_t data, space;   /* CLOCK_MONOTONIC */
	unsigned char *ring;
	size_t size;                  /* power of two */
	size_t head, tail;            /* free-running byte counts (mu) */
	size_t heap, heap_cap;        /* heap bytes in flight, and their budget */
	_Atomic unsigned ver;         /* bumped on every change, for spinners */
	bool wclosed, rclosed;        /* the writing / reading end closed */
	int evfd;                     /* the reading end's ipc_fd, or -1 */
	bool ev_on;
};

/* What two connected ends share; d[0] carries side 0 to side 1. */
struct core {
	atomic_int refs;
	size_t max_msg[2];            /* each end's max_msg (the peer's limit) */
	struct dir d[2];
};

struct endpoint {
	struct endpoint *next;
	char name[256];
	bool listener;
	size_t max_msg;               /* the server's or listener's */
	pthread_mutex_t mu;
	pthread_cond_t cv;            /* a client arrived */
	struct core *backlog[IP_BACKLOG];
	unsigned nb;
	int evfd;                     /* the server's or listener's fd, or -1 */
	bool ev_on;
};

struct ip_chan {
	struct core *k;
	int side;                     /* sends on d[side], receives on d[1 - side] */
	struct endpoint *ep;          /* server before attach */
	pthread_mutex_t alock;        /* serialises attach */
	bool alock_init;
	atomic_bool ready;
	int evfd;                     /* ipc_fd, -1 until asked for */
	int spin_ns;                  /* 0 never spin, -1 spin only */
	/* sending side */
	size_t resv_len;
	unsigned char *resv_heap;
	ipc_deadline resv_dl;
	/* receiving side */
	bool peeked;
};

struct ip_listener {
	struct endpoint *ep;
	int evfd;
};

#define IP(c) IPC_PRIV(c, struct ip_chan)
#define IPL(l) IPC_PRIV(l, struct ip_listener)

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct endpoint *reg;

static inline size_t rec_size(size_t len)
{
	return IP_HDR + ((len + 7) & ~(size_t)7);
}

/* ------------------------------------------------------------ eventfds */

/* (d->mu held) the reader's level: a record or end-of-stream waits */
static void dir_ev(struct dir *d)
{
	ipc__ev_level(d->evfd, &d->ev_on, d->head != d->tail || d->wclosed);
}

static void dir_changed(struct dir *d)
{
	atomic_fetch_add_explicit(&d->ver, 1, memory_order_release);
	dir_ev(d);
}

/* ---------------------------------------------------------------- core */

static int cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	if (pthread_condattr_init(&a) != 0)
		return -ENOMEM;
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	int r = pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
	return r ? -ENOMEM : 0;
}

static size_t ring_size(size_t cap)
{
	size_t s = IP_MIN_RING;
	while (s < cap)
		s <<= 1;
	return s;
}

static void core_free(struct core *k)
{
	for (int i = 0; i < 2; i++) {
		struct dir *d = &k->d[i];
		/* messages still in flight on the heap */
		for (size_t t = d->tail; d->ring && t != d->head;) {
			uint32_t hdr[2];
			memcpy(hdr, d->ring + (t & (d->size - 1)), sizeof(hdr));
			if (hdr[1] == REC_PAD) {
				t += d->size - (t & (d->size - 1));
				continue;
			}
			if (hdr[1] == REC_HEAP) {
				void *p;
				memcpy(&p, d->ring + (t & (d->size - 1)) + IP_HDR, sizeof(p));
				free(p);
				t += rec_size(sizeof(p));
			} else {
				t += rec_size(hdr[0]);
			}
		}
		free(d->ring);
		pthread_mutex_destroy(&d->mu);
		pthread_cond_destroy(&d->data);
		pthread_cond_destroy(&d->space);
	}
	free(k);
}

static void core_unref(struct core *k)
{
	if (k && atomic_fetch_sub(&k->refs, 1) == 1)
		core_free(k);
}

/* A core for two ends whose capacity requests are cap0 (side 0) and cap1. */
static int core_new(struct core **out, size_t cap0, size_t cap1)
{
	struct core *k = ipc__calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	size_t cap = cap0 > cap1 ? cap0 : cap1;
	if (!cap)
		cap = IP_DEFAULT_CAPACITY;
	int r = 0, made = 0;
	for (; made < 2; made++) {
		struct dir *d = &k->d[made];
		d->size = ring_size(cap);
		d->heap_cap = cap;
		d->evfd = -1;
		if (pthread_mutex_init(&d->mu, NULL) != 0 || cond_init(&d->data) < 0 ||
		    cond_init(&d->space) < 0 || !(d->ring = ipc__malloc(d->size))) {
			r = -ENOMEM;
			made++;
			break;
		}
	}
	if (r < 0) {
		/* (the synchronisation objects of a half-made dir are plain
		 * memory on Linux; core_free tolerates them) */
		for (int i = made; i < 2; i++) {
			pthread_mutex_init(&k->d[i].mu, NULL);
			pthread_cond_init(&k->d[i].data, NULL);
			pthread_cond_init(&k->d[i].space, NULL);
		}
		core_free(k);
		return r;
	}
	atomic_init(&k->refs, 2);
	*out = k;
	return 0;
}

/* ------------------------------------------------------------- waiting */

/* (d->mu held) wait until d changes, for at most dl, as mode says. 0 to
 * look again, or the timeout error. */
static int dir_wait(struct ip_chan *ic, struct dir *d, pthread_cond_t *cv, ipc_deadline *dl)
{
	if (ipc__dl_nowait(dl))
		return -EAGAIN;
	unsigned v = atomic_load_explicit(&d->ver, memory_order_relaxed);
	if (ic->spin_ns != 0) {
		pthread_mutex_unlock(&d->mu);
		int64_t start = 0;
		int r = 0;
		for (unsigned i = 1;; i++) {
			if (atomic_load_explicit(&d->ver, memory_order_acquire) != v)
				break;
			ipc__cpu_relax();
			if (i % 64)
				continue;
			int64_t now = ipc__now_ns();
			if (!start)
				start = now;
			if (!ipc__dl_forever(dl) && now >= ipc__dl_at(dl)) {
				r = ipc__timeout_err(dl);
				break;
			}
			if (ic->spin_ns > 0 && now - start >= ic->spin_ns)
				break;
		}
		pthread_mutex_lock(&d->mu);
		if (r < 0 || atomic_load_explicit(&d->ver, memory_order_relaxed) != v)
			return r;
		if (ic->spin_ns < 0)
			return 0; /* spin only: look again, spin again */
	}
	if (ipc__dl_forever(dl)) {
		pthread_cond_wait(cv, &d->mu);
		return 0;
	}
	int64_t at = ipc__dl_at(dl);
	struct timespec ts = { (time_t)(at / 1000000000), (long)(at % 1000000000) };
	if (pthread_cond_timedwait(cv, &d->mu, &ts) == ETIMEDOUT &&
	    atomic_load_explicit(&d->ver, memory_order_relaxed) == v)
		return -ETIMEDOUT;
	return 0;
}

/* ----------------------------------------------------------- rendezvous */

static struct endpoint *reg_find(const char *name)
{
	for (struct endpoint *e = reg; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

static int ep_register(struct endpoint **out, const char *name, bool listener,
		       size_t max_msg)
{
	struct endpoint *e = ipc__calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->listener = listener;
	e->max_msg = max_msg;
	e->evfd = -1;
	if (pthread_mutex_init(&e->mu, NULL) != 0 || cond_init(&e->cv) < 0) {
		free(e);
		return -ENOMEM;
	}
	pthread_mutex_lock(&reg_mu);
	if (reg_find(name)) {
		pthread_mutex_unlock(&reg_mu);
		pthread_cond_destroy(&e->cv);
		pthread_mutex_destroy(&e->mu);
		free(e);
		return -EADDRINUSE;
	}
	e->next = reg;
	reg = e;
	pthread_mutex_unlock(&reg_mu);
	*out = e;
	return 0;
}

/* Mark both directions of k closed from side's end (the peer sees EOF
 * after what was sent, and -EPIPE on send). */
static void core_close_side(struct core *k, int side)
{
	struct dir *out = &k->d[side], *in = &k->d[1 - side];
	pthread_mutex_lock(&out->mu);
	out->wclosed = true;
	pthread_cond_broadcast(&out->data);
	dir_changed(out);
	pthread_mutex_unlock(&out->mu);
	pthread_mutex_lock(&in->mu);
	in->rclosed = true;
	in->evfd = -1; /* ours: about to be closed */
	in->ev_on = false;
	pthread_cond_broadcast(&in->space);
	dir_changed(in);
	pthread_mutex_unlock(&in->mu);
}

/* Unregister e and free it; clients still in its backlog see the server
 * gone. */
static void ep_unregister(struct endpoint *e)
{
	pthread_mutex_lock(&reg_mu);
	for (struct endpoint **p = &reg; *p; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			break;
		}
	pthread_mutex_unlock(&reg_mu);
	/* no client can reach e now (they look it up under reg_mu) */
	for (unsigned i = 0; i < e->nb; i++) {
		core_close_side(e->backlog[i], 0);
		core_unref(e->backlog[i]);
	}
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

/* (e->mu held) */
static void ep_ev(struct endpoint *e)
{
	ipc__ev_level(e->evfd, &e->ev_on, e->nb > 0);
}

/* Take the first client of e within dl: its core, or an error. */
static int ep_take(struct endpoint *e, struct ip_chan *ic, ipc_deadline *dl, struct core **out)
{
	int r = 0;
	pthread_mutex_lock(&e->mu);
	while (e->nb == 0) {
		if (ipc__dl_nowait(dl)) {
			r = -EAGAIN;
			break;
		}
		if (ipc__dl_forever(dl)) {
			pthread_cond_wait(&e->cv, &e->mu);
			continue;
		}
		int64_t at = ipc__dl_at(dl);
		struct timespec ts = { (time_t)(at / 1000000000), (long)(at % 1000000000) };
		if (pthread_cond_timedwait(&e->cv, &e->mu, &ts) == ETIMEDOUT && e->nb == 0) {
			r = -ETIMEDOUT;
			break;
		}
	}
	if (r == 0) {
		*out = e->backlog[0];
		memmove(e->backlog, e->backlog + 1, --e->nb * sizeof(e->backlog[0]));
		ep_ev(e);
	}
	pthread_mutex_unlock(&e->mu);
	(void)ic;
	return r;
}

struct connect_try {
	const char *name;
	size_t cap, max_msg;          /* the client's */
	struct core *k;
	size_t peer_max;              /* the server's, found at the endpoint */
};

/* One client attempt: the core is queued at the endpoint, or -ECONNREFUSED
 * (no such name), -EAGAIN (backlog full), -ENOMEM. */
static int connect_try(void *arg)
{
	struct connect_try *t = arg;
	struct core *k = NULL;
	pthread_mutex_lock(&reg_mu);
	bool there = reg_find(t->name) != NULL;
	pthread_mutex_unlock(&reg_mu);
	if (!there)
		return -ECONNREFUSED; /* (no rings made for nothing while we wait) */
	int r = core_new(&k, 0, t->cap);
	if (r < 0)
		return r;
	pthread_mutex_lock(&reg_mu);
	struct endpoint *e = reg_find(t->name);
	if (!e) {
		r = -ECONNREFUSED;
	} else {
		pthread_mutex_lock(&e->mu);
		if (e->nb == IP_BACKLOG) {
			r = -EAGAIN;
		} else {
			k->max_msg[0] = e->max_msg;
			k->max_msg[1] = t->max_msg;
			t->peer_max = e->max_msg;
			e->backlog[e->nb++] = k;
			pthread_cond_signal(&e->cv);
			ep_ev(e);
		}
		pthread_mutex_unlock(&e->mu);
	}
	pthread_mutex_unlock(&reg_mu);
	if (r < 0) {
		core_unref(k);
		core_unref(k);
		return r;
	}
	t->k = k;
	return 0;
}

/* Point this end's receive direction at its ipc_fd, if it has one. */
static void bind_evfd(struct ip_chan *ic)
{
	if (ic->evfd < 0 || !ic->k)
		return;
	struct dir *in = &ic->k->d[1 - ic->side];
	pthread_mutex_lock(&in->mu);
	in->evfd = ic->evfd;
	in->ev_on = false;
	{
		/* the eventfd may hold a count from the endpoint: start clean */
		uint64_t v;
		(void)!read(ic->evfd, &v, sizeof(v));
	}
	dir_ev(in);
	pthread_mutex_unlock(&in->mu);
}

static int ip_attach(ipc_chan *c, ipc_deadline *dl)
{
	struct ip_chan *ic = IP(c);
	int r = ipc__mutex_lock_dl(&ic->alock, dl);
	if (r < 0)
		return r;
	if (!atomic_load(&ic->ready)) {
		struct core *k;
		if ((r = ep_take(ic->ep, ic, dl, &k)) == 0) {
			/* a channel is a pair: release the name */
			ep_unregister(ic->ep);
			ic->ep = NULL;
			ic->k = k;
			ic->side = 0;
			atomic_store(&c->peer_max, k->max_msg[1]);
			bind_evfd(ic);
			atomic_store_explicit(&ic->ready, true, memory_order_release);
		}
	}
	pthread_mutex_unlock(&ic->alock);
	return r;
}

static inline int ip_ready(ipc_chan *c, ipc_deadline *dl)
{
	if (__builtin_expect(atomic_load_explicit(&IP(c)->ready, memory_order_acquire), 1))
		return 0;
	return ip_attach(c, dl);
}

/* --------------------------------------------------------------- sends */

/* (d->mu held) room for a record of rs bytes at the head, counting the
 * padding to the ring's end when it does not fit there: the offset of the
 * record from head (0 or the pad's length), or -1 when there is no room. */
static ssize_t room_for(struct dir *d, size_t rs)
{
	size_t used = d->head - d->tail, pos = d->head & (d->size - 1);
	size_t pad = pos + rs > d->size ? d->size - pos : 0;
	return used + pad + rs <= d->size ? (ssize_t)pad : -1;
}

/* (d->mu held) write a pad record of n bytes at the head */
static void put_pad(struct dir *d, size_t n)
{
	uint32_t hdr[2] = { (uint32_t)(n - IP_HDR), REC_PAD };
	memcpy(d->ring + (d->head & (d->size - 1)), hdr, sizeof(hdr));
	d->head += n;
}

/* Wait within dl for room for one message of len bytes; on success d->mu
 * is held, the padding (if any) is written and *p is where its record
 * goes. -EPIPE when the reader closed. */
static int send_room(struct ip_chan *ic, struct dir *d, size_t len, bool *heap,
		     ipc_deadline *dl, unsigned char **p)
{
	*heap = len > d->size / 4;
	size_t rs = rec_size(*heap ? sizeof(void *) : len);
	pthread_mutex_lock(&d->mu);
	for (;;) {
		if (d->rclosed) {
			pthread_mutex_unlock(&d->mu);
			return -EPIPE;
		}
		ssize_t pad = room_for(d, rs);
		bool budget = !*heap || d->heap == 0 || d->heap + len <= d->heap_cap;
		if (pad >= 0 && budget) {
			if (pad > 0)
				put_pad(d, (size_t)pad);
			*p = d->ring + (d->head & (d->size - 1));
			return 0;
		}
		int r = dir_wait(ic, d, &d->space, dl);
		if (r < 0) {
			pthread_mutex_unlock(&d->mu);
			return r;
		}
	}
}

/* (d->mu held) publish the record at the head and wake the reader */
static void publish(struct dir *d, uint32_t len, uint32_t kind, size_t heap)
{
	uint32_t hdr[2] = { len, kind };
	memcpy(d->ring + (d->head & (d->size - 1)), hdr, sizeof(hdr));
	d->head += rec_size(kind == REC_HEAP ? sizeof(void *) : len);
	d->heap += heap;
	pthread_cond_signal(&d->data);
	dir_changed(d);
	pthread_mutex_unlock(&d->mu);
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
	if ((r = send_room(ic, d, len, &heap, dl, &p)) < 0) {
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
	publish(d, (uint32_t)len, heap ? REC_HEAP : REC_DATA, heap ? len : 0);
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
		if ((r = send_room(ic, d, len, &heap, dl, &p)) < 0)
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
		int r = send_room(ic, d, ic->resv_len, &heap, &ic->resv_dl, &p);
		if (r < 0) {
			free(m);
			return r;
		}
		memcpy(p + IP_HDR, &m, sizeof(m));
		publish(d, (uint32_t)len, REC_HEAP, len);
		return 0;
	}
	pthread_mutex_lock(&d->mu);
	if (d->rclosed) {
		pthread_mutex_unlock(&d->mu);
		return -EPIPE;
	}
	publish(d, (uint32_t)len, REC_DATA, 0);
	return 0;
}

/* ------------------------------------------------------------ receives */

/* Wait within dl for a record; on success d->mu is held and hdr and *p
 * describe it (padding skipped). -EPIPE once drained and the writer
 * closed. */
static int recv_rec(struct ip_chan *ic, struct dir *d, uint32_t hdr[2], unsigned char **p,
		    ipc_deadline *dl)
{
	pthread_mutex_lock(&d->mu);
	for (;;) {
		while (d->head != d->tail) {
			*p = d->ring + (d->tail & (d->size - 1));
			memcpy(hdr, *p, 2 * sizeof(uint32_t));
			if (hdr[1] != REC_PAD)
				return 0;
			d->tail += IP_HDR + hdr[0];
		}
		if (d->wclosed) {
			pthread_mutex_unlock(&d->mu);
			return -EPIPE;
		}
		int r = dir_wait(ic, d, &d->data, dl);
		if (r < 0) {
			pthread_mutex_unlock(&d->mu);
			return r;
		}
	}
}

/* (d->mu held) the record at the tail is done with */
static void consume(struct dir *d, const uint32_t hdr[2])
{
	if (hdr[1] == REC_HEAP) {
		d->tail += rec_size(sizeof(void *));
		d->heap -= hdr[0];
	} else {
		d->tail += rec_size(hdr[0]);
	}
	pthread_cond_signal(&d->space);
	dir_changed(d);
	pthread_mutex_unlock(&d->mu);
}

static const unsigned char *rec_data(const uint32_t hdr[2], const unsigned char *p)
{
	if (hdr[1] != REC_HEAP)
		return p + IP_HDR;
	const unsigned char *m;
	memcpy(&m, p + IP_HDR, sizeof(m));
	return m;
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
	if ((r = recv_rec(ic, d, hdr, &p, dl)) < 0)
		return r;
	if (hdr[0] > cap) {
		pthread_mutex_unlock(&d->mu);
		c->need_len = hdr[0];
		return -EMSGSIZE;
	}
	const unsigned char *m = rec_data(hdr, p);
	if (hdr[0])
		memcpy(buf, m, hdr[0]);
	if (hdr[1] == REC_HEAP)
		free((void *)m);
	consume(d, hdr);
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
	if ((r = recv_rec(ic, d, hdr, &p, dl)) < 0)
		return r;
	pthread_mutex_unlock(&d->mu);
	/* (the record stays at the tail, in place, until release: the
	 * writer never overwrites what lies between tail and head) */
	*msg = rec_data(hdr, p);
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
		free((void *)rec_data(hdr, d->ring + (d->tail & (d->size - 1))));
	ic->peeked = false;
	consume(d, hdr);
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
			ep_ev(ic->ep);
			pthread_mutex_unlock(&ic->ep->mu);
		}
		bind_evfd(ic);
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
		return ep_register(&ic->ep, u->path, false, c->max_msg);
	struct connect_try t = { .name = u->path, .cap = c->cfg.capacity, .max_msg = c->max_msg };
	if ((r = ipc__retry(c->cfg.connect_timeout_ms, connect_try, &t)) < 0)
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
	if (r < 0 || (r = core_new(&k, a->cfg.capacity, 0)) < 0)
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
		ep_unregister(ic->ep);
	ic->ep = NULL;
	if (ic->k && ipc__owned(c->owner)) {
		core_close_side(ic->k, ic->side);
		core_unref(ic->k);
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
	return r < 0 ? r : ep_register(&IPL(l)->ep, u->path, true, l->cfg.max_msg);
}

static int ip_accept(ipc_listener *l, ipc_chan *c, ipc_deadline *dl)
{
	struct ip_chan *ic = IP(c);
	if (!ic->alock_init)
		return -ENOMEM;
	struct core *k;
	int r = ep_take(IPL(l)->ep, ic, dl, &k);
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
		ep_ev(e);
	}
	pthread_mutex_unlock(&e->mu);
	return il->evfd;
}

static void ip_listener_close(ipc_listener *l)
{
	struct ip_listener *il = IPL(l);
	if (il->ep && ipc__owned(l->owner))
		ep_unregister(il->ep);
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
