/*
 * stream.c - the framing layer of the stream backends (tcp, unix, fifo,
 * pipe); the bytes are specified in docs/protocol.md.
 *
 * Hot path: one writev per message (header + payload); receives read into
 * a 64 KiB buffer so several small frames cost one read, and a payload
 * larger than what is buffered is read straight into the caller's buffer.
 * After a large message (>= 16 KiB) the next read goes to the caller's
 * buffer at once (recv_direct), so a 64 KiB message costs one read and no
 * copy through the buffer.
 * A receive that waits costs one system call: sockets block in recvmsg
 * with SO_RCVTIMEO (sock_rcvtimeo); pipes and FIFOs block in read with
 * timeout -1 and poll first only for a finite timeout.
 *
 * Handshake: each side sends a hello and reads the peer's before its first
 * send (to learn the peer's max_msg; pairs know it already) or receive, in
 * ensure_ready, under a lock shared by a sending and a receiving thread.
 *
 * Whole-or-nothing sends: once part of a message is written, a timeout
 * cannot unsend it, so the unwritten rest goes to lib/tail.c, which
 * finishes it in the background, and the send reports success; room for
 * the rest is reserved before the first byte goes (out of memory is
 * -ENOMEM with nothing sent). A receive interrupted by a timeout in the
 * middle of a large message keeps what arrived (part) for the next call.
 */
#include "stream.h"
#include "posix/fdio.h"
#include "posix/sock.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLOSE_FLUSH_MS 1000

static inline struct ipc_stream *S(ipc_chan *c)
{
	return IPC_PRIV(c, struct ipc_stream);
}

static int tail_write(ipc_chan *c, const unsigned char *p, size_t n, ipc_deadline *dl,
		      size_t *done);
static void tail_abort(ipc_chan *c);

static inline uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

void ipc__stream_preinit(ipc_chan *c)
{
	struct ipc_stream *s = S(c);
	s->rfd = s->wfd = s->pending_fd = -1;
	s->epfd = s->evfd = -1;
	s->rcvtimeo_ms = -1; /* a new socket waits for ever */
}

int ipc__stream_init(ipc_chan *c, int rfd, int wfd, bool is_sock)
{
	struct ipc_stream *s = S(c);
	s->rfd = rfd;
	s->wfd = wfd;
	s->is_sock = is_sock;
	s->sigpipe_ignored = is_sock || ipc__sigpipe_ignored();
	s->spin_ns = ipc__spin_ns(&c->cfg, IPC_KERNEL_SPIN_NS);
	atomic_init(&s->rwf_nowait, !is_sock);
	/* (+ a frame header: recv_direct may keep a header and 64 KiB) */
	if (!(s->rbuf = ipc__malloc(IPC_RBUF_SIZE + IPC_FRAME_HDR)))
		return -ENOMEM;
	if (pthread_mutex_init(&s->lock, NULL) != 0)
		return -ENOMEM;
	s->lock_init = true;
	return ipc__tail_init(&s->tail, c, tail_write, tail_abort);
}

void ipc__stream_paired(ipc_chan *c)
{
	atomic_store_explicit(&c->peer_max, c->max_msg, memory_order_relaxed);
}

/* ---- writing ---- */

/* One write attempt of the iovec; bytes written or -errno (-EAGAIN when
 * it would block; never blocks unless dl is IPC_FOREVER on a socket). */
static ssize_t write_once(struct ipc_stream *s, struct iovec *iov, int n, ipc_deadline *dl)
{
	ssize_t w;
	if (s->is_sock) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		int fl = MSG_NOSIGNAL | (ipc__dl_forever(dl) && s->spin_ns >= 0 ? 0 : MSG_DONTWAIT);
		do
			w = sendmsg(s->wfd, &mh, fl);
		while (w < 0 && errno == EINTR);
		return w < 0 ? -errno : w;
	}
	/* pipes and FIFOs: wfd is nonblocking */
	return ipc__pipe_writev(s->wfd, iov, n, s->sigpipe_ignored);
}

