/*
 * chan.c - the channels of one group: ipckit through its public API, and
 * the raw baselines made of the mechanism's own system calls:
 *   tcp   TCP_NODELAY socket, write/read of exactly size bytes
 *   udp   connected datagram sockets, send/recv
 *   unix  SOCK_STREAM socketpair, write/read of exactly size bytes
 *   fifo  two FIFOs, write/read of exactly size bytes
 *   pipe  two pipes, write/read of exactly size bytes
 *   mq    two POSIX queues, mq_send/mq_receive
 *   shm   spin: a one-slot mailbox per direction in a MAP_SHARED mapping,
 *         a flag on its own cache line, memcpy in and out;
 *         eventfd: the same mailbox, the reader blocks in read(eventfd)
 * Raw stream baselines carry no framing: the reader knows the size.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CTL_TIMEOUT_MS 60000

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- message integrity: O(1) per message whatever its size ---- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static uint64_t tail_of(uint64_t seq)
{
	return mix(seq ^ 0x5bd1e9955bd1e995ull);
}

/* Bytes 0..7: seq; 8..15: checksum over seq, length and the last 8 bytes
 * (which the sender sets from seq), so a short, stale, torn or misplaced
 * message fails the check. */
void msg_fill(unsigned char *buf, size_t len, uint64_t seq)
{
	uint64_t tail = 0, sum;
	memcpy(buf, &seq, 8);
	if (len >= MSG_HDR + 8) {
		tail = tail_of(seq);
		memcpy(buf + len - 8, &tail, 8);
	}
	sum = mix(seq ^ mix(len) ^ tail);
	memcpy(buf + 8, &sum, 8);
}

int msg_check(const unsigned char *buf, ssize_t got, size_t len, uint64_t *seq)
{
	uint64_t s, sum, tail = 0;
	if (got < 0 || (size_t)got != len)
		return -1;
	memcpy(&s, buf, 8);
	memcpy(&sum, buf + 8, 8);
	if (len >= MSG_HDR + 8) {
		memcpy(&tail, buf + len - 8, 8);
		if (tail != tail_of(s))
			return -1;
	}
	if (sum != mix(s ^ mix(len) ^ tail))
		return -1;
	*seq = s;
	return 0;
}

/* ---- control socket ---- */

