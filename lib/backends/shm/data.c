/*
 * data.c - the data path of shm (shm.h has the folder's map).
 *
 * Holds: send (one record, or fragments of a quarter ring for a message
 * larger than half the ring), sendv (as many records as fit, one head
 * update), the writer lib/tail.c runs for the rest of a fragmented message
 * cut by its deadline, recv with fragment reassembly straight into the
 * caller's buffer (or into part when a timeout cuts it), recvv (a batch
 * with one tail update and at most one writer wake-up), and zero-copy in
 * place (reserve/commit, peek/release).
 * Leaves to others: attach (rendezvous.c, called by shm_ready), waiting
 * (wait.c), the ipc_fd level after a receive (fd.c), the record format
 * and its checks (ring.c).
 */
#include "backends/shm/shm.h"

#include <string.h>
#include <sys/uio.h>

static inline int shm_ready(ipc_chan *c, ipc_deadline *dl)
{
	struct shm *s = S(c);
	if (!atomic_load_explicit(&s->ready, memory_order_acquire)) {
		int r = atomic_load_explicit(&s->err, memory_order_relaxed);
		if (r < 0 || (r = ipc__shm_attach(c, dl)) < 0)
			return r;
	}
	return atomic_load_explicit(&s->err, memory_order_relaxed);
}

/* Ready to send? -EPIPE once the peer is gone; a socket look now and then
 * catches a peer that died while we were not waiting. */
static inline int shm_tx_check(struct shm *s)
{
	bool sock = false;
	if ((++s->tx_n & 63) == 0) {
		int64_t now = coarse_ns();
		if (now != s->tx_checked) {  /* at most once per clock tick (a few ms) */
			s->tx_checked = now;
			sock = true;
		}
	}
	return shm_peer_gone(s, sock) ? -EPIPE : 0;
}

static int shm_tx_space(ipc_chan *c, uint64_t want, ipc_deadline *dl)
{
	struct shm *s = S(c);
	for (;;) {
		int64_t r = ipc__ring_space(&s->tx, want);
		if (r < 0)
			return ipc__shm_fail(s);
		if ((uint64_t)r >= want)
			return 0;
		int w = ipc__shm_wait(s, want, dl, c->cfg.wait);
		if (w < 0)
			return w == -EPROTO ? ipc__shm_fail(s) : w;
	}
}

/* Put p[0..n) into the ring as fragment records of at most a quarter ring
 * (so that writer and reader overlap on large messages); the first record
 * names total when first is set. *done counts the bytes that went. */
static int shm_frag_out(ipc_chan *c, const unsigned char *p, size_t n, bool first,
			uint32_t total, ipc_deadline *dl, size_t *done)
{
	struct shm *s = S(c);
	uint64_t fmax = s->tx.size / 4 - IPC_REC_HDR;
	*done = 0;
	do {
		uint64_t k = n - *done < fmax ? n - *done : fmax;
		int r = shm_tx_space(c, ipc__rec_size(k), dl);
		if (r < 0)
			return r;
		memcpy(ipc__ring_wptr(&s->tx), p + *done, k);
		ipc__ring_put(&s->tx, (uint32_t)k, first && *done == 0 ? total : IPC_REC_CONT);
		ipc__ring_publish(&s->tx);
		shm_wake_reader(s);
		*done += k;
	} while (*done < n);
	return 0;
}

/* lib/tail.c's writer: the rest of a cut message, as continuation
 * fragments (n > 0), within dl; *done says how far it got. Runs in the
 * tail's thread while the sending thread waits in ipc__tail_wait. */
int ipc__shm_tail_write(ipc_chan *c, const unsigned char *p, size_t n, ipc_deadline *dl,
			  size_t *done)
{
	return shm_frag_out(c, p, n, false, 0, dl, done);
}

/* lib/tail.c gave up on a cut message (no writer thread and the peer did
 * not take the rest within a second): break the channel off. The peer
 * sees this end hang up in the middle of the message (-EPIPE there), and
 * our sends give -EPIPE. */
void ipc__shm_tail_abort(ipc_chan *c)
{
	struct shm *s = S(c);
	atomic_store(&s->gone, true);
	shutdown(s->sock, SHUT_RDWR);
}

