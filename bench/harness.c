/*
 * harness.c - one group in a pair of processes.
 *
 * The leader (side 0, CPU A) is the pinger and the sender; the child
 * (side 1, CPU B) echoes and receives. Channels are opened one at a time,
 * each confirmed by a first echoed message (this also lets a server that
 * attaches lazily do so). Latency: the group's channels take turns for
 * o->rounds rounds (warm-up in the first), each round ending with a STOP
 * message that carries the round number; the samples of every round are
 * merged per channel. Throughput: each channel in turn streams for
 * o->duration seconds (or o->count messages), ends with an END message,
 * and the child answers on the control socket with what it received and
 * what it cost.
 */
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define HELLO_ROUND 0xffffffu
#define LOSSY_TIMEOUT_MS 200
#define CTL_TIMEOUT_MS 120000
/* ipc_sendv batches carry at most this many bytes (and --batch messages). */
#define BATCH_BYTES (64 * 1024)

struct tput_report {
	uint64_t received, errors, cpu_ns, ctx;
};

int pin_cpu(int cpu)
{
	cpu_set_t set;
	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

static void usage_now(uint64_t *cpu_ns, uint64_t *ctx)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	*cpu_ns = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
		  ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
	*ctx = (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
}

/* Buffers of one process: a send buffer big enough for a batch, a
 * receive buffer, both touched up front. */
struct bufs {
	unsigned char *s, *r;
	size_t scap, rcap;
};

static int bufs_init(struct bufs *b, size_t size, int batch)
{
	size_t most = BATCH_BYTES / size;   /* as batch_of() caps it */
	if (batch > 1 && (size_t)batch > most)
		batch = most ? (int)most : 1;
	b->rcap = size + 65536;   /* raw mq needs the queue's msgsize */
	b->scap = size * (size_t)(batch > 1 ? batch : 1);
	if (b->scap < size + 64)
		b->scap = size + 64;
	b->s = aligned_alloc(64, (b->scap + 63) & ~(size_t)63);
	b->r = aligned_alloc(64, (b->rcap + 63) & ~(size_t)63);
	if (!b->s || !b->r)
		return -ENOMEM;
	memset(b->s, 0xa5, b->scap);
	memset(b->r, 0, b->rcap);
	return 0;
}

static void bufs_free(struct bufs *b)
{
	free(b->s);
	free(b->r);
}

/* Messages in flight at most in open-loop mode: enough to keep a
 * schedule, few enough that neither side blocks in send while the other
 * does (that would deadlock a one-slot mailbox or a full pipe). */
static uint64_t rate_window(const struct chan *c)
{
	if (c->kind == CK_RAW_SPIN || c->kind == CK_RAW_EVENTFD)
		return 1;
	uint64_t w = 16384 / c->size;
	if (w > 64)
		w = 64;
	if (!strcmp(c->backend, "mq") && w > 4)
		w = 4;
	return w ? w : 1;
}

/* Send STOP(round) and wait for its echo. On a lossy channel stale
 * echoes are skipped and STOP is resent after a silence. */
static int stop_round(struct chan *c, struct bufs *b, uint32_t round, uint64_t *errors)
{
	uint64_t want = SEQ_STOP | round, s;
	for (int tries = 0; tries < 25; tries++) {
		msg_fill(b->s, c->size, want);
		int r = c->ops->send(c, b->s, c->size);
		if (r)
			return r;
		for (;;) {
			ssize_t got = c->ops->recv(c, b->r, b->rcap, c->lossy ? LOSSY_TIMEOUT_MS : -1);
			if (got == -ETIMEDOUT && c->lossy)
				break;
			if (got < 0)
				return (int)got;
			if (msg_check(b->r, got, c->size, &s) == 0 && s == want)
				return 0;
			if (!c->lossy)
				(*errors)++;
		}
	}
	return -ETIMEDOUT;
}

/* Closed loop: up to n pings, for at most budget_ns. */
static int ping_closed(struct chan *c, struct bufs *b, uint64_t *seq, uint64_t n,
		       uint64_t budget_ns, hist *h, uint64_t *errors, uint64_t *lost)
{
	const struct ep_ops *ops = c->ops;
	int tmo = c->lossy ? LOSSY_TIMEOUT_MS : -1;
	uint64_t start = now_ns(), t1 = start;
	for (uint64_t i = 0; i < n; i++) {
		if (budget_ns && t1 - start >= budget_ns)
			break;
		uint64_t s = (*seq)++, rs;
		msg_fill(b->s, c->size, s);
		uint64_t t0 = now_ns();
		int r = ops->send(c, b->s, c->size);
		if (r)
			return r;
		for (;;) {
			ssize_t got = ops->recv(c, b->r, b->rcap, tmo);
			t1 = now_ns();
			if (got == -ETIMEDOUT && c->lossy) {
				(*lost)++;
				break;
			}
			if (got < 0)
				return (int)got;
			if (msg_check(b->r, got, c->size, &rs) || (rs != s && !c->lossy)) {
				(*errors)++;
				break;
			}
			if (rs != s)
				continue;   /* a late echo of a ping given up on */
			if (h)
				hist_add(h, t1 - t0);
			break;
		}
	}
	return 0;
}

/* Open loop: message k of the row (counted over all its turns) is due at
 * k / rate on the row's own clock, which runs only during the row's turns
 * (the other rows of the group take theirs in between): a turn resumes
 * the schedule where the last one stopped, with its phase and any backlog.
 * A message's latency counts from its due time, however late it was
 * actually sent (no coordinated omission). Between sends the pinger waits
 * for the next echo or the next due time in the kernel (ops->wait: poll on
 * the row's descriptor); rows that spin (ops->wait NULL, or shm wait=spin)
 * poll recv(..., 0) instead. */
static int ping_open(struct chan *c, struct bufs *b, uint64_t *seq, uint64_t n, uint64_t budget_ns,
		     double rate, hist *h, uint64_t *errors, uint64_t *lost)
{
	const struct ep_ops *ops = c->ops;
	uint64_t win = rate_window(c), seq0 = *seq, sent = 0, done = 0, forget = seq0;
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
			msg_fill(b->s, c->size, seq0 + sent);
			int r = ops->send(c, b->s, c->size);
			if (r)
				return r;
			sent++;
			last_act = now_ns();
			continue;
		}
		ssize_t got = ops->recv(c, b->r, b->rcap, 0);
		if (got == -EAGAIN) {
			uint64_t dl = 0;
			if (c->lossy && done < sent) {
				uint64_t give_up = last_act + LOSSY_TIMEOUT_MS * 1000000ull;
				if (now >= give_up) {
					/* Silence: what is in flight is lost. */
					*lost += sent - done;
					done = sent;
					forget = seq0 + sent;
					continue;
				}
				dl = give_up;
			}
			if (!stopped && sent - done < win && (!dl || (uint64_t)due < dl))
				dl = (uint64_t)due;
			if (!stopped && budget_ns && (!dl || t0 + budget_ns < dl))
				dl = t0 + budget_ns;
			if (ops->wait) {
				int r = ops->wait(c, dl);
				if (r)
					return r;
			}
			continue;
		}
		if (got < 0)
			return (int)got;
		uint64_t t1 = now_ns(), rs;
		last_act = t1;
		if (msg_check(b->r, got, c->size, &rs)) {
			(*errors)++;
			done++;
			continue;
		}
		if (c->lossy && rs < forget)
			continue;   /* a late echo of a ping given up on, or of an earlier turn */
		if (rs < seq0 || rs >= seq0 + sent) {
			(*errors)++;
			done++;
			continue;
		}
		int64_t sched = DUE(rs - seq0);
		hist_add(h, (int64_t)t1 > sched ? (uint64_t)((int64_t)t1 - sched) : 0);
		done++;
	}
