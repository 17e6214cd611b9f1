/*
 * rows/rawfd.c - raw baselines made of the fd mechanisms' own system calls,
 * called the way a programmer writing raw code would: a blocking read, recv
 * or mq_receive, with no poll before it (a timeout, where a lossy row needs
 * one, is SO_RCVTIMEO or mq_timedreceive).
 *   tcp   TCP_NODELAY socket, write/read of exactly size bytes
 *   udp   connected datagram sockets, send/recv
 *   unix  SOCK_STREAM socketpair, write/read of exactly size bytes
 *   fifo  two FIFOs, write/read of exactly size bytes
 *   pipe  two pipes, write/read of exactly size bytes
 *   mq    two POSIX queues, mq_send/mq_receive
 * Stream baselines carry no framing: the reader knows the size. Each row
 * applies c->want, the tuning measured on the ipckit row it is compared with
 * (pipe size, AF_UNIX and UDP socket buffers, queue depth and message size);
 * TCP buffers are left to the kernel's autotuning in both rows.
 */
#include "row.h"

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct fd_prep {
	int fd[4];
	char name[2][128];   /* FIFOs or queues not removed yet */
	bool mq;
};

struct fd_ep {
	int rfd, wfd;
	int tmo;              /* SO_RCVTIMEO now set, ms (0: none) */
	unsigned char *scratch; /* mq: a receive buffer of the queue's msgsize */
	size_t msgsize;
};

static struct fd_ep *fe(struct ep *e)
{
	return e->st;
}

void fmt_hostport(char *buf, size_t cap, const char *host, int port)
{
	snprintf(buf, cap, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

/* "host:port" or "[v6]:port" -> an address. */
static int resolve(const char *hp, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[96];
	const char *colon = strrchr(hp, ':');
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV }, *res;
	if (!colon || (size_t)(colon - hp) >= sizeof(host))
		return -EINVAL;
	size_t hl = (size_t)(colon - hp);
	if (hp[0] == '[' && hl >= 2 && hp[hl - 1] == ']') {
		memcpy(host, hp + 1, hl - 2);
		host[hl - 2] = 0;
	} else {
		memcpy(host, hp, hl);
		host[hl] = 0;
	}
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
		return -EINVAL;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int addr_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
					       : ((const struct sockaddr_in *)ss)->sin_port);
}

/* Our end's address as "host:port". */
static int local_hostport(int fd, char *buf, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[96];
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), NULL, 0, NI_NUMERICHOST))
		return -EINVAL;
	fmt_hostport(buf, cap, host, addr_port(&ss));
	return 0;
}

/* A socket of type bound to host, port 0. */
static int bound_socket(int type, const char *host)
{
	char hp[96];
	struct sockaddr_storage ss;
	socklen_t sl;
	fmt_hostport(hp, sizeof(hp), host, 0);
	int r = resolve(hp, &ss, &sl);
	if (r)
		return r;
	int fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int connect_to(int fd, const char *hp)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int r = resolve(hp, &ss, &sl);
	if (r)
		return r;
	while (connect(fd, (struct sockaddr *)&ss, sl) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static void set_buf(int fd, int opt, uint32_t want)
{
	int cur = 0, v = (int)(want / 2);
	socklen_t l = sizeof(cur);
	if (!want || getsockopt(fd, SOL_SOCKET, opt, &cur, &l) < 0 || (uint32_t)cur == want)
		return;
	setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
	l = sizeof(cur);
	/* Above net.core.*mem_max only the FORCE variants (root) reach it. */
	if (getsockopt(fd, SOL_SOCKET, opt, &cur, &l) == 0 && (uint32_t)cur < want)
		setsockopt(fd, SOL_SOCKET, opt == SO_SNDBUF ? SO_SNDBUFFORCE : SO_RCVBUFFORCE,
			   &v, sizeof(v));
}

void tune_socket(int fd, const struct tuning *t)
{
	int proto = 0;
	socklen_t l = sizeof(proto);
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l) == 0 && proto == IPPROTO_TCP)
		return;   /* autotuned: setting a size would switch that off */
	set_buf(fd, SO_SNDBUF, t->sndbuf);
	set_buf(fd, SO_RCVBUF, t->rcvbuf);
}

