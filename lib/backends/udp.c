/*
 * udp.c - UDP backend: one connected datagram socket per end.
 *
 * URL: udp://host:port or udp://[v6]:port; host names resolve through
 * getaddrinfo (the server binds the first address that works, the client
 * tries them in order). Port 0 on a server picks a free port (ipc_info's
 * url then holds it). Each message is one datagram of at most 65507 bytes
 * (the IPv4 payload limit, used for IPv6 too): the default max_msg is
 * capped there, an explicit larger one is -EMSGSIZE. capacity sets
 * SO_SNDBUF and SO_RCVBUF.
 *
 * Contract mapping:
 * - The server binds at open and returns. It learns its peer from the
 *   first datagram that reaches it: its first send or recv waits for one
 *   (within that call's deadline), then connect()s to its source, after
 *   which the kernel drops datagrams from anyone else.
 * - The client connects and sends a hello datagram, the 8 bytes
 *   "IPCK" 'U' 0x01 0x00 0x00, so the server learns it even if the client
 *   only receives; the server swallows a first datagram equal to it. When
 *   nothing listens on a local port the kernel answers the hello with
 *   ICMP port unreachable and the client retries until connect_timeout_ms
 *   (-ECONNREFUSED with 0); a remote or firewalled host may not answer, and
 *   the client then opens without knowing whether a server exists.
 * - Unreliable: no IPC_CAP_RELIABLE. Datagrams may be lost, duplicated or
 *   reordered, and a lost hello leaves the server waiting for the client's
 *   first data datagram.
 * - Peer close or death: UDP sends nothing on close. When the peer's port
 *   answers with ICMP port unreachable (always on loopback, after one of
 *   our sends), the socket reports ECONNREFUSED, which becomes a sticky
 *   -EPIPE after the datagrams already queued were returned. A receiver
 *   that never sends learns nothing: no peer-death guarantee on udp.
 *   Once drained, the socket is shut down for reading so that ipc_fd
 *   stays readable while recv returns -EPIPE at once.
 * - recv with cap >= max_msg is one recv() into the caller's buffer. A
 *   smaller cap first peeks (MSG_PEEK|MSG_TRUNC) to learn the length, so a
 *   datagram larger than cap stays queued (-EMSGSIZE, need_len set). A
 *   datagram larger than max_msg (possible only from a peer that ignores
 *   our limit) is truncated by a receive with cap >= max_msg, and dropped
 *   like any lost datagram.
 * - ipc_fd is the socket itself. On a server that has not yet seen its
 *   client, the hello makes it readable once although recv then waits.
 * - sendv is sendmmsg(): one system call for a batch.
 */
#include "posix/fdio.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define UDP_MAX_MSG 65507
#define UDP_HELLO_LEN 8
#define UDP_RETRY_MS 10
#define UDP_SENDV_MAX 1024

static const unsigned char udp_hello[UDP_HELLO_LEN] = { 'I', 'P', 'C', 'K', 'U', 1, 0, 0 };

struct udp_chan {
	int fd;
	atomic_bool ready;      /* connected to the peer */
	atomic_bool refused;    /* ICMP port unreachable seen: -EPIPE once drained */
	atomic_bool drained;    /* ... and drained: recv gives -EPIPE at once */
	pthread_mutex_t alock;  /* serialises the server's peer learning */
};

#define UDP(c) ((struct udp_chan *)(void *)(c)->priv)

static int udp_resolve(const ipc_url *u, bool passive, struct addrinfo **res)
{
	char port[8];
	snprintf(port, sizeof port, "%d", u->port);
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM,
				  .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) };
	int r = getaddrinfo(u->host[0] ? u->host : NULL, port, &hints, res);
	if (r == 0)
		return 0;
	if (r == EAI_SYSTEM)
		return -errno;
	if (r == EAI_MEMORY)
		return -ENOMEM;
	return -EADDRNOTAVAIL; /* unknown host */
}

static void udp_bufsize(int fd, size_t capacity)
{
	if (!capacity)
		return;
	int v = capacity > INT32_MAX / 2 ? INT32_MAX / 2 : (int)capacity;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
}