#undef DUE
	*seq = seq0 + sent;
	return 0;
}

/* The child's side of a round: echo until STOP(round). */
static int pong_round(struct chan *c, struct bufs *b, uint32_t round, uint64_t *errors)
{
	for (;;) {
		uint64_t s = 0;
		ssize_t got = c->ops->recv(c, b->r, b->rcap, -1);
		if (got < 0)
			return (int)got;
		if (msg_check(b->r, got, c->size, &s))
			(*errors)++;
		int r = c->ops->send(c, b->r, c->size);
		if (r)
			return r;
		if (s == (SEQ_STOP | round))
			return 0;
	}
}

static int batch_of(const struct chan *c, const struct bench_opts *o)
{
	if (!c->ops->tsendv || o->batch <= 1 || c->batch == 1)
		return 1;
	size_t max = BATCH_BYTES / c->size;
	if (max < 1)
		max = 1;
	return (size_t)o->batch < max ? o->batch : (int)max;
}

static int tput_send(struct chan *c, struct bufs *b, const struct bench_opts *o, struct row *row)
{
	int (*send)(struct chan *, const void *, size_t) = c->ops->tsend ? c->ops->tsend : c->ops->send;
	int batch = batch_of(c, o), r = 0;
	uint64_t limit = o->count_set ? o->count : UINT64_MAX;
	uint64_t dur = o->count_set ? UINT64_MAX : (uint64_t)(o->duration * 1e9);
	uint64_t sent = 0, cpu0, ctx0, cpu1, ctx1, it = 0;
	ipc_msg m[256];
	struct tput_report rep;

	c->tput = true;
	for (int j = 0; j < batch; j++)
		m[j] = (ipc_msg){ .data = b->s + (size_t)j * c->size, .len = c->size };
	usage_now(&cpu0, &ctx0);
	uint64_t t0 = now_ns();
	while (sent < limit) {
		if ((batch > 1 || (it & 15) == 0) && now_ns() - t0 >= dur)
			break;
		it++;
		uint64_t k = limit - sent < (uint64_t)batch ? limit - sent : (uint64_t)batch;
		for (uint64_t j = 0; j < k; j++)
			msg_fill(b->s + j * c->size, c->size, sent + j);
		r = batch > 1 ? c->ops->tsendv(c, m, k) : send(c, b->s, c->size);
		if (r)
			goto out;
		sent += k;
	}
	/* END, then the receiver's report on the control socket. A lossy
	 * channel may drop END: resend it until the report comes. */
	for (int tries = 0;; tries++) {
		msg_fill(b->s, c->size, SEQ_END);
		r = send(c, b->s, c->size);
		if (r)
			goto out;
		r = ctl_read(c->ctl, &rep, sizeof(rep), c->lossy ? 50 : CTL_TIMEOUT_MS);
		if (r != -ETIMEDOUT || !c->lossy || tries > 200)
			break;
	}
	if (r)
		goto out;
	uint64_t t1 = now_ns();
	usage_now(&cpu1, &ctx1);
	row->sent = sent;
	row->count = rep.received;
	row->errors += rep.errors;
	/* Lossy channels: the sender knows how many it sent, so messages
	 * dropped after the last one received count too. */
	row->lost = c->lossy && sent > rep.received ? sent - rep.received : 0;
	row->elapsed_s = (double)(t1 - t0) / 1e9;
	row->msgs_per_s = row->elapsed_s > 0 ? (double)rep.received / row->elapsed_s : 0;
	row->bytes_per_s = row->msgs_per_s * (double)c->size;
	row->cpu_ns[0] = sent ? (double)(cpu1 - cpu0) / (double)sent : 0;
	row->cpu_ns[1] = rep.received ? (double)rep.cpu_ns / (double)rep.received : 0;
	row->ctx[0] = ctx1 - ctx0;
	row->ctx[1] = rep.ctx;
	row->batch = batch;
out:
	c->tput = false;
	return r;
}

