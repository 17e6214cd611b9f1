/*
 * rows/zmq.c - ZeroMQ rows in the same harness: PAIR for the ping-pong,
 * PUSH -> PULL for the one-way stream, over ipc:// (a Unix socket; rows
 * labelled "ipc") or tcp://. The serving side binds, the other connects.
 * Queue depth: 1000 messages (ZeroMQ's default high-water mark), fewer for
 * big messages so that at most about 4 MiB wait in user space per
 * direction; nng.c sets the same.
 */
#include "row.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

struct z_ep {
	void *ctx, *pair, *push;   /* push: PUSH on the sender, PULL on the receiver */
	void *cur;                 /* the socket of the current turn */
};

static struct z_ep *zs(struct ep *e)
{
	return e->st;
}

static int zerr(void)
{
	int e = zmq_errno();
	return e == ETERM ? -EPIPE : -e;
}

static int z_send(struct ep *e, const void *buf, size_t len)
{
	while (zmq_send(zs(e)->cur, buf, len, 0) < 0)
		if (zmq_errno() != EINTR)
			return zerr();
	return 0;
}

static ssize_t z_recv(struct ep *e, void *buf, size_t cap, int timeout_ms)
{
	void *s = zs(e)->cur;
	int flags = 0;
	if (timeout_ms == 0) {
		flags = ZMQ_DONTWAIT;
	} else if (timeout_ms > 0) {
		zmq_pollitem_t it = { .socket = s, .events = ZMQ_POLLIN };
		int r = zmq_poll(&it, 1, timeout_ms);
		if (r < 0)
			return zerr();
		if (r == 0)
			return -ETIMEDOUT;
	}
	for (;;) {
		int r = zmq_recv(s, buf, cap, flags);
		if (r >= 0)
			return (size_t)r > cap ? -EMSGSIZE : r;
		if (zmq_errno() != EINTR)
			return zerr();
	}
}

static void z_close(struct ep *e)
{
	struct z_ep *z = zs(e);
	if (z->pair)
		zmq_close(z->pair);
	if (z->push)
		zmq_close(z->push);
	if (z->ctx)
		zmq_ctx_term(z->ctx);
	memset(z, 0, sizeof(*z));
}

static void z_stream(struct ep *e, bool on)
{
	zs(e)->cur = on ? zs(e)->push : zs(e)->pair;
}

/* ZMQ_FD is edge-triggered: look at ZMQ_EVENTS (which also resets the
 * edge) before sleeping on it. */
static int z_wait(struct ep *e, uint64_t deadline_ns)
{
	int ev = 0, fd = -1;
	size_t len = sizeof(ev);
	if (zmq_getsockopt(zs(e)->cur, ZMQ_EVENTS, &ev, &len) < 0)
		return zerr();
	if (ev & ZMQ_POLLIN)
		return 0;
	len = sizeof(fd);
	if (zmq_getsockopt(zs(e)->cur, ZMQ_FD, &fd, &len) < 0)
		return zerr();
	return wait_fd_until(fd, deadline_ns);
}

static void *z_socket(struct z_ep *z, int type, int hwm)
{
	int zero = 0;
	void *s = zmq_socket(z->ctx, type);
	if (s) {
		zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
		zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
		zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	}
	return s;
}

static int z_open(struct ep *e)
{
	struct z_ep *z = zs(e);
	struct chan *c = e->c;
	bool srv = e->side == c->srv_side;
	int hwm = peer_queue_depth(c->s.size), r = 0;
	char url[256];
	z->ctx = zmq_ctx_new();
	if (!z->ctx)
		return -ENOMEM;
	z->pair = z_socket(z, ZMQ_PAIR, hwm);
	z->push = z_socket(z, e->side == 0 ? ZMQ_PUSH : ZMQ_PULL, hwm);
	z->cur = z->pair;
	if (!z->pair || !z->push)
		return zerr();
	void *socks[2] = { z->pair, z->push };
	for (int i = 0; i < 2 && !r; i++) {
		if (srv) {
			size_t len = sizeof(url);
			peer_url(c, "zmq", i, true, url, sizeof(url));
			if (zmq_bind(socks[i], url) < 0 ||
			    zmq_getsockopt(socks[i], ZMQ_LAST_ENDPOINT, url, &len) < 0)
				r = zerr();
			else
				r = ctl_send_str(e->ctl, url);
		} else {
			r = ctl_recv_str(e->ctl, url, sizeof(url));
			if (!r && zmq_connect(socks[i], url) < 0)
				r = zerr();
		}
	}
	if (r)
		fprintf(stderr, "ipckit-bench: zmq %s: %s\n", c->s.backend, strerror(-r));
	return r;
}

const struct kind kind_zmq = {
	.impl = "zmq", .prep_size = sizeof(struct peer_prep), .ep_size = sizeof(struct z_ep),
	.cross_host = true, .open = z_open, .close = z_close, .unlink = peer_unlink,
	.send = z_send, .recv = z_recv, .wait = z_wait, .stream = z_stream,
};