/* The resolved URL of a bound socket (port 0 -> the real port). */
static char *udp_url(int fd, const char *host)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int port = 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                      : ((struct sockaddr_in *)&ss)->sin_port);
	bool v6 = strchr(host, ':') != NULL;
	return ipc__url_format("udp", v6 ? "[%s]:%d" : "%s:%d", host, port);
}

/* A pending ICMP error on a connected socket, consumed: -ECONNREFUSED or 0. */
static int udp_so_error(int fd)
{
	int err = 0;
	socklen_t l = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
		return -errno;
	return -err;
}

static int udp_open_server(ipc_chan *c, const ipc_url *u)
{
	struct addrinfo *res, *ai;
	int r = udp_resolve(u, true, &res);
	if (r < 0)
		return r;
	int fd = -1;
	r = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		/* No SO_REUSEADDR: a second server must get -EADDRINUSE. */
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		r = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return r;
	udp_bufsize(fd, c->cfg.capacity);
	if (!(c->url = udp_url(fd, u->host))) {
		close(fd);
		return -ENOMEM;
	}
	UDP(c)->fd = fd;
	return 0;
}

/* Connect to ai and say hello: the fd, -ECONNREFUSED (nobody there) or -errno. */
static int udp_client_try(ipc_chan *c, const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int r;
	udp_bufsize(fd, c->cfg.capacity);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		goto fail_errno;
	if (send(fd, udp_hello, sizeof udp_hello, MSG_NOSIGNAL) < 0)
		goto fail_errno;
	/* On a local address the port-unreachable answer is queued before
	 * send returns; collect it now. */
	if ((r = udp_so_error(fd)) < 0)
		goto fail;
	return fd;
fail_errno:
	r = -errno;
fail:
	close(fd);
	return r;
}

static int udp_open_client(ipc_chan *c, const ipc_url *u)
{
	struct addrinfo *res;
	int r = udp_resolve(u, false, &res);
	if (r < 0)
		return r;
	int ms = c->cfg.connect_timeout_ms;
	ipc_deadline dl = IPC_DL_INIT(ms);
	for (;;) {
		for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
			r = udp_client_try(c, ai);
			if (r >= 0 || r != -ECONNREFUSED)
				break;
		}
		if (r >= 0 || r != -ECONNREFUSED || ms == 0)
			break;
		if (ipc__expired(&dl)) {
			r = -ETIMEDOUT;
			break;
		}
		ipc__sleep_ms(UDP_RETRY_MS, &dl);
	}
	freeaddrinfo(res);
	if (r < 0)
		return r;
	UDP(c)->fd = r;
	atomic_store(&UDP(c)->ready, true);
	return 0;
}

static int udp_open(ipc_chan *c, const ipc_url *u, int flags)
{
	struct udp_chan *d = UDP(c);
	d->fd = -1;
	if (c->max_msg > UDP_MAX_MSG) /* the core caps it; refuse if not */
		return -EMSGSIZE;
	int r = flags == IPC_SERVER ? udp_open_server(c, u) : udp_open_client(c, u);
	if (r < 0)
		return r;
	pthread_mutex_init(&d->alock, NULL);
	return 0;
}

static int udp_pair(ipc_chan *a, ipc_chan *b)
{
	struct sockaddr_in sa[2];
	int fd[2] = { -1, -1 }, r;
	for (int i = 0; i < 2; i++) {
		socklen_t sl = sizeof sa[i];
		memset(&sa[i], 0, sizeof sa[i]);
		sa[i].sin_family = AF_INET;
		sa[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd[i] < 0 || bind(fd[i], (struct sockaddr *)&sa[i], sizeof sa[i]) < 0 ||
		    getsockname(fd[i], (struct sockaddr *)&sa[i], &sl) < 0)
			goto fail;
		udp_bufsize(fd[i], a->cfg.capacity);
	}
	if (connect(fd[0], (struct sockaddr *)&sa[1], sizeof sa[1]) < 0 ||
	    connect(fd[1], (struct sockaddr *)&sa[0], sizeof sa[0]) < 0)
		goto fail;
	a->url = ipc__url_format("udp", "127.0.0.1:%d", ntohs(sa[0].sin_port));
	b->url = ipc__url_format("udp", "127.0.0.1:%d", ntohs(sa[1].sin_port));
	UDP(a)->fd = fd[0];
	UDP(b)->fd = fd[1];
	atomic_store(&UDP(a)->ready, true);
	atomic_store(&UDP(b)->ready, true);
	pthread_mutex_init(&UDP(a)->alock, NULL);
	pthread_mutex_init(&UDP(b)->alock, NULL);
	return 0;
fail:
	r = -errno;
	ipc__close_fd(&fd[0]);
	ipc__close_fd(&fd[1]);
	free(a->url);
	free(b->url);
	a->url = b->url = NULL;
	return r;
}

