/*
 * turns.c - the measuring loop of one turn of one row, on the leader (ping,
 * send) and on the echo side (pong, sink). A turn is announced by the leader
 * on the control socket (harness.c), runs on the row's channel, and ends with
 * a STOP (latency, gap) or END (throughput) message that carries the turn's
 * number; the echo side answers on the control socket with what it counted.
 *
 * Every message is produced whole and checked whole (msg.c): copying rows
 * fill their own buffer and send it, or receive into their buffer and check
 * it; zero-copy rows fill the reserved space and check the peeked message in
 * place. A message of another turn (a late udp echo, a resent STOP) is
 * skipped on a lossy row and an error on a reliable one.
 */
#include "turns.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOSSY_TIMEOUT_MS 200
#define CTL_TIMEOUT_MS 120000
/* ipc_sendv batches carry at most this many bytes (and --batch messages). */
#define BATCH_BYTES (64 * 1024)

static const struct bench_opts *T;

void turns_setup(const struct bench_opts *o)
{
	T = o;
}

int batch_of(const struct chan *c, const struct bench_opts *o)
{
	if (!c->k->sendv || o->batch <= 1 || c->s.batch == 1)
		return 1;
	size_t max = BATCH_BYTES / c->s.size;
	if (max < 1)
		max = 1;
	return (size_t)o->batch < max ? o->batch : (int)max;
}

int bufs_init(struct bufs *b, size_t size, int batch)
{
	memset(b, 0, sizeof(*b));
	if (batch < 1)
		batch = 1;
	b->stride = (size + 63) & ~(size_t)63;
	b->scap = b->stride * (size_t)batch;
	b->rcap = size + 65536;   /* raw mq wants room for the queue's msgsize */
	if (b->rcap < b->scap)
		b->rcap = b->scap;
	b->nb = batch;
	b->s = aligned_alloc(64, (b->scap + 63) & ~(size_t)63);
	b->r = aligned_alloc(64, (b->rcap + 63) & ~(size_t)63);
	b->rb = calloc((size_t)batch, sizeof(*b->rb));
	if (!b->s || !b->r || !b->rb)
		return -ENOMEM;
	memset(b->s, 0xa5, b->scap);
	memset(b->r, 0, b->rcap);
	return 0;
}

void bufs_free(struct bufs *b)
{
	free(b->s);
	free(b->r);
	free(b->rb);
	memset(b, 0, sizeof(*b));
}

/* --corrupt: the third data message of a row's first turn leaves with one
 * middle byte flipped (after its checksum was computed). */
static void maybe_corrupt(struct ep *e, void *p, uint64_t seq)
{
	if (T && T->corrupt && e->side == 0 && !e->c->corrupted && !(seq & (SEQ_STOP | SEQ_END)) &&
	    seq_turn(seq) != HELLO_TURN && (seq & SEQ_INDEX_MASK) == 3) {
		msg_corrupt(p, e->c->s.size);
		e->c->corrupted = true;
	}
}

/* Produce and send one message: in place (zero-copy) or from b->s. */
static int put_msg(struct ep *e, struct bufs *b, uint64_t seq)
{
	const struct kind *k = e->c->k;
	size_t len = e->c->s.size;
	if (k->reserve) {
		void *p;
		int r = k->reserve(e, len, &p);
		if (r)
			return r;
		msg_fill(p, len, seq);
		maybe_corrupt(e, p, seq);
		return k->commit(e, len);
	}
	msg_fill(b->s, len, seq);
	maybe_corrupt(e, b->s, seq);
	return k->send(e, b->s, len);
}

/* Receive and check one message: 0 intact, 1 failed the check, or -errno.
 * *seq is the message's own header either way (so a failed ping is still
 * answered). */
