/*
 * soak.c - the soak campaign. For every reliable backend: two connected
 * ends, each with one sending and one receiving thread, carry
 * STRESS_SOAK_MSGS messages in all (half each way; full 10,000,000, short
 * 200,000) of mixed sizes from 0 B to 1 MiB (st_size: most below 1 KiB,
 * 1 in 100 up to 64 KiB, 1 in 1000 from 512 KiB to 1 MiB; capped at the
 * channel's max_msg, 8 KiB on a default mq). Checks:
 *   - every message arrives once, in order, whole: the receiver knows the
 *     sequence number and length it expects next and checks every byte
 *     (zero lost, duplicated, reordered or corrupted);
 *   - resident memory and open descriptors are flat from the end of the
 *     first million messages (first tenth in a short run) to the end: the
 *     descriptors equal, the memory within STRESS_SOAK_RSS_SLACK_KB.
 * Every call has a 30 s liveness timeout and each backend a time bound
 * (STRESS_SOAK_MAX_S), so nothing hangs. Prints messages, bytes, seconds,
 * RSS and descriptors per backend.
 */
#include "stress.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CALL_TIMEOUT_MS 30000

struct flow {
	ipc_chan *tx, *rx;
	uint32_t dir;
	uint64_t n;
	size_t cap;                 /* largest message on this channel */
	int64_t deadline_ms;
	_Atomic uint64_t received;
	_Atomic int failed;
	uint64_t bytes;
	char why[256];
};

static _Atomic int stop_all;

static void flow_fail(struct flow *f, const char *what, uint64_t i, long r)
{
	if (atomic_exchange(&f->failed, 1) == 0)
		snprintf(f->why, sizeof(f->why), "%s at message #%llu (%ld %s)", what,
			 (unsigned long long)i, r, tu_err(r));
	atomic_store(&stop_all, 1);
}

static void *sender(void *p)
{
	struct flow *f = p;
	char *buf = malloc(f->cap ? f->cap : 1);

	for (uint64_t i = 0; i < f->n && !atomic_load(&stop_all); i++) {
		size_t len = st_size(f->dir, i, ST_MIB, f->cap);
		int r;

		st_fill(buf, len, f->dir, i);
		r = ipc_send(f->tx, buf, len, CALL_TIMEOUT_MS);
		if (r < 0) {
			flow_fail(f, "send failed", i, r);
			break;
		}
		if ((i & 1023) == 0 && tu_now_ms() > f->deadline_ms) {
			flow_fail(f, "time bound (STRESS_SOAK_MAX_S) reached", i, 0);
			break;
		}
	}
	free(buf);
	return NULL;
}

static void *receiver(void *p)
{
	struct flow *f = p;
	char *buf = malloc(f->cap ? f->cap : 1);

	for (uint64_t i = 0; i < f->n && !atomic_load(&stop_all); i++) {
		size_t len = st_size(f->dir, i, ST_MIB, f->cap);
		ssize_t r = ipc_recv(f->rx, buf, f->cap, CALL_TIMEOUT_MS);

		if (r < 0) {
			flow_fail(f, "recv failed", i, (long)r);
			break;
		}
		if (st_check(buf, r, len, f->dir, i) != 0) {
			uint64_t seq = st_seq_of(buf, r);

			if (seq != ~0ull && (uint32_t)(seq >> 48) == f->dir && (seq & 0xffffffffffffull) != i)
				flow_fail(f, "lost, duplicated or reordered: got the message numbered in r",
					  i, (long)(seq & 0xffffffffffffull));
			else
				flow_fail(f, "corrupted or of the wrong length (r: bytes received)", i,
					  (long)r);
			break;
		}
		f->bytes += (size_t)r;
		atomic_store_explicit(&f->received, i + 1, memory_order_relaxed);
	}
	free(buf);
	return NULL;
}

