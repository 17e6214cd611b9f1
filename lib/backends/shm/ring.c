/* ring.c - SPSC byte rings in shared memory; see ring.h. */
#include "backends/shm/ring.h"

#include <errno.h>

void ipc__ring_init(struct ipc_ring *r, struct ipc_ring_ctl *ctl, unsigned char *data,
		    uint64_t size, uint64_t max_msg)
{
	r->ctl = ctl;
	r->data = data;
	r->size = size;
	r->mask = size - 1;
	r->pos = 0;
	r->cache = 0;
	r->max_msg = max_msg;
}

int64_t ipc__ring_space(struct ipc_ring *r, uint64_t want)
{
	uint64_t used = r->pos - r->cache;
	if (r->size - used >= want)
		return (int64_t)(r->size - used);
	uint64_t t = atomic_load_explicit(&r->ctl->tail, memory_order_acquire);
	used = r->pos - t;  /* wraps to a huge value when t is ahead of us */
	if (used > r->size)
		return -EPROTO;
	r->cache = t;
	return (int64_t)(r->size - used);
}

void ipc__ring_put(struct ipc_ring *r, uint32_t len, uint32_t total)
{
	uint64_t hdr = (uint64_t)len | (uint64_t)total << 32;
	/* header as one 8-byte store: the reader loads it the same way */
	__atomic_store_n((uint64_t *)(void *)(r->data + (r->pos & r->mask)), hdr, __ATOMIC_RELAXED);
	r->pos += ipc__rec_size(len);
}

int ipc__ring_next(struct ipc_ring *r, struct ipc_rec *rec)
{
	uint64_t avail = r->cache - r->pos;
	if (avail == 0) {
		uint64_t h = atomic_load_explicit(&r->ctl->head, memory_order_acquire);
		avail = h - r->pos;
		/* the writer only publishes whole 8-aligned records, never
		 * more than the ring holds, never going backwards */
		if (avail > r->size || (avail & 7))
			return -EPROTO;
		r->cache = h;
		if (avail == 0)
			return 0;
	} else if (avail > r->size) {
		return -EPROTO;
	}
	const unsigned char *p = r->data + (r->pos & r->mask);
	/* one load, copied: the peer may rewrite the header after we check it */
	uint64_t hdr = __atomic_load_n((const uint64_t *)(const void *)p, __ATOMIC_RELAXED);
	uint32_t len = (uint32_t)hdr, total = (uint32_t)(hdr >> 32);
	uint64_t size = ipc__rec_size(len);
	if (size > avail)
		return -EPROTO;  /* also bounds len by the ring size */
	if (total != IPC_REC_CONT && (total < len || total > r->max_msg))
		return -EPROTO;
	rec->data = p + IPC_REC_HDR;
	rec->len = len;
	rec->total = total;
	rec->size = size;
	return 1;
}

int ipc__rx_seq_check(const struct ipc_rx_seq *q, const struct ipc_rec *rec)
{
	if (q->in_msg) {
		if (rec->total != IPC_REC_CONT || rec->len == 0 || rec->len > q->total - q->got)
			return -EPROTO;
		return IPC_REC_MORE;
	}
	if (rec->total == IPC_REC_CONT)
		return -EPROTO;
	if (rec->total == rec->len)
		return IPC_REC_WHOLE;
	if (rec->len == 0)
		return -EPROTO;
	return IPC_REC_FIRST;
}

bool ipc__rx_seq_take(struct ipc_rx_seq *q, const struct ipc_rec *rec, int kind)
{
	switch (kind) {
	case IPC_REC_WHOLE:
		return true;
	case IPC_REC_FIRST:
		q->in_msg = true;
		q->total = rec->total;
		q->got = rec->len;
		return false;
	default:
		q->got += rec->len;
		if (q->got == q->total) {
			q->in_msg = false;
			return true;
		}
		return false;
	}
}