/*
 * Send a message larger than half the ring in fragments. Once a fragment
 * is out the message cannot be withdrawn: when dl cuts it, the rest goes
 * to lib/tail.c, whose writer finishes it in the background, and the call
 * succeeds (*cut set). Room for the rest is reserved before the first
 * fragment is published, so out of memory is -ENOMEM with nothing sent. A
 * send that waits forever is never cut.
 */
static int shm_send_frags(ipc_chan *c, const unsigned char *msg, size_t len, ipc_deadline *dl,
			  bool *cut)
{
	struct shm *s = S(c);
	int r;
	if (!ipc__dl_forever(dl) && (r = ipc__tail_reserve(&s->tail, len)) < 0)
		return r;
	size_t done;
	r = shm_frag_out(c, msg, len, true, (uint32_t)len, dl, &done);
	if (r == 0 || done == 0 || (r != -ETIMEDOUT && r != -EAGAIN))
		return r;
	struct iovec rest = { (void *)(msg + done), len - done };
	*cut = true;
	return ipc__tail_start(&s->tail, &rest, 1);
}

/* What every send does first: attach, wait for the rest of a cut message
 * to go (nothing may come between its fragments), refuse on a dead peer. */
static inline int shm_tx_begin(ipc_chan *c, ipc_deadline *dl)
{
	struct shm *s = S(c);
	int r = shm_ready(c, dl);
	if (r < 0)
		return r;
	if ((r = ipc__tail_wait(&s->tail, dl)) < 0)
		return r;
	return shm_tx_check(s);
}

/* Copy one message that fits as a single record (space already there). */
static inline void shm_put_whole(struct shm *s, const void *msg, size_t len)
{
	if (len)
		memcpy(ipc__ring_wptr(&s->tx), msg, len);
	ipc__ring_put(&s->tx, (uint32_t)len, (uint32_t)len);
}

/* One message, whole or in fragments (after shm_tx_begin). */
static int shm_send_one(ipc_chan *c, const void *msg, size_t len, ipc_deadline *dl)
{
	struct shm *s = S(c);
	uint64_t rec = ipc__rec_size(len);
	bool cut = false;
	if (rec > s->tx.size / 2)
		return shm_send_frags(c, msg, len, dl, &cut);
	int r = shm_tx_space(c, rec, dl);
	if (r < 0)
		return r;
	shm_put_whole(s, msg, len);
	ipc__ring_publish(&s->tx);
	shm_wake_reader(s);
	return 0;
}

int ipc__shm_send(ipc_chan *c, const void *msg, size_t len, ipc_deadline *dl)
{
	struct shm *s = S(c);
	int r = shm_tx_begin(c, dl);
	if (r < 0)
		return r;
	if (len > s->peer_max)
		return -EMSGSIZE;
	return shm_send_one(c, msg, len, dl);
}

/* A batch: as many records as fit, one index update, at most one wake-up
 * per wait. */
int ipc__shm_sendv(ipc_chan *c, const ipc_msg *msgs, size_t n, ipc_deadline *dl)
{
	struct shm *s = S(c);
	int r = shm_tx_begin(c, dl);
	if (r < 0)
		return r;
	size_t i = 0;
	while (i < n) {
		if (msgs[i].len > s->peer_max) {
			r = -EMSGSIZE;
			break;
		}
		uint64_t rec = ipc__rec_size(msgs[i].len);
		if (rec > s->tx.size / 2) {
			bool cut = false;
			if ((r = shm_send_frags(c, msgs[i].data, msgs[i].len, dl, &cut)) < 0)
				break;
			i++;
			if (cut)
				break;  /* its rest must go before anything else */
			continue;
		}
		int64_t sp = ipc__ring_space(&s->tx, rec);
		if (sp < 0) {
			r = ipc__shm_fail(s);
			break;
		}
		if ((uint64_t)sp < rec) {
			/* publish what we have, then wait for room */
			ipc__ring_publish(&s->tx);
			shm_wake_reader(s);
			if ((r = shm_tx_space(c, rec, dl)) < 0)
				break;
		}
		shm_put_whole(s, msgs[i].data, msgs[i].len);
		i++;
	}
	ipc__ring_publish(&s->tx);
	shm_wake_reader(s);
	return i ? (int)i : r;
}

