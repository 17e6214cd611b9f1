/*
 * stream/send.c - the writing half of the stream layer: one writev per
 * message (header and payload; ipc_sendv puts up to 256 messages in one),
 * whole or not at all. Once part of a message is written a timeout cannot
 * unsend it, so the unwritten rest goes to lib/tail.c, which finishes it in
 * the background, and the send reports success; room for the rest is
 * reserved before the first byte goes (out of memory is -ENOMEM with
 * nothing sent). Sockets send with MSG_NOSIGNAL; pipes and FIFOs through
 * ipc__pipe_writev, which never raises SIGPIPE.
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
int ipc__stream_tail_write(ipc_chan *c, const unsigned char *p, size_t n, ipc_deadline *dl,
		      size_t *done)
{
	struct iovec iov = { (void *)p, n }, *v = &iov;
	int nv = 1;
	return write_iov(S(c), &v, &nv, n, dl, done);
}

/* lib/tail.c gave up on a cut message: the peer must see us end in the
 * middle of it (EOF), never a torn frame followed by more. */
void ipc__stream_tail_abort(ipc_chan *c)
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
int ipc__stream_write_msg(struct ipc_stream *s, struct iovec *iov, int n, size_t total,
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

/* What every send does first: the handshake, refuse on a dead or broken
 * channel, wait for the tail of an earlier message to go. */
static int send_begin(ipc_chan *c, ipc_deadline *dl)
{
	struct ipc_stream *s = S(c);
	int r = ipc__stream_ready(c, dl, true);
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
	return ipc__stream_write_msg(s, iov, len ? 2 : 1, sizeof(hdr) + len, dl, &done);
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

