/*
 * pipe_exec.c - a parent and a child it exec()s, talking over two
 * anonymous pipes that the child adopts with the URL pipe://R,W.
 *
 * Shows: handing descriptors to a new program (pipes made with O_CLOEXEC,
 * then dup()ed without it in the child only, so nothing else leaks into
 * it), ipc_open("pipe://R,W") on both sides (R is the descriptor this side
 * reads, W the one it writes), and the child noticing the parent's close
 * as -EPIPE.
 *
 * Run:
 *   ./build/examples/pipe_exec [COUNT]     (default 1000)
 * The parent sends the numbers 0..COUNT-1; the child (this same program,
 * exec()ed with "--child pipe://R,W") answers each with its square; the
 * parent checks every answer and the child's exit status.
 *
 * Exit status: 0 all answers right, 1 something failed (stderr says what).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif
#include <ipckit.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { TIMEOUT_MS = 10000 };

static int child(const char *url)
{
	ipc_chan *c;
	uint64_t v;
	ssize_t n;
	int r = ipc_open(&c, url, IPC_CLIENT, NULL);

	if (r < 0) {
		fprintf(stderr, "pipe_exec child: %s: %s\n", url, ipc_strerror(r));
		return 1;
	}
	while ((n = ipc_recv(c, &v, sizeof(v), TIMEOUT_MS)) == sizeof(v)) {
		v *= v;
		if ((r = ipc_send(c, &v, sizeof(v), TIMEOUT_MS)) < 0)
			break;
	}
	ipc_close(c);
	if (n == -EPIPE) /* the parent closed: done */
		return 0;
	fprintf(stderr, "pipe_exec child: %s\n", ipc_strerror(n < 0 ? (int)n : r));
	return 1;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--child") == 0)
		return child(argv[2]);

	long count = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
	int p2c[2], c2p[2], r, st;
	char url[64];
	ipc_chan *c;
	pid_t pid;

	if (pipe2(p2c, O_CLOEXEC) < 0 || pipe2(c2p, O_CLOEXEC) < 0) {
		perror("pipe_exec: pipe2");
		return 1;
	}
	if ((pid = fork()) < 0) {
		perror("pipe_exec: fork");
		return 1;
	}
	if (pid == 0) {
		/* dup() clears O_CLOEXEC: only these two survive the exec. */
		int rfd = dup(p2c[0]), wfd = dup(c2p[1]);

		snprintf(url, sizeof(url), "pipe://%d,%d", rfd, wfd);
		execl("/proc/self/exe", argv[0], "--child", url, (char *)NULL);
		perror("pipe_exec: exec /proc/self/exe");
		_exit(127);
	}
	close(p2c[0]); /* the child's ends */
	close(c2p[1]);
	snprintf(url, sizeof(url), "pipe://%d,%d", c2p[0], p2c[1]);
	if ((r = ipc_open(&c, url, IPC_SERVER, NULL)) < 0) {
		fprintf(stderr, "pipe_exec: %s: %s\n", url, ipc_strerror(r));
		return 1;
	}
	long good = 0;
	for (uint64_t i = 0; i < (uint64_t)count; i++) {
		uint64_t v = i;
		ssize_t n;

		if ((r = ipc_send(c, &v, sizeof(v), TIMEOUT_MS)) < 0 ||
		    (r = (int)(n = ipc_recv(c, &v, sizeof(v), TIMEOUT_MS))) < 0) {
			fprintf(stderr, "pipe_exec: message %llu: %s\n", (unsigned long long)i,
				ipc_strerror(r));
			break;
		}
		good += n == sizeof(v) && v == i * i;
	}
	ipc_close(c); /* closes the adopted descriptors; the child sees -EPIPE */
	if (waitpid(pid, &st, 0) < 0)
		st = -1;
	printf("%ld of %ld answers right; child %s %d\n", good, count,
	       WIFEXITED(st) ? "exited" : "killed by signal",
	       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	return good == count && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