static void iov_advance(struct iovec **iov, int *n, size_t k)
{
	while (k > 0 && *n > 0) {
		if (k >= (*iov)->iov_len) {
			k -= (*iov)->iov_len;
			(*iov)++;
			(*n)--;
		} else {
			(*iov)->iov_base = (char *)(*iov)->iov_base + k;
			(*iov)->iov_len -= k;
			k = 0;
		}
	}
	while (*n > 0 && (*iov)->iov_len == 0) {
		(*iov)++;
		(*n)--;
	}
}

static int map_write_err(struct ipc_stream *s, int r)
{
	if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
		atomic_store_explicit(&s->serr, -EPIPE, memory_order_relaxed);
		return -EPIPE;
	}
	return r;
}

/*
 * Write total bytes of the iovec (*iovp, *np) within dl. Returns 0 when all
 * are written, else the error that stopped it (the timeout error when dl
 * passed, -EPIPE...); *written gets the bytes that went to the kernel, and
 * *iovp, *np (whose entries are advanced in place) describe the rest.
 */
static int write_iov(struct ipc_stream *s, struct iovec **iovp, int *np, size_t total,
		     ipc_deadline *dl, size_t *written)
{
	struct iovec *iov = *iovp;
	int n = *np;
	size_t done = 0;
	int r = 0;
	while (done < total) {
		ssize_t w = write_once(s, iov, n, dl);
		if (w > 0) {
			done += (size_t)w;
			iov_advance(&iov, &n, (size_t)w);
			continue;
		}
		if (w == 0)
			w = -EAGAIN;
		if (w != -EAGAIN) {
			r = map_write_err(s, (int)w);
			break;
		}
		if (s->spin_ns < 0 && !ipc__dl_nowait(dl)) {
			/* wait=spin: never sleep; try again until the deadline */
			if (ipc__expired(dl)) {
				r = ipc__timeout_err(dl);
				break;
			}
			ipc__cpu_relax();
			continue;
		}
		int pr = ipc__wait_fd(s->wfd, POLLOUT, dl);
		if (pr < 0) {
			r = pr;
			break;
		}
		if ((pr & (POLLERR | POLLHUP)) && !(pr & POLLOUT)) {
			r = map_write_err(s, -EPIPE);
			break;
		}
	}
	*written = done;
	*iovp = iov;
	*np = n;
	return r;
}

/* lib/tail.c's writer: the rest of a cut message, raw bytes. */
static int tail_write(ipc_chan *c, const unsigned char *p, size_t n, ipc_deadline *dl,
		      size_t *done)
{
	struct iovec iov = { (void *)p, n }, *v = &iov;
	int nv = 1;
	return write_iov(S(c), &v, &nv, n, dl, done);
}

/* lib/tail.c gave up on a cut message: the peer must see us end in the
 * middle of it (EOF), never a torn frame followed by more. */
static void tail_abort(ipc_chan *c)
{
	struct ipc_stream *s = S(c);
	atomic_store_explicit(&s->serr, -EPIPE, memory_order_relaxed);
	if (s->is_sock)
		shutdown(s->wfd, SHUT_WR);
	else
		ipc__close_fd(&s->wfd);
}

/*
 * Write one or more whole frames (iov, total bytes) within dl, as one
 * message: 0 when it all went or the rest of a cut one was handed to the
 * tail (the message counts as sent), the timeout error when nothing went,
 * or -EPIPE/-errno; *written says how far it got.
 */
static int write_msg(struct ipc_stream *s, struct iovec *iov, int n, size_t total,
		     ipc_deadline *dl, size_t *written)
{
	size_t done = 0;
	int r = write_iov(s, &iov, &n, total, dl, &done);
	*written = done;
	if (r == 0 || done == 0 || (r != -ETIMEDOUT && r != -EAGAIN))
		return r;
	/* part of it is in the kernel: the tail finishes it */
	return ipc__tail_start(&s->tail, iov, n);
}