static bool soak_backend(const char *be, uint64_t total, long max_s, long slack_kb)
{
	struct flow fl[2];
	pthread_t th[4];
	ipc_chan *a, *b;
	ipc_info ia, ib;
	uint64_t first_mark = total / 10 < 1000000 ? total / 10 : 1000000;
	long rss0 = -1, rss1, fds0 = -1, fds1;
	int64_t t0;
	int r;

	atomic_store(&stop_all, 0);
	r = st_connect(be, NULL, &a, &b);
	if (r < 0) {
		st_fail("%s: cannot connect: %d %s", be, r, tu_err(r));
		return false;
	}
	ipc_info_get(a, &ia);
	ipc_info_get(b, &ib);
	t0 = tu_now_ms();
	for (int d = 0; d < 2; d++) {
		memset(&fl[d], 0, sizeof(fl[d]));
		fl[d].tx = d ? b : a;
		fl[d].rx = d ? a : b;
		fl[d].dir = (uint32_t)d + 1;
		fl[d].n = total / 2 + (d == 0 ? total % 2 : 0);
		fl[d].cap = ia.max_msg < ib.max_msg ? ia.max_msg : ib.max_msg;
		if (fl[d].cap > ST_MIB)
			fl[d].cap = ST_MIB;
		fl[d].deadline_ms = t0 + max_s * 1000;
	}
	for (int d = 0; d < 2; d++) {
		pthread_create(&th[2 * d], NULL, receiver, &fl[d]);
		pthread_create(&th[2 * d + 1], NULL, sender, &fl[d]);
	}
	/* sample memory and descriptors once the first million has passed */
	for (;;) {
		uint64_t got = atomic_load(&fl[0].received) + atomic_load(&fl[1].received);

		if (rss0 < 0 && got >= first_mark) {
			rss0 = st_rss_kb();
			fds0 = st_fd_count();
		}
		if (got >= total || atomic_load(&stop_all))
			break;
		tu_sleep_ms(20);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	rss1 = st_rss_kb();
	fds1 = st_fd_count();
	double secs = (double)(tu_now_ms() - t0) / 1000.0;
	uint64_t got = fl[0].received + fl[1].received;
	double gib = (double)(fl[0].bytes + fl[1].bytes) / (1 << 30);

	ipc_close(a);
	ipc_close(b);
	for (int d = 0; d < 2; d++)
		if (fl[d].failed)
			st_fail("%s: direction %d: %s", be, d + 1, fl[d].why);
	st_log("%s: %llu of %llu messages (%.2f GiB, largest %zu B) in %.1f s, %.0f msg/s; "
	       "RSS %ld -> %ld KiB, descriptors %ld -> %ld (after the first %llu and at the end)",
	       be, (unsigned long long)got, (unsigned long long)total, gib, fl[0].cap, secs,
	       (double)got / secs, rss0, rss1, fds0, fds1, (unsigned long long)first_mark);
	if (fl[0].failed || fl[1].failed)
		return false;
	if (fds0 != fds1) {
		st_fail("%s: descriptors grew from %ld to %ld", be, fds0, fds1);
		return false;
	}
	if (rss1 - rss0 > slack_kb) {
		st_fail("%s: resident memory grew by %ld KiB (allowed %ld)", be, rss1 - rss0, slack_kb);
		return false;
	}
	return true;
}

int main(void)
{
	const char *const *bes = ipc_backends();
	uint64_t total = (uint64_t)st_knob("STRESS_SOAK_MSGS", 10000000, 200000);
	long max_s = st_knob("STRESS_SOAK_MAX_S", 900, 120);
	long slack = st_knob("STRESS_SOAK_RSS_SLACK_KB", 4096, 4096);
	int passed = 0, skipped = 0;

	st_campaign = "soak";
	st_own_user();
	st_log("%llu messages per backend, sizes 0 B - 1 MiB, 2 senders + 2 receivers, bound %ld s each",
	       (unsigned long long)total, max_s);
	for (size_t k = 0; bes[k]; k++) {
		if (!st_want(bes[k]))
			continue;
		if (!(tu_expect(bes[k])->caps & IPC_CAP_RELIABLE)) {
			st_log("%s: skipped (not reliable: no order or delivery promise)", bes[k]);
			skipped++;
			continue;
		}
		if (soak_backend(bes[k], total, max_s, slack))
			passed++;
	}
	return st_finish(passed, skipped);
}
