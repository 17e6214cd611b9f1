/*
 * tcp.c - TCP streams (IPv4, IPv6, host names), TCP_NODELAY.
 *
 * URL: tcp://host:port or tcp://[v6]:port; port 0 on a server or listener
 * picks a free port, reported in ipc_info.url / ipc_listener_url.
 * Framing, handshake and timeouts come from lib/stream.c. The server binds
 * and listens at open (SO_REUSEADDR, so a restarted server can rebind
 * while old connections sit in TIME_WAIT; a live listener still gets
 * -EADDRINUSE), accepts in its first send/recv and closes the listening
 * socket. Clients connect without blocking past connect_timeout_ms.
 * Peer death is EOF/ECONNRESET from the kernel.
 */
#include "backend.h"
#include "posix/fdio.h"
#include "posix/sock.h"
#include "stream/stream.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tcp_chan {
	struct ipc_stream s; /* must be first */
	int lfd;
};

struct tcp_listener {
	int lfd;
};

#define T(c) IPC_PRIV(c, struct tcp_chan)
#define TL(l) IPC_PRIV(l, struct tcp_listener)

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Listen on the first address that works; *url gets the resolved URL. */
static int tcp_bind_listen(const ipc_url *u, int backlog, char **url)
{
	struct addrinfo *res, *ai;
	int r = ipc__resolve(u, SOCK_STREAM, true, &res);
	if (r < 0)
		return r;
	int fd = -1;
	r = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = ipc__socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			r = fd;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
			break;
		r = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return r;
	if (!(*url = ipc__inet_url("tcp", fd, u->host))) {
		close(fd);
		return -ENOMEM;
	}
	return fd;
}

/* Connect to ai within dl (a never-block deadline still gives the
 * handshake of a local server a second). */
static int connect_one(const struct addrinfo *ai, ipc_deadline *dl)
{
	int fd = ipc__socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fd;
	int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
	if (r < 0 && errno == EINPROGRESS) {
		ipc_deadline second = ipc__dl_in(1000);
		int pr = ipc__wait_fd(fd, POLLOUT, ipc__dl_nowait(dl) ? &second : dl);
		if (pr < 0) {
			close(fd);
			return pr;
		}
		int err = 0;
		socklen_t el = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		r = err ? -1 : 0;
		errno = err;
	}
	if (r < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if ((r = ipc__set_nonblock(fd, false)) < 0) {
		close(fd);
		return r;
	}
	set_nodelay(fd);
	return fd;
}

struct tcp_try {
	struct addrinfo *res;
	ipc_deadline dl;
	int fd;
};

static int tcp_try(void *arg)
{
	struct tcp_try *t = arg;
	int r = -ECONNREFUSED;
	for (struct addrinfo *ai = t->res; ai; ai = ai->ai_next) {
		r = connect_one(ai, &t->dl);
		if (r >= 0) {
			t->fd = r;
			return 0;
		}
	}
	return r;
}

static int tcp_connect(const ipc_url *u, int timeout_ms)
{
	struct tcp_try t = { .dl = IPC_DL_INIT(timeout_ms), .fd = -1 };
	int r = ipc__resolve(u, SOCK_STREAM, false, &t.res);
	if (r < 0)
		return r;
	r = ipc__retry(timeout_ms, tcp_try, &t);
	freeaddrinfo(t.res);
	return r < 0 ? r : t.fd;
}

static int tcp_attach(ipc_chan *c, ipc_deadline *dl)
{
	struct tcp_chan *t = T(c);
	int fd = ipc__accept(t->lfd, dl);
	if (fd < 0)
		return fd;
	set_nodelay(fd);
	ipc__close_fd(&t->lfd); /* a channel is a pair: release the port */
	t->s.rfd = t->s.wfd = fd;
	return 0;
}

static void tcp_release(ipc_chan *c)
{
	ipc__close_fd(&T(c)->lfd);
}

static void tcp_init(ipc_chan *c)
{
	ipc__stream_preinit(c);
	T(c)->lfd = -1;
	T(c)->s.release = tcp_release;
}

static int tcp_open(ipc_chan *c, const ipc_url *u, int flags)
{
	struct tcp_chan *t = T(c);
	int r;
	if (flags == IPC_SERVER) {
		if ((t->lfd = tcp_bind_listen(u, 1, &c->url)) < 0)
			return t->lfd;
		if ((r = ipc__stream_init(c, -1, -1, true)) < 0)
			return r;
		t->s.attach = tcp_attach;
		t->s.pending_fd = t->lfd;
		return 0;
	}
	/* (everything that can fail goes before connect(): see unix.c) */
	if ((r = ipc__stream_init(c, -1, -1, true)) < 0)
		return r;
	int fd = tcp_connect(u, c->cfg.connect_timeout_ms);
	if (fd < 0)
		return fd;
	t->s.rfd = t->s.wfd = fd;
	return ipc__stream_hello(c, IPC_NOWAIT);
}

static int tcp_pair(ipc_chan *a, ipc_chan *b)
{
	ipc_url u = { .host = "127.0.0.1", .port = 0 };
	char *url = NULL;
	int lfd = tcp_bind_listen(&u, 1, &url);
	if (lfd < 0)
		return lfd;
	free(url);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int r, fa, fb;
	if (getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		goto out;
	}
	struct addrinfo ai = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
			       .ai_addr = (struct sockaddr *)&ss, .ai_addrlen = sl };
	ipc_deadline dl = ipc__dl_in(5000);
	if ((r = fa = connect_one(&ai, &dl)) < 0)
		goto out;
	T(a)->s.rfd = T(a)->s.wfd = fa;
	if ((r = fb = ipc__accept(lfd, &dl)) < 0)
		goto out;
	set_nodelay(fb);
	T(b)->s.rfd = T(b)->s.wfd = fb;
	if ((r = ipc__stream_init(a, fa, fa, true)) < 0 ||
	    (r = ipc__stream_init(b, fb, fb, true)) < 0)
		goto out;
	ipc__stream_paired(a);
	ipc__stream_paired(b);
	r = 0;
	if (!(a->url = ipc__url_format("tcp", "pair:%d", fa)) ||
	    !(b->url = ipc__url_format("tcp", "pair:%d", fb)))
		r = -ENOMEM;
out:
	close(lfd);
	return r;
}

