/*
 * listener.c - one process serving many clients from a single poll loop.
 *
 * Shows: ipc_listen, ipc_listener_fd and ipc_fd in one poll() set,
 * non-blocking ipc_accept and ipc_recv (timeout 0, -EAGAIN when nothing
 * is left), dropping a client that went away (-EPIPE). Both descriptors
 * are level-triggered, so draining until -EAGAIN is the only rule.
 *
 * Run:
 *   ./build/examples/listener unix:///tmp/listener.sock        (serves forever)
 *   ./build/examples/reqrep client unix:///tmp/listener.sock a b c   (any number of these)
 * It prints "ready URL" (tcp://127.0.0.1:0 gets a real port), answers each
 * request with "re: REQUEST" like reqrep's server, and with a second
 * argument N exits after N clients have come and gone. Backends with a
 * listener: tcp, unix, shm (ipc_backend_info tells: IPC_CAP_LISTEN).
 *
 * Exit status: 0 done, 1 an ipckit call failed, 2 usage, 3 this backend
 * has no pollable listener descriptor (ipc_listener_fd < 0).
 */
#include <ipckit.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_CLIENTS = 64, IDLE_MS = 30000, SEND_MS = 1000, MAX_MSG = 64 * 1024 };

static ipc_chan *clients[MAX_CLIENTS];
static int nclients;

/* Answer everything client i has sent; returns 0, or < 0 to drop it. */
static int serve_client(int i)
{
	static char buf[MAX_MSG + 4];

	for (;;) {
		ssize_t n = ipc_recv(clients[i], buf + 4, MAX_MSG, 0);
		int r;

		if (n == -EAGAIN)
			return 0;
		if (n < 0) {
			if (n != -EPIPE)
				fprintf(stderr, "listener: client %d: %s\n", i, ipc_strerror((int)n));
			return (int)n;
		}
		memcpy(buf, "re: ", 4);
		/* A client that does not read its replies is dropped after SEND_MS. */
		if ((r = ipc_send(clients[i], buf, (size_t)n + 4, SEND_MS)) < 0) {
			fprintf(stderr, "listener: client %d: reply: %s\n", i, ipc_strerror(r));
			return r;
		}
	}
}

static void accept_all(ipc_listener *l)
{
	ipc_chan *c;
	int r;

	while ((r = ipc_accept(l, &c, 0)) >= 0) {
		if (nclients == MAX_CLIENTS) {
			fprintf(stderr, "listener: %d clients already, refusing one\n", MAX_CLIENTS);
			ipc_close(c);
			continue;
		}
		clients[nclients++] = c;
	}
	if (r != -EAGAIN)
		fprintf(stderr, "listener: accept: %s\n", ipc_strerror(r));
}

int main(int argc, char **argv)
{
	ipc_opts opts = { .max_msg = MAX_MSG + 4 };
	ipc_listener *l;
	long stop_after = argc > 2 ? strtol(argv[2], NULL, 10) : -1, gone = 0;
	int r;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: listener URL [CLIENTS]\n");
		return 2;
	}
	if ((r = ipc_listen(&l, argv[1], &opts)) < 0) {
		fprintf(stderr, "listener: cannot listen on %s: %s\n", argv[1], ipc_strerror(r));
		return 1;
	}
	if ((r = ipc_listener_fd(l)) < 0) {
		fprintf(stderr, "listener: %s has no listener descriptor to poll: %s\n", argv[1],
			ipc_strerror(r));
		ipc_listener_close(l);
		return 3;
	}
	printf("ready %s\n", ipc_listener_url(l));
	fflush(stdout);

	while (stop_after < 0 || gone < stop_after) {
		struct pollfd pfd[MAX_CLIENTS + 1];

		pfd[0] = (struct pollfd){ .fd = ipc_listener_fd(l), .events = POLLIN };
		for (int i = 0; i < nclients; i++)
			pfd[i + 1] = (struct pollfd){ .fd = ipc_fd(clients[i]), .events = POLLIN };
		r = poll(pfd, (nfds_t)nclients + 1, IDLE_MS);
		if (r == 0) {
			fprintf(stderr, "listener: nothing happened for %d ms, giving up\n", IDLE_MS);
			break;
		}
		if (r < 0)
			continue; /* EINTR */
		/* Clients first (pfd[] matches clients[] only until one is dropped). */
		for (int i = nclients - 1; i >= 0; i--) {
			if (!pfd[i + 1].revents || serve_client(i) == 0)
				continue;
			ipc_close(clients[i]);
			clients[i] = clients[--nclients];
			gone++;
		}
		if (pfd[0].revents)
			accept_all(l);
	}
	for (int i = 0; i < nclients; i++)
		ipc_close(clients[i]);
	ipc_listener_close(l);
	printf("served %ld clients\n", gone);
	return stop_after < 0 || gone >= stop_after ? 0 : 1;
}