/*
 * Server: wait for the first datagram, connect to its sender, swallow it
 * if it is the hello. Waiting happens outside the lock, so a sending and
 * a receiving thread may both wait; whoever locks first connects.
 */
static int udp_attach(ipc_chan *c, ipc_deadline *dl)
{
	struct udp_chan *d = UDP(c);
	for (;;) {
		/* Wait in slices of at most 10 ms: another thread may take the
		 * first datagram (and attach) while this one sleeps. */
		ipc_deadline slice = ipc__dl_slice(dl, 10);
		int r = ipc__wait_fd(d->fd, POLLIN, &slice);
		if (r == -ETIMEDOUT && !ipc__expired(dl))
			r = 0;
		if (r < 0)
			return r;
		pthread_mutex_lock(&d->alock);
		if (atomic_load(&d->ready)) {
			pthread_mutex_unlock(&d->alock);
			return 0;
		}
		unsigned char h[UDP_HELLO_LEN];
		struct sockaddr_storage from;
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(d->fd, h, sizeof h, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT,
		                     (struct sockaddr *)&from, &fl);
		if (n >= 0) {
			r = 0;
			if (connect(d->fd, (struct sockaddr *)&from, fl) < 0)
				r = -errno;
			else if (n == UDP_HELLO_LEN && memcmp(h, udp_hello, sizeof h) == 0)
				recv(d->fd, h, sizeof h, MSG_DONTWAIT);
			if (r == 0)
				atomic_store(&d->ready, true);
		} else if (errno == EAGAIN || errno == EINTR) {
			r = 1;
		} else {
			r = -errno;
		}
		pthread_mutex_unlock(&d->alock);
		if (r <= 0)
			return r;
		if (ipc__expired(dl))
			return ipc__timeout_err(dl);
	}
}

static inline int udp_ready(ipc_chan *c, ipc_deadline *dl)
{
	if (__builtin_expect(atomic_load_explicit(&UDP(c)->ready, memory_order_acquire), 1))
		return 0;
	return udp_attach(c, dl);
}

static int udp_send(ipc_chan *c, const void *msg, size_t len, ipc_deadline *dl)
{
	struct udp_chan *d = UDP(c);
	int r = udp_ready(c, dl);
	if (r < 0)
		return r;
	if (atomic_load_explicit(&d->refused, memory_order_relaxed))
		return -EPIPE;
	int flags = MSG_NOSIGNAL | (ipc__dl_forever(dl) ? 0 : MSG_DONTWAIT);
	for (;;) {
		if (send(d->fd, msg, len, flags) >= 0)
			return 0;
		int e = errno;
		if (e == EINTR)
			continue;
		if (e == ECONNREFUSED) {
			atomic_store(&d->refused, true);
			return -EPIPE;
		}
		if (e != EAGAIN && e != EWOULDBLOCK && e != ENOBUFS)
			return -e;
		if ((r = ipc__wait_fd(d->fd, POLLOUT, dl)) < 0)
			return r;
	}
}

