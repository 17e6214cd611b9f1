/*
 * inproc/ring.c - the shared state of an inproc channel and its rings: the
 * core (two directions, reference counted), the records (DATA, HEAP, PAD)
 * and how a writer finds room and publishes and a reader takes a record
 * and consumes it, waiting as wait= says, and the eventfd levels that
 * ipc_fd reads. The rendezvous is in rendezvous.c, the API ops in
 * inproc.c; inproc.h has the layout.
 */
#include "backends/inproc/inproc.h"
#include "posix/fdio.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ eventfds */

/* (d->mu held) the reader's level: a record or end-of-stream waits */
void ipc__ip_dir_ev(struct dir *d)
{
	ipc__ev_level(d->evfd, &d->ev_on, d->head != d->tail || d->wclosed);
}

void ipc__ip_dir_changed(struct dir *d)
{
	atomic_fetch_add_explicit(&d->ver, 1, memory_order_release);
	ipc__ip_dir_ev(d);
}

/* ---------------------------------------------------------------- core */

int ipc__ip_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	if (pthread_condattr_init(&a) != 0)
		return -ENOMEM;
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	int r = pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
	return r ? -ENOMEM : 0;
}

static size_t ipc__ip_ring_size(size_t cap)
{
	size_t s = IP_MIN_RING;
	while (s < cap)
		s <<= 1;
	return s;
}

static void ipc__ip_core_free(struct core *k)
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

void ipc__ip_core_unref(struct core *k)
{
	if (k && atomic_fetch_sub(&k->refs, 1) == 1)
		ipc__ip_core_free(k);
}

/* A core for two ends whose capacity requests are cap0 (side 0) and cap1. */
int ipc__ip_core_new(struct core **out, size_t cap0, size_t cap1)
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
		d->size = ipc__ip_ring_size(cap);
		d->heap_cap = cap;
		d->evfd = -1;
		if (pthread_mutex_init(&d->mu, NULL) != 0 || ipc__ip_cond_init(&d->data) < 0 ||
		    ipc__ip_cond_init(&d->space) < 0 || !(d->ring = ipc__malloc(d->size))) {
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
		ipc__ip_core_free(k);
		return r;
	}
	atomic_init(&k->refs, 2);
	*out = k;
	return 0;
}

/* ------------------------------------------------------------- waiting */

/* (d->mu held) wait until d changes, for at most dl, as mode says. 0 to
 * look again, or the timeout error. */
int ipc__ip_dir_wait(struct ip_chan *ic, struct dir *d, pthread_cond_t *cv, ipc_deadline *dl)
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

/* Mark both directions of k closed from side's end (the peer sees EOF
 * after what was sent, and -EPIPE on send). */
void ipc__ip_core_close_side(struct core *k, int side)
{
	struct dir *out = &k->d[side], *in = &k->d[1 - side];
	pthread_mutex_lock(&out->mu);
	out->wclosed = true;
	pthread_cond_broadcast(&out->data);
	ipc__ip_dir_changed(out);
	pthread_mutex_unlock(&out->mu);
	pthread_mutex_lock(&in->mu);
	in->rclosed = true;
	in->evfd = -1; /* ours: about to be closed */
	in->ev_on = false;
	pthread_cond_broadcast(&in->space);
	ipc__ip_dir_changed(in);
	pthread_mutex_unlock(&in->mu);
}

/* --------------------------------------------------------------- sends */

/* (d->mu held) room for a record of rs bytes at the head, counting the
 * padding to the ring's end when it does not fit there: the offset of the
 * record from head (0 or the pad's length), or -1 when there is no room. */
static ssize_t ipc__ip_room_for(struct dir *d, size_t rs)
{
	size_t used = d->head - d->tail, pos = d->head & (d->size - 1);
	size_t pad = pos + rs > d->size ? d->size - pos : 0;
	return used + pad + rs <= d->size ? (ssize_t)pad : -1;
}

/* (d->mu held) write a pad record of n bytes at the head */
static void ipc__ip_put_pad(struct dir *d, size_t n)
{
	uint32_t hdr[2] = { (uint32_t)(n - IP_HDR), REC_PAD };
	memcpy(d->ring + (d->head & (d->size - 1)), hdr, sizeof(hdr));
	d->head += n;
}

/* Wait within dl for room for one message of len bytes; on success d->mu
 * is held, the padding (if any) is written and *p is where its record
 * goes. -EPIPE when the reader closed. */
int ipc__ip_send_room(struct ip_chan *ic, struct dir *d, size_t len, bool *heap,
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
		ssize_t pad = ipc__ip_room_for(d, rs);
		bool budget = !*heap || d->heap == 0 || d->heap + len <= d->heap_cap;
		if (pad >= 0 && budget) {
			if (pad > 0)
				ipc__ip_put_pad(d, (size_t)pad);
			*p = d->ring + (d->head & (d->size - 1));
			return 0;
		}
		int r = ipc__ip_dir_wait(ic, d, &d->space, dl);
		if (r < 0) {
			pthread_mutex_unlock(&d->mu);
			return r;
		}
	}
}

/* (d->mu held) publish the record at the head and wake the reader */
void ipc__ip_publish(struct dir *d, uint32_t len, uint32_t kind, size_t heap)
{
	uint32_t hdr[2] = { len, kind };
	memcpy(d->ring + (d->head & (d->size - 1)), hdr, sizeof(hdr));
	d->head += rec_size(kind == REC_HEAP ? sizeof(void *) : len);
	d->heap += heap;
	pthread_cond_signal(&d->data);
	ipc__ip_dir_changed(d);
	pthread_mutex_unlock(&d->mu);
}

/* ------------------------------------------------------------ receives */

/* Wait within dl for a record; on success d->mu is held and hdr and *p
 * describe it (padding skipped). -EPIPE once drained and the writer
 * closed. */
int ipc__ip_recv_rec(struct ip_chan *ic, struct dir *d, uint32_t hdr[2], unsigned char **p,
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
		int r = ipc__ip_dir_wait(ic, d, &d->data, dl);
		if (r < 0) {
			pthread_mutex_unlock(&d->mu);
			return r;
		}
	}
}

/* (d->mu held) the record at the tail is done with */
void ipc__ip_consume(struct dir *d, const uint32_t hdr[2])
{
	if (hdr[1] == REC_HEAP) {
		d->tail += rec_size(sizeof(void *));
		d->heap -= hdr[0];
	} else {
		d->tail += rec_size(hdr[0]);
	}
	pthread_cond_signal(&d->space);
	ipc__ip_dir_changed(d);
	pthread_mutex_unlock(&d->mu);
}

const unsigned char *ipc__ip_rec_data(const uint32_t hdr[2], const unsigned char *p)
{
	if (hdr[1] != REC_HEAP)
		return p + IP_HDR;
	const unsigned char *m;
	memcpy(&m, p + IP_HDR, sizeof(m));
	return m;
}

