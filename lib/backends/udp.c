/*
 * udp.c - UDP backend: one connected datagram socket per end.
 *
 * URL: udp://host:port or udp://[v6]:port; host names resolve through
 * getaddrinfo (lib/posix/sock.c: the server binds the first address that
 * works, the client tries them in order). Port 0 on a server picks a free
 * port (ipc_info's url then holds it). Each message is one datagram of at
 * most 65507 bytes (the IPv4 payload limit, used for IPv6 too): the
 * default max_msg is capped there, an explicit larger one is -EMSGSIZE.
 * capacity sets SO_SNDBUF and SO_RCVBUF.
 *
 * Contract mapping:
 * - The server binds at open and returns. It learns its peer from the
 *   first datagram that reaches it: its first send or recv waits for one
 *   (within that call's deadline), then connect()s to its source, after
 *   which the kernel drops datagrams from anyone else. Datagrams queued
 *   before the connect are swept at once (up to the receive buffer's
 *   size): the peer's are kept and delivered first, in order; anyone
 *   else's are dropped. The connected socket is the endpoint: the port
 *   stays bound for the channel's lifetime (a second server on it gets
 *   -EADDRINUSE until this channel is closed).
 * - The client connects and sends a hello datagram, the 8 bytes
 *   "IPCK" 'U' 0x01 0x00 0x00, so the server learns it even if the client
 *   only receives; the server swallows a first datagram equal to it. When
 *   nothing listens on a local port the kernel answers the hello with
 *   ICMP port unreachable and the client retries (ipc__retry) until
 *   connect_timeout_ms (-ECONNREFUSED with 0); a remote or firewalled host
 *   may not answer, and the client then opens without knowing whether a
 *   server exists.
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
 * - recv is one recv() per datagram: into the caller's buffer when cap >=
 *   max_msg, else into the channel's own max_msg buffer (one copy); a
 *   datagram larger than cap is then kept whole for the next call
 *   (-EMSGSIZE, need_len set). A receive that waits blocks in recv with
 *   SO_RCVTIMEO (lib/posix/sock.h). A
 *   datagram larger than max_msg (possible only from a peer that ignores
 *   our limit) is dropped like any lost datagram, whatever cap is.
 * - ipc_fd: an epoll set of the socket and an eventfd signalled while
 *   datagrams wait in memory (swept at attach, or kept for a larger buffer). On a server that has not
 *   yet seen its client, the hello makes it readable once although recv
 *   then waits.
 * - sendv is sendmmsg(): one system call for a batch.
 */
#include "posix/fdio.h"
#include "posix/sock.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define UDP_MAX_MSG 65507
#define UDP_HELLO_LEN 8
#define UDP_SENDV_MAX 1024
#define UDP_SLICE_MS 10
/* What the sweep counts per datagram on top of its payload: the kernel
 * charges more than this (skb truesize) against the receive buffer, so a
 * sweep of SO_RCVBUF bytes covers everything queued when it started. */
#define UDP_SWEEP_OVERHEAD 256

static const unsigned char udp_hello[UDP_HELLO_LEN] = { 'I', 'P', 'C', 'K', 'U', 1, 0, 0 };

struct udp_chan {
	int fd;
	atomic_bool ready;      /* connected to the peer */
	atomic_bool refused;    /* ICMP port unreachable seen: -EPIPE once drained */
	atomic_bool drained;    /* ... and drained: recv gives -EPIPE at once */
	pthread_mutex_t alock;  /* serialises the server's peer learning */
	/* the peer's datagrams swept at attach, [u32 len][payload]...; filled
	 * before ready, then read by the receiving thread only */
	unsigned char *bl;
	size_t bl_len, bl_pos;
	atomic_bool bl_waiting; /* bl holds a datagram (for ipc_fd) */
	unsigned char *rbuf;    /* receives for a caller's buffer below max_msg */
	int rcvtimeo_ms;        /* SO_RCVTIMEO as set (lib/posix/sock.h) */
	int spin_ns;            /* wait: -1 spin only, > 0 spin first, 0 sleep at once */
	pthread_mutex_t evlock; /* ipc_fd state */
	int epfd, evfd;
	bool ev_on;
};

#define UDP(c) IPC_PRIV(c, struct udp_chan)