static int tcp_listen(ipc_listener *l, const ipc_url *u)
{
	struct tcp_listener *tl = TL(l);
	tl->lfd = tcp_bind_listen(u, 128, &l->url);
	return tl->lfd < 0 ? tl->lfd : 0;
}

static int tcp_accept(ipc_listener *l, ipc_chan *c, ipc_deadline *dl)
{
	int fd = ipc__accept(TL(l)->lfd, dl);
	if (fd < 0)
		return fd;
	set_nodelay(fd);
	T(c)->s.rfd = T(c)->s.wfd = fd;
	int r = ipc__stream_init(c, fd, fd, true);
	if (r < 0)
		return r;
	return ipc__stream_hello(c, IPC_NOWAIT);
}

static int tcp_listener_fd(ipc_listener *l)
{
	return TL(l)->lfd;
}

static void tcp_listener_close(ipc_listener *l)
{
	ipc__close_fd(&TL(l)->lfd);
}

const struct ipc_backend ipc__backend_tcp = {
	.scheme = "tcp",
	.addr_kind = IPC_ADDR_HOSTPORT,
	.caps = IPC_CAP_RELIABLE | IPC_CAP_CROSS_HOST | IPC_CAP_LISTEN | IPC_CAP_UNRELATED |
		IPC_CAP_PAIR | IPC_CAP_PROCESS,
	.chan_size = sizeof(struct tcp_chan),
	.listener_size = sizeof(struct tcp_listener),
	.max_msg_limit = UINT32_MAX,
	.init = tcp_init,
	.open = tcp_open,
	.pair = tcp_pair,
	IPC_STREAM_OPS,
	.listen = tcp_listen,
	.accept = tcp_accept,
	.listener_fd = tcp_listener_fd,
	.listener_close = tcp_listener_close,
};