static int get_msg(struct ep *e, struct bufs *b, int timeout_ms, uint64_t *seq)
{
	const struct kind *k = e->c->k;
	size_t len = e->c->s.size;
	const unsigned char *m;
	uint64_t s = 0;
	ssize_t n;
	if (k->peek) {
		const void *pm;
		n = k->peek(e, &pm, timeout_ms);
		m = pm;
	} else {
		n = k->recv(e, b->r, b->rcap, timeout_ms);
		m = b->r;
	}
	if (n < 0)
		return (int)n;
	if (n >= 8)
		memcpy(&s, m, 8);
	int bad = msg_check(m, n, len, &s) != 0;
	if (k->peek) {
		int r = k->release(e);
		if (r < 0)
			return r;
	}
	*seq = s;
	return bad;
}

static void usage_begin(const struct ep *e, struct usage *u)
{
	usage_now(e->c->s.threads, u);
}

static void usage_since(const struct ep *e, const struct usage *u0, uint64_t *cpu, uint64_t *nv,
			uint64_t *niv)
{
	struct usage u;
	usage_now(e->c->s.threads, &u);
	*cpu = u.cpu_ns - u0->cpu_ns;
	*nv = u.nvcsw - u0->nvcsw;
	*niv = u.nivcsw - u0->nivcsw;
}

/* Send STOP and wait for its echo, then read the echo side's report. A
 * lossy row resends STOP after a silence, and stops waiting as soon as the
 * report is there (the echo side saw STOP; its answer may have been lost). */
static int stop_turn(struct ep *e, struct bufs *b, uint32_t turn, struct turn_report *rep,
		     uint64_t *errors)
{
	uint64_t want = SEQ_STOP | seq_make(turn, 0), s;
	bool lossy = e->c->s.lossy;
	int r = 0;
	for (int tries = 0; tries < 50; tries++) {
		if (lossy && tries && (r = fd_readable(e->ctl)) != 0)
			break;
		r = put_msg(e, b, want);
		if (r)
			return r;
		for (;;) {
			r = get_msg(e, b, lossy ? LOSSY_TIMEOUT_MS : -1, &s);
			if (r == -ETIMEDOUT && lossy)
				break;
			if (r < 0)
				return r;
			if (r == 0 && s == want)
				goto done;
			if (!lossy)
				(*errors)++;
		}
	}
	if (r < 0)
		return r;
	if (r == 0)
		return -ETIMEDOUT;
done:
	return ctl_read(e->ctl, rep, sizeof(*rep), CTL_TIMEOUT_MS);
}

int hello_turn(struct ep *e, struct bufs *b)
{
	struct turn_report rep;
	uint64_t errors = 0;
	int r = stop_turn(e, b, HELLO_TURN, &rep, &errors);
	return r ? r : errors || rep.errors ? -EPROTO : 0;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000u), .tv_nsec = (long)(t % 1000000000u) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* Closed loop: up to n pings for at most budget_ns; gap_ns > 0: the idle
 * gap after each echo. The index continues from *idx. */
static int ping_closed(struct ep *e, struct bufs *b, uint32_t turn, uint64_t *idx, uint64_t n,
		       uint64_t budget_ns, uint64_t gap_ns, hist *h, struct turn_out *out)
{
	bool lossy = e->c->s.lossy;
	int tmo = lossy ? LOSSY_TIMEOUT_MS : -1;
	uint64_t start = now_ns(), t1 = start;
	for (uint64_t i = 0; i < n; i++) {
		if (budget_ns && t1 - start >= budget_ns)
			break;
		if (gap_ns)
			sleep_until(t1 + gap_ns);
		uint64_t s = seq_make(turn, ++*idx), rs;
		uint64_t t0 = now_ns();
		int r = put_msg(e, b, s);
		if (r)
			return r;
		for (;;) {
			r = get_msg(e, b, tmo, &rs);
			t1 = now_ns();
			if (r == -ETIMEDOUT && lossy) {
				out->lost++;
				break;
			}
			if (r < 0)
				return r;
			if (r || (rs != s && !lossy)) {
				out->errors++;
				break;
			}
			if (rs != s)
				continue;   /* a late echo of a ping given up on, or of another turn */
			if (h) {
				hist_add(h, t1 - t0);
				out->count++;
			}
			break;
		}
	}
	return 0;
}

