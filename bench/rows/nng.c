/*
 * rows/nng.c - nng rows: pair1 for the ping-pong, push0 -> pull0 for the
 * one-way stream, over ipc:// (rows labelled "ipc") or tcp://. The serving
 * side listens, the other dials; queue depth as for ZeroMQ (rows/peer.c).
 */
#include "row.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <stdio.h>
#include <string.h>

struct n_ep {
	uint32_t sock[2];   /* pair, push/pull */
	int cur;            /* index of the current turn's socket */
	int tmo[2];         /* receive timeout last set (-2: not yet) */
};

static struct n_ep *ns(struct ep *e)
{
	return e->st;
}

static int nerr(int e)
{
	switch (e) {
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_EAGAIN:
		return -EAGAIN;
	case NNG_ECLOSED:
	case NNG_ECONNSHUT:
	case NNG_ECONNRESET:
		return -EPIPE;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EMSGSIZE:
		return -EMSGSIZE;
	default:
		return -EIO;
	}
}

static int n_send(struct ep *e, const void *buf, size_t len)
{
	nng_socket s = { .id = ns(e)->sock[ns(e)->cur] };
	int r = nng_send(s, (void *)buf, len, 0);
	return r ? nerr(r) : 0;
}

static ssize_t n_recv(struct ep *e, void *buf, size_t cap, int timeout_ms)
{
	struct n_ep *n = ns(e);
	nng_socket s = { .id = n->sock[n->cur] };
	size_t sz = cap;
	int flags = 0, r;
	if (timeout_ms == 0) {
		flags = NNG_FLAG_NONBLOCK;
	} else if (timeout_ms != n->tmo[n->cur]) {
		/* only when it changes: the option takes the socket's lock */
		nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms < 0 ? NNG_DURATION_INFINITE : timeout_ms);
		n->tmo[n->cur] = timeout_ms;
	}
	r = nng_recv(s, buf, &sz, flags);
	if (r)
		return nerr(r);
	return sz > cap ? -EMSGSIZE : (ssize_t)sz;
}

static void n_close(struct ep *e)
{
	struct n_ep *n = ns(e);
	for (int i = 0; i < 2; i++)
		if (n->sock[i])
			nng_close((nng_socket){ .id = n->sock[i] });
	memset(n, 0, sizeof(*n));
}

static void n_stream(struct ep *e, bool on)
{
	ns(e)->cur = on ? 1 : 0;
}

static int n_wait(struct ep *e, uint64_t deadline_ns)
{
	int fd, r = nng_socket_get_int((nng_socket){ .id = ns(e)->sock[ns(e)->cur] }, NNG_OPT_RECVFD, &fd);
	return r ? nerr(r) : wait_fd_until(fd, deadline_ns);
}

static int n_open(struct ep *e)
{
	struct n_ep *n = ns(e);
	struct chan *c = e->c;
	bool srv = e->side == c->srv_side;
	int depth = peer_queue_depth(c->s.size), r;
	nng_socket s[2];
	char url[256];
	n->tmo[0] = n->tmo[1] = -2;
	r = nng_pair1_open(&s[0]);
	if (r)
		goto fail;
	n->sock[0] = s[0].id;
	r = e->side == 0 ? nng_push0_open(&s[1]) : nng_pull0_open(&s[1]);
	if (r)
		goto fail;
	n->sock[1] = s[1].id;
	for (int i = 0; i < 2; i++) {
		nng_socket_set_size(s[i], NNG_OPT_RECVMAXSZ, 0);   /* no limit */
		nng_socket_set_int(s[i], NNG_OPT_SENDBUF, depth);
		nng_socket_set_int(s[i], NNG_OPT_RECVBUF, depth);
		if (srv) {
			nng_listener l;
			peer_url(c, "nng", i, false, url, sizeof(url));
			r = nng_listen(s[i], url, &l, 0);
			if (r)
				goto fail;
			if (c->s.form == FORM_INET) {
				int port;
				char hp[96];
				r = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
				if (r)
					goto fail;
				fmt_hostport(hp, sizeof(hp), c->host, port);
				snprintf(url, sizeof(url), "tcp://%s", hp);
			}
			int e2 = ctl_send_str(e->ctl, url);
			if (e2)
				return e2;
		} else {
			int e2 = ctl_recv_str(e->ctl, url, sizeof(url));
			if (e2)
				return e2;
			r = nng_dial(s[i], url, NULL, 0);
			if (r)
				goto fail;
		}
	}
	return 0;
fail:
	fprintf(stderr, "ipckit-bench: nng %s: %s\n", c->s.backend, nng_strerror(r));
	return nerr(r);
}

const struct kind kind_nng = {
	.impl = "nng", .prep_size = sizeof(struct peer_prep), .ep_size = sizeof(struct n_ep),
	.cross_host = true, .open = n_open, .close = n_close, .unlink = peer_unlink,
	.send = n_send, .recv = n_recv, .wait = n_wait, .stream = n_stream,
};
