/*
 * zerocopy.c - a shared-memory producer and consumer that never copy a
 * payload: the producer writes each message in place in the ring, the
 * consumer reads it in place.
 *
 * Shows: ipc_send_reserve / ipc_send_commit (room in the ring, filled,
 * then published), ipc_recv_peek / ipc_recv_release (read in the ring,
 * then given back), a zero-length message as an end marker, and
 * ipc_info caps telling whether the backend is truly zero-copy (other
 * backends run the same code with one copy).
 *
 * Run in two terminals (or with & in one):
 *   ./build/examples/zerocopy producer shm://@zc 100000 4096
 *   ./build/examples/zerocopy consumer shm://@zc
 * The producer sends COUNT messages of SIZE bytes (default 10000, 4096),
 * each a sequence number followed by bytes derived from it; the consumer
 * checks every byte in place and answers with its count and checksum, which
 * the producer compares with its own.
 *
 * Exit status: 0 every message arrived intact, 1 an ipckit call failed or
 * a message was wrong, 2 usage.
 */
#include <ipckit.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TIMEOUT_MS = 10000 };

struct summary {
	uint64_t count;
	uint64_t sum;
};

/* Message i: an 8-byte sequence number, then bytes derived from it. */
static void fill(uint8_t *p, size_t len, uint64_t i)
{
	memcpy(p, &i, sizeof(i));
	for (size_t k = sizeof(i); k < len; k++)
		p[k] = (uint8_t)(i * 31 + k);
}

static uint64_t checksum(uint64_t sum, const uint8_t *p, size_t len)
{
	for (size_t k = 0; k < len; k++)
		sum = sum * 131 + p[k];
	return sum;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "zerocopy: %s: %s\n", what, ipc_strerror(err));
	return 1;
}

static int produce(const char *url, uint64_t count, size_t size)
{
	struct summary mine = { 0, 0 }, theirs;
	ipc_chan *c;
	ipc_info info;
	ssize_t n;
	int r = ipc_open(&c, url, IPC_SERVER, NULL);

	if (r < 0)
		return fail(url, r);
	ipc_info_get(c, &info);
	printf("ready %s (%s)\n", info.url,
	       info.caps & IPC_CAP_ZERO_COPY ? "zero-copy" : "this backend copies once");
	fflush(stdout);
	for (uint64_t i = 0; i < count; i++) {
		void *buf;

		/* The first reserve also waits for the consumer to attach. */
		if ((r = ipc_send_reserve(c, size, &buf, i == 0 ? 30000 : TIMEOUT_MS)) < 0)
			goto out;
		fill(buf, size, i);
		mine.sum = checksum(mine.sum, buf, size);
		if ((r = ipc_send_commit(c, size)) < 0)
			goto out;
		mine.count++;
	}
	if ((r = ipc_send(c, "", 0, TIMEOUT_MS)) < 0) /* end marker */
		goto out;
	if ((n = ipc_recv(c, &theirs, sizeof(theirs), TIMEOUT_MS)) != sizeof(theirs)) {
		r = n < 0 ? (int)n : -EPROTO;
		goto out;
	}
	ipc_close(c);
	printf("sent %" PRIu64 " x %zu bytes; consumer saw %" PRIu64 ", checksum %s\n", mine.count,
	       size, theirs.count, theirs.sum == mine.sum ? "matches" : "DIFFERS");
	return theirs.count == mine.count && theirs.sum == mine.sum ? 0 : 1;
out:
	ipc_close(c);
	return fail("producer", r);
}

static int consume(const char *url)
{
	ipc_opts opts = { .connect_timeout_ms = 10000 };
	struct summary s = { 0, 0 };
	ipc_chan *c;
	int r = ipc_open(&c, url, IPC_CLIENT, &opts);

	if (r < 0)
		return fail(url, r);
	for (;;) {
		const void *msg;
		uint64_t seq;
		ssize_t n = ipc_recv_peek(c, &msg, TIMEOUT_MS);

		if (n < 0) {
			r = (int)n;
			goto out;
		}
		if (n == 0) /* end marker */
			break;
		if ((size_t)n >= sizeof(seq))
			memcpy(&seq, msg, sizeof(seq));
		if ((size_t)n < sizeof(seq) || seq != s.count) {
			fprintf(stderr, "zerocopy: message %" PRIu64 " out of order\n", s.count);
			ipc_close(c);
			return 1;
		}
		s.sum = checksum(s.sum, msg, (size_t)n); /* read in place */
		s.count++;
		ipc_recv_release(c); /* the ring space goes back to the producer */
	}
	ipc_recv_release(c);
	r = ipc_send(c, &s, sizeof(s), TIMEOUT_MS);
out:
	ipc_close(c);
	if (r < 0)
		return fail("consumer", r);
	printf("received %" PRIu64 " messages\n", s.count);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "producer") == 0) {
		uint64_t count = argc > 3 ? strtoull(argv[3], NULL, 10) : 10000;
		size_t size = argc > 4 ? strtoul(argv[4], NULL, 10) : 4096;

		if (size < sizeof(uint64_t)) {
			fprintf(stderr, "zerocopy: SIZE must be at least %zu\n", sizeof(uint64_t));
			return 2;
		}
		return produce(argv[2], count, size);
	}
	if (argc == 3 && strcmp(argv[1], "consumer") == 0)
		return consume(argv[2]);
	fprintf(stderr, "usage: zerocopy producer URL [COUNT] [SIZE]\n"
			"       zerocopy consumer URL\n");
	return 2;
}