/* Messages in flight at most in open-loop mode: enough to keep a
 * schedule, few enough that neither side blocks in send while the other
 * does (that would deadlock a one-slot mailbox or a full queue). */
static uint64_t rate_window(const struct chan *c)
{
	uint64_t w = 16384 / c->s.size;
	if (w > 64)
		w = 64;
	if (c->k->slots && w > (uint64_t)c->k->slots)
		w = (uint64_t)c->k->slots;
	if (c->got.mq_maxmsg && w > c->got.mq_maxmsg / 2)
		w = c->got.mq_maxmsg / 2;   /* a small kernel queue */
	return w ? w : 1;
}

/* Open loop: message k of the row (counted over all its turns) is due at
 * k / rate on the row's own clock, which runs only during the row's turns
 * (the other rows of the group take theirs in between): a turn resumes the
 * schedule where the last one stopped, with its phase and any backlog. A
 * message's latency counts from its due time, however late it was actually
 * sent (no coordinated omission). Between sends the pinger waits for the
 * next echo or the next due time in the kernel (kind->wait: poll on the
 * row's descriptor); rows that spin poll recv(..., 0) instead. */
static int ping_open(struct ep *e, struct bufs *b, uint32_t turn, uint64_t n, uint64_t budget_ns,
		     double rate, hist *h, struct turn_out *out)
{
	struct chan *c = e->c;
	const struct kind *k = c->k;
	bool lossy = c->s.lossy;
	uint64_t win = rate_window(c), sent = 0, done = 0, forget = 0;
	double interval = 1e9 / rate, pos = c->ol_clock_ns;
	uint64_t k0 = c->ol_next, t0 = now_ns(), last_act = t0;
	bool stopped = false;

	/* Wall-clock due time of message i of this turn (may lie before t0:
	 * a backlog carried over from the last turn). */
#define DUE(i) ((int64_t)t0 + (int64_t)((double)(k0 + (i)) * interval - pos))
	for (;;) {
		uint64_t now = now_ns();
		if (!stopped && (sent == n || (budget_ns && now - t0 >= budget_ns && sent > 0))) {
			/* Out of messages or time: the row's clock stops here. */
			n = sent;
			stopped = true;
			c->ol_clock_ns = pos + (double)(now - t0);
			c->ol_next = k0 + sent;
		}
		if (stopped && done == sent)
			break;
		int64_t due = DUE(sent);
		if (!stopped && (int64_t)now >= due && sent - done < win) {
			int r = put_msg(e, b, seq_make(turn, ++sent));
			if (r)
				return r;
			last_act = now_ns();
			continue;
		}
		uint64_t rs;
		int r = get_msg(e, b, 0, &rs);
		if (r == -EAGAIN) {
			uint64_t dl = 0;
			if (lossy && done < sent) {
				uint64_t give_up = last_act + LOSSY_TIMEOUT_MS * 1000000ull;
				if (now >= give_up) {
					/* Silence: what is in flight is lost. */
					out->lost += sent - done;
					done = sent;
					forget = sent;
					continue;
				}
				dl = give_up;
			}
			if (!stopped && sent - done < win && (!dl || (uint64_t)due < dl))
				dl = (uint64_t)due;
			if (!stopped && budget_ns && (!dl || t0 + budget_ns < dl))
				dl = t0 + budget_ns;
			if (k->wait && !e->spins) {
				r = k->wait(e, dl);
				if (r)
					return r;
			}
			continue;
		}
		if (r < 0)
			return r;
		uint64_t t1 = now_ns(), i = rs & SEQ_INDEX_MASK;
		last_act = t1;
		if (r) {
			out->errors++;
			done++;
			continue;
		}
		if (lossy && (seq_turn(rs) != turn || (rs & (SEQ_STOP | SEQ_END)) || i <= forget))
			continue;   /* a late echo of a ping given up on, or of another turn */
		if (seq_turn(rs) != turn || i < 1 || i > sent) {
			out->errors++;
			done++;
			continue;
		}
		int64_t sched = DUE(i - 1);
		hist_add(h, (int64_t)t1 > sched ? (uint64_t)((int64_t)t1 - sched) : 0);
		out->count++;
		done++;
	}
#undef DUE
	return 0;
}

