/*
 * data.c - the mq data path: send, recv, waiting on a queue and watching
 * the peer's life, and ipc_fd. The handshake (which may run inside the
 * first send or recv) is in handshake.c; the contract mapping in mq.c.
 *
 * Threads: one sending and one receiving thread may share a channel.
 * Every read of the receive queue and of the stash happens under rlock,
 * the stash first, so no message is lost, duplicated or reordered. The
 * sender reads the receive queue only to look for the peer's
 * end-of-stream marker when its own queue is full, and only with a
 * trylock of rlock: a receiver holding it sees the marker itself.
 *
 * Clock: every try is first made with a limit in the past ({0, 0}: take
 * or put at once); only when that finds the queue empty (full) does a
 * call compute a CLOCK_REALTIME limit, so a call that does not wait never
 * reads the clock.
 */
#include "mqb.h"
#include "posix/fdio.h"

#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static const struct timespec mqb_zero = { 0, 0 };

/* True once the peer exited or (pair) closed its end. */
static bool mqb_peer_gone(struct mqb_chan *m)
{
	if (atomic_load_explicit(&m->gone, memory_order_relaxed))
		return true;
	if (m->life < 0)
		return false;
	struct pollfd p = { .fd = m->life, .events = POLLIN };
	if (poll(&p, 1, 0) > 0) {
		atomic_store(&m->gone, true);
		return true;
	}
	return false;
}

/* The CLOCK_REALTIME end of one wait: one slice, or the deadline if it
 * comes first (the mq calls take wall-clock limits). */