int ipc__shm_send_reserve(ipc_chan *c, size_t len, void **buf, ipc_deadline *dl)
{
	struct shm *s = S(c);
	int r = shm_tx_begin(c, dl);
	if (r < 0)
		return r;
	if (len > s->peer_max)
		return -EMSGSIZE;
	uint64_t rec = ipc__rec_size(len);
	if (rec <= s->tx.size) {
		/* in place: the space stays ours until commit */
		if ((r = shm_tx_space(c, rec, dl)) < 0)
			return r;
		*buf = ipc__ring_wptr(&s->tx);
		s->resv_inplace = true;
	} else {
		/* larger than the ring: one copy, sent in fragments by commit,
		 * whose memory is all reserved here */
		if (len > s->resv_cap) {
			unsigned char *p = ipc__realloc(s->resv_buf, len);
			if (!p)
				return -ENOMEM;
			s->resv_buf = p;
			s->resv_cap = len;
		}
		if (!ipc__dl_forever(dl) && (r = ipc__tail_reserve(&s->tail, len)) < 0)
			return r;
		*buf = s->resv_buf;
		s->resv_inplace = false;
	}
	s->resv_len = len;
	s->resv_dl = *dl;
	return 0;
}

int ipc__shm_send_commit(ipc_chan *c, size_t len)
{
	struct shm *s = S(c);
	if (!s->resv_inplace)
		return shm_send_one(c, s->resv_buf, len, &s->resv_dl);
	if (atomic_load(&s->err))
		return -EPROTO;
	ipc__ring_put(&s->tx, (uint32_t)len, (uint32_t)len);
	ipc__ring_publish(&s->tx);
	shm_wake_reader(s);
	return shm_peer_gone(s, false) ? -EPIPE : 0;
}

/* Next record, waiting for one within dl. 1 with *rec, or an error;
 * -EPIPE only once the ring is empty and the peer gone. */
static int shm_next(ipc_chan *c, struct ipc_rec *rec, ipc_deadline *dl)
{
	struct shm *s = S(c);
	for (;;) {
		int r = ipc__ring_next(&s->rx, rec);
		if (r > 0)
			return r;
		if (r < 0)
			return ipc__shm_fail(s);
		if (atomic_load_explicit(&s->gone, memory_order_relaxed)) {
			/* we saw the peer go before this look at the ring */
			return -EPIPE;
		}
		r = ipc__shm_wait(s, 0, dl, c->cfg.wait);
		if (r == -EPIPE)
			continue;  /* look once more: deliver what was sent before */
		if (r < 0)
			return r == -EPROTO ? ipc__shm_fail(s) : r;
	}
}

/* After consuming: free the space, wake a sleeping writer. */
static inline void shm_take(struct shm *s, const struct ipc_rec *rec)
{
	ipc__ring_consume(&s->rx, rec);
	shm_wake_writer(s);
}

static int part_reserve(struct shm *s, size_t n)
{
	if (n <= s->part_cap && s->part)
		return 0;
	unsigned char *p = ipc__realloc(s->part, n ? n : 1);
	if (!p)
		return -ENOMEM;
	s->part = p;
	s->part_cap = n ? n : 1;
	return 0;
}

/* Continue a fragmented message into dst (which holds seq.got bytes). 0
 * when complete, or an error (the state is kept for a timeout). */
static int shm_fill(ipc_chan *c, unsigned char *dst, ipc_deadline *dl)
{
	struct shm *s = S(c);
	while (s->seq.in_msg) {
		struct ipc_rec rec;
		int r = shm_next(c, &rec, dl);
		if (r < 0)
			return r;
		int kind = ipc__rx_seq_check(&s->seq, &rec);
		if (kind < 0)
			return ipc__shm_fail(s);
		memcpy(dst + s->seq.got, rec.data, rec.len);
		ipc__rx_seq_take(&s->seq, &rec, kind);
		shm_take(s, &rec);
	}
	return 0;
}

