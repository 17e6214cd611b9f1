/*
 * stream/recv.c - the reading half of the stream layer. Receives read into
 * a 64 KiB buffer so several small frames cost one read; a payload larger
 * than what is buffered is read straight into the caller's buffer. After a
 * large message (>= 16 KiB) the next read goes to the caller's buffer at
 * once (recv_direct), so a 64 KiB message costs one read and no copy
 * through the buffer. A receive that waits costs one system call (sockets
 * block in recvmsg with SO_RCVTIMEO; pipes and FIFOs in read, with poll
 * first only for a finite timeout), after spinning with reads that do not
 * wait when wait= says so. A receive interrupted by a timeout in the
 * middle of a large message keeps what arrived (part) for the next call.
 * Also here: the peer's hello, and ipc_fd's level (a whole frame buffered).
 */
#include "stream/stream.h"
#include "posix/fdio.h"
#include "posix/sock.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

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

int ipc__stream_read_hello(ipc_chan *c, ipc_deadline *dl)
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
/* True when a whole frame waits in the buffer. */
static bool frame_whole(struct ipc_stream *s)
{
	size_t have = s->rlen - s->rpos;
	if (!s->hello_rcvd || s->part || have < IPC_FRAME_HDR)
		return false; /* (before the hello, the bytes are the hello) */
	return have - IPC_FRAME_HDR >= get_le32(s->rbuf + s->rpos);
}

/* True when a whole frame (or EOF) waits in the buffer. */
static bool frame_buffered(struct ipc_stream *s)
{
	return s->eof || s->rerr || frame_whole(s);
}

/* ipc_fd support: keep evfd signalled exactly while a frame is buffered.
 * Costs nothing until ipc_fd was called, and a system call only when the
 * state changes. */
void ipc__stream_ev_update(struct ipc_stream *s)
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
		ipc__stream_ev_update(s);
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
	int r = ipc__stream_ready(c, dl, false);
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
		if (len) /* (buf may be NULL for an empty message) */
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


/* A batch: one receive within dl, then every whole frame already in the
 * read buffer (no system call for those). A frame larger than its buffer
 * stops the batch and stays (ipc_recvv's rule). */
int ipc__stream_recvv(ipc_chan *c, ipc_buf *bufs, size_t n, ipc_deadline *dl)
{
	struct ipc_stream *s = S(c);
	ssize_t r = ipc__stream_recv(c, bufs[0].data, bufs[0].cap, dl);
	if (r < 0)
		return (int)r;
	bufs[0].len = (size_t)r;
	size_t got = 1;
	while (got < n && frame_whole(s) &&
	       get_le32(s->rbuf + s->rpos) <= bufs[got].cap) {
		r = ipc__stream_recv(c, bufs[got].data, bufs[got].cap, IPC_NOWAIT);
		if (r < 0)
			break;
		bufs[got++].len = (size_t)r;
	}
	return (int)got;
}
