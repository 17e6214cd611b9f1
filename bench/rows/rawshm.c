/*
 * rows/rawshm.c - raw shared-memory baselines: a one-slot mailbox per
 * direction in a MAP_SHARED anonymous mapping (made before the fork), a
 * flag alone on its cache line, the length and the data from the next line
 * on, memcpy in, a release-store of the flag, memcpy out.
 *   spin     the reader spins with pause on the flag
 *   eventfd  the reader sleeps in read(eventfd), the writer writes it after
 *            each message (in a stream the reader also signals "slot free")
 */
#include "row.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#define CACHELINE 64
#define BOX_HDR (CACHELINE + 8)

struct box {
	_Atomic uint64_t full;
	char pad0[CACHELINE - sizeof(uint64_t)];
	uint64_t len;
	unsigned char data[];
};

struct shm_prep {
	void *map;
	size_t map_len;
	int efd_data[2], efd_free[2];   /* per direction (0: leader -> echo) */
};

static size_t box_span(size_t size)
{
	return (BOX_HDR + size + CACHELINE - 1) & ~(size_t)(CACHELINE - 1);
}

static struct shm_prep *sp(struct ep *e)
{
	return e->c->prep;
}

static struct box *box_of(struct ep *e, int dir)
{
	return (struct box *)((char *)sp(e)->map + (size_t)dir * box_span(e->c->s.size));
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static int mb_prepare(struct chan *c)
{
	struct shm_prep *p = c->prep;
	for (int i = 0; i < 2; i++)
		p->efd_data[i] = p->efd_free[i] = -1;
	p->map_len = 2 * box_span(c->s.size);
	p->map = mmap(NULL, p->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE,
		      -1, 0);
	if (p->map == MAP_FAILED) {
		p->map = NULL;
		return -errno;
	}
	return 0;
}

static int efd_prepare(struct chan *c)
{
	struct shm_prep *p = c->prep;
	int r = mb_prepare(c);
	for (int i = 0; !r && i < 2; i++) {
		p->efd_data[i] = eventfd(0, EFD_CLOEXEC);
		p->efd_free[i] = eventfd(0, EFD_CLOEXEC);
		if (p->efd_data[i] < 0 || p->efd_free[i] < 0)
			r = -errno;
	}
	return r;
}

static int mb_open(struct ep *e)
{
	e->spins = sp(e)->efd_data[0] < 0;
	return 0;
}

static void mb_close(struct ep *e)
{
	(void)e;   /* the mapping and eventfds belong to the row (cleanup) */
}

static void mb_cleanup(struct chan *c)
{
	struct shm_prep *p = c->prep;
	if (!p)
		return;
	for (int i = 0; i < 2; i++) {
		if (p->efd_data[i] >= 0)
			close(p->efd_data[i]);
		if (p->efd_free[i] >= 0)
			close(p->efd_free[i]);
		p->efd_data[i] = p->efd_free[i] = -1;
	}
	if (p->map)
		munmap(p->map, p->map_len);
	p->map = NULL;
}

/* Spin until the flag of b equals want. Every 2^20 turns: has the timeout
 * passed, or the peer gone? */
static int box_spin(struct ep *e, struct box *b, uint64_t want, int timeout_ms)
{
	uint64_t start = 0;
	for (unsigned n = 1;; n++) {
		if (atomic_load_explicit(&b->full, memory_order_acquire) == want)
			return 0;
		if (timeout_ms == 0)
			return -EAGAIN;
		cpu_relax();
		if ((n & ((1u << 20) - 1)) == 0) {
			if (ctl_peer_gone(e->ctl))
				return -EPIPE;
			if (timeout_ms > 0) {
				if (!start)
					start = now_ns();
				else if (now_ns() - start > (uint64_t)timeout_ms * 1000000u)
					return -ETIMEDOUT;
			}
		}
	}
}

static int spin_send(struct ep *e, const void *buf, size_t len)
{
	struct box *b = box_of(e, e->side);
	int r = box_spin(e, b, 0, -1);
	if (r)
		return r;
	memcpy(b->data, buf, len);
	b->len = len;
	atomic_store_explicit(&b->full, 1, memory_order_release);
	return 0;
}

static ssize_t spin_recv(struct ep *e, void *buf, size_t cap, int timeout_ms)
{
	struct box *b = box_of(e, !e->side);
	int r = box_spin(e, b, 1, timeout_ms);
	if (r)
		return r;
	size_t len = b->len;
	if (len > cap)
		return -EMSGSIZE;
	memcpy(buf, b->data, len);
	atomic_store_explicit(&b->full, 0, memory_order_release);
	return (ssize_t)len;
}

/* A blocking eventfd read (a poll only to honour a timeout). */
static int efd_read(int fd, int timeout_ms)
{
	uint64_t v;
	if (timeout_ms >= 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r;
		while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
			;
		if (r < 0)
			return -errno;
		if (r == 0)
			return timeout_ms ? -ETIMEDOUT : -EAGAIN;
	}
	for (;;) {
		if (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

static int efd_write(int fd)
{
	uint64_t one = 1;
	for (;;) {
		if (write(fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

static int efd_send(struct ep *e, const void *buf, size_t len)
{
	int d = e->side;
	struct box *b = box_of(e, d);
	while (atomic_load_explicit(&b->full, memory_order_acquire)) {
		int r = efd_read(sp(e)->efd_free[d], -1);
		if (r)
			return r;
	}
	memcpy(b->data, buf, len);
	b->len = len;
	atomic_store_explicit(&b->full, 1, memory_order_release);
	return efd_write(sp(e)->efd_data[d]);
}

static ssize_t efd_recv(struct ep *e, void *buf, size_t cap, int timeout_ms)
{
	int d = !e->side;
	struct box *b = box_of(e, d);
	while (!atomic_load_explicit(&b->full, memory_order_acquire)) {
		int r = efd_read(sp(e)->efd_data[d], timeout_ms);
		if (r)
			return r;
	}
	size_t len = b->len;
	if (len > cap)
		return -EMSGSIZE;
	memcpy(buf, b->data, len);
	atomic_store_explicit(&b->full, 0, memory_order_release);
	if (e->stream)
		return efd_write(sp(e)->efd_free[d]) ? -EIO : (ssize_t)len;
	return (ssize_t)len;
}

static int efd_wait(struct ep *e, uint64_t deadline_ns)
{
	return wait_fd_until(sp(e)->efd_data[!e->side], deadline_ns);
}

const struct kind kind_raw_spin = {
	.impl = "raw", .prep_size = sizeof(struct shm_prep), .slots = 1, .prepare = mb_prepare, .open = mb_open,
	.close = mb_close, .cleanup = mb_cleanup, .send = spin_send, .recv = spin_recv,
};

const struct kind kind_raw_eventfd = {
	.impl = "raw", .prep_size = sizeof(struct shm_prep), .slots = 1, .prepare = efd_prepare, .open = mb_open,
	.close = mb_close, .cleanup = mb_cleanup, .send = efd_send, .recv = efd_recv, .wait = efd_wait,
};