static int udp_sendv(ipc_chan *c, const ipc_msg *msgs, size_t n, ipc_deadline *dl)
{
	struct udp_chan *d = UDP(c);
	int r = udp_ready(c, dl);
	if (r < 0)
		return r;
	if (atomic_load_explicit(&d->refused, memory_order_relaxed))
		return -EPIPE;
	struct mmsghdr mm[64];
	struct iovec iov[64];
	size_t done = 0;
	int flags = MSG_NOSIGNAL | (ipc__dl_forever(dl) ? 0 : MSG_DONTWAIT);
	for (size_t guard = 0; done < n && guard < n + UDP_SENDV_MAX; guard++) {
		unsigned k = 0;
		for (; k < 64 && done + k < n; k++) {
			iov[k].iov_base = (void *)msgs[done + k].data;
			iov[k].iov_len = msgs[done + k].len;
			memset(&mm[k], 0, sizeof mm[k]);
			mm[k].msg_hdr.msg_iov = &iov[k];
			mm[k].msg_hdr.msg_iovlen = 1;
		}
		int s = sendmmsg(d->fd, mm, k, flags);
		if (s > 0) {
			done += (size_t)s;
			continue;
		}
		int e = s < 0 ? errno : EAGAIN;
		if (e == EINTR)
			continue;
		if (e == ECONNREFUSED) {
			atomic_store(&d->refused, true);
			r = -EPIPE;
		} else if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
			if ((r = ipc__wait_fd(d->fd, POLLOUT, dl)) >= 0)
				continue;
		} else {
			r = -e;
		}
		break;
	}
	/* (the guard ran out with nothing sent: report the wait as a timeout) */
	return done ? (int)done : r < 0 ? r : ipc__timeout_err(dl);
}

static ssize_t udp_recv(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl)
{
	struct udp_chan *d = UDP(c);
	int r = udp_ready(c, dl);
	if (r < 0)
		return r;
	if (atomic_load_explicit(&d->drained, memory_order_relaxed))
		return -EPIPE;
	bool direct = cap >= c->max_msg;
	bool refused = atomic_load_explicit(&d->refused, memory_order_relaxed);
	for (;;) {
		/* After a refusal only what is already queued is returned. */
		int flags = refused || !ipc__dl_forever(dl) ? MSG_DONTWAIT : 0;
		ssize_t n;
		if (direct) {
			n = recv(d->fd, buf, cap, flags | MSG_TRUNC);
			if (n >= 0) {
				if ((size_t)n <= cap)
					return n;
				continue; /* larger than max_msg: dropped */
			}
		} else {
			n = recv(d->fd, buf, cap, flags | MSG_PEEK | MSG_TRUNC);
			if (n >= 0) {
				if ((size_t)n > cap) {
					c->need_len = (size_t)n;
					return -EMSGSIZE;
				}
				/* The payload is in buf already; take it off the queue. */
				if (recv(d->fd, NULL, 0, MSG_DONTWAIT | MSG_TRUNC) < 0 && errno != EAGAIN)
					return -errno;
				return n;
			}
		}
		int e = errno;
		if (e == EINTR)
			continue;
		if (e == ECONNREFUSED) {
			atomic_store(&d->refused, true);
			refused = true;
			continue;
		}
		if (e != EAGAIN && e != EWOULDBLOCK)
			return -e;
		if (refused) {
			/* Keep ipc_fd readable from now on, as recv will not block. */
			atomic_store(&d->drained, true);
			shutdown(d->fd, SHUT_RD);
			return -EPIPE;
		}
		if ((r = ipc__wait_fd(d->fd, POLLIN, dl)) < 0)
			return r;
	}
}

static int udp_fd(ipc_chan *c)
{
	return UDP(c)->fd;
}

static void udp_close(ipc_chan *c)
{
	struct udp_chan *d = UDP(c);
	ipc__close_fd(&d->fd);
	pthread_mutex_destroy(&d->alock);
}

const struct ipc_backend ipc__backend_udp = {
	.scheme = "udp",
	.addr_kind = IPC_ADDR_HOSTPORT,
	.caps = IPC_CAP_CROSS_HOST | IPC_CAP_UNRELATED | IPC_CAP_PAIR | IPC_CAP_PROCESS,
	.chan_size = sizeof(struct udp_chan),
	.max_msg_limit = UDP_MAX_MSG,
	.open = udp_open,
	.pair = udp_pair,
	.send = udp_send,
	.sendv = udp_sendv,
	.recv = udp_recv,
	.fd = udp_fd,
	.close = udp_close,
};