int ipc__stream_hello(ipc_chan *c, ipc_deadline *dl)
{
	struct ipc_stream *s = S(c);
	if (s->hello_sent)
		return 0;
	unsigned char hello[IPC_HELLO_LEN] = { 'I', 'P', 'C', 'K', IPC_PROTO_VERSION, 0,
					       IPC_HELLO_LEN, 0 };
	put_le32(hello + 8, c->max_msg > UINT32_MAX ? UINT32_MAX : (uint32_t)c->max_msg);
	struct iovec iov = { hello, sizeof(hello) };
	size_t done;
	/* (16 bytes into a fresh channel: in practice never cut) */
	int r = write_msg(s, &iov, 1, sizeof(hello), dl, &done);
	if (r == -EPIPE)
		r = 0; /* peer already gone: receives still drain what it sent */
	if (r == 0)
		s->hello_sent = true;
	return r;
}

static int read_hello(ipc_chan *c, ipc_deadline *dl);

/*
 * The handshake, once: attach (server side), send our hello, read the
 * peer's. A send may go as soon as the peer's max_msg is known (send_ok:
 * pairs know it from the start); a receive needs the peer's hello read.
 * The lock is taken within the caller's deadline: a second thread (a
 * sender while a receiver attaches) gives up at its own.
 */
static int ensure_ready(ipc_chan *c, ipc_deadline *dl, bool for_send)
{
	struct ipc_stream *s = S(c);
	if (atomic_load_explicit(&s->ready, memory_order_acquire) ||
	    (for_send && atomic_load_explicit(&s->send_ok, memory_order_acquire)))
		return 0;
	int r = ipc__mutex_lock_dl(&s->lock, dl);
	if (r < 0)
		return r;
	if (atomic_load_explicit(&s->ready, memory_order_relaxed))
		goto out;
	if (!s->hello_sent && s->wfd >= 0 && (r = ipc__stream_hello(c, dl)) < 0)
		goto out;
	if (s->attach) {
		if ((r = s->attach(c, dl)) < 0)
			goto out;
		s->attach = NULL;
		s->pending_fd = -1;
		if (s->epfd >= 0) {
			struct epoll_event ev = { .events = EPOLLIN, .data.fd = s->rfd };
			if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->rfd, &ev) < 0 && errno != EEXIST) {
				r = -errno;
				goto out;
			}
		}
	}
	if ((r = ipc__stream_hello(c, dl)) < 0)
		goto out;
	if (atomic_load_explicit(&c->peer_max, memory_order_relaxed))
		atomic_store_explicit(&s->send_ok, true, memory_order_release);
	if (for_send && atomic_load_explicit(&s->send_ok, memory_order_relaxed))
		goto out;
	if (!s->hello_rcvd && (r = read_hello(c, dl)) < 0)
		goto out;
	atomic_store_explicit(&s->send_ok, true, memory_order_release);
	atomic_store_explicit(&s->ready, true, memory_order_release);
out:
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* What every send does first: the handshake, refuse on a dead or broken
 * channel, wait for the tail of an earlier message to go. */
static int send_begin(ipc_chan *c, ipc_deadline *dl)
{
	struct ipc_stream *s = S(c);
	int r = ensure_ready(c, dl, true);
	if (r < 0)
		return r;
	int se = atomic_load_explicit(&s->serr, memory_order_relaxed);
	if (se)
		return se;
	/* the receive side saw EOF: the peer is gone, although TCP would
	 * still accept bytes */
	if (atomic_load_explicit(&s->peer_gone, memory_order_relaxed))
		return -EPIPE;
	return ipc__tail_wait(&s->tail, dl);
}

/* Room for the rest of a message of n frame bytes, should dl cut it
 * (a send that waits forever is never cut). */
static inline int reserve_rest(struct ipc_stream *s, size_t n, ipc_deadline *dl)
{
	return ipc__dl_forever(dl) ? 0 : ipc__tail_reserve(&s->tail, n);
}