static int tput_recv(struct chan *c, struct bufs *b)
{
	ssize_t (*recv)(struct chan *, void *, size_t, int) = c->ops->trecv ? c->ops->trecv : c->ops->recv;
	struct tput_report rep = { 0 };
	uint64_t expect = 0, cpu0 = 0, ctx0 = 0, cpu1, ctx1, s;
	bool first = true;
	int r;

	c->tput = true;
	for (;;) {
		ssize_t got = recv(c, b->r, b->rcap, c->lossy ? 5000 : -1);
		if (got < 0) {
			r = (int)got;
			goto out;
		}
		if (first) {
			/* Count from the first arrival: before it the receiver
			 * only waited (or spun) for the sender to start. */
			usage_now(&cpu0, &ctx0);
			first = false;
		}
		if (msg_check(b->r, got, c->size, &s)) {
			rep.errors++;
			continue;
		}
		if (s == SEQ_END)
			break;
		if (c->lossy) {
			/* Every intact data message counts once, late or not;
			 * the sender works out the losses from what it sent. */
			if (s & SEQ_STOP)
				continue;   /* a resent STOP of the latency rounds */
			if (s >= expect)
				expect = s + 1;
		} else {
			if (s != expect)
				rep.errors++;
			expect = s + 1;
		}
		rep.received++;
	}
	usage_now(&cpu1, &ctx1);
	rep.cpu_ns = cpu1 - cpu0;
	rep.ctx = ctx1 - ctx0;
	r = ctl_write(c->ctl, &rep, sizeof(rep));
	/* Swallow resent ENDs so they do not reach the next stream. */
	while (!r && c->lossy && recv(c, b->r, b->rcap, 100) >= 0)
		;
out:
	c->tput = false;
	return r;
}

