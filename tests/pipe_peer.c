/*
 * pipe_peer.c - the far end of test_pipe.c's exec test: adopts the
 * descriptors named by argv[1] ("pipe://R,W"), echoes every message until
 * "END" (echoed too) or the channel closes, and exits 0 only if every
 * call behaved.
 */
#include "ipckit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	ipc_chan *c = NULL;
	char *buf;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: %s pipe://R,W\n", argv[0]);
		return 64;
	}
	alarm(30);
	rc = ipc_open(&c, argv[1], IPC_CLIENT, NULL);
	if (rc < 0) {
		fprintf(stderr, "pipe_peer: ipc_open(%s): %s\n", argv[1], ipc_strerror(rc));
		return 1;
	}
	buf = malloc(1 << 20);
	if (!buf)
		return 1;
	for (;;) {
		ssize_t n = ipc_recv(c, buf, 1 << 20, -1);

		if (n == -EPIPE)
			break;
		if (n < 0) {
			fprintf(stderr, "pipe_peer: ipc_recv: %s\n", ipc_strerror((int)n));
			return 1;
		}
		rc = ipc_send(c, buf, (size_t)n, -1);
		if (rc < 0) {
			fprintf(stderr, "pipe_peer: ipc_send: %s\n", ipc_strerror(rc));
			return 1;
		}
		if (n == 3 && memcmp(buf, "END", 3) == 0)
			break;
	}
	free(buf);
	ipc_close(c);
	return 0;
}
