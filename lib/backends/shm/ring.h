/*
 * ring.h - the shared-memory layout of the shm backend and its
 * single-producer single-consumer byte rings (docs/backends/shm.md has
 * the bytes). This part does no system calls and never waits: it is the
 * code a hostile peer's bytes reach, so it is kept apart for the fuzzer
 * (tests/fuzz/fuzz_shm_ring.c) and the corrupt-ring tests.
 *
 * One memfd holds a header page and two rings:
 *   [0, hdr_size)                      struct ipc_shm_page
 *   [hdr_size, +ring_size[0])          ring 0 data: server -> client
 *   [.., +ring_size[1])                ring 1 data: client -> server
 * Each process maps every ring's data twice, back to back, so a record
 * that wraps around the end is contiguous in memory (zero-copy in place).
 *
 * A ring carries records aligned to 8 bytes:
 *   u32 len    payload bytes in this record
 *   u32 total  the whole message's length in its first record, or
 *              IPC_REC_CONT in the following records of a fragmented one
 *   len bytes of payload, padding to a multiple of 8.
 * head and tail are free-running u64 byte counts (position = count & mask).
 */
#ifndef IPC_SHM_RING_H
#define IPC_SHM_RING_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IPC_SHM_MAGIC "IPCKSHM"     /* 8 bytes with the NUL */
#define IPC_SHM_VERSION 1u
#define IPC_SHM_LINE 128            /* two x86 lines: no adjacent-line prefetch sharing */
#define IPC_REC_HDR 8u
#define IPC_REC_CONT 0xFFFFFFFFu
#define IPC_SHM_MIN_RING ((uint64_t)4096)
#define IPC_SHM_MAX_RING ((uint64_t)1 << 30)
#define IPC_SHM_MAX_MSG ((size_t)1 << 30)

/* Control block of one ring: every field on its own pair of lines. */
struct ipc_ring_ctl {
	_Alignas(IPC_SHM_LINE) _Atomic uint64_t head;   /* written by the writer */
	_Alignas(IPC_SHM_LINE) _Atomic uint64_t tail;   /* written by the reader */
	_Alignas(IPC_SHM_LINE) _Atomic uint32_t rsleep; /* reader asleep (set by reader, cleared by writer) */
	_Alignas(IPC_SHM_LINE) _Atomic uint32_t wsleep; /* writer asleep (set by writer, cleared by reader) */
	/* Read-mostly: may this ring's reader ever sleep, and how does it
	 * pair with the writer (IPC_RWAIT_*)? Set by the server at creation
	 * from the reader's wait mode; a reader lowers it to IPC_RWAIT_FENCE
	 * (ipc_fd) only followed by a global memory barrier (membarrier). */
	_Alignas(IPC_SHM_LINE) _Atomic uint32_t rwait;
	/* May this ring's writer sleep on a full ring? 0 for spin mode. */
	_Atomic uint32_t wwait;
};

/* rwait values. NEVER: a spin-mode reader; the writer skips the fence and
 * the rsleep check after each index update. FENCE: the writer fences, then
 * checks rsleep (Dekker with the reader's fence). MEMBARRIER: the reader
 * calls membarrier(GLOBAL_EXPEDITED) before it sleeps; a writer whose
 * process is registered for it checks rsleep without a fence. */
enum { IPC_RWAIT_NEVER = 0, IPC_RWAIT_FENCE = 1, IPC_RWAIT_MEMBARRIER = 2 };

/* The header page at offset 0 of the memfd. */
struct ipc_shm_page {
	char magic[8];                 /* "IPCKSHM\0" */
	uint32_t version;              /* 1 */
	uint32_t hdr_size;             /* bytes before ring 0's data */
	uint64_t ring_size[2];         /* ring 0: server->client, ring 1: client->server */
	uint64_t max_msg[2];           /* server's, client's */
	/* A hint: counts the closes of each end. Only a hint: after fork() a
	 * process may close its copy of an end that another process still
	 * uses, so the peer confirms each new count with the socket. */
	_Alignas(256) _Atomic uint32_t closed[2];
	unsigned char pad[1024 - 256 - 8];
	struct ipc_ring_ctl ctl[2];    /* at 1024 and 1664 */
};

_Static_assert(sizeof(struct ipc_ring_ctl) == 5 * IPC_SHM_LINE, "ring ctl layout");
_Static_assert(offsetof(struct ipc_shm_page, closed) == 256, "closed offset");
_Static_assert(offsetof(struct ipc_shm_page, ctl) == 1024, "ctl offset");
_Static_assert(sizeof(struct ipc_shm_page) <= 4096, "header fits a page");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "lock-free 64-bit atomics are needed across processes");