int lat_turn(struct ep *e, struct bufs *b, uint32_t turn, uint64_t n, uint64_t budget_ns,
	     uint64_t warmup, uint64_t warmup_budget_ns, uint64_t gap_ns, hist *h, struct turn_out *out)
{
	struct usage u0;
	uint64_t idx = 0, t0;
	int r = 0;
	memset(out, 0, sizeof(*out));
	if (warmup)
		r = ping_closed(e, b, turn, &idx, warmup, warmup_budget_ns, 0, NULL, out);
	usage_begin(e, &u0);
	t0 = now_ns();
	if (!r && T->rate > 0 && !gap_ns)
		r = ping_open(e, b, turn, n, budget_ns, T->rate, h, out);
	else if (!r)
		r = ping_closed(e, b, turn, &idx, n, budget_ns, gap_ns, h, out);
	out->elapsed_ns = now_ns() - t0;
	usage_since(e, &u0, &out->cpu_ns, &out->nvcsw, &out->nivcsw);
	return r ? r : stop_turn(e, b, turn, &out->echo, &out->errors);
}

int pong_turn(struct ep *e, struct bufs *b, uint32_t turn)
{
	uint64_t stop = SEQ_STOP | seq_make(turn, 0);
	struct turn_report rep = { 0 };
	struct usage u0;
	bool lossy = e->c->s.lossy;
	usage_begin(e, &u0);
	for (;;) {
		uint64_t s = 0;
		int r = get_msg(e, b, -1, &s);
		if (r < 0)
			return r;
		rep.errors += (uint64_t)r;
		if (seq_turn(s) != turn) {
			if (lossy)
				continue;   /* a late ping or STOP of an earlier turn */
			rep.errors++;
		}
		r = put_msg(e, b, s);
		if (r)
			return r;
		rep.received++;
		if (s == stop)
			break;
	}
	usage_since(e, &u0, &rep.cpu_ns, &rep.nvcsw, &rep.nivcsw);
	return ctl_write(e->ctl, &rep, sizeof(rep));
}

static void stream(struct ep *e, bool on)
{
	e->stream = on;
	if (e->c->k->stream)
		e->c->k->stream(e, on);
}

int tput_turn(struct ep *e, struct bufs *b, uint32_t turn, uint64_t limit, uint64_t dur_ns,
	      struct turn_out *out)
{
	struct chan *c = e->c;
	const struct kind *k = c->k;
	int batch = batch_of(c, T), r = 0;
	uint64_t sent = 0, it = 0, end = SEQ_END | seq_make(turn, 0);
	ipc_msg m[256];
	struct usage u0;

