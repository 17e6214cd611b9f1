/*
 * uv_echo.c - ipckit channels inside a libuv event loop: one uv_poll_t for
 * the listener, one per accepted channel, and a uv_timer_t as a watchdog.
 *
 * Shows: ipc_listener_fd and ipc_fd handed to uv_poll_init (libuv only
 * watches them; ipckit owns them), draining with timeout 0 until -EAGAIN
 * in each callback (the descriptors are level-triggered, so nothing is
 * lost if a callback stops early), and tearing a channel down with
 * uv_poll_stop + uv_close before ipc_close.
 *
 * Run:
 *   ./build/examples/uv_echo unix:///tmp/uv_echo.sock [CLIENTS] [REQUESTS]
 * (default 4 clients x 100 requests). The program forks CLIENTS client
 * processes that each send REQUESTS requests and check every reply; the
 * parent serves them all from uv_run and stops once every client has left.
 * Built only when libuv's development files are installed (Debian:
 * libuv1-dev). URLs: tcp://127.0.0.1:0, unix://..., shm://... once its
 * listener descriptor exists.
 *
 * Exit status: 0 every client got every reply, 1 otherwise, 2 usage,
 * 3 this backend has no pollable listener descriptor.
 */
#include <ipckit.h>
#include <uv.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { TIMEOUT_MS = 10000, WATCHDOG_MS = 60000, MAX_MSG = 4096 };

struct conn {
	uv_poll_t poll; /* first: the callbacks get a struct conn * */
	ipc_chan *chan;
};

static struct {
	ipc_listener *listener;
	uv_poll_t listener_poll;
	uv_timer_t watchdog;
	int clients, gone, failed;
	pid_t pids[64];
} srv;

static void conn_free(uv_handle_t *h)
{
	struct conn *k = (struct conn *)h;

	ipc_close(k->chan); /* after libuv let go of its descriptor */
	free(k);
	if (++srv.gone == srv.clients) { /* everyone served: let uv_run return */
		uv_close((uv_handle_t *)&srv.listener_poll, NULL);
		uv_close((uv_handle_t *)&srv.watchdog, NULL);
	}
}

static void on_readable(uv_poll_t *p, int status, int events)
{
	struct conn *k = (struct conn *)p;
	char buf[MAX_MSG];
	ssize_t n;

	while ((n = ipc_recv(k->chan, buf, sizeof(buf), 0)) >= 0) {
		int r = ipc_send(k->chan, buf, (size_t)n, TIMEOUT_MS); /* echo */

		if (r < 0) {
			n = r;
			break;
		}
	}
	if (n == -EAGAIN)
		return; /* drained: wait for the next wake-up */
	if (n != -EPIPE) {
		fprintf(stderr, "uv_echo: client: %s\n", ipc_strerror((int)n));
		srv.failed = 1;
	}
	uv_poll_stop(p);
	uv_close((uv_handle_t *)p, conn_free);
}

static void on_accept(uv_poll_t *p, int status, int events)
{
	ipc_chan *c;
	int r;

	while ((r = ipc_accept(srv.listener, &c, 0)) == 0) {
		struct conn *k = calloc(1, sizeof(*k));

		if (!k) {
			ipc_close(c);
			continue;
		}
		k->chan = c;
		uv_poll_init(p->loop, &k->poll, ipc_fd(c));
		uv_poll_start(&k->poll, UV_READABLE, on_readable);
	}
	if (r != -EAGAIN) {
		fprintf(stderr, "uv_echo: accept: %s\n", ipc_strerror(r));
		srv.failed = 1;
	}
}

static void on_watchdog(uv_timer_t *t)
{
	fprintf(stderr, "uv_echo: only %d of %d clients done after %d ms\n", srv.gone, srv.clients,
		WATCHDOG_MS);
	srv.failed = 1;
	for (int i = 0; i < srv.clients; i++)
		if (srv.pids[i] > 0)
			kill(srv.pids[i], SIGKILL);
	uv_stop(t->loop);
}

/* A plain blocking client, in its own process. */
static int client(const char *url, int id, int requests)
{
	ipc_opts opts = { .connect_timeout_ms = TIMEOUT_MS };
	char req[64], rep[64];
	ipc_chan *c;
	int r = ipc_open(&c, url, IPC_CLIENT, &opts);

	for (int i = 0; r == 0 && i < requests; i++) {
		int len = snprintf(req, sizeof(req), "client %d request %d", id, i);
		ssize_t n;

		if ((r = ipc_send(c, req, (size_t)len, TIMEOUT_MS)) < 0)
			break;
		if ((n = ipc_recv(c, rep, sizeof(rep), TIMEOUT_MS)) < 0)
			r = (int)n;
		else if (n != len || memcmp(req, rep, (size_t)len) != 0)
			r = -EPROTO;
	}
	if (r < 0)
		fprintf(stderr, "uv_echo: client %d: %s\n", id, ipc_strerror(r));
	ipc_close(c);
	return r < 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: uv_echo URL [CLIENTS] [REQUESTS]\n");
		return 2;
	}
	srv.clients = argc > 2 ? atoi(argv[2]) : 4;
	int requests = argc > 3 ? atoi(argv[3]) : 100, r, bad = 0;
	pid_t *pids = srv.pids;

	if (srv.clients < 1 || srv.clients > 64) {
		fprintf(stderr, "uv_echo: CLIENTS must be 1..64\n");
		return 2;
	}
	if ((r = ipc_listen(&srv.listener, argv[1], NULL)) < 0) {
		fprintf(stderr, "uv_echo: cannot listen on %s: %s\n", argv[1], ipc_strerror(r));
		return 1;
	}
	if ((r = ipc_listener_fd(srv.listener)) < 0) {
		fprintf(stderr, "uv_echo: %s has no listener descriptor to poll: %s\n", argv[1],
			ipc_strerror(r));
		ipc_listener_close(srv.listener);
		return 3;
	}
	const char *url = ipc_listener_url(srv.listener); /* tcp port 0 -> the real one */

	fflush(stdout); /* nothing buffered is printed twice by the children */
	for (int i = 0; i < srv.clients; i++) {
		if ((pids[i] = fork()) == 0)
			_exit(client(url, i, requests));
	}

	uv_loop_t *loop = uv_default_loop();

	uv_poll_init(loop, &srv.listener_poll, ipc_listener_fd(srv.listener));
	uv_poll_start(&srv.listener_poll, UV_READABLE, on_accept);
	uv_timer_init(loop, &srv.watchdog);
	uv_timer_start(&srv.watchdog, on_watchdog, WATCHDOG_MS, 0);
	uv_run(loop, UV_RUN_DEFAULT);

	for (int i = 0; i < srv.clients; i++) {
		int st;

		if (pids[i] < 0 || waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			bad++;
	}
	printf("%s: %d clients x %d requests served from one libuv loop; %d clients failed\n",
	       url, srv.clients, requests, bad);
	ipc_listener_close(srv.listener);
	return bad || srv.failed ? 1 : 0;
}
