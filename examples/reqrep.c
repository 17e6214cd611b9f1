/*
 * reqrep.c - request/reply between two unrelated processes over any URL,
 * with a timeout on every call and a clear message for every failure.
 *
 * Shows: ipc_open as server and as client, ipc_send/ipc_recv with
 * timeouts, ipc_info_get for the resolved URL (tcp port 0 becomes the real
 * port), ipc_strerror, and telling "the peer closed" (-EPIPE) apart from
 * real errors.
 *
 * Run it in two terminals:
 *   ./build/examples/reqrep server unix:///tmp/reqrep.sock
 *   ./build/examples/reqrep client unix:///tmp/reqrep.sock hello world
 * The server prints "ready URL", answers each request with "re: REQUEST"
 * and exits when its client closes. The client sends each argument as one
 * request and prints each reply. Any URL with a server works:
 * tcp://127.0.0.1:0 (use the URL the server prints), unix://@demo,
 * shm://@demo, mq:///demo, fifo:///tmp/demo.
 *
 * Exit status: 0 done, 1 an ipckit call failed (stderr says which), 2 usage.
 */
#include <ipckit.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	CONNECT_MS = 5000,  /* client: how long to wait for the server to appear */
	IDLE_MS = 30000,    /* server: how long to wait for the next request */
	REPLY_MS = 5000,    /* client: how long to wait for each reply */
	SEND_MS = 5000,     /* both: how long a send may wait for room */
};

/* Print what failed; a timeout also says how long we waited. */
static int fail(const char *what, const char *url, int err, int waited_ms)
{
	fprintf(stderr, "reqrep: %s %s: %s", what, url, ipc_strerror(err));
	if (err == -ETIMEDOUT)
		fprintf(stderr, " (nothing within %d ms)", waited_ms);
	fputc('\n', stderr);
	return 1;
}

/* A buffer for the largest message the channel carries (the backend's
 * default limit: 16 MiB, less for mq and udp). */
static char *buffer_for(ipc_chan *c, size_t *cap)
{
	ipc_info info;

	ipc_info_get(c, &info);
	*cap = info.max_msg;
	return malloc(info.max_msg);
}

static int serve(const char *url)
{
	ipc_chan *c;
	ipc_info info;
	size_t cap;
	char *req, *rep;
	int r = ipc_open(&c, url, IPC_SERVER, NULL);

	if (r < 0)
		return fail("cannot serve", url, r, 0);
	ipc_info_get(c, &info);
	req = buffer_for(c, &cap);
	rep = malloc(cap + 4);
	if (!req || !rep) {
		r = fail("cannot serve", url, -ENOMEM, 0);
		goto out;
	}
	printf("ready %s\n", info.url);
	fflush(stdout);
	for (long served = 0;; served++) {
		ssize_t n = ipc_recv(c, req, cap, IDLE_MS);

		if (n == -EPIPE) { /* the client closed: a normal end */
			printf("client left after %ld requests\n", served);
			break;
		}
		if (n < 0) {
			r = fail("waiting for a request on", info.url, (int)n, IDLE_MS);
			break;
		}
		memcpy(rep, "re: ", 4);
		memcpy(rep + 4, req, (size_t)n);
		if ((r = ipc_send(c, rep, (size_t)n + 4, SEND_MS)) < 0) {
			r = fail("replying on", info.url, r, SEND_MS);
			break;
		}
	}
out:
	free(req);
	free(rep);
	ipc_close(c);
	return r < 0 ? 1 : 0;
}

static int request(const char *url, char **reqs, int nreqs)
{
	ipc_opts opts = { .connect_timeout_ms = CONNECT_MS };
	ipc_chan *c;
	size_t cap;
	char *rep;
	int r = ipc_open(&c, url, IPC_CLIENT, &opts);

	if (r < 0)
		return fail("cannot reach a server at", url, r, CONNECT_MS);
	if (!(rep = buffer_for(c, &cap))) {
		ipc_close(c);
		return fail("cannot talk to", url, -ENOMEM, 0);
	}
	for (int i = 0; i < nreqs; i++) {
		ssize_t n;

		if ((r = ipc_send(c, reqs[i], strlen(reqs[i]), SEND_MS)) < 0) {
			fail("sending a request to", url, r, SEND_MS);
			break;
		}
		if ((n = ipc_recv(c, rep, cap, REPLY_MS)) < 0) {
			r = (int)n;
			fail(n == -EPIPE ? "server closed before replying:" : "waiting for the reply from",
			     url, r, REPLY_MS);
			break;
		}
		printf("%.*s\n", (int)n, rep);
	}
	free(rep);
	ipc_close(c);
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "server") == 0)
		return serve(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "client") == 0)
		return request(argv[2], argv + 3, argc - 3);
	fprintf(stderr, "usage: reqrep server URL\n"
			"       reqrep client URL [REQUEST...]\n");
	return 2;
}
