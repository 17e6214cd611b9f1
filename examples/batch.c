/*
 * batch.c - many small messages at the cost of few calls: ipc_sendv on
 * one side, ipc_recvv on the other.
 *
 * Shows: ipc_sendv returning how many messages it sent (a short count is
 * not an error: send the rest again), ipc_recvv taking every message that
 * is already waiting in one call (it waits only for the first), and the
 * counts that tell how well the batches held together.
 *
 * Run:
 *   ./build/examples/batch [SCHEME] [COUNT] [BATCH]   (default unix 100000 32)
 * The parent sends COUNT numbered 64-byte messages in batches of BATCH to
 * a forked child over ipc_pair(SCHEME), then a zero-length end marker; the
 * child checks the order and reports how many ipc_recvv calls it needed.
 * Schemes: unix, tcp, pipe, mq, shm (udp may drop messages).
 *
 * Exit status: 0 every message arrived in order, 1 otherwise.
 */
#include <ipckit.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MSG = 64, MAX_BATCH = 256, TIMEOUT_MS = 10000 };

struct tally {
	long msgs, calls;
};

static int receive(ipc_chan *c, long count, int batch)
{
	static uint8_t data[MAX_BATCH][MSG];
	ipc_buf bufs[MAX_BATCH];
	struct tally t = { 0, 0 };

	for (;;) {
		for (int i = 0; i < batch; i++)
			bufs[i] = (ipc_buf){ .data = data[i], .cap = MSG };
		int n = ipc_recvv(c, bufs, (size_t)batch, TIMEOUT_MS);

		if (n < 0) {
			fprintf(stderr, "batch child: ipc_recvv: %s\n", ipc_strerror(n));
			return 1;
		}
		t.calls++;
		for (int i = 0; i < n; i++) {
			uint64_t seq;

			if (bufs[i].len == 0) { /* end marker */
				int r = ipc_send(c, &t, sizeof(t), TIMEOUT_MS);

				return r == 0 && t.msgs == count ? 0 : 1;
			}
			memcpy(&seq, bufs[i].data, sizeof(seq));
			if (bufs[i].len != MSG || seq != (uint64_t)t.msgs) {
				fprintf(stderr, "batch child: message %ld out of order\n", t.msgs);
				return 1;
			}
			t.msgs++;
		}
	}
}

static int send_all(ipc_chan *c, long count, int batch, long *calls)
{
	static uint8_t data[MAX_BATCH][MSG];
	ipc_msg msgs[MAX_BATCH];

	for (long next = 0; next < count;) {
		int n = count - next < batch ? (int)(count - next) : batch;

		for (int i = 0; i < n; i++) {
			uint64_t seq = (uint64_t)(next + i);

			memcpy(data[i], &seq, sizeof(seq));
			msgs[i] = (ipc_msg){ .data = data[i], .len = MSG };
		}
		int sent = ipc_sendv(c, msgs, (size_t)n, TIMEOUT_MS);

		if (sent < 0) {
			fprintf(stderr, "batch: ipc_sendv: %s\n", ipc_strerror(sent));
			return sent;
		}
		next += sent; /* a short count: the rest goes in the next call */
		++*calls;
	}
	return ipc_send(c, "", 0, TIMEOUT_MS);
}

int main(int argc, char **argv)
{
	const char *scheme = argc > 1 ? argv[1] : "unix";
	long count = argc > 2 ? strtol(argv[2], NULL, 10) : 100000;
	int batch = argc > 3 ? atoi(argv[3]) : 32;
	ipc_chan *a, *b;
	int r, st;

	if (batch < 1 || batch > MAX_BATCH || count < 0) {
		fprintf(stderr, "usage: batch [SCHEME] [COUNT] [BATCH (1..%d)]\n", MAX_BATCH);
		return 1;
	}
	if ((r = ipc_pair(scheme, &a, &b, NULL)) < 0) {
		fprintf(stderr, "batch: ipc_pair(%s): %s\n", scheme, ipc_strerror(r));
		return 1;
	}
	pid_t pid = fork();

	if (pid < 0) {
		perror("batch: fork");
		return 1;
	}
	if (pid == 0) {
		ipc_close(a);
		r = receive(b, count, batch);
		ipc_close(b);
		_exit(r);
	}
	ipc_close(b);

	long calls = 0;
	struct tally t = { 0, 0 };
	ssize_t n = 0;

	if ((r = send_all(a, count, batch, &calls)) == 0 &&
	    (n = ipc_recv(a, &t, sizeof(t), TIMEOUT_MS)) < 0)
		fprintf(stderr, "batch: waiting for the child's count: %s\n", ipc_strerror((int)n));
	ipc_close(a);
	waitpid(pid, &st, 0);
	printf("%s: sent %ld messages in %ld ipc_sendv calls; child received %ld in %ld "
	       "ipc_recvv calls (%.1f per call)\n",
	       scheme, count, calls, t.msgs, t.calls, t.calls ? (double)t.msgs / t.calls : 0.0);
	return r == 0 && n == sizeof(t) && t.msgs == count && WIFEXITED(st) &&
			       WEXITSTATUS(st) == 0 ? 0 : 1;
}
