/*
 * fuzz_shm_ring.c - libFuzzer target for the shm ring reader: the code that
 * a hostile peer's bytes reach. The input is a ring as a peer could leave
 * it (the head index, later head updates, the record bytes); the reader
 * must return records inside the ring or -EPROTO, never touch memory
 * outside it, and never let a message exceed max_msg.
 *
 * Input: u8 ring-size selector, u64 head, then the ring's bytes; bytes
 * beyond the ring give further head values, applied one per record read.
 * Records are taken singly and in batches (one tail update for several).
 */
#include "backends/shm/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
	if (n < 9)
		return 0;
	uint64_t size = (uint64_t)4096 << (in[0] % 3);
	uint64_t head;
	memcpy(&head, in + 1, 8);
	in += 9;
	n -= 9;
	/* the double mapping: the same bytes twice */
	unsigned char *data = calloc(2, size);
	struct ipc_ring_ctl *ctl = aligned_alloc(IPC_SHM_LINE, sizeof(*ctl));
	if (!data || !ctl)
		abort();
	memset(ctl, 0, sizeof(*ctl));
	size_t take = n < size ? n : size;
	memcpy(data, in, take);
	memcpy(data + size, data, size);
	in += take;
	n -= take;
	/* start anywhere: the free-running indices wrap */
	uint64_t start = (head & ~(uint64_t)7) - (head % (2 * size)) % size;
	start &= ~(uint64_t)7;
	atomic_store(&ctl->head, head);

	struct ipc_ring r;
	ipc__ring_init(&r, ctl, data, size, 3 * size);
	r.pos = r.cache = start;
	struct ipc_rx_seq seq = { 0 };
	unsigned char *msg = NULL;
	for (int i = 0; i < 10000; i++) {
		struct ipc_rec rec;
		int k = ipc__ring_next(&r, &rec);
		if (k <= 0)
			break;
		/* the record must lie inside the mapping */
		if (rec.data < data || rec.data + rec.len > data + 2 * size)
			abort();
		int kind = ipc__rx_seq_check(&seq, &rec);
		if (kind < 0)
			break;
		if (kind == IPC_REC_FIRST) {
			if (rec.total > r.max_msg)
				abort();
			msg = malloc(rec.total);
			if (!msg)
				abort();
		}
		if (kind == IPC_REC_WHOLE) {
			unsigned char *m = malloc(rec.len + 1);
			memcpy(m, rec.data, rec.len);
			free(m);
		} else {
			memcpy(msg + (kind == IPC_REC_FIRST ? 0 : seq.got), rec.data, rec.len);
		}
		if (ipc__rx_seq_take(&seq, &rec, kind)) {
			free(msg);
			msg = NULL;
		}
		/* taken one by one or in batches (ipc_recvv): the reader's view
		 * is the same, the writer sees the tail only on release */
		if (i % 4 == 3)
			ipc__ring_consume(&r, &rec);
		else
			ipc__ring_skip(&r, &rec);
		if (n >= 8) {
			uint64_t h;
			memcpy(&h, in, 8);
			atomic_store(&ctl->head, h);
			in += 8;
			n -= 8;
		}
	}
	free(msg);
	free(data);
	free(ctl);
	return 0;
}