int ipc__stream_send(ipc_chan *c, const void *msg, size_t len, ipc_deadline *dl)
{
	struct ipc_stream *s = S(c);
	int r = send_begin(c, dl);
	if (r < 0)
		return r;
	size_t pm = atomic_load_explicit(&c->peer_max, memory_order_relaxed);
	if (len > pm)
		return -EMSGSIZE;
	if ((r = reserve_rest(s, IPC_FRAME_HDR + len, dl)) < 0)
		return r;
	unsigned char hdr[IPC_FRAME_HDR];
	put_le32(hdr, (uint32_t)len);
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)msg, len } };
	size_t done;
	return write_msg(s, iov, len ? 2 : 1, sizeof(hdr) + len, dl, &done);
}

#define SENDV_BATCH 256 /* messages per writev: 2 iovecs each, under IOV_MAX */

int ipc__stream_sendv(ipc_chan *c, const ipc_msg *msgs, size_t n, ipc_deadline *dl)
{
	struct ipc_stream *s = S(c);
	int r = send_begin(c, dl);
	if (r < 0)
		return r;
	size_t pm = atomic_load_explicit(&c->peer_max, memory_order_relaxed);
	unsigned char hdr[SENDV_BATCH][IPC_FRAME_HDR];
	struct iovec iov[2 * SENDV_BATCH];
	size_t sent = 0;
	while (sent < n) {
		size_t k = 0, total = 0, biggest = 0;
		int ni = 0;
		while (k < SENDV_BATCH && sent + k < n) {
			const ipc_msg *m = &msgs[sent + k];
			if (m->len > pm)
				break;
			put_le32(hdr[k], (uint32_t)m->len);
			iov[ni++] = (struct iovec){ hdr[k], IPC_FRAME_HDR };
			if (m->len)
				iov[ni++] = (struct iovec){ (void *)m->data, m->len };
			total += IPC_FRAME_HDR + m->len;
			if (m->len > biggest)
				biggest = m->len;
			k++;
		}
		if (k == 0)
			return sent ? (int)sent : -EMSGSIZE;
		if ((r = reserve_rest(s, IPC_FRAME_HDR + biggest, dl)) < 0)
			return sent ? (int)sent : r;
		size_t done = 0;
		struct iovec *v = iov;
		r = write_iov(s, &v, &ni, total, dl, &done);
		if (r == 0) {
			sent += k;
			continue;
		}
		/* Stopped early: count the messages that went out whole. A
		 * message cut in the middle counts as sent and its rest goes to
		 * the tail; the ones after it were not sent. */
		size_t off = 0, whole = 0;
		while (whole < k && off + IPC_FRAME_HDR + msgs[sent + whole].len <= done) {
			off += IPC_FRAME_HDR + msgs[sent + whole].len;
			whole++;
		}
		if (off < done && (r == -ETIMEDOUT || r == -EAGAIN)) {
			size_t len = msgs[sent + whole].len, got = done - off;
			unsigned char *h = hdr[whole];
			struct iovec rest[2];
			int nr = 0;
			if (got < IPC_FRAME_HDR)
				rest[nr++] = (struct iovec){ h + got, IPC_FRAME_HDR - got };
			size_t pgot = got > IPC_FRAME_HDR ? got - IPC_FRAME_HDR : 0;
			if (len > pgot)
				rest[nr++] = (struct iovec){ (char *)msgs[sent + whole].data + pgot,
							     len - pgot };
			if ((r = ipc__tail_start(&s->tail, rest, nr)) == 0)
				whole++;
		}
		sent += whole;
		if (sent == 0)
			return r < 0 ? r : ipc__timeout_err(dl);
		return (int)sent;
	}
	return (int)sent;
}

/* ---- reading ---- */