static void udp_bufsize(int fd, size_t capacity)
{
	if (!capacity)
		return;
	int v = capacity > INT32_MAX / 2 ? INT32_MAX / 2 : (int)capacity;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
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

static void udp_init(ipc_chan *c)
{
	struct udp_chan *d = UDP(c);
	d->fd = d->epfd = d->evfd = -1;
	d->rcvtimeo_ms = -1;
	d->spin_ns = ipc__spin_ns(&c->cfg, IPC_KERNEL_SPIN_NS);
	pthread_mutex_init(&d->alock, NULL);
	pthread_mutex_init(&d->evlock, NULL);
}

static int udp_open_server(ipc_chan *c, const ipc_url *u)
{
	struct addrinfo *res;
	int r = ipc__resolve(u, SOCK_DGRAM, true, &res);
	if (r < 0)
		return r;
	r = -EADDRNOTAVAIL;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = ipc__socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			r = fd;
			continue;
		}
		/* No SO_REUSEADDR: a second server must get -EADDRINUSE. */
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			UDP(c)->fd = fd;
			r = 0;
			break;
		}
		r = -errno;
		close(fd);
	}
	freeaddrinfo(res);
	if (r < 0)
		return r;
	udp_bufsize(UDP(c)->fd, c->cfg.capacity);
	return (c->url = ipc__inet_url("udp", UDP(c)->fd, u->host)) ? 0 : -ENOMEM;
}

struct udp_try {
	ipc_chan *c;
	struct addrinfo *res;
};

/* Connect to each address in turn and say hello (ipc__retry's try): 0
 * with the socket in place, -ECONNREFUSED (nobody there) or -errno. */
static int udp_client_try(void *arg)
{
	struct udp_try *t = arg;
	struct udp_chan *d = UDP(t->c);
	int r = -ECONNREFUSED;
	for (struct addrinfo *ai = t->res; ai; ai = ai->ai_next) {
		int fd = ipc__socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return fd;
		udp_bufsize(fd, t->c->cfg.capacity);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		    send(fd, udp_hello, sizeof udp_hello, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			r = -errno;
		else /* on a local address the port-unreachable answer is
		      * queued before send returns: collect it now */
			r = udp_so_error(fd);
		if (r == 0) {
			d->fd = fd;
			return 0;
		}
		close(fd);
		if (r != -ECONNREFUSED)
			return r;
	}
	return r;
}

static int udp_open_client(ipc_chan *c, const ipc_url *u)
{
	struct udp_try t = { .c = c };
	int r = ipc__resolve(u, SOCK_DGRAM, false, &t.res);
	if (r < 0)
		return r;
	r = ipc__retry(c->cfg.connect_timeout_ms, udp_client_try, &t);
	freeaddrinfo(t.res);
	if (r < 0)
		return r;
	atomic_store(&UDP(c)->ready, true);
	return 0;
}

static int udp_open(ipc_chan *c, const ipc_url *u, int flags)
{
	if (c->max_msg > UDP_MAX_MSG) /* the core caps it; refuse if not */
		return -EMSGSIZE;
	return flags == IPC_SERVER ? udp_open_server(c, u) : udp_open_client(c, u);
}

static int udp_pair(ipc_chan *a, ipc_chan *b)
{
	struct sockaddr_in sa[2];
	ipc_chan *end[2] = { a, b };
	for (int i = 0; i < 2; i++) {
		socklen_t sl = sizeof sa[i];
		memset(&sa[i], 0, sizeof sa[i]);
		sa[i].sin_family = AF_INET;
		sa[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int fd = ipc__socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return fd;
		UDP(end[i])->fd = fd;
		if (bind(fd, (struct sockaddr *)&sa[i], sizeof sa[i]) < 0 ||
		    getsockname(fd, (struct sockaddr *)&sa[i], &sl) < 0)
			return -errno;
		udp_bufsize(fd, a->cfg.capacity);
	}
	for (int i = 0; i < 2; i++) {
		if (connect(UDP(end[i])->fd, (struct sockaddr *)&sa[1 - i], sizeof sa[1 - i]) < 0)
			return -errno;
		if (!(end[i]->url = ipc__url_format("udp", "127.0.0.1:%d", ntohs(sa[i].sin_port))))
			return -ENOMEM;
	}
	atomic_store(&UDP(a)->ready, true);
	atomic_store(&UDP(b)->ready, true);
	return 0;
}

/* ---- the server learns its peer ---- */

static bool udp_same_addr(const struct sockaddr_storage *x, const struct sockaddr_storage *y)
{
	if (x->ss_family != y->ss_family)
		return false;
	if (x->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)x, *b = (const void *)y;
		return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
	}
	if (x->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)x, *b = (const void *)y;
		return a->sin6_port == b->sin6_port &&
		       memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
	}
	return false;
}

/* Keep ipc_fd's eventfd signalled exactly while swept datagrams wait. */
static void udp_ev_update(struct udp_chan *d)
{
	pthread_mutex_lock(&d->evlock);
	ipc__ev_level(d->evfd, &d->ev_on, atomic_load(&d->bl_waiting));
	pthread_mutex_unlock(&d->evlock);
}

/* Append one queued datagram of n bytes to the backlog (taking it off the
 * socket); without memory it is dropped, as any datagram may be. */