	memset(out, 0, sizeof(*out));
	stream(e, true);
	for (int j = 0; j < batch; j++)
		m[j] = (ipc_msg){ .data = b->s + (size_t)j * b->stride, .len = c->s.size };
	usage_begin(e, &u0);
	uint64_t t0 = now_ns();
	while (sent < limit) {
		if ((batch > 1 || (it & 15) == 0) && now_ns() - t0 >= dur_ns)
			break;
		it++;
		uint64_t n = limit - sent < (uint64_t)batch ? limit - sent : (uint64_t)batch;
		if (batch > 1) {
			for (uint64_t j = 0; j < n; j++) {
				msg_fill(b->s + j * b->stride, c->s.size, seq_make(turn, sent + j + 1));
				maybe_corrupt(e, b->s + j * b->stride, seq_make(turn, sent + j + 1));
			}
			r = k->sendv(e, m, n);
		} else {
			r = put_msg(e, b, seq_make(turn, sent + 1));
		}
		if (r)
			goto out;
		sent += n;
	}
	/* END, then the receiver's report on the control socket. A lossy row
	 * may drop END: resend it until the report comes. */
	for (int tries = 0;; tries++) {
		r = put_msg(e, b, end);
		if (r)
			goto out;
		r = ctl_read(e->ctl, &out->echo, sizeof(out->echo), c->s.lossy ? 50 : CTL_TIMEOUT_MS);
		if (r != -ETIMEDOUT || !c->s.lossy || tries > 400)
			break;
	}
	if (r)
		goto out;
	out->elapsed_ns = now_ns() - t0;
	usage_since(e, &u0, &out->cpu_ns, &out->nvcsw, &out->nivcsw);
	out->sent = sent;
	out->count = out->echo.received;
	/* The sender knows how many it sent, so messages dropped after the
	 * last one received count too. */
	out->lost = c->s.lossy && sent > out->count ? sent - out->count : 0;
out:
	stream(e, false);
	return r;
}

/* One received message of a stream: END (1), counted (0), or skipped. */
static int sink_one(struct ep *e, int bad, uint64_t s, uint32_t turn, uint64_t *expect,
		    struct turn_report *rep)
{
	bool lossy = e->c->s.lossy;
	if (bad) {
		rep->errors++;
		return 0;
	}
	if (s == (SEQ_END | seq_make(turn, 0)))
		return 1;
	if (seq_turn(s) != turn || (s & (SEQ_STOP | SEQ_END))) {
		if (!lossy)
			rep->errors++;
		return 0;   /* lossy: a late message or END of an earlier turn */
	}
	uint64_t i = s & SEQ_INDEX_MASK;
	if (lossy) {
		/* Every intact message counts once, late or not; the sender
		 * works out the losses from what it sent. */
		if (i >= *expect)
			*expect = i + 1;
	} else {
		if (i != *expect)
			rep->errors++;
		*expect = i + 1;
	}
	rep->received++;
	return 0;
}

int sink_turn(struct ep *e, struct bufs *b, uint32_t turn)
{
	struct chan *c = e->c;
	struct turn_report rep = { 0 };
	struct usage u0 = { 0 };
	uint64_t expect = 1;
	int batch = batch_of(c, T), tmo = c->s.lossy ? 5000 : -1, r = 0;
	bool first = true, more = true;

	stream(e, true);
	for (int j = 0; j < batch; j++)
		b->rb[j] = (ipc_buf){ .data = b->r + (size_t)j * b->stride, .cap = b->stride };
	while (more) {
		int got;
		if (batch > 1 && c->k->recvv) {
			got = c->k->recvv(e, b->rb, (size_t)batch, tmo);
		} else {
			uint64_t s;
			got = get_msg(e, b, tmo, &s);
			if (got >= 0) {
				if (first)
					usage_begin(e, &u0);
				first = false;
				more = !sink_one(e, got, s, turn, &expect, &rep);
				continue;
			}
		}
		if (got < 0) {
			r = got;
			goto out;
		}
		if (first) {
			/* Count from the first arrival: before it the receiver
			 * only waited (or spun) for the sender to start. */
			usage_begin(e, &u0);
			first = false;
		}
		for (int j = 0; j < got && more; j++) {
			uint64_t s = 0;
			if (b->rb[j].len >= 8)
				memcpy(&s, b->rb[j].data, 8);
			int bad = msg_check(b->rb[j].data, (ssize_t)b->rb[j].len, c->s.size, &s) != 0;
			more = !sink_one(e, bad, s, turn, &expect, &rep);
		}
	}
	usage_since(e, &u0, &rep.cpu_ns, &rep.nvcsw, &rep.nivcsw);
	r = ctl_write(e->ctl, &rep, sizeof(rep));
out:
	stream(e, false);
	return r;
}