/* One read into the iovec: > 0 bytes, 0 at EOF, or -errno. */
/* One read that does not wait: > 0 bytes, 0 at EOF, -EAGAIN, or -errno.
 * Pipes use preadv2(RWF_NOWAIT) (one system call; a kernel without it
 * for pipes gets poll and read). */
static ssize_t read_nowait(struct ipc_stream *s, struct iovec *iov, int n)
{
	ssize_t r;
	for (;;) {
		if (s->is_sock) {
			struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
			r = recvmsg(s->rfd, &mh, MSG_DONTWAIT);
		} else if (atomic_load_explicit(&s->rwf_nowait, memory_order_relaxed)) {
			r = preadv2(s->rfd, iov, n, -1, RWF_NOWAIT);
			if (r < 0 && errno == EOPNOTSUPP) {
				atomic_store_explicit(&s->rwf_nowait, false, memory_order_relaxed);
				continue;
			}
		} else {
			struct pollfd p = { .fd = s->rfd, .events = POLLIN };
			int k = poll(&p, 1, 0);
			if (k == 0)
				return -EAGAIN;
			r = k < 0 ? -1 : readv(s->rfd, iov, n);
		}
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno == ECONNRESET)
			return 0; /* the peer died: same as EOF */
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

/* One read into the iovec within dl: > 0 bytes, 0 at EOF, or -errno. A
 * read that waits first spins (wait=spin until the deadline, adaptive for
 * its spin time) with reads that do not wait, then sleeps in the kernel:
 * sockets in recvmsg itself (SO_RCVTIMEO), pipes and FIFOs in read (with
 * poll first only for a finite timeout). */
static ssize_t read_iov(struct ipc_stream *s, struct iovec *iov, int n, ipc_deadline *dl)
{
	ssize_t r;
	if (ipc__dl_nowait(dl)) {
		r = read_nowait(s, iov, n);
		return r == -EAGAIN ? ipc__timeout_err(dl) : r;
	}
	int spin = s->spin_ns;
	if (spin != 0) {
		int64_t start = 0;
		for (unsigned i = 1;; i++) {
			if ((r = read_nowait(s, iov, n)) != -EAGAIN)
				return r;
			ipc__cpu_relax();
			if (i % 16)
				continue;
			int64_t now = ipc__now_ns();
			if (!start)
				start = now;
			if (ipc__expired(dl))
				return ipc__timeout_err(dl);
			if (spin > 0 && now - start >= spin)
				break;
		}
	}
	for (;;) {
		if (s->is_sock) {
			struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
			int flags = 0;
			int ms = ipc__remaining_ms(dl); /* -1 forever, 0 passed */
			if (ms == 0)
				flags = MSG_DONTWAIT;
			else if ((r = ipc__sock_rcvtimeo(s->rfd, &s->rcvtimeo_ms, ms)) < 0)
				return r; /* (lib/posix/sock.h says why) */
			r = recvmsg(s->rfd, &mh, flags);
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				/* SO_RCVTIMEO ran out: done unless the clock says
				 * time is left (rounding) */
				if (ms == 0 || ipc__expired(dl))
					return ipc__timeout_err(dl);
				continue;
			}
		} else {
			if (!ipc__dl_forever(dl)) {
				int w = ipc__wait_fd(s->rfd, POLLIN, dl);
				if (w < 0)
					return w;
			}
			r = readv(s->rfd, iov, n);
		}
		if (r >= 0)
			return r;
		int e = errno;
		if (e == EINTR)
			continue;
		if (e == ECONNRESET)
			return 0; /* the peer died: same as EOF */
		if (e != EAGAIN && e != EWOULDBLOCK)
			return -e;
		int w = ipc__wait_fd(s->rfd, POLLIN, dl);
		if (w < 0)
			return w;
	}
}

/* One read of up to n bytes into p: > 0 bytes, 0 at EOF, or -errno. */
static ssize_t read_some(struct ipc_stream *s, void *p, size_t n, ipc_deadline *dl)
{
	struct iovec iov = { p, n };
	return read_iov(s, &iov, 1, dl);
}