static void fail_msg(const struct chan *c, const char *what, int err)
{
	fprintf(stderr, "ipckit-bench: %s %s%s%s %u B %s: %s\n", c->backend, c->impl,
		c->variant[0] ? "/" : "", c->variant, (unsigned)c->size, what,
		err < 0 ? ipc_strerror(err) : "failed");
}

/* The child: 0 or a negative errno (its exit status is the errno). */
static int child_main(struct chan *chans, int n, const struct bench_opts *o, int ctl)
{
	struct bufs b;
	uint64_t *errs = calloc((size_t)n, sizeof(*errs));
	int r = pin_cpu(o->pin[1]);
	if (!r && !errs)
		r = -ENOMEM;
	if (!r)
		r = bufs_init(&b, chans[0].size, 1);
	if (r)
		return r;
	for (int i = 0; i < n; i++) {
		r = chan_open(&chans[i], 1, ctl);
		if (r) {
			fail_msg(&chans[i], "open (child)", r);
			return r;
		}
		r = pong_round(&chans[i], &b, HELLO_ROUND, &errs[i]);
		if (r) {
			fail_msg(&chans[i], "first message (child)", r);
			return r;
		}
	}
	if (o->modes & MODE_LATENCY) {
		for (int k = 0; k < o->rounds; k++)
			for (int i = 0; i < n; i++) {
				if (chans[i].tput_only)
					continue;
				r = pong_round(&chans[i], &b, (uint32_t)k, &errs[i]);
				if (r) {
					fail_msg(&chans[i], "latency (child)", r);
					return r;
				}
			}
		if (ctl_write(ctl, errs, (size_t)n * sizeof(*errs)))
			return r;
	}
	if (o->modes & MODE_THROUGHPUT) {
		for (int i = 0; i < n; i++) {
			r = tput_recv(&chans[i], &b);
			if (r) {
				fail_msg(&chans[i], "throughput (receiver)", r);
				return r;
			}
		}
	}
	for (int i = 0; i < n; i++)
		chan_close(&chans[i]);
	bufs_free(&b);
	free(errs);
	return 0;
}