/* A fragmented receive stopped by r: keep the bytes so far for later (in
 * part, reserved before the first fragment was taken), or forget the
 * message when it can never complete. */
static int shm_cut(struct shm *s, const unsigned char *so_far, int r)
{
	if (r == -ETIMEDOUT || r == -EAGAIN) {
		if (!s->part_active) {
			if (part_reserve(s, s->seq.total) < 0) {
				s->seq.in_msg = false;  /* (cannot happen: reserved) */
				return -ENOMEM;
			}
			memcpy(s->part, so_far, s->seq.got);
			s->part_active = true;
		}
		return r;
	}
	s->seq.in_msg = false;
	s->part_active = false;
	return r;
}

/* Finish a message being assembled in s->part. */
static int shm_finish_part(ipc_chan *c, ipc_deadline *dl)
{
	struct shm *s = S(c);
	if (s->part_active && !s->part_done) {
		int r = shm_fill(c, s->part, dl);
		if (r < 0)
			return shm_cut(s, s->part, r);  /* (already there: no copy) */
		s->part_done = true;
	}
	return 0;
}

static ssize_t shm_recv_msg(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl)
{
	struct shm *s = S(c);
	int r;
	if (s->part_active) {
		if ((r = shm_finish_part(c, dl)) < 0)
			return r;
		size_t n = s->seq.total;
		if (n > cap) {
			c->need_len = n;
			return -EMSGSIZE;
		}
		memcpy(buf, s->part, n);
		s->part_active = s->part_done = false;
		return (ssize_t)n;
	}
	struct ipc_rec rec;
	if ((r = shm_next(c, &rec, dl)) < 0)
		return r;
	int kind = ipc__rx_seq_check(&s->seq, &rec);
	if (kind < 0)
		return ipc__shm_fail(s);
	if (rec.total > cap) {
		c->need_len = rec.total;
		return -EMSGSIZE;  /* nothing consumed */
	}
	/* a fragmented message that dl may cut keeps its bytes so far in
	 * part: out of memory must be reported before anything is taken */
	if (kind == IPC_REC_FIRST && !ipc__dl_forever(dl) && (r = part_reserve(s, rec.total)) < 0)
		return r;
	if (rec.len)  /* (buf may be NULL with cap 0) */
		memcpy(buf, rec.data, rec.len);
	ipc__rx_seq_take(&s->seq, &rec, kind);
	shm_take(s, &rec);
	if (kind == IPC_REC_WHOLE)
		return rec.len;
	/* fragments go straight into the caller's buffer */
	if ((r = shm_fill(c, buf, dl)) < 0)
		return shm_cut(s, buf, r);
	return (ssize_t)s->seq.total;
}

/* What every receive does first: attach; nothing while a message is
 * peeked. */
static inline int shm_rx_begin(ipc_chan *c, ipc_deadline *dl)
{
	int r = shm_ready(c, dl);
	if (r < 0)
		return r;
	return S(c)->peek ? -EBUSY : 0;
}

/* ... and last: once ipc_fd was asked for, keep its level. */
static inline void shm_rx_end(struct shm *s)
{
	if (atomic_load_explicit(&s->fd_mode, memory_order_acquire))
		ipc__shm_fd_level(s);
}

ssize_t ipc__shm_recv(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl)
{
	int r = shm_rx_begin(c, dl);
	if (r < 0)
		return r;
	ssize_t n = shm_recv_msg(c, buf, cap, dl);
	shm_rx_end(S(c));
	return n;
}