static void mqb_slice_end(ipc_deadline *dl, struct timespec *ts)
{
	int64_t wait = MQB_SLICE_NS;
	if (!ipc__dl_forever(dl)) {
		int64_t left = ipc__dl_at(dl) - ipc__now_ns();
		if (left < 0)
			left = 0;
		if (left < wait)
			wait = left;
	}
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += (time_t)(wait / 1000000000);
	ts->tv_nsec += (long)(wait % 1000000000);
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

void ipc__mqb_wait_init(struct mqb_chan *m, ipc_deadline *dl, struct mqb_wait *w)
{
	memset(w, 0, sizeof(*w));
	if (ipc__dl_nowait(dl))
		return;
	if (m->spin_ns != 0) {
		w->spinning = true;
		return;
	}
	/* one timed call: the fastest wake-up, no try first */
	w->waited = true;
	mqb_slice_end(dl, &w->ts);
}

/*
 * The last try found q empty (recv) or full (send). Returns 0 to try
 * again with w->ts, or the error to return: the timeout error, or -EPIPE
 * when the peer was found gone at the previous call (the caller took its
 * one more look). A spinning call tries again at once until its spin time
 * is over (wait=spin: until the deadline). Waits last at most
 * MQB_SLICE_NS, inside the mq call (the fastest wake-up there is); then
 * the caller tries again and looks at the peer (and a sender for its
 * marker), so a peer that died is seen within a slice.
 */
int ipc__mqb_wait(struct mqb_chan *m, mqd_t q, short ev, ipc_deadline *dl, struct mqb_wait *w)
{
	(void)q;
	(void)ev;
	if (w->gone)
		return -EPIPE;
	if (ipc__dl_nowait(dl) || w->waited || w->spinning) {
		if (mqb_peer_gone(m)) {
			w->gone = true;
			w->ts = mqb_zero;
			return 0;
		}
		if (ipc__expired(dl))
			return ipc__timeout_err(dl);
	}
	if (w->spinning) {
		int64_t now = ipc__now_ns();
		if (!w->spin_start)
			w->spin_start = now;
		if (m->spin_ns < 0 || now - w->spin_start < m->spin_ns) {
			ipc__cpu_relax();
			w->ts = mqb_zero;
			return 0;
		}
		w->spinning = false;
	}
	w->waited = true;
	mqb_slice_end(dl, &w->ts);
	return 0;
}

static inline int mqb_ready(ipc_chan *c, ipc_deadline *dl)
{
	if (__builtin_expect(atomic_load_explicit(&ipc__mqb(c)->ready, memory_order_acquire), 1))
		return 0;
	return ipc__mqb_attach(c, dl);
}

/* A message of prio and n bytes that is not data for us: the marker, or
 * a protocol error. */
static void mqb_not_data(struct mqb_chan *m, unsigned prio, ssize_t n)
{
	if (prio == MQB_PRIO_EOS && n == 0)
		atomic_store(&m->eof, true);
	else
		atomic_store(&m->err, -EPROTO);
}

/* recv under rlock. */
static ssize_t mqb_recv_locked(ipc_chan *c, struct mqb_chan *m, void *buf, size_t cap,
			       ipc_deadline *dl)
{
	bool direct = cap >= m->msgsize;
	struct mqb_wait w;
	ipc__mqb_wait_init(m, dl, &w);
	for (;;) {
		long s = atomic_load_explicit(&m->stash_len, memory_order_relaxed);
		if (s >= 0) {
			if ((size_t)s > cap) {
				c->need_len = (size_t)s;
				return -EMSGSIZE;
			}
			if (s)
				memcpy(buf, m->stash, (size_t)s);
			atomic_store(&m->stash_len, -1);
			ipc__mqb_ev_update(m);
			return s;
		}
		if (atomic_load_explicit(&m->eof, memory_order_relaxed))
			return -EPIPE;
		int r = atomic_load_explicit(&m->err, memory_order_relaxed);
		if (r)
			return r;

		unsigned prio;
		char *to = direct ? buf : (char *)m->stash;
		ssize_t n = mq_timedreceive(m->rq, to, m->msgsize, &prio, &w.ts);
		if (n >= 0) {
			if (prio == MQB_PRIO_DATA && (size_t)n <= c->max_msg) {
				if (direct)
					return n;
				if ((size_t)n > cap) {
					/* kept, first in line for a larger buffer */
					atomic_store(&m->stash_len, n);
					c->need_len = (size_t)n;
					ipc__mqb_ev_update(m);
					return -EMSGSIZE;
				}
				if (n)
					memcpy(buf, m->stash, (size_t)n);
				return n;
			}
			mqb_not_data(m, prio, n);
			ipc__mqb_ev_update(m);
			continue;
		}
		int e = errno;
		if (e == EINTR)
			continue;
		if (e != ETIMEDOUT && e != EAGAIN)
			return -e;
		/* Empty. After the peer went, one more look was taken: done. */
		if (w.gone) {
			atomic_store(&m->eof, true);
			ipc__mqb_ev_update(m);
			return -EPIPE;
		}
		if ((r = ipc__mqb_wait(m, m->rq, POLLIN, dl, &w)) < 0)
			return r;
	}
}

ssize_t ipc__mqb_recv(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl)
{
	struct mqb_chan *m = ipc__mqb(c);
	int r = mqb_ready(c, dl);
	if (r < 0)
		return r;
	/* With one receiving thread the only other holder is a sender's
	 * brief look for the marker (one nonblocking call): taken plainly,
	 * so a never-block receive cannot fail with -EAGAIN while a message
	 * waits. (A second receiving thread, outside the contract, waits.) */
	pthread_mutex_lock(&m->rlock);
	ssize_t n = mqb_recv_locked(c, m, buf, cap, dl);
	pthread_mutex_unlock(&m->rlock);
	return n;
}

/* The send queue is full: if the peer closed cleanly, its end-of-stream
 * marker may be the next message waiting for us. Take one message into
 * the (empty) stash to find out, only if no receiver holds rlock; a data
 * message taken this way is the next one recv returns. */
static bool mqb_pull_eos(ipc_chan *c, struct mqb_chan *m)
{
	if (m->paired || pthread_mutex_trylock(&m->rlock) != 0)
		return atomic_load(&m->eof);
	bool changed = false;
	if (atomic_load_explicit(&m->stash_len, memory_order_relaxed) < 0 &&
	    !atomic_load(&m->eof) && !atomic_load(&m->err)) {
		unsigned prio;
		ssize_t n = mq_timedreceive(m->rq, (char *)m->stash, m->msgsize, &prio, &mqb_zero);
		if (n >= 0) {
			if (prio == MQB_PRIO_DATA && (size_t)n <= c->max_msg)
				atomic_store(&m->stash_len, n);
			else
				mqb_not_data(m, prio, n);
			changed = true;
		}
	}
	pthread_mutex_unlock(&m->rlock);
	if (changed)
		ipc__mqb_ev_update(m);
	return atomic_load(&m->eof);
}

int ipc__mqb_send(ipc_chan *c, const void *msg, size_t len, ipc_deadline *dl)
{
	struct mqb_chan *m = ipc__mqb(c);
	int r = mqb_ready(c, dl);
	if (r < 0)
		return r;
	size_t pm = atomic_load_explicit(&c->peer_max, memory_order_relaxed);
	if (pm && len > pm)
		return -EMSGSIZE;
	struct mqb_wait w;
	ipc__mqb_wait_init(m, dl, &w);
	for (;;) {
		if (atomic_load_explicit(&m->eof, memory_order_relaxed) ||
		    atomic_load_explicit(&m->gone, memory_order_relaxed))
			return -EPIPE;
		if ((r = atomic_load_explicit(&m->err, memory_order_relaxed)) != 0)
			return r;
		if (mq_timedsend(m->sq, msg, len, MQB_PRIO_DATA, &w.ts) == 0)
			return 0;
		int e = errno;
		if (e == EINTR)
			continue;
		if (e != ETIMEDOUT && e != EAGAIN)
			return -e;
		/* Full (for a slice already, or never-block): look for the
		 * marker before waiting (again). */
		if ((w.waited || ipc__dl_nowait(dl)) && mqb_pull_eos(c, m))
			return -EPIPE;
		if ((r = ipc__mqb_wait(m, m->sq, POLLOUT, dl, &w)) < 0)
			return r;
	}
}

/* ---- ipc_fd ---- */

void ipc__mqb_ev_update(struct mqb_chan *m)
{
	if (!atomic_load_explicit(&m->ev_armed, memory_order_acquire))
		return;
	pthread_mutex_lock(&m->evlock);
	if (m->evfd >= 0) {
		bool want = atomic_load(&m->stash_len) >= 0 || atomic_load(&m->eof) ||
			    atomic_load(&m->err) != 0 ||
			    (atomic_load(&m->hello_in) && !atomic_load(&m->ready));
		ipc__ev_level(m->evfd, &m->ev_on, want);
	}
	pthread_mutex_unlock(&m->evlock);
}

void ipc__mqb_ev_watch(struct mqb_chan *m, int fd)
{
	pthread_mutex_lock(&m->evlock);
	m->life = fd;
	if (m->epfd >= 0) {
		struct epoll_event e = { .events = EPOLLIN };
		(void)epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &e);
	}
	pthread_mutex_unlock(&m->evlock);
}

int ipc__mqb_fd(ipc_chan *c)
{
	struct mqb_chan *m = ipc__mqb(c);
	int r = 0;
	pthread_mutex_lock(&m->evlock);
	if (m->epfd < 0) {
		int fds[2] = { (int)m->rq, m->life };
		if ((r = ipc__evset(&m->epfd, &m->evfd, fds, 2)) == 0) {
			m->ev_on = false;
			atomic_store_explicit(&m->ev_armed, true, memory_order_release);
		}
	}
	pthread_mutex_unlock(&m->evlock);
	if (r < 0)
		return r;
	ipc__mqb_ev_update(m);
	return m->epfd;
}
