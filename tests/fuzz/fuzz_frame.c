/*
 * fuzz_frame.c - libFuzzer target for the stream frame decoder.
 *
 * The input is written into one end of a socketpair whose other end is a
 * stream channel (lib/stream.h); the channel then receives until it
 * reports an error. Byte 0 picks the receive buffer size and whether a
 * valid hello is put in front, so the fuzzer reaches the frames quickly.
 * Whatever the bytes, recv must return a length within the buffer, or
 * -EMSGSIZE / -EPROTO / -EPIPE / -EAGAIN, and never touch memory it
 * does not own (ASan).
 */
#include "backend.h"
#include "stream/stream.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FUZZ_MAX_MSG 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern const struct ipc_backend ipc__backend_unix; /* (registered by lib/core.c) */

static ipc_chan *stream_chan(int fd)
{
	size_t sz = (sizeof(ipc_chan) + sizeof(struct ipc_stream) + 63) & ~(size_t)63;
	ipc_chan *c = aligned_alloc(64, sz);

	if (!c)
		abort();
	memset(c, 0, sz);
	c->be = &ipc__backend_unix;
	c->cfg.max_msg = FUZZ_MAX_MSG;
	c->cfg.connect_timeout_ms = 0;
	c->cfg.mode = 0600;
	c->max_msg = FUZZ_MAX_MSG;
	c->be->init(c); /* (descriptors -1, as the core does) */
	if (ipc__stream_init(c, fd, fd, true) < 0)
		abort();
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t caps[] = { 0, 1, 7, 64, 4096, 65536 };
	unsigned char hello[16] = { 'I', 'P', 'C', 'K', 1, 0, 16, 0, 0x00, 0x10, 0, 0, 0, 0, 0, 0 };
	unsigned char *buf;
	size_t cap;
	ipc_chan *c;
	int sv[2];

	if (size < 1 || size > 60000)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	cap = caps[data[0] % 6];
	if (data[0] & 0x80)
		(void)!write(sv[1], hello, sizeof(hello));
	(void)!write(sv[1], data + 1, size - 1);
	shutdown(sv[1], SHUT_WR);

	c = stream_chan(sv[0]);
	buf = malloc(cap ? cap : 1);
	/* Each successful call consumes at least a 4-byte header. */
	for (size_t i = 0; i < size / 4 + 4; i++) {
		ssize_t n = ipc__stream_recv(c, buf, cap, IPC_NOWAIT);

		if (n >= 0) {
			if ((size_t)n > cap)
				abort();
			continue;
		}
		if (n == -EMSGSIZE) {
			/* The message stays queued: take it with a big buffer. */
			unsigned char *big = malloc(FUZZ_MAX_MSG);
			ssize_t m = ipc__stream_recv(c, big, FUZZ_MAX_MSG, IPC_NOWAIT);

			free(big);
			if (m > FUZZ_MAX_MSG)
				abort();
			if (m >= 0 || m == -EAGAIN)
				continue;
			n = m;
		}
		if (n != -EPROTO && n != -EPIPE && n != -EAGAIN)
			abort();
		break;
	}
	free(buf);
	ipc__stream_close(c);
	free(c);
	close(sv[1]);
	return 0;
}