/* One channel's turn in latency round k: the warm-up first (round 0),
 * then its share of the samples, then STOP(k). */
static int lat_turn(struct chan *c, struct bufs *b, const struct bench_opts *o, int k,
		    uint64_t n, uint64_t budget, uint64_t *seq, struct row *w)
{
	int r;
	if (k == 0 && o->warmup) {
		/* The warm-up has its own cap: a tenth of the row's time. */
		uint64_t wb = o->lat_cap > 0 ? (uint64_t)(o->lat_cap * 1e8) : 0;
		r = ping_closed(c, b, seq, o->warmup, wb, NULL, &w->errors, &w->lost);
		if (r)
			return r;
	}
	if (o->rate > 0)
		r = ping_open(c, b, seq, n, budget, o->rate, &w->h, &w->errors, &w->lost);
	else
		r = ping_closed(c, b, seq, n, budget, &w->h, &w->errors, &w->lost);
	return r ? r : stop_round(c, b, (uint32_t)k, &w->errors);
}

static void label_row(struct row *w, const struct chan *c, int mode, const struct bench_opts *o)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->backend, sizeof(w->backend), "%s", c->backend);
	snprintf(w->impl, sizeof(w->impl), "%s", c->impl);
	snprintf(w->variant, sizeof(w->variant), "%s", c->variant);
	snprintf(w->wait, sizeof(w->wait), "%s", c->wait);
	w->mode = mode;
	w->size = (uint32_t)c->size;
	w->pairs = 1;
	w->batch = 1;
	w->rate = mode == MODE_LATENCY ? o->rate : 0;
	hist_init(&w->h);
}

/* What the signal handler of a leader cleans up. */
static struct chan *volatile sig_chans;
static volatile int sig_nchans;
static volatile pid_t sig_child;

/* SIGTERM (from the main process, when it is interrupted) or SIGINT
 * (--transfer runs in the terminal's process group): take the child down,
 * remove the names this group created, exit. Async-signal-safe. */
static void leader_signal(int sig)
{
	if (sig_child > 0)
		kill(sig_child, SIGKILL);
	for (int i = 0; sig_chans && i < sig_nchans; i++)
		chan_unlink_names(&sig_chans[i]);
	_exit(128 + sig);
}

int run_group(struct chan *chans, int n, const struct bench_opts *o,
	      struct row *rows, int max_rows, void (*progress)(const char *msg))
{
	struct sigaction sa = { .sa_handler = leader_signal }, old_term, old_int;
	sigset_t block, oldmask;
	int sv[2] = { -1, -1 }, r = 0, nrows = 0, status;
	pid_t pid = -1;
	struct bufs b = { 0 };
	char msg[160];

