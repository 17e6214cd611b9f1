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
#include "stream.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
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

static int resolve(const ipc_url *u, bool passive, struct addrinfo **res)
{
	char port[8];
	snprintf(port, sizeof(port), "%d", u->port);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) };
	int r = getaddrinfo(u->host, port, &hints, res);
	if (r == 0)
		return 0;
	if (r == EAI_SYSTEM)
		return -errno;
	if (r == EAI_MEMORY)
		return -ENOMEM;
	return -EADDRNOTAVAIL; /* unknown host */
}

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Listen on the first address that works; *url gets the resolved URL. */
static int tcp_bind_listen(const ipc_url *u, int backlog, char **url)
{
	struct addrinfo *res, *ai;
	int r = resolve(u, true, &res);
	if (r < 0)
		return r;
	int fd = -1;
	r = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			r = -errno;
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
	/* only the port can differ from what was asked (port 0) */
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int port = u->port;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						      : ((struct sockaddr_in *)&ss)->sin_port);
	bool v6 = strchr(u->host, ':') != NULL;
	*url = ipc__url_format("tcp", v6 ? "[%s]:%d" : "%s:%d", u->host, port);
	if (!*url) {
		close(fd);
		return -ENOMEM;
	}
	return fd;
}

static int connect_one(const struct addrinfo *ai, ipc_deadline dl)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
	if (r < 0 && errno == EINPROGRESS) {
		int pr = ipc__wait_fd(fd, POLLOUT, dl == IPC_NOWAIT ? ipc__deadline(1000) : dl);
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

static int tcp_connect(const ipc_url *u, int timeout_ms)
{
	struct addrinfo *res;
	int r = resolve(u, false, &res);
	if (r < 0)
		return r;
	ipc_deadline dl = timeout_ms == 0 ? IPC_NOWAIT : ipc__deadline(timeout_ms);
	int delay = 1;
	for (;;) {
		for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
			r = connect_one(ai, dl);
			if (r >= 0)
				goto out;
		}
		if (r != -ECONNREFUSED && r != -EAGAIN)
			goto out;
		if (dl == IPC_NOWAIT)
			goto out;
		if (ipc__expired(dl)) {
			r = -ETIMEDOUT;
			goto out;
		}
		ipc__sleep_ms(delay, dl);
		if (delay < 50)
			delay *= 2;
	}
out:
	freeaddrinfo(res);
	return r;
}

static int tcp_attach(ipc_chan *c, ipc_deadline dl)
{
	struct tcp_chan *t = (struct tcp_chan *)c->priv;
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
	ipc__close_fd(&((struct tcp_chan *)c->priv)->lfd);
}

static int tcp_open(ipc_chan *c, const ipc_url *u, int flags)
{
	struct tcp_chan *t = (struct tcp_chan *)c->priv;
	t->lfd = -1;
	int fd = -1, r;
	if (flags == IPC_SERVER) {
		if ((t->lfd = tcp_bind_listen(u, 1, &c->url)) < 0)
			return t->lfd;
	} else if ((fd = tcp_connect(u, c->cfg.connect_timeout_ms)) < 0) {
		return fd;
	}
	if ((r = ipc__stream_init(c, fd, fd, true)) < 0) {
		if (fd >= 0)
			close(fd);
		tcp_release(c);
		return r;
	}
	t->s.release = tcp_release;
	if (flags == IPC_SERVER) {
		t->s.attach = tcp_attach;
		t->s.pending_fd = t->lfd;
	}
	return 0;
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
	int r, fa = -1, fb = -1;
	if (getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		goto out;
	}
	struct addrinfo ai = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
			       .ai_addr = (struct sockaddr *)&ss, .ai_addrlen = sl };
	if ((fa = connect_one(&ai, ipc__deadline(5000))) < 0) {
		r = fa;
		goto out;
	}
	if ((fb = ipc__accept(lfd, ipc__deadline(5000))) < 0) {
		r = fb;
		close(fa);
		goto out;
	}
	set_nodelay(fb);
	((struct tcp_chan *)a->priv)->lfd = -1;
	((struct tcp_chan *)b->priv)->lfd = -1;
	if ((r = ipc__stream_init(a, fa, fa, true)) < 0) {
		ipc__stream_close(a);
		close(fb);
		goto out;
	}
	if ((r = ipc__stream_init(b, fb, fb, true)) < 0) {
		ipc__stream_close(a);
		ipc__stream_close(b);
		goto out;
	}
	a->url = ipc__url_format("tcp", "pair:%d", fa);
	b->url = ipc__url_format("tcp", "pair:%d", fb);
out:
	close(lfd);
	return r;
}

static int tcp_listen(ipc_listener *l, const ipc_url *u)
{
	struct tcp_listener *tl = (struct tcp_listener *)l->priv;
	tl->lfd = tcp_bind_listen(u, 128, &l->url);
	return tl->lfd < 0 ? tl->lfd : 0;
}

static int tcp_accept(ipc_listener *l, ipc_chan *c, ipc_deadline dl)
{
	struct tcp_listener *tl = (struct tcp_listener *)l->priv;
	((struct tcp_chan *)c->priv)->lfd = -1;
	int fd = ipc__accept(tl->lfd, dl);
	if (fd < 0)
		return fd;
	set_nodelay(fd);
	int r = ipc__stream_init(c, fd, fd, true);
	if (r < 0)
		ipc__stream_close(c);
	return r;
}

static void tcp_listener_close(ipc_listener *l)
{
	ipc__close_fd(&((struct tcp_listener *)l->priv)->lfd);
}

const struct ipc_backend ipc__backend_tcp = {
	.scheme = "tcp",
	.addr_kind = IPC_ADDR_HOSTPORT,
	.caps = IPC_CAP_RELIABLE | IPC_CAP_CROSS_HOST | IPC_CAP_LISTEN | IPC_CAP_UNRELATED,
	.chan_size = sizeof(struct tcp_chan),
	.listener_size = sizeof(struct tcp_listener),
	.max_msg_limit = UINT32_MAX,
	.open = tcp_open,
	.pair = tcp_pair,
	IPC_STREAM_OPS,
	.listen = tcp_listen,
	.accept = tcp_accept,
	.listener_close = tcp_listener_close,
};