/* One process's view of one direction. */
struct ipc_ring {
	struct ipc_ring_ctl *ctl;
	unsigned char *data;   /* 2 * size readable bytes (double mapping) */
	uint64_t size, mask;
	uint64_t pos;          /* writer: private head; reader: private tail */
	uint64_t cache;        /* writer: last tail seen; reader: last head seen */
	uint64_t max_msg;      /* reader: the largest message total accepted */
};

/* A validated record at the reader's position. */
struct ipc_rec {
	const unsigned char *data; /* payload, contiguous */
	uint32_t len;
	uint32_t total;            /* IPC_REC_CONT for a continuation */
	uint64_t size;             /* bytes the record occupies in the ring */
};

static inline uint64_t ipc__rec_size(uint64_t len)
{
	return IPC_REC_HDR + ((len + 7) & ~(uint64_t)7);
}

void ipc__ring_init(struct ipc_ring *r, struct ipc_ring_ctl *ctl, unsigned char *data,
		    uint64_t size, uint64_t max_msg);

/* Writer: free bytes, reloading the peer's tail when fewer than want are
 * known free. -EPROTO when the tail is impossible. */
/* (inline: it runs once or twice per message) */
static inline int64_t ipc__ring_space(struct ipc_ring *r, uint64_t want)
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
/* Writer: where the next record's payload goes (after its header). */
static inline unsigned char *ipc__ring_wptr(struct ipc_ring *r)
{
	return r->data + (r->pos & r->mask) + IPC_REC_HDR;
}
/* Writer: write the header of the record whose payload is already at
 * wptr and advance the private head (not yet visible to the reader). */
/* (inline: it runs once or twice per message) */
static inline void ipc__ring_put(struct ipc_ring *r, uint32_t len, uint32_t total)
{
	uint64_t hdr = (uint64_t)len | (uint64_t)total << 32;
	/* header as one 8-byte store: the reader loads it the same way */
	__atomic_store_n((uint64_t *)(void *)(r->data + (r->pos & r->mask)), hdr, __ATOMIC_RELAXED);
	r->pos += ipc__rec_size(len);
}
/* Writer: make everything put so far visible. */
static inline void ipc__ring_publish(struct ipc_ring *r)
{
	atomic_store_explicit(&r->ctl->head, r->pos, memory_order_release);
}

/* Reader: 1 and *rec when a record is waiting (header validated: it lies
 * wholly inside what the writer published, len and total consistent and
 * total <= max_msg), 0 when the ring is empty, -EPROTO when corrupt. */
/* (inline: it runs once or twice per message) */
static inline int ipc__ring_next(struct ipc_ring *r, struct ipc_rec *rec)
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
/* Reader: is anything published beyond our position? (no validation) */
static inline bool ipc__ring_nonempty(struct ipc_ring *r)
{
	return r->cache != r->pos ||
	       atomic_load_explicit(&r->ctl->head, memory_order_acquire) != r->pos;
}
/* Reader: drop rec without telling the writer yet (a batch: one
 * ipc__ring_release after several); ipc__ring_next goes on from there. */
static inline void ipc__ring_skip(struct ipc_ring *r, const struct ipc_rec *rec)
{
	r->pos += rec->size;
}
/* Reader: make the space of everything dropped so far visible. */
static inline void ipc__ring_release(struct ipc_ring *r)
{
	atomic_store_explicit(&r->ctl->tail, r->pos, memory_order_release);
}
/* Reader: drop rec and make the space visible to the writer. */
static inline void ipc__ring_consume(struct ipc_ring *r, const struct ipc_rec *rec)
{
	ipc__ring_skip(r, rec);
	ipc__ring_release(r);
}

/* Reader: the fragment state machine. A message is one record with
 * total == len, or a first record with total > len > 0 followed by
 * continuation records (total == IPC_REC_CONT, len > 0) adding up to total. */
struct ipc_rx_seq {
	bool in_msg;
	uint32_t total, got;
};
enum { IPC_REC_WHOLE = 1, IPC_REC_FIRST = 2, IPC_REC_MORE = 3 };
/* Classify rec against the state (without changing it): IPC_REC_* or -EPROTO. */
int ipc__rx_seq_check(const struct ipc_rx_seq *q, const struct ipc_rec *rec);
/* Account for a record that check() accepted; true when a message ended. */
bool ipc__rx_seq_take(struct ipc_rx_seq *q, const struct ipc_rec *rec, int kind);

#endif