static void saw_eof(struct ipc_stream *s)
{
	s->eof = true;
	atomic_store_explicit(&s->peer_gone, true, memory_order_relaxed);
}

/* Make at least need (<= IPC_RBUF_SIZE) bytes available in rbuf.
 * 0, -EPIPE at EOF (s->eof set), or a timeout/errno. */
static int fill(struct ipc_stream *s, size_t need, ipc_deadline *dl)
{
	while (s->rlen - s->rpos < need) {
		if (s->eof)
			return -EPIPE;
		if (s->rpos > 0 && s->rpos + need > IPC_RBUF_SIZE) {
			memmove(s->rbuf, s->rbuf + s->rpos, s->rlen - s->rpos);
			s->rlen -= s->rpos;
			s->rpos = 0;
		}
		ssize_t r = read_some(s, s->rbuf + s->rlen, IPC_RBUF_SIZE - s->rlen, dl);
		if (r < 0)
			return (int)r;
		if (r == 0) {
			saw_eof(s);
			return -EPIPE;
		}
		s->rlen += (size_t)r;
	}
	return 0;
}

/* The peer broke the protocol: the channel is closed for good. */
static int broken(struct ipc_stream *s)
{
	s->rerr = -EPROTO;
	atomic_store_explicit(&s->serr, -EPROTO, memory_order_relaxed);
	if (s->is_sock && s->rfd >= 0)
		shutdown(s->rfd, SHUT_RDWR);
	return -EPROTO;
}

static int read_hello(ipc_chan *c, ipc_deadline *dl)
{
	struct ipc_stream *s = S(c);
	static const unsigned char want[8] = { 'I', 'P', 'C', 'K', IPC_PROTO_VERSION, 0,
					       IPC_HELLO_LEN, 0 };
	for (;;) {
		size_t have = s->rlen - s->rpos;
		size_t cmp = have < sizeof(want) ? have : sizeof(want);
		/* reject a wrong magic or version as soon as its bytes arrive */
		if (memcmp(s->rbuf + s->rpos, want, cmp) != 0)
			return broken(s);
		if (have >= IPC_HELLO_LEN)
			break;
		int r = fill(s, have + 1, dl);
		if (r == -EPIPE)
			return have ? broken(s) : -EPIPE;
		if (r < 0)
			return r;
	}
	uint32_t pm = get_le32(s->rbuf + s->rpos + 8);
	/* max_msg 0 is impossible; the last four bytes are reserved, zero */
	if (pm == 0 || get_le32(s->rbuf + s->rpos + 12) != 0)
		return broken(s);
	atomic_store_explicit(&c->peer_max, pm, memory_order_relaxed);
	s->rpos += IPC_HELLO_LEN;
	if (s->rpos == s->rlen)
		s->rpos = s->rlen = 0;
	s->hello_rcvd = true;
	return 0;
}

/* True when a whole frame (or EOF) waits in the buffer. */
static bool frame_buffered(struct ipc_stream *s)
{
	size_t have = s->rlen - s->rpos;
	if (s->eof || s->rerr)
		return true;
	if (!s->hello_rcvd)
		return false; /* (the bytes are the hello, not a frame) */
	if (have < IPC_FRAME_HDR)
		return false;
	return have - IPC_FRAME_HDR >= get_le32(s->rbuf + s->rpos);
}

/* ipc_fd support: keep evfd signalled exactly while a frame is buffered.
 * Costs nothing until ipc_fd was called, and a system call only when the
 * state changes. */
static void ev_update(struct ipc_stream *s)
{
	if (s->evfd >= 0)
		ipc__ev_level(s->evfd, &s->ev_set, frame_buffered(s));
}

/* Every receive ends here: r is the message length or an error. */
static ssize_t finish(struct ipc_stream *s, ssize_t r)
{
	if (r >= 0)
		s->big = r >= IPC_BIG_MSG;
	if (s->evfd >= 0)
		ev_update(s);
	return r;
}

