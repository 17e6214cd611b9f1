/*
 * peers.c - ZeroMQ and nng rows in the same harness: PAIR / pair1 for the
 * latency ping-pong, PUSH->PULL for the one-way throughput stream, over
 * ipc:// (a Unix socket; rows labelled backend "ipc") and tcp:// on
 * loopback. The leader binds (listens), the child connects (dials). The
 * queue depth of both libraries is set to the same value: 1000 messages
 * (ZeroMQ's default high-water mark), fewer for big messages so that at
 * most about 4 MiB wait in user space per direction.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(BENCH_HAVE_ZMQ) || defined(BENCH_HAVE_NNG)
static int queue_depth(size_t size)
{
	size_t d = ((size_t)4 << 20) / (size ? size : 1);
	return d < 4 ? 4 : d > 1000 ? 1000 : (int)d;
}

/* The ipc:// path or tcp:// address a listener binds. */
static void peer_url(struct chan *c, const char *lib, const char *what, char *url, size_t cap,
		     char *path, size_t pcap)
{
	if (!strcmp(c->backend, "tcp")) {
		snprintf(url, cap, "tcp://127.0.0.1:%s", !strcmp(lib, "zmq") ? "*" : "0");
		path[0] = 0;
	} else {
		snprintf(path, pcap, "/tmp/ipckit-bench-%s-%d-%d.%s", lib, (int)getpid(), c->idx, what);
		snprintf(url, cap, "ipc://%s", path);
	}
}

#endif

#ifdef BENCH_HAVE_ZMQ
#include <zmq.h>

static int zerr(void)
{
	int e = zmq_errno();
	return e == ETERM ? -EPIPE : -e;
}

static int z_send_on(void *s, const void *buf, size_t len)
{
	while (zmq_send(s, buf, len, 0) < 0) {
		if (zmq_errno() != EINTR)
			return zerr();
	}
	return 0;
}

static ssize_t z_recv_on(void *s, void *buf, size_t cap, int timeout_ms)
{
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

static int z_send(struct chan *c, const void *b, size_t n) { return z_send_on(c->zsock, b, n); }
static int z_tsend(struct chan *c, const void *b, size_t n) { return z_send_on(c->ztsock, b, n); }
static ssize_t z_recv(struct chan *c, void *b, size_t n, int t) { return z_recv_on(c->zsock, b, n, t); }
static ssize_t z_trecv(struct chan *c, void *b, size_t n, int t) { return z_recv_on(c->ztsock, b, n, t); }

static void z_close(struct chan *c)
{
	if (c->zsock)
		zmq_close(c->zsock);
	if (c->ztsock)
		zmq_close(c->ztsock);
	if (c->zctx)
		zmq_ctx_term(c->zctx);
	c->zsock = c->ztsock = c->zctx = NULL;
}

/* ZMQ_FD is edge-triggered: look at ZMQ_EVENTS (which also resets the
 * edge) before sleeping on it. */
static int z_wait(struct chan *c, uint64_t deadline_ns)
{
	int ev = 0, fd = -1;
	size_t len = sizeof(ev);
	if (zmq_getsockopt(c->zsock, ZMQ_EVENTS, &ev, &len) < 0)
		return zerr();
	if (ev & ZMQ_POLLIN)
		return 0;
	len = sizeof(fd);
	if (zmq_getsockopt(c->zsock, ZMQ_FD, &fd, &len) < 0)
		return zerr();
	return wait_fd_until(fd, deadline_ns);
}

static const struct ep_ops zmq_ops = {
	.send = z_send, .recv = z_recv, .tsend = z_tsend, .trecv = z_trecv, .close = z_close,
	.wait = z_wait,
};

static void *z_socket(struct chan *c, int type)
{
	int zero = 0, hwm = c->peer_hwm;
	void *s = zmq_socket(c->zctx, type);
	if (s) {
		zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
		zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
		zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	}
	return s;
}

int peer_zmq_open(struct chan *c, int side, int ctl)
{
	char url[2][256];
	int r = 0;
	c->peer_hwm = queue_depth(c->size);
	c->zctx = zmq_ctx_new();
	if (!c->zctx)
		return -ENOMEM;
	c->zsock = z_socket(c, ZMQ_PAIR);
	c->ztsock = z_socket(c, side == 0 ? ZMQ_PUSH : ZMQ_PULL);
	if (!c->zsock || !c->ztsock) {
		r = zerr();
		goto fail;
	}
	void *socks[2] = { c->zsock, c->ztsock };
	for (int i = 0; i < 2; i++) {
		if (side == 0) {
			size_t len = sizeof(url[i]);
			peer_url(c, "zmq", i ? "push" : "pair", url[i], sizeof(url[i]),
				 c->name[i], sizeof(c->name[i]));
			if (zmq_bind(socks[i], url[i]) < 0 ||
			    zmq_getsockopt(socks[i], ZMQ_LAST_ENDPOINT, url[i], &len) < 0) {
				r = zerr();
				goto fail;
			}
			r = ctl_send_str(ctl, url[i]);
		} else {
			r = ctl_recv_str(ctl, url[i], sizeof(url[i]));
			if (!r && zmq_connect(socks[i], url[i]) < 0)
				r = zerr();
		}
		if (r)
			goto fail;
	}
	c->ops = &zmq_ops;
	return 0;
fail:
	fprintf(stderr, "ipckit-bench: zmq %s side %d: %s\n", c->backend, side, strerror(-r));
	z_close(c);
	return r;
}
#endif

#ifdef BENCH_HAVE_NNG
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>

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

static int n_send_on(uint32_t id, const void *buf, size_t len)
{
	nng_socket s = { .id = id };
	int r = nng_send(s, (void *)buf, len, 0);
	return r ? nerr(r) : 0;
}

static ssize_t n_recv_on(uint32_t id, void *buf, size_t cap, int timeout_ms, int *tmo)
{
	nng_socket s = { .id = id };
	size_t sz = cap;
	int flags = 0, r;
	if (timeout_ms == 0) {
		flags = NNG_FLAG_NONBLOCK;
	} else if (timeout_ms != *tmo) {
		/* only when it changes: the option takes the socket's lock */
		nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms < 0 ? NNG_DURATION_INFINITE : timeout_ms);
		*tmo = timeout_ms;
	}
	r = nng_recv(s, buf, &sz, flags);
	if (r)
		return nerr(r);
	return sz > cap ? -EMSGSIZE : (ssize_t)sz;
}