static void udp_keep(struct udp_chan *d, size_t n)
{
	unsigned char *p = ipc__realloc(d->bl, d->bl_len + 4 + n);
	if (!p) {
		(void)recv(d->fd, NULL, 0, MSG_DONTWAIT | MSG_TRUNC);
		return;
	}
	d->bl = p;
	if (recv(d->fd, p + d->bl_len + 4, n, MSG_DONTWAIT) != (ssize_t)n)
		return;
	uint32_t len = (uint32_t)n;
	memcpy(p + d->bl_len, &len, 4);
	d->bl_len += 4 + n;
}

/*
 * Just connected to peer: take off everything queued before (at most
 * SO_RCVBUF bytes' worth), keeping the peer's datagrams in order and
 * dropping anyone else's (and, first in line, the peer's hello, and
 * anything larger than max_msg).
 */
static void udp_sweep(ipc_chan *c, const struct sockaddr_storage *peer)
{
	struct udp_chan *d = UDP(c);
	int rcvbuf = 0;
	socklen_t ol = sizeof rcvbuf;
	if (getsockopt(d->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &ol) < 0 || rcvbuf <= 0)
		rcvbuf = 1 << 20;
	for (size_t swept = 0, i = 0; swept < (size_t)rcvbuf; i++) {
		unsigned char h[UDP_HELLO_LEN];
		struct sockaddr_storage from;
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(d->fd, h, sizeof h, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT,
				     (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break; /* EAGAIN: swept; an error shows in the next call */
		}
		swept += (size_t)n + UDP_SWEEP_OVERHEAD;
		bool hello = i == 0 && n == UDP_HELLO_LEN && memcmp(h, udp_hello, sizeof h) == 0;
		if (!hello && (size_t)n <= c->max_msg && udp_same_addr(&from, peer))
			udp_keep(d, (size_t)n);
		else
			(void)recv(d->fd, NULL, 0, MSG_DONTWAIT | MSG_TRUNC);
	}
	atomic_store(&d->bl_waiting, d->bl_len > 0);
	udp_ev_update(d);
}

/* One look for the first datagram: 0 when attached now, 1 when none is
 * there yet, or -errno. Under alock. */
static int udp_attach_once(ipc_chan *c)
{
	struct udp_chan *d = UDP(c);
	unsigned char h[1];
	struct sockaddr_storage from;
	socklen_t fl = sizeof from;
	ssize_t n = recvfrom(d->fd, h, sizeof h, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT,
			     (struct sockaddr *)&from, &fl);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 1 : -errno;
	if (connect(d->fd, (struct sockaddr *)&from, fl) < 0)
		return -errno;
	udp_sweep(c, &from);
	atomic_store_explicit(&d->ready, true, memory_order_release);
	return 0;
}

/*
 * Server: wait for the first datagram, connect to its sender, sweep. A
 * sending and a receiving thread may both wait; whoever locks first
 * attaches, the other sees ready within a slice.
 */
static int udp_attach(ipc_chan *c, ipc_deadline *dl)
{
	struct udp_chan *d = UDP(c);
	for (;;) {
		pthread_mutex_lock(&d->alock);
		int r = atomic_load(&d->ready) ? 0 : udp_attach_once(c);
		pthread_mutex_unlock(&d->alock);
		if (r <= 0)
			return r;
		if (ipc__dl_nowait(dl))
			return -EAGAIN;
		ipc_deadline slice = ipc__dl_slice(dl, UDP_SLICE_MS);
		r = ipc__wait_fd(d->fd, POLLIN, &slice);
		if (r < 0 && (r != -ETIMEDOUT || ipc__expired(dl)))
			return r;
	}
}

static inline int udp_ready(ipc_chan *c, ipc_deadline *dl)
{
	if (__builtin_expect(atomic_load_explicit(&UDP(c)->ready, memory_order_acquire), 1))
		return 0;
	return udp_attach(c, dl);
}

/* ---- data ---- */

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

/* The next swept datagram: its length, or -EMSGSIZE (it stays first). */
static ssize_t udp_recv_swept(ipc_chan *c, struct udp_chan *d, void *buf, size_t cap)
{
	uint32_t len;
	memcpy(&len, d->bl + d->bl_pos, 4);
	if (len > cap) {
		c->need_len = len;
		return -EMSGSIZE;
	}
	if (len)
		memcpy(buf, d->bl + d->bl_pos + 4, len);
	d->bl_pos += 4 + (size_t)len;
	if (d->bl_pos == d->bl_len) {
		free(d->bl);
		d->bl = NULL;
		d->bl_pos = d->bl_len = 0;
		atomic_store(&d->bl_waiting, false);
		udp_ev_update(d);
	}
	return (ssize_t)len;
}

/* A datagram taken off the socket that the caller's buffer cannot hold:
 * kept whole, first in line (the backlog is empty when this happens). */
static ssize_t udp_keep_refused(ipc_chan *c, struct udp_chan *d, size_t n)
{
	unsigned char *p = ipc__malloc(4 + n);
	if (!p)
		return -ENOMEM; /* (lost, like any datagram may be) */
	uint32_t len = (uint32_t)n;
	memcpy(p, &len, 4);
	memcpy(p + 4, d->rbuf, n);
	d->bl = p;
	d->bl_len = 4 + n;
	d->bl_pos = 0;
	atomic_store(&d->bl_waiting, true);
	udp_ev_update(d);
	c->need_len = n;
	return -EMSGSIZE;
}

/*
 * One recv per datagram: straight into the caller's buffer when it holds
 * max_msg, else into the channel's own buffer (one copy), so that a
 * datagram too large for the caller's buffer stays for the next call. A
 * receive that waits blocks in recv with SO_RCVTIMEO.
 */
static ssize_t udp_recv(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl)
{
	struct udp_chan *d = UDP(c);
	int r = udp_ready(c, dl);
	if (r < 0)
		return r;
	if (d->bl)
		return udp_recv_swept(c, d, buf, cap);
	if (atomic_load_explicit(&d->drained, memory_order_relaxed))
		return -EPIPE;
	bool direct = cap >= c->max_msg;
	if (!direct && !d->rbuf && !(d->rbuf = ipc__malloc(c->max_msg)))
		return -ENOMEM;
	void *to = direct ? buf : d->rbuf;
	bool refused = atomic_load_explicit(&d->refused, memory_order_relaxed);
	/* wait=spin/adaptive: tries without waiting first */
	int spin = refused || ipc__dl_nowait(dl) ? 0 : d->spin_ns;
	int64_t spin_start = 0;
	unsigned tries = 0;
	for (;;) {
		/* After a refusal only what is already queued is returned. */
		int ms = refused ? 0 : ipc__remaining_ms(dl);
		int flags = MSG_TRUNC;
		if (ms == 0 || spin != 0)
			flags |= MSG_DONTWAIT;
		else if ((r = ipc__sock_rcvtimeo(d->fd, &d->rcvtimeo_ms, ms)) < 0)
			return r;
		/* at most max_msg bytes; MSG_TRUNC tells the real length */
		ssize_t n = recv(d->fd, to, c->max_msg, flags);
		if (n >= 0) {
			if ((size_t)n > c->max_msg)
				continue; /* larger than our limit: dropped, like a lost one */
			if (direct)
				return n;
			if ((size_t)n > cap)
				return udp_keep_refused(c, d, (size_t)n);
			if (n)
				memcpy(buf, d->rbuf, (size_t)n);
			return n;
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
		if (spin != 0 && ms != 0) {
			ipc__cpu_relax();
			if (++tries % 16)
				continue;
			int64_t now = ipc__now_ns();
			if (!spin_start)
				spin_start = now;
			if (ipc__expired(dl))
				return ipc__timeout_err(dl);
			if (spin > 0 && now - spin_start >= spin)
				spin = 0; /* now sleep in recv */
			continue;
		}
		/* SO_RCVTIMEO ran out (or a never-block try): done unless the
		 * clock says time is left (rounding) */
		if (ms == 0 || ipc__expired(dl))
			return ipc__timeout_err(dl);
	}
}

static int udp_fd(ipc_chan *c)
{
	struct udp_chan *d = UDP(c);
	pthread_mutex_lock(&d->evlock);
	int r = d->epfd >= 0 ? 0 : ipc__evset(&d->epfd, &d->evfd, &d->fd, 1);
	d->ev_on = r == 0 ? d->ev_on : false;
	pthread_mutex_unlock(&d->evlock);
	if (r < 0)
		return r;
	udp_ev_update(d);
	return d->epfd;
}

static void udp_close(ipc_chan *c)
{
	struct udp_chan *d = UDP(c);
	ipc__close_fd(&d->fd);
	ipc__close_fd(&d->epfd);
	ipc__close_fd(&d->evfd);
	free(d->bl);
	free(d->rbuf);
	d->bl = d->rbuf = NULL;
	pthread_mutex_destroy(&d->alock);
	pthread_mutex_destroy(&d->evlock);
}

const struct ipc_backend ipc__backend_udp = {
	.scheme = "udp",
	.addr_kind = IPC_ADDR_HOSTPORT,
	.caps = IPC_CAP_CROSS_HOST | IPC_CAP_UNRELATED | IPC_CAP_PAIR | IPC_CAP_PROCESS,
	.chan_size = sizeof(struct udp_chan),
	.max_msg_limit = UDP_MAX_MSG,
	.init = udp_init,
	.open = udp_open,
	.pair = udp_pair,
	.send = udp_send,
	.sendv = udp_sendv,
	.recv = udp_recv,
	.fd = udp_fd,
	.close = udp_close,
};