void tune_pipe(int fd, const struct tuning *t)
{
	if (t->pipe_sz && fcntl(fd, F_GETPIPE_SZ) != (int)t->pipe_sz)
		(void)fcntl(fd, F_SETPIPE_SZ, (int)t->pipe_sz);
}

/* ---- byte streams: tcp, unix, fifo, pipe ---- */

static int stream_send(struct ep *e, const void *buf, size_t len)
{
	const char *b = buf;
	while (len) {
		ssize_t r = write(fe(e)->wfd, b, len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Poll only when the caller asked not to block (the open loop, which
 * sleeps in ppoll between messages anyway) or for a timeout. */
static int poll_for(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	for (;;) {
		int r = poll(&p, 1, timeout_ms);
		if (r > 0)
			return 0;
		if (r == 0)
			return timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static ssize_t stream_recv(struct ep *e, void *buf, size_t cap, int timeout_ms)
{
	char *b = buf;
	size_t need = e->c->s.size, got = 0;
	if (cap < need)
		return -EMSGSIZE;
	if (timeout_ms >= 0) {
		int r = poll_for(fe(e)->rfd, timeout_ms);
		if (r)
			return r;
	}
	while (got < need) {
		ssize_t r = read(fe(e)->rfd, b + got, need - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EPIPE;
		got += (size_t)r;
	}
	return (ssize_t)need;
}

static void fd_close(struct ep *e)
{
	struct fd_ep *f = fe(e);
	if (f->rfd >= 0)
		close(f->rfd);
	if (f->wfd >= 0 && f->wfd != f->rfd)
		close(f->wfd);
	f->rfd = f->wfd = -1;
	free(f->scratch);
	f->scratch = NULL;
}

static int fd_wait(struct ep *e, uint64_t deadline_ns)
{
	return wait_fd_until(fe(e)->rfd, deadline_ns);
}

static int fd_prep_init(struct chan *c)
{
	struct fd_prep *p = c->prep;
	for (int i = 0; i < 4; i++)
		p->fd[i] = -1;
	return 0;
}

/* Take the prepared descriptors of this side; in two processes, close
 * those of the other side. */
static void take(struct ep *e, int r_slot, int w_slot, int other_r, int other_w)
{
	struct fd_prep *p = e->c->prep;
	struct fd_ep *f = fe(e);
	f->rfd = p->fd[r_slot];
	f->wfd = p->fd[w_slot];
	p->fd[r_slot] = p->fd[w_slot] = -1;
	if (!e->c->s.threads) {
		for (int i = 0; i < 2; i++) {
			int s = i ? other_w : other_r;
			if (p->fd[s] >= 0)
				close(p->fd[s]);
			p->fd[s] = -1;
		}
	}
}

static void fd_cleanup(struct chan *c)
{
	struct fd_prep *p = c->prep;
	for (int i = 0; p && i < 4; i++) {
		if (p->fd[i] >= 0)
			close(p->fd[i]);
		p->fd[i] = -1;
	}
}

static void fd_unlink(const struct chan *c)
{
	const struct fd_prep *p = c->prep;
	for (int i = 0; p && i < 2; i++) {
		if (!p->name[i][0])
			continue;
		if (p->mq)
			mq_unlink(p->name[i]);
		else
			unlink(p->name[i]);
	}
}

/* tcp: the serving side listens on host, port 0, and sends host:port. */
static int tcp_open(struct ep *e)
{
	struct fd_ep *f = fe(e);
	char hp[128];
	int one = 1, r = 0, fd;
	f->rfd = f->wfd = -1;
	if (e->side == e->c->srv_side) {
		int l = bound_socket(SOCK_STREAM, e->c->host);
		if (l < 0)
			return l;
		if (listen(l, 1) < 0 || (r = local_hostport(l, hp, sizeof(hp))) != 0 ||
		    (r = ctl_send_str(e->ctl, hp)) != 0) {
			r = r ? r : -errno;
			close(l);
			return r;
		}
		while ((fd = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0 && errno == EINTR)
			;
		r = fd < 0 ? -errno : 0;
		close(l);
	} else {
		struct sockaddr_storage ss;
		socklen_t sl;
		r = ctl_recv_str(e->ctl, hp, sizeof(hp));
		if (!r)
			r = resolve(hp, &ss, &sl);
		if (r)
			return r;
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		r = connect_to(fd, hp);
	}
	f->rfd = f->wfd = fd;
	if (!r && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		r = -errno;
	return r;
}

/* udp: both sides bind, tell the other their address and connect. */
static int udp_open(struct ep *e)
{
	struct fd_ep *f = fe(e);
	char mine[128], theirs[128];
	int r, fd;
	f->rfd = f->wfd = -1;
	if (e->side == e->c->srv_side) {
		fd = bound_socket(SOCK_DGRAM, e->c->host);
		if (fd < 0)
			return fd;
		f->rfd = f->wfd = fd;
		r = local_hostport(fd, mine, sizeof(mine));
		if (!r)
			r = ctl_send_str(e->ctl, mine);
		if (!r)
			r = ctl_recv_str(e->ctl, theirs, sizeof(theirs));
		if (!r)
			r = connect_to(fd, theirs);
	} else {
		struct sockaddr_storage ss;
		socklen_t sl;
		r = ctl_recv_str(e->ctl, theirs, sizeof(theirs));
		if (!r)
			r = resolve(theirs, &ss, &sl);
		if (r)
			return r;
		fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		f->rfd = f->wfd = fd;
		r = connect_to(fd, theirs);
		if (!r)
			r = local_hostport(fd, mine, sizeof(mine));
		if (!r)
			r = ctl_send_str(e->ctl, mine);
	}
	if (!r)
		tune_socket(fd, &e->c->want);
	return r;
}

static int dgram_send(struct ep *e, const void *buf, size_t len)
{
	for (;;) {
		ssize_t r = send(fe(e)->wfd, buf, len, 0);
		if (r >= 0)
			return (size_t)r == len ? 0 : -EIO;
		if (errno == EINTR)
			continue;
		/* A full socket buffer on loopback: the kernel refuses rather
		 * than drops; wait a moment and retry, as a blocking socket would. */
		if (errno == ENOBUFS) {
			struct timespec ts = { 0, 10000 };
			nanosleep(&ts, NULL);
			continue;
		}
		return -errno;
	}
}

static ssize_t dgram_recv(struct ep *e, void *buf, size_t cap, int timeout_ms)
{
	struct fd_ep *f = fe(e);
	int flags = timeout_ms == 0 ? MSG_DONTWAIT : 0;
	int want = timeout_ms > 0 ? timeout_ms : 0;
	if (timeout_ms != 0 && want != f->tmo) {
		struct timeval tv = { .tv_sec = want / 1000, .tv_usec = (want % 1000) * 1000 };
		if (setsockopt(f->rfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
			return -errno;
		f->tmo = want;
	}
	for (;;) {
		ssize_t r = recv(f->rfd, buf, cap, flags);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
		return -errno;
	}
}

static size_t udp_limit(const struct chan *c)
{
	(void)c;
	return 65507;
}

static int unix_prepare(struct chan *c)
{
	struct fd_prep *p = c->prep;
	fd_prep_init(c);
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->fd) < 0 ? -errno : 0;
}

static int unix_open(struct ep *e)
{
	take(e, e->side, e->side, !e->side, !e->side);
	tune_socket(fe(e)->rfd, &e->c->want);
	return 0;
}

/* pipe 0 (fd[0] read, fd[1] write) carries leader -> echo, pipe 1 back. */
static int pipe_prepare(struct chan *c)
{
	struct fd_prep *p = c->prep;
	fd_prep_init(c);
	if (pipe2(p->fd, O_CLOEXEC) < 0 || pipe2(p->fd + 2, O_CLOEXEC) < 0)
		return -errno;
	return 0;
}

static int pipe_open(struct ep *e)
{
	if (e->side == 0)
		take(e, 2, 1, 0, 3);
	else
		take(e, 0, 3, 2, 1);
	tune_pipe(fe(e)->rfd, &e->c->want);
	tune_pipe(fe(e)->wfd, &e->c->want);
	return 0;
}

static int fifo_prepare(struct chan *c)
{
	struct fd_prep *p = c->prep;
	fd_prep_init(c);
	for (int i = 0; i < 2; i++) {
		snprintf(p->name[i], sizeof(p->name[i]), "/tmp/ipckit-bench-raw-%d-%d.%s",
			 (int)getpid(), c->idx, i ? "ba" : "ab");
		if (mkfifo(p->name[i], 0600) < 0)
			return -errno;
	}
	return 0;
}

/* Opening a FIFO blocks until the other end opens: both sides open "ab"
 * first, so they cannot deadlock. */
static int fifo_open(struct ep *e)
{
	struct fd_prep *p = e->c->prep;
	struct fd_ep *f = fe(e);
	if (e->side == 0) {
		f->wfd = open(p->name[0], O_WRONLY | O_CLOEXEC);
		f->rfd = f->wfd < 0 ? -1 : open(p->name[1], O_RDONLY | O_CLOEXEC);
	} else {
		f->rfd = open(p->name[0], O_RDONLY | O_CLOEXEC);
		f->wfd = f->rfd < 0 ? -1 : open(p->name[1], O_WRONLY | O_CLOEXEC);
	}
	if (f->rfd < 0 || f->wfd < 0)
		return -errno;
	/* Both ends of both FIFOs are open (each open waited for the other
	 * side's): the names are no longer needed. */
	if (e->side == 0) {
		for (int i = 0; i < 2; i++) {
			unlink(p->name[i]);
			p->name[i][0] = 0;
		}
	}
	tune_pipe(f->rfd, &e->c->want);
	tune_pipe(f->wfd, &e->c->want);
	return 0;
}

static long read_proc_long(const char *path, long dflt)
{
	FILE *f = fopen(path, "r");
	long v = dflt;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = dflt;
		fclose(f);
	}
	return v;
}

static size_t mq_limit(const struct chan *c)
{
	(void)c;
	return (size_t)read_proc_long("/proc/sys/fs/mqueue/msgsize_max", 8192);
}

static int mq_prep(struct chan *c)
{
	struct fd_prep *p = c->prep;
	fd_prep_init(c);
	p->mq = true;
	return 0;
}

/* The serving side creates both queues (queue s carries side s -> !s) with
 * the ipckit row's depth and message size, the other opens them and says
 * so; then the names go. */
static int mq_open_ep(struct ep *e)
{
	struct fd_prep *p = e->c->prep;
	struct fd_ep *f = fe(e);
	const struct tuning *t = &e->c->want;
	mqd_t q[2] = { (mqd_t)-1, (mqd_t)-1 };
	char base[96], ack = 1;
	int r = 0;
	f->rfd = f->wfd = -1;
	if (e->side == e->c->srv_side) {
		long depth = read_proc_long("/proc/sys/fs/mqueue/msg_max", 10);
		struct mq_attr a = { .mq_maxmsg = t->mq_maxmsg ? (long)t->mq_maxmsg : depth < 10 ? depth : 10,
				     .mq_msgsize = t->mq_msgsize ? (long)t->mq_msgsize : (long)mq_limit(e->c) };
		snprintf(base, sizeof(base), "/ipckit-bench-raw-%d-%d", (int)getpid(), e->c->idx);
		for (int i = 0; i < 2 && !r; i++) {
			snprintf(p->name[i], sizeof(p->name[i]), "%s.%d", base, i);
			q[i] = mq_open(p->name[i], O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &a);
			if (q[i] == (mqd_t)-1) {
				r = -errno;
				p->name[i][0] = 0;
			}
		}
		if (!r)
			r = ctl_send_str(e->ctl, base);
		if (!r)
			r = ctl_read(e->ctl, &ack, 1, 60000);
		fd_unlink(e->c);
		p->name[0][0] = p->name[1][0] = 0;
	} else {
		char n[128];
		r = ctl_recv_str(e->ctl, base, sizeof(base));
		for (int i = 0; i < 2 && !r; i++) {
			snprintf(n, sizeof(n), "%s.%d", base, i);
			q[i] = mq_open(n, O_RDWR | O_CLOEXEC);
			if (q[i] == (mqd_t)-1)
				r = -errno;
		}
		if (!r)
			r = ctl_write(e->ctl, &ack, 1);
	}
	f->wfd = q[e->side];
	f->rfd = q[!e->side];
	if (!r) {
		struct mq_attr a;
		if (mq_getattr(f->rfd, &a) == 0)
			f->msgsize = (size_t)a.mq_msgsize;
	}
	return r;
}

static void mq_close_ep(struct ep *e)
{
	struct fd_ep *f = fe(e);
	if (f->rfd >= 0)
		mq_close(f->rfd);
	if (f->wfd >= 0)
		mq_close(f->wfd);
	f->rfd = f->wfd = -1;
	free(f->scratch);
	f->scratch = NULL;
}

static int mq_send_ep(struct ep *e, const void *buf, size_t len)
{
	while (mq_send(fe(e)->wfd, buf, len, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static ssize_t mq_recv_ep(struct ep *e, void *buf, size_t cap, int timeout_ms)
{
	struct fd_ep *f = fe(e);
	void *to = buf;
	if (cap < f->msgsize) {   /* mq_receive wants room for the largest */
		if (!f->scratch && !(f->scratch = malloc(f->msgsize)))
			return -ENOMEM;
		to = f->scratch;
	}
	for (;;) {
		ssize_t r;
		if (timeout_ms < 0) {
			r = mq_receive(f->rfd, to, f->msgsize, NULL);
		} else {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += timeout_ms / 1000;
			ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			r = mq_timedreceive(f->rfd, to, f->msgsize, NULL, &ts);
		}
		if (r >= 0) {
			if (to != buf) {
				if ((size_t)r > cap)
					return -EMSGSIZE;
				memcpy(buf, to, (size_t)r);
			}
			return r;
		}
		if (errno == EINTR)
			continue;
		if (errno == ETIMEDOUT)
			return timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
		return -errno;
	}
}

#define FD_COMMON .impl = "raw", .prep_size = sizeof(struct fd_prep), .ep_size = sizeof(struct fd_ep), \
	.close = fd_close, .cleanup = fd_cleanup, .unlink = fd_unlink, .wait = fd_wait

const struct kind kind_raw_tcp = {
	FD_COMMON, .cross_host = true, .prepare = fd_prep_init, .open = tcp_open,
	.send = stream_send, .recv = stream_recv,
};
const struct kind kind_raw_udp = {
	FD_COMMON, .cross_host = true, .prepare = fd_prep_init, .open = udp_open,
	.limit = udp_limit, .send = dgram_send, .recv = dgram_recv,
};
const struct kind kind_raw_unix = {
	FD_COMMON, .prepare = unix_prepare, .open = unix_open, .send = stream_send, .recv = stream_recv,
};
const struct kind kind_raw_fifo = {
	FD_COMMON, .prepare = fifo_prepare, .open = fifo_open, .send = stream_send, .recv = stream_recv,
};
const struct kind kind_raw_pipe = {
	FD_COMMON, .prepare = pipe_prepare, .open = pipe_open, .send = stream_send, .recv = stream_recv,
};
const struct kind kind_raw_mq = {
	.impl = "raw", .prep_size = sizeof(struct fd_prep), .ep_size = sizeof(struct fd_ep),
	.prepare = mq_prep, .open = mq_open_ep, .close = mq_close_ep, .cleanup = fd_cleanup,
	.unlink = fd_unlink, .limit = mq_limit, .send = mq_send_ep, .recv = mq_recv_ep, .wait = fd_wait,
};