ssize_t ipc__shm_recv_peek(ipc_chan *c, const void **msg, ipc_deadline *dl)
{
	struct shm *s = S(c);
	int r = shm_ready(c, dl);
	if (r < 0)
		return r;
	if (s->peek) {
		*msg = s->peek_ptr;
		return (ssize_t)s->peek_len;
	}
	ssize_t out;
	if (!s->part_active) {
		struct ipc_rec rec;
		if ((r = shm_next(c, &rec, dl)) < 0) {
			out = r;
			goto done;
		}
		int kind = ipc__rx_seq_check(&s->seq, &rec);
		if (kind < 0) {
			out = ipc__shm_fail(s);
			goto done;
		}
		if (kind == IPC_REC_WHOLE) {
			/* in place, until release */
			s->peek = PEEK_INPLACE;
			s->peek_rec = rec;
			s->peek_ptr = rec.data;
			s->peek_len = rec.len;
			*msg = rec.data;
			out = rec.len;
			goto done;
		}
		/* fragmented: assembled in part (one copy) */
		if (part_reserve(s, rec.total) < 0) {
			out = -ENOMEM;
			goto done;
		}
		memcpy(s->part, rec.data, rec.len);
		ipc__rx_seq_take(&s->seq, &rec, kind);
		shm_take(s, &rec);
		s->part_active = true;
		s->part_done = false;
	}
	if ((r = shm_finish_part(c, dl)) < 0) {
		out = r;
		goto done;
	}
	s->peek = PEEK_PART;
	s->peek_ptr = s->part;
	s->peek_len = s->seq.total;
	*msg = s->part;
	out = (ssize_t)s->seq.total;
done:
	shm_rx_end(s);
	return out;
}

/* The next record if one is there, never waiting: 1, 0, or -EPROTO. */
static inline int next_now(struct shm *s, struct ipc_rec *rec)
{
	int r = ipc__ring_next(&s->rx, rec);
	return r < 0 ? ipc__shm_fail(s) : r;
}

/*
 * Messages already waiting, waiting within dl only for the first: whole
 * records are copied out and taken privately, then the tail is published
 * once and a sleeping writer woken at most once, for the whole batch. A
 * message larger than its buffer stops the batch and stays queued
 * (-EMSGSIZE, with need_len, only when it is the first). A fragmented
 * message is received as recv would, when it is the first; after the
 * first it ends the batch (the next call takes it).
 */
int ipc__shm_recvv(ipc_chan *c, ipc_buf *bufs, size_t n, ipc_deadline *dl)
{
	struct shm *s = S(c);
	int r = shm_rx_begin(c, dl);
	if (r < 0)
		return r;
	size_t got = 0;
	bool taken = false;
	struct ipc_rec rec;
	if (!s->part_active && (r = shm_next(c, &rec, dl)) < 0)
		goto out;
	if (s->part_active || ipc__rx_seq_check(&s->seq, &rec) != IPC_REC_WHOLE) {
		/* (a broken record too: recv reports it) */
		ssize_t m = shm_recv_msg(c, bufs[0].data, bufs[0].cap, dl);
		if (m < 0) {
			r = (int)m;
			goto out;
		}
		bufs[got++].len = (size_t)m;
		if (got == n || (r = next_now(s, &rec)) <= 0)
			goto out;
	}
	for (;;) {
		/* rec is the next record, validated by ipc__ring_next */
		int kind = ipc__rx_seq_check(&s->seq, &rec);
		if (kind < 0) {
			r = ipc__shm_fail(s);
			break;
		}
		if (kind != IPC_REC_WHOLE)
			break;
		if (rec.len > bufs[got].cap) {
			if (!got) {
				c->need_len = rec.len;
				r = -EMSGSIZE;
			}
			break;
		}
		if (rec.len) /* (data may be NULL with cap 0) */
			memcpy(bufs[got].data, rec.data, rec.len);
		bufs[got++].len = rec.len;
		ipc__ring_skip(&s->rx, &rec);
		taken = true;
		if (got == n || (r = next_now(s, &rec)) <= 0)
			break;
	}
out:
	if (taken) {
		ipc__ring_release(&s->rx);
		shm_wake_writer(s);
	}
	shm_rx_end(s);
	return got ? (int)got : r;
}

int ipc__shm_recv_release(ipc_chan *c)
{
	struct shm *s = S(c);
	if (s->peek == PEEK_INPLACE) {
		if (!atomic_load(&s->err))
			shm_take(s, &s->peek_rec);
	} else if (s->peek == PEEK_PART) {
		s->part_active = s->part_done = false;
	}
	s->peek = 0;
	shm_rx_end(s);
	return 0;
}