static int n_send(struct chan *c, const void *b, size_t n) { return n_send_on(c->nsock, b, n); }
static int n_tsend(struct chan *c, const void *b, size_t n) { return n_send_on(c->ntsock, b, n); }
static ssize_t n_recv(struct chan *c, void *b, size_t n, int t) { return n_recv_on(c->nsock, b, n, t, &c->peer_tmo[0]); }
static ssize_t n_trecv(struct chan *c, void *b, size_t n, int t) { return n_recv_on(c->ntsock, b, n, t, &c->peer_tmo[1]); }

static void n_close(struct chan *c)
{
	if (c->nsock)
		nng_close((nng_socket){ .id = c->nsock });
	if (c->ntsock)
		nng_close((nng_socket){ .id = c->ntsock });
	c->nsock = c->ntsock = 0;
}

static int n_wait(struct chan *c, uint64_t deadline_ns)
{
	int fd, r = nng_socket_get_int((nng_socket){ .id = c->nsock }, NNG_OPT_RECVFD, &fd);
	return r ? nerr(r) : wait_fd_until(fd, deadline_ns);
}

static const struct ep_ops nng_ops = {
	.send = n_send, .recv = n_recv, .tsend = n_tsend, .trecv = n_trecv, .close = n_close,
	.wait = n_wait,
};

int peer_nng_open(struct chan *c, int side, int ctl)
{
	nng_socket s[2];
	char url[2][256];
	int r;
	c->peer_hwm = queue_depth(c->size);
	c->peer_tmo[0] = c->peer_tmo[1] = -2;   /* not set yet */
	r = nng_pair1_open(&s[0]);
	if (r)
		goto fail;
	c->nsock = s[0].id;
	r = side == 0 ? nng_push0_open(&s[1]) : nng_pull0_open(&s[1]);
	if (r)
		goto fail;
	c->ntsock = s[1].id;
	for (int i = 0; i < 2; i++) {
		nng_socket_set_size(s[i], NNG_OPT_RECVMAXSZ, 0);   /* no limit */
		nng_socket_set_int(s[i], NNG_OPT_SENDBUF, c->peer_hwm);
		nng_socket_set_int(s[i], NNG_OPT_RECVBUF, c->peer_hwm);
		if (side == 0) {
			nng_listener l;
			peer_url(c, "nng", i ? "push" : "pair", url[i], sizeof(url[i]),
				 c->name[i], sizeof(c->name[i]));
			r = nng_listen(s[i], url[i], &l, 0);
			if (r)
				goto fail;
			if (!strcmp(c->backend, "tcp")) {
				int port;
				r = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
				if (r)
					goto fail;
				snprintf(url[i], sizeof(url[i]), "tcp://127.0.0.1:%d", port);
			}
			r = ctl_send_str(ctl, url[i]);
			if (r) {
				fprintf(stderr, "ipckit-bench: nng: control: %s\n", strerror(-r));
				n_close(c);
				return r;
			}
		} else {
			r = ctl_recv_str(ctl, url[i], sizeof(url[i]));
			if (r) {
				fprintf(stderr, "ipckit-bench: nng: control: %s\n", strerror(-r));
				n_close(c);
				return r;
			}
			r = nng_dial(s[i], url[i], NULL, 0);
			if (r)
				goto fail;
		}
	}
	c->ops = &nng_ops;
	return 0;
fail:
	fprintf(stderr, "ipckit-bench: nng %s side %d: %s\n", c->backend, side, nng_strerror(r));
	n_close(c);
	return nerr(r);
}
#endif
