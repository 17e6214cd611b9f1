/*
 * pingpong.c - the smallest complete ipckit program: a parent and a child
 * bounce a counter over any backend's ipc_pair.
 *
 *   ./build/examples/pingpong [scheme] [rounds]     (default: unix 1000)
 */
#include <ipckit.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *scheme = argc > 1 ? argv[1] : "unix";
	long rounds = argc > 2 ? strtol(argv[2], NULL, 10) : 1000;
	ipc_chan *a, *b;
	int r = ipc_pair(scheme, &a, &b, NULL);
	if (r < 0) {
		fprintf(stderr, "ipc_pair(%s): %s\n", scheme, ipc_strerror(r));
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) { /* child: echo until the parent closes (udp has no
			   peer-close signal: stop after 2 s of silence) */
		ipc_close(a);
		long v;
		ssize_t n;
		while ((n = ipc_recv(b, &v, sizeof(v), 2000)) == (ssize_t)sizeof(v)) {
			v++;
			if (ipc_send(b, &v, sizeof(v), -1) < 0)
				break;
		}
		ipc_close(b);
		_exit(n == -EPIPE || n == -ETIMEDOUT ? 0 : 1);
	}
	ipc_close(b);
	long v = 0;
	for (long i = 0; i < rounds; i++) {
		if ((r = ipc_send(a, &v, sizeof(v), 5000)) < 0 ||
		    (r = (int)ipc_recv(a, &v, sizeof(v), 5000)) < 0) {
			fprintf(stderr, "round %ld: %s\n", i, ipc_strerror(r));
			return 1;
		}
	}
	ipc_close(a); /* the child sees -EPIPE and exits */
	int st;
	waitpid(pid, &st, 0);
	printf("%s: %ld round trips, counter %ld, child exit %d\n", scheme, rounds, v,
	       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return v == rounds && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