/* Continue a large message interrupted by a timeout. */
static ssize_t recv_part(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl)
{
	struct ipc_stream *s = S(c);
	if (cap < s->part_len) {
		c->need_len = s->part_len;
		return -EMSGSIZE;
	}
	while (s->part_got < s->part_len) {
		ssize_t r = read_some(s, s->part + s->part_got, s->part_len - s->part_got, dl);
		if (r < 0)
			return r;
		if (r == 0) {
			saw_eof(s);
			free(s->part);
			s->part = NULL;
			return -EPIPE; /* the peer died mid-message */
		}
		s->part_got += (size_t)r;
	}
	size_t len = s->part_len;
	memcpy(buf, s->part, len);
	free(s->part);
	s->part = NULL;
	s->part_len = s->part_got = 0;
	return (ssize_t)len;
}

/* The rest of a len-byte message of which got bytes are in buf already,
 * read straight into buf. A timeout keeps what arrived (part). */
static ssize_t read_rest(struct ipc_stream *s, void *buf, size_t len, size_t got, ipc_deadline *dl)
{
	while (got < len) {
		ssize_t n = read_some(s, (char *)buf + got, len - got, dl);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0) {
			saw_eof(s);
			return -EPIPE; /* the peer died mid-message */
		}
		if (n == -EAGAIN || n == -ETIMEDOUT) {
			/* keep what arrived for the next call; without memory for
			 * that, keep reading: the message must not be torn */
			if (!(s->part = ipc__malloc(len))) {
				struct ipc_deadline forever = IPC_DL_INIT(-1);
				return read_rest(s, buf, len, got, &forever);
			}
			memcpy(s->part, buf, got);
			s->part_len = len;
			s->part_got = got;
		}
		return n;
	}
	return (ssize_t)len;
}

/*
 * Large-message mode (the last message was at least IPC_BIG_MSG bytes, the
 * read buffer is empty, the caller's buffer is large): one read puts the
 * next frame's header in rbuf and up to 64 KiB of what follows straight
 * into the caller's buffer, saving the copy through rbuf and, for a 64 KiB
 * message, a second read. Whatever landed in buf beyond the message (the
 * next frames, when the peer sent small ones after all) is moved to rbuf,
 * which was empty. *more is set when the header is not complete yet: the
 * buffered path carries on with the bytes kept in rbuf.
 */
static ssize_t recv_direct(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl, bool *more)
{
	struct ipc_stream *s = S(c);
	size_t lim = cap < IPC_RBUF_SIZE ? cap : IPC_RBUF_SIZE;
	struct iovec iov[2] = { { s->rbuf, IPC_FRAME_HDR }, { buf, lim } };
	ssize_t n = read_iov(s, iov, 2, dl);
	*more = false;
	if (n < 0)
		return n;
	if (n == 0) {
		saw_eof(s);
		return -EPIPE;
	}
	s->rpos = 0;
	if ((size_t)n < IPC_FRAME_HDR) {
		s->rlen = (size_t)n;
		*more = true;
		return 0;
	}
	size_t got = (size_t)n - IPC_FRAME_HDR;
	uint32_t len = get_le32(s->rbuf);
	if (len > c->max_msg) {
		s->rlen = 0;
		return broken(s);
	}
	if (len > cap) {
		/* keep the message for a larger buffer: header and the bytes
		 * read so far (got <= 64 KiB: rbuf has room for both) */
		memcpy(s->rbuf + IPC_FRAME_HDR, buf, got);
		s->rlen = IPC_FRAME_HDR + got;
		c->need_len = len;
		return -EMSGSIZE;
	}
	if (got >= len) {
		s->rlen = got - len;
		memcpy(s->rbuf, (char *)buf + len, s->rlen);
		return len;
	}
	s->rlen = 0;
	return read_rest(s, buf, len, got, dl);
}