	if (n <= 0 || 2 * n > max_rows)
		return -EINVAL;
	sig_chans = chans;
	sig_nchans = n;
	sig_child = -1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGINT, &sa, &old_int);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	for (int i = 0; i < n; i++) {
		chans[i].idx = i;
		r = chan_prepare(&chans[i]);
		if (r) {
			fail_msg(&chans[i], "prepare", r);
			goto out;
		}
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		goto out;
	}
	fflush(NULL);
	/* The child dies of SIGTERM (it shares the leader's process group);
	 * the leader's handler must know its pid before a signal can come. */
	sigprocmask(SIG_BLOCK, &block, &oldmask);
	pid = fork();
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		sigprocmask(SIG_SETMASK, &oldmask, NULL);
		close(sv[0]);
		int e = child_main(chans, n, o, sv[1]);
		_exit(e < 0 ? (-e > 255 ? 255 : -e) : 0);
	}
	if (pid > 0)
		sig_child = pid;
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	if (pid < 0) {
		r = -errno;
		goto out;
	}
	close(sv[1]);
	sv[1] = -1;
	r = pin_cpu(o->pin[0]);
	if (r)
		goto out;
	r = bufs_init(&b, chans[0].size, o->batch);
	if (r)
		goto out;
	uint64_t *seq = calloc((size_t)n, sizeof(*seq));
	if (!seq) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		uint64_t e = 0;
		r = chan_open(&chans[i], 0, sv[0]);
		if (r) {
			fail_msg(&chans[i], "open", r);
			goto out_seq;
		}
		r = stop_round(&chans[i], &b, HELLO_ROUND, &e);
		if (r) {
			fail_msg(&chans[i], "first message", r);
			goto out_seq;
		}
	}
	if (o->modes & MODE_LATENCY) {
		struct row *lat = rows + nrows;
		uint64_t per_round = (o->count + (uint64_t)o->rounds - 1) / (uint64_t)o->rounds;
		uint64_t budget = o->lat_cap > 0 ? (uint64_t)(o->lat_cap * 1e9 / o->rounds) : 0;
		int nl = 0;   /* latency rows: the channels that are not tput_only */
		for (int i = 0; i < n; i++)
			if (!chans[i].tput_only)
				label_row(&lat[nl++], &chans[i], MODE_LATENCY, o);
		nrows += nl;
		snprintf(msg, sizeof(msg), "%s %u B latency (%d rows interleaved)",
			 chans[0].backend, (unsigned)chans[0].size, nl);
		progress(msg);
		for (int k = 0; k < o->rounds; k++) {
			for (int i = 0, j = 0; i < n; i++) {
				if (chans[i].tput_only)
					continue;
				r = lat_turn(&chans[i], &b, o, k, per_round, budget, &seq[i], &lat[j++]);
				if (r) {
					fail_msg(&chans[i], "latency", r);
					goto out_seq;
				}
			}
		}
		uint64_t *cerr = calloc((size_t)n, sizeof(*cerr));
		r = cerr ? ctl_read(sv[0], cerr, (size_t)n * sizeof(*cerr), CTL_TIMEOUT_MS) : -ENOMEM;
		for (int i = 0, j = 0; cerr && !r && i < n; i++) {
			if (chans[i].tput_only)
				continue;
			lat[j].errors += cerr[i];
			lat[j].count = lat[j].h.count;
			j++;
		}
		free(cerr);
		if (r)
			goto out_seq;
	}
	if (o->modes & MODE_THROUGHPUT) {
		for (int i = 0; i < n; i++) {
			struct chan *c = &chans[i];
			struct row *w = rows + nrows++;
			label_row(w, c, MODE_THROUGHPUT, o);
			snprintf(msg, sizeof(msg), "%s %s%s%s %u B throughput", c->backend, c->impl,
				 c->variant[0] ? "/" : "", c->variant, (unsigned)c->size);
			progress(msg);
			r = tput_send(c, &b, o, w);
			if (r) {
				fail_msg(c, "throughput", r);
				goto out_seq;
			}
		}
	}
out_seq:
	free(seq);
out:
	for (int i = 0; i < n; i++)
		chan_close(&chans[i]);
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (pid > 0) {
		if (r)
			kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (!r && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
			/* The child's exit status is its errno. */
			r = WIFEXITED(status) ? -WEXITSTATUS(status) : -EINTR;
			if (WIFEXITED(status))
				fprintf(stderr, "ipckit-bench: %s %u B: child failed: %s\n",
					chans[0].backend, (unsigned)chans[0].size, ipc_strerror(r));
			else
				fprintf(stderr, "ipckit-bench: %s %u B: child killed by signal %d\n",
					chans[0].backend, (unsigned)chans[0].size, WTERMSIG(status));
		}
	}
	sig_child = -1;
	for (int i = 0; i < n; i++)
		chan_cleanup(&chans[i]);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGINT, &old_int, NULL);
	sig_chans = NULL;
	bufs_free(&b);
	return r ? r : nrows;
}
