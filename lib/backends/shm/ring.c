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