ssize_t ipc__stream_recv(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl)
{
	struct ipc_stream *s = S(c);
	int r = ensure_ready(c, dl, false);
	if (r < 0)
		return s->evfd >= 0 ? finish(s, r) : r;
	if (s->rerr)
		return s->rerr;
	if (s->part)
		return finish(s, recv_part(c, buf, cap, dl));
	if (s->big && s->rpos == s->rlen && cap >= IPC_BIG_MSG) {
		bool more;
		ssize_t n = recv_direct(c, buf, cap, dl, &more);
		if (!more)
			return finish(s, n);
	}
	if ((r = fill(s, IPC_FRAME_HDR, dl)) < 0) {
		if (r == -EPIPE && s->rlen > s->rpos)
			s->rpos = s->rlen; /* a torn header from a dead peer */
		return finish(s, r);
	}
	uint32_t len = get_le32(s->rbuf + s->rpos);
	if (len > c->max_msg)
		return finish(s, broken(s));
	if (len > cap) {
		/* A message that fits the read buffer is buffered whole first:
		 * -EMSGSIZE then means it is all here, and a call with a larger
		 * buffer gets it without waiting. */
		if ((size_t)len + IPC_FRAME_HDR <= IPC_RBUF_SIZE &&
		    (r = fill(s, IPC_FRAME_HDR + (size_t)len, dl)) < 0) {
			if (r == -EPIPE)
				s->rpos = s->rlen; /* torn message from a dead peer */
			return finish(s, r);
		}
		c->need_len = len;
		return finish(s, -EMSGSIZE);
	}
	size_t avail = s->rlen - s->rpos - IPC_FRAME_HDR;
	if (avail < len && (size_t)len + IPC_FRAME_HDR <= IPC_RBUF_SIZE) {
		/* small message not all here yet: buffer it whole */
		if ((r = fill(s, IPC_FRAME_HDR + (size_t)len, dl)) < 0) {
			if (r == -EPIPE)
				s->rpos = s->rlen; /* torn message from a dead peer */
			return finish(s, r);
		}
		avail = len;
	}
	if (avail >= len) {
		memcpy(buf, s->rbuf + s->rpos + IPC_FRAME_HDR, len);
		s->rpos += IPC_FRAME_HDR + (size_t)len;
		if (s->rpos == s->rlen)
			s->rpos = s->rlen = 0;
		return finish(s, (ssize_t)len);
	}
	/* large message: take what is buffered, read the rest straight into
	 * the caller's buffer */
	memcpy(buf, s->rbuf + s->rpos + IPC_FRAME_HDR, avail);
	s->rpos = s->rlen = 0;
	return finish(s, read_rest(s, buf, len, avail, dl));
}

int ipc__stream_fd(ipc_chan *c)
{
	struct ipc_stream *s = S(c);
	if (s->epfd >= 0)
		return s->epfd;
	pthread_mutex_lock(&s->lock);
	int watch = atomic_load(&s->ready) || !s->attach ? s->rfd : s->pending_fd;
	int r = s->epfd >= 0 ? 0 : ipc__evset(&s->epfd, &s->evfd, &watch, 1);
	if (r == 0)
		ev_update(s);
	pthread_mutex_unlock(&s->lock);
	return r < 0 ? r : s->epfd;
}

void ipc__stream_close(ipc_chan *c)
{
	struct ipc_stream *s = S(c);
	/* (a forked child's copy does not write the parent's tail) */
	ipc__tail_fini(&s->tail, CLOSE_FLUSH_MS);
	if (s->release)
		s->release(c);
	if (s->wfd != s->rfd)
		ipc__close_fd(&s->wfd);
	ipc__close_fd(&s->rfd);
	s->wfd = -1;
	ipc__close_fd(&s->epfd);
	ipc__close_fd(&s->evfd);
	free(s->rbuf);
	free(s->part);
	s->rbuf = s->part = NULL;
	if (s->lock_init)
		pthread_mutex_destroy(&s->lock);
	s->lock_init = false;
}