int ctl_write(int fd, const void *p, size_t n)
{
	const char *b = p;
	while (n) {
		ssize_t r = write(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

int ctl_read(int fd, void *p, size_t n, int timeout_ms)
{
	char *b = p;
	while (n) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int pr = poll(&pfd, 1, timeout_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return -errno;
		if (pr == 0)
			return -ETIMEDOUT;
		ssize_t r = read(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

bool ctl_peer_gone(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR));
}

int wait_fd_until(int fd, uint64_t deadline_ns)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t now = now_ns(), left = 100000000u;
	if (deadline_ns) {
		if (deadline_ns <= now)
			return 0;
		if (deadline_ns - now < left)
			left = deadline_ns - now;
	}
	struct timespec ts = { .tv_sec = (time_t)(left / 1000000000u),
			       .tv_nsec = (long)(left % 1000000000u) };
	if (ppoll(&pfd, 1, &ts, NULL) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

int ctl_send_str(int fd, const char *s)
{
	uint32_t n = (uint32_t)strlen(s);
	int r = ctl_write(fd, &n, sizeof(n));
	return r ? r : ctl_write(fd, s, n);
}

int ctl_recv_str(int fd, char *s, size_t cap)
{
	uint32_t n;
	int r = ctl_read(fd, &n, sizeof(n), CTL_TIMEOUT_MS);
	if (r)
		return r;
	if (n >= cap)
		return -ENAMETOOLONG;
	r = ctl_read(fd, s, n, CTL_TIMEOUT_MS);
	s[n] = 0;
	return r;
}

/* ---- ipckit ---- */

static int ik_send(struct chan *c, const void *buf, size_t len)
{
	return ipc_send(c->ic, buf, len, -1);
}

static ssize_t ik_recv(struct chan *c, void *buf, size_t cap, int timeout_ms)
{
	return ipc_recv(c->ic, buf, cap, timeout_ms);
}

static int ik_sendv(struct chan *c, const ipc_msg *m, size_t n)
{
	while (n) {
		int r = ipc_sendv(c->ic, m, n, -1);
		if (r < 0)
			return r;
		if (r == 0)
			return -EIO;
		m += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Open loop: shm wait=spin spins (polls ipc_recv); every other ipckit row
 * sleeps in poll on ipc_fd (on shm its eventfd), as an event loop would. */
static int ik_wait(struct chan *c, uint64_t deadline_ns)
{
	if (!strcmp(c->backend, "shm") && c->wait_mode == IPC_WAIT_SPIN)
		return 0;
	int fd = ipc_fd(c->ic);
	return fd < 0 ? fd : wait_fd_until(fd, deadline_ns);
}

static void ik_close(struct chan *c)
{
	ipc_close(c->ic);
	c->ic = NULL;
}

static const struct ep_ops ik_ops = {
	.send = ik_send, .recv = ik_recv, .tsendv = ik_sendv, .close = ik_close, .wait = ik_wait,
};

/* Zero-copy rows: the message is built and read in place; like an
 * application that touches only what it needs, they write and read the
 * header and the tail (what the integrity check covers), not the middle. */
static void copy_checked(unsigned char *dst, const unsigned char *src, size_t len)
{
	memcpy(dst, src, len < MSG_HDR ? len : MSG_HDR);
	if (len >= MSG_HDR + 8)
		memcpy(dst + len - 8, src + len - 8, 8);
}

static int zc_send(struct chan *c, const void *buf, size_t len)
{
	void *p;
	int r = ipc_send_reserve(c->ic, len, &p, -1);
	if (r < 0)
		return r;
	copy_checked(p, buf, len);
	return ipc_send_commit(c->ic, len);
}

static ssize_t zc_recv(struct chan *c, void *buf, size_t cap, int timeout_ms)
{
	const void *m;
	ssize_t n = ipc_recv_peek(c->ic, &m, timeout_ms);
	if (n < 0)
		return n;
	if ((size_t)n > cap) {
		ipc_recv_release(c->ic);
		return -EMSGSIZE;
	}
	copy_checked(buf, m, (size_t)n);
	int r = ipc_recv_release(c->ic);
	return r < 0 ? r : n;
}

static const struct ep_ops zc_ops = {
	.send = zc_send, .recv = zc_recv, .close = ik_close, .wait = ik_wait,
};

/* The URL a server of this scheme is opened on: unique to the leader's pid
 * and the channel; tcp and udp take port 0 and learn the real port. */
static void ik_url(const struct chan *c, char *url, size_t cap)
{
	const char *s = c->backend;
	char q[32] = "";
	if (!strcmp(s, "shm"))
		snprintf(q, sizeof(q), "?wait=%s", c->wait);
	if (!strcmp(s, "tcp") || !strcmp(s, "udp"))
		snprintf(url, cap, "%s://127.0.0.1:0%s", s, q);
	else if (!strcmp(s, "fifo"))
		snprintf(url, cap, "fifo:///tmp/ipckit-bench-%d-%d%s", (int)getpid(), c->idx, q);
	else if (!strcmp(s, "mq"))
		snprintf(url, cap, "mq:///ipckit-bench-%d-%d%s", (int)getpid(), c->idx, q);
	else
		snprintf(url, cap, "%s://@ipckit-bench-%d-%d%s", s, (int)getpid(), c->idx, q);
}

static int ik_open(struct chan *c, int side, int ctl)
{
	ipc_opts o = { .wait = c->wait_mode };
	char url[512];
	int r;

	/* A message can be reserved in place only if it fits in half the
	 * ring: zero-copy rows ask for a ring of 4x the message size when
	 * that is more than the default (1 MiB on shm). */
	if (c->zerocopy && 4 * c->size > ((size_t)1 << 20))
		o.capacity = 4 * c->size;

	if (c->pair[0]) {          /* pipe: made by ipc_pair before fork */
		c->ic = c->pair[side];
		ipc_close(c->pair[!side]);
		c->pair[0] = c->pair[1] = NULL;
		c->ops = c->zerocopy ? &zc_ops : &ik_ops;
		return 0;
	}
	if (side == 0) {
		ipc_info info;
		ik_url(c, url, sizeof(url));
		r = ipc_open(&c->ic, url, IPC_SERVER, &o);
		if (r < 0)
			goto fail;
		r = ipc_info_get(c->ic, &info);
		if (r < 0)
			goto fail;
		r = ctl_send_str(ctl, info.url ? info.url : url);
		if (r < 0)
			goto fail;
	} else {
		r = ctl_recv_str(ctl, url, sizeof(url));
		if (r < 0)
			goto fail;
		o.connect_timeout_ms = 10000;
		r = ipc_open(&c->ic, url, IPC_CLIENT, &o);
		if (r < 0)
			goto fail;
	}
	c->ops = c->zerocopy ? &zc_ops : &ik_ops;
	return 0;
fail:
	fprintf(stderr, "ipckit-bench: %s %s side %d: %s\n", c->backend,
		side ? url : "server", side, ipc_strerror(r));
	ipc_close(c->ic);
	c->ic = NULL;
	return r;
}

/* ---- raw file-descriptor baselines ---- */

static int wait_readable(int fd, int timeout_ms)
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

static int raw_stream_send(struct chan *c, const void *buf, size_t len)
{
	const char *b = buf;
	while (len) {
		ssize_t r = write(c->wfd, b, len);
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

static ssize_t raw_stream_recv(struct chan *c, void *buf, size_t cap, int timeout_ms)
{
	char *b = buf;
	size_t need = c->size, got = 0;
	if (cap < need)
		return -EMSGSIZE;
	if (timeout_ms >= 0) {
		int r = wait_readable(c->rfd, timeout_ms);
		if (r)
			return r;
	}
	while (got < need) {
		ssize_t r = read(c->rfd, b + got, need - got);
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

static void raw_fd_close(struct chan *c)
{
	if (c->rfd >= 0)
		close(c->rfd);
	if (c->wfd >= 0 && c->wfd != c->rfd)
		close(c->wfd);
	c->rfd = c->wfd = -1;
}

static int raw_fd_wait(struct chan *c, uint64_t deadline_ns)
{
	return wait_fd_until(c->rfd, deadline_ns);
}

static const struct ep_ops raw_stream_ops = {
	.send = raw_stream_send, .recv = raw_stream_recv, .close = raw_fd_close, .wait = raw_fd_wait,
};

static int raw_dgram_send(struct chan *c, const void *buf, size_t len)
{
	for (;;) {
		ssize_t r = send(c->wfd, buf, len, 0);
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

static ssize_t raw_dgram_recv(struct chan *c, void *buf, size_t cap, int timeout_ms)
{
	if (timeout_ms >= 0) {
		int r = wait_readable(c->rfd, timeout_ms);
		if (r)
			return r;
	}
	for (;;) {
		ssize_t r = recv(c->rfd, buf, cap, 0);
		if (r >= 0)
			return r;
		if (errno != EINTR)
			return -errno;
	}
}

static const struct ep_ops raw_dgram_ops = {
	.send = raw_dgram_send, .recv = raw_dgram_recv, .close = raw_fd_close, .wait = raw_fd_wait,
};

static int raw_mq_send(struct chan *c, const void *buf, size_t len)
{
	while (mq_send(c->wfd, buf, len, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static ssize_t raw_mq_recv(struct chan *c, void *buf, size_t cap, int timeout_ms)
{
	if (timeout_ms >= 0) {
		int r = wait_readable(c->rfd, timeout_ms);
		if (r)
			return r;
	}
	for (;;) {
		ssize_t r = mq_receive(c->rfd, buf, cap, NULL);
		if (r >= 0)
			return r;
		if (errno != EINTR)
			return -errno;
	}
}

static void raw_mq_close(struct chan *c)
{
	if (c->rfd >= 0)
		mq_close(c->rfd);
	if (c->wfd >= 0)
		mq_close(c->wfd);
	c->rfd = c->wfd = -1;
}

static const struct ep_ops raw_mq_ops = {
	.send = raw_mq_send, .recv = raw_mq_recv, .close = raw_mq_close, .wait = raw_fd_wait,
};

/* ---- raw shared-memory mailboxes ---- */

#define CACHELINE 64
#define BOX_HDR (CACHELINE + 8)

/* One mailbox: the flag alone on the first cache line; the length, then
 * the data, from the second. */
struct box {
	_Atomic uint64_t full;
	char pad0[CACHELINE - sizeof(uint64_t)];
	uint64_t len;
	unsigned char data[];
};

static size_t box_span(size_t size)
{
	return (BOX_HDR + size + CACHELINE - 1) & ~(size_t)(CACHELINE - 1);
}

static struct box *box_of(struct chan *c, int dir)
{
	return (struct box *)((char *)c->map + (size_t)dir * box_span(c->size));
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Spin until the flag of b equals want. Every 2^20 turns: has the timeout
 * passed, or the peer gone? */
static int box_spin(struct chan *c, struct box *b, uint64_t want, int timeout_ms)
{
	uint64_t start = 0;
	for (unsigned n = 1;; n++) {
		if (atomic_load_explicit(&b->full, memory_order_acquire) == want)
			return 0;
		if (timeout_ms == 0)
			return -EAGAIN;
		cpu_relax();
		if ((n & ((1u << 20) - 1)) == 0) {
			if (ctl_peer_gone(c->ctl))
				return -EPIPE;
			if (timeout_ms > 0) {
				if (!start)
					start = now_ns();
				else if (now_ns() - start > (uint64_t)timeout_ms * 1000000u)
					return -ETIMEDOUT;
			}
		}
	}
}

static int spin_send(struct chan *c, const void *buf, size_t len)
{
	struct box *b = box_of(c, c->side);
	int r = box_spin(c, b, 0, -1);
	if (r)
		return r;
	memcpy(b->data, buf, len);
	b->len = len;
	atomic_store_explicit(&b->full, 1, memory_order_release);
	return 0;
}

static ssize_t spin_recv(struct chan *c, void *buf, size_t cap, int timeout_ms)
{
	struct box *b = box_of(c, !c->side);
	int r = box_spin(c, b, 1, timeout_ms);
	if (r)
		return r;
	size_t len = b->len;
	if (len > cap)
		return -EMSGSIZE;
	memcpy(buf, b->data, len);
	atomic_store_explicit(&b->full, 0, memory_order_release);
	return (ssize_t)len;
}

static void shm_close(struct chan *c)
{
	for (int i = 0; i < 2; i++) {
		if (c->efd_data[i] >= 0)
			close(c->efd_data[i]);
		if (c->efd_free[i] >= 0)
			close(c->efd_free[i]);
		c->efd_data[i] = c->efd_free[i] = -1;
	}
}

static const struct ep_ops spin_ops = {
	.send = spin_send, .recv = spin_recv, .close = shm_close,
};

static int efd_read(int fd, int timeout_ms)
{
	uint64_t v;
	if (timeout_ms >= 0) {
		int r = wait_readable(fd, timeout_ms);
		if (r)
			return r;
	}
	for (;;) {
		if (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

static int efd_write(int fd)
{
	uint64_t one = 1;
	for (;;) {
		if (write(fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

/* The eventfd mailbox: one eventfd write per message; in the throughput
 * stream the reader also signals "slot free" so the writer can sleep. */
static int efd_send(struct chan *c, const void *buf, size_t len)
{
	int d = c->side;
	struct box *b = box_of(c, d);
	while (atomic_load_explicit(&b->full, memory_order_acquire)) {
		int r = efd_read(c->efd_free[d], -1);
		if (r)
			return r;
	}
	memcpy(b->data, buf, len);
	b->len = len;
	atomic_store_explicit(&b->full, 1, memory_order_release);
	return efd_write(c->efd_data[d]);
}

static ssize_t efd_recv(struct chan *c, void *buf, size_t cap, int timeout_ms)
{
	int d = !c->side;
	struct box *b = box_of(c, d);
	while (!atomic_load_explicit(&b->full, memory_order_acquire)) {
		int r = efd_read(c->efd_data[d], timeout_ms);
		if (r)
			return r;
	}
	size_t len = b->len;
	if (len > cap)
		return -EMSGSIZE;
	memcpy(buf, b->data, len);
	atomic_store_explicit(&b->full, 0, memory_order_release);
	if (c->tput)
		return efd_write(c->efd_free[d]) ? -EIO : (ssize_t)len;
	return (ssize_t)len;
}

static int efd_wait(struct chan *c, uint64_t deadline_ns)
{
	return wait_fd_until(c->efd_data[!c->side], deadline_ns);
}

static const struct ep_ops efd_ops = {
	.send = efd_send, .recv = efd_recv, .close = shm_close, .wait = efd_wait,
};

/* ---- life cycle ---- */

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

size_t chan_raw_limit(const struct chan *c)
{
	switch (c->kind) {
	case CK_RAW_UDP:
		return 65507;
	case CK_RAW_MQ:
		return (size_t)read_proc_long("/proc/sys/fs/mqueue/msgsize_max", 8192);
	default:
		return (size_t)1 << 30;
	}
}

static int loopback_socket(int type, int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static int connect_port(int fd, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	while (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int chan_prepare(struct chan *c)
{
	int r, p0, p1;
	for (int i = 0; i < 4; i++)
		c->pfd[i] = -1;
	c->rfd = c->wfd = -1;
	for (int i = 0; i < 2; i++)
		c->efd_data[i] = c->efd_free[i] = -1;

	switch (c->kind) {
	case CK_IPCKIT:
		/* The names the library creates for fifo and mq servers (it
		 * removes them once both sides attach): recorded so that a
		 * leader killed before that can remove them (chan_cleanup). */
		if (!strcmp(c->backend, "fifo") || !strcmp(c->backend, "mq")) {
			c->name_mq = !strcmp(c->backend, "mq");
			for (int i = 0; i < 2; i++)
				snprintf(c->name[i], sizeof(c->name[i]), "%sipckit-bench-%d-%d.%s",
					 c->name_mq ? "/" : "/tmp/", (int)getpid(), c->idx,
					 i ? "s2c" : "c2s");
		}
		if (!strcmp(c->backend, "pipe")) {
			ipc_opts o = { .wait = c->wait_mode };
			r = ipc_pair("pipe", &c->pair[0], &c->pair[1], &o);
			if (r < 0)
				return r;
		}
		return 0;
	case CK_RAW_TCP:
		r = loopback_socket(SOCK_STREAM, &c->port);
		if (r < 0)
			return r;
		c->pfd[0] = r;
		return listen(r, 1) < 0 ? -errno : 0;
	case CK_RAW_UDP:
		r = loopback_socket(SOCK_DGRAM, &p0);
		if (r < 0)
			return r;
		c->pfd[0] = r;
		r = loopback_socket(SOCK_DGRAM, &p1);
		if (r < 0)
			return r;
		c->pfd[1] = r;
		r = connect_port(c->pfd[0], p1);
		return r ? r : connect_port(c->pfd[1], p0);
	case CK_RAW_UNIX:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->pfd) < 0)
			return -errno;
		return 0;
	case CK_RAW_PIPE:
		if (pipe2(c->pfd, O_CLOEXEC) < 0 || pipe2(c->pfd + 2, O_CLOEXEC) < 0)
			return -errno;
		return 0;
	case CK_RAW_FIFO:
		for (int i = 0; i < 2; i++) {
			snprintf(c->name[i], sizeof(c->name[i]), "/tmp/ipckit-bench-raw-%d-%d.%s",
				 (int)getpid(), c->idx, i ? "ba" : "ab");
			if (mkfifo(c->name[i], 0600) < 0)
				return -errno;
		}
		return 0;
	case CK_RAW_MQ: {
		struct mq_attr a = { .mq_maxmsg = read_proc_long("/proc/sys/fs/mqueue/msg_max", 10),
				     .mq_msgsize = (long)chan_raw_limit(c) };
		if (a.mq_maxmsg > 10)
			a.mq_maxmsg = 10;
		for (int i = 0; i < 2; i++) {
			char n[128];
			snprintf(n, sizeof(n), "/ipckit-bench-raw-%d-%d.%d", (int)getpid(), c->idx, i);
			mqd_t q = mq_open(n, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &a);
			if (q == (mqd_t)-1)
				return -errno;
			c->pfd[i] = q;
			/* Descriptors survive fork and unlink: nothing to clean. */
			mq_unlink(n);
		}
		return 0;
	}
	case CK_RAW_EVENTFD:
		for (int i = 0; i < 2; i++) {
			c->efd_data[i] = eventfd(0, EFD_CLOEXEC);
			c->efd_free[i] = eventfd(0, EFD_CLOEXEC);
			if (c->efd_data[i] < 0 || c->efd_free[i] < 0)
				return -errno;
		}
		/* fall through */
	case CK_RAW_SPIN:
		c->map_len = 2 * box_span(c->size);
		c->map = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (c->map == MAP_FAILED) {
			c->map = NULL;
			return -errno;
		}
		return 0;
	default:
		return 0;   /* peers: everything happens after fork */
	}
}

static int set_nodelay(int fd)
{
	int one = 1;
	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ? -errno : 0;
}

int chan_open(struct chan *c, int side, int ctl)
{
	int r = 0;
	c->side = side;
	c->ctl = ctl;
	switch (c->kind) {
	case CK_IPCKIT:
		return ik_open(c, side, ctl);
	case CK_RAW_TCP:
		if (side == 0) {
			int fd;
			while ((fd = accept4(c->pfd[0], NULL, NULL, SOCK_CLOEXEC)) < 0 && errno == EINTR)
				;
			if (fd < 0)
				return -errno;
			c->rfd = c->wfd = fd;
		} else {
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fd < 0)
				return -errno;
			c->rfd = c->wfd = fd;
			r = connect_port(fd, c->port);
		}
		close(c->pfd[0]);
		c->pfd[0] = -1;
		if (!r)
			r = set_nodelay(c->rfd);
		c->ops = &raw_stream_ops;
		return r;
	case CK_RAW_UDP:
		c->rfd = c->wfd = c->pfd[side];
		close(c->pfd[!side]);
		c->pfd[0] = c->pfd[1] = -1;
		c->ops = &raw_dgram_ops;
		return 0;
	case CK_RAW_UNIX:
		c->rfd = c->wfd = c->pfd[side];
		close(c->pfd[!side]);
		c->pfd[0] = c->pfd[1] = -1;
		c->ops = &raw_stream_ops;
		return 0;
	case CK_RAW_PIPE:
		/* pipe 0 (pfd[0..1]) carries leader -> child, pipe 1 the reverse. */
		if (side == 0) {
			c->wfd = c->pfd[1];
			c->rfd = c->pfd[2];
			close(c->pfd[0]);
			close(c->pfd[3]);
		} else {
			c->rfd = c->pfd[0];
			c->wfd = c->pfd[3];
			close(c->pfd[1]);
			close(c->pfd[2]);
		}
		for (int i = 0; i < 4; i++)
			c->pfd[i] = -1;
		c->ops = &raw_stream_ops;
		return 0;
	case CK_RAW_FIFO:
		/* Opening a FIFO blocks until the other end opens: both sides
		 * open "ab" first, so they cannot deadlock. */
		if (side == 0) {
			c->wfd = open(c->name[0], O_WRONLY | O_CLOEXEC);
			c->rfd = c->wfd < 0 ? -1 : open(c->name[1], O_RDONLY | O_CLOEXEC);
		} else {
			c->rfd = open(c->name[0], O_RDONLY | O_CLOEXEC);
			c->wfd = c->rfd < 0 ? -1 : open(c->name[1], O_WRONLY | O_CLOEXEC);
		}
		if (c->rfd < 0 || c->wfd < 0)
			return -errno;
		/* Both ends of both FIFOs are open (each open above waited
		 * for the other side's): the names are no longer needed. */
		if (side == 0) {
			for (int i = 0; i < 2; i++) {
				unlink(c->name[i]);
				c->name[i][0] = 0;
			}
		}
		c->ops = &raw_stream_ops;
		return 0;
	case CK_RAW_MQ:
		c->wfd = c->pfd[side];
		c->rfd = c->pfd[!side];
		c->pfd[0] = c->pfd[1] = -1;
		c->ops = &raw_mq_ops;
		return 0;
	case CK_RAW_SPIN:
		c->ops = &spin_ops;
		return 0;
	case CK_RAW_EVENTFD:
		c->ops = &efd_ops;
		return 0;
#ifdef BENCH_HAVE_ZMQ
	case CK_ZMQ:
		return peer_zmq_open(c, side, ctl);
#endif
#ifdef BENCH_HAVE_NNG
	case CK_NNG:
		return peer_nng_open(c, side, ctl);
#endif
	default:
		return -EPROTONOSUPPORT;
	}
}

/* Async-signal-safe: remove the names this channel may have left. */
void chan_unlink_names(const struct chan *c)
{
	for (int i = 0; i < 2; i++) {
		if (!c->name[i][0])
			continue;
		if (c->name_mq)
			mq_unlink(c->name[i]);
		else
			unlink(c->name[i]);
	}
}

void chan_close(struct chan *c)
{
	if (c->ops)
		c->ops->close(c);
	c->ops = NULL;
	shm_close(c);
	for (int i = 0; i < 4; i++) {
		if (c->pfd[i] >= 0)
			close(c->pfd[i]);
		c->pfd[i] = -1;
	}
	if (c->pair[0] || c->pair[1]) {
		ipc_close(c->pair[0]);
		ipc_close(c->pair[1]);
		c->pair[0] = c->pair[1] = NULL;
	}
}

void chan_cleanup(struct chan *c)
{
	chan_unlink_names(c);
	for (int i = 0; i < 2; i++)
		c->name[i][0] = 0;
	if (c->map)
		munmap(c->map, c->map_len);
	c->map = NULL;
}
