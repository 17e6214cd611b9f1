/*
 * mq.c - POSIX message queue backend.
 *
 * Mechanism: two queues per channel, "/name.s2c" (server to client) and
 * "/name.c2s", each message one whole datagram. Data travels with
 * priority 1, the handshake hellos with priority 2 (read first), the
 * end-of-stream marker of a clean close with priority 0 (read after all
 * data). URL: mq:///name (no further '/'); the name plus ".s2c" must fit
 * NAME_MAX (-ENAMETOOLONG).
 *
 * Limits: read at open from /proc/sys/fs/mqueue/msgsize_max and msg_max.
 * max_msg defaults to msgsize_max, capacity (the queue depth in messages)
 * to msg_max; asking for more gives -EMSGSIZE, also for root, who could
 * bypass the kernel limit. Each queue costs about depth * max_msg bytes of
 * RLIMIT_MSGQUEUE (819200 per user by default): mq_open's -EMFILE says so.
 *
 * Contract mapping:
 * - Ownership of a name: the server binds the abstract Unix socket
 *   "ipckit-mq:<name>" (a hash for long names) before creating the queues,
 *   and holds it until its client attached. Bind is atomic and the kernel
 *   releases it when the process dies, so queues found under a name whose
 *   lock could be taken are stale and are unlinked and recreated; a live
 *   server's lock cannot be taken (-EADDRINUSE).
 * - Handshake: the server puts a hello holding its pid in s2c at open; a
 *   client takes it (a pair whose pid is dead is stale: it retries), opens
 *   a pidfd on the server and sends its own hello with its pid in c2s. The
 *   server's first send/recv takes that hello, opens a pidfd on the client
 *   and unlinks both names and releases the lock: nothing stays in
 *   /dev/mqueue once both are attached. A client closing also removes a
 *   stale pair whose server died before attaching (under the same lock).
 * - Peer death: the peer's pidfd is readable once it exited. Blocking
 *   calls wait in mq_timedsend/mq_timedreceive in slices of MQ_SLICE_NS
 *   and look at the pidfd between slices (-EPIPE within a slice), because
 *   a blocked mq_receive is the fastest wake-up there is: polling the
 *   queue and the pidfd costs two more system calls per message and
 *   measured 1.23x the raw round trip against 1.02x for this scheme. With
 *   wait=block the calls poll() the queue and the pidfd instead (peer death
 *   seen at once, slower). ipc_pair has no pids: its ends are tied by a
 *   socketpair that reports the other end's close or death in the same way.
 * - Clean close sends the end-of-stream marker; the survivor returns the
 *   queued messages, then -EPIPE. If the queue stays full for
 *   MQ_CLOSE_WAIT_MS the marker is dropped and the peer only learns of the
 *   close when this process exits (pidfd). A sender whose peer closed sees
 *   -EPIPE once the queue is full and the marker is the next message to it.
 * - A receive buffer smaller than the queue's message size cannot be given
 *   to mq_receive: such a receive goes through a one-message stash of
 *   msgsize bytes (one copy); a message larger than cap stays in the stash
 *   (-EMSGSIZE) until a large enough receive. With cap >= msgsize the
 *   kernel writes straight into the caller's buffer.
 * - ipc_fd: an epoll set of the receive queue, the peer's pidfd (or the
 *   pair's socket) and an eventfd signalled while the stash holds a
 *   message or end of stream was seen.
 * - Named channels belong to the process that opened them: a copy closed
 *   in a forked child sends no marker and removes no name.
 */
#include "posix/fdio.h"
#include "posix/sock.h"

#include <fcntl.h>
#include <limits.h>
#include <mqueue.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MQ_PRIO_EOS 0u
#define MQ_PRIO_DATA 1u
#define MQ_PRIO_HELLO 2u
#define MQ_HELLO_LEN 16
#define MQ_VERSION 1
#define MQ_SLICE_NS (250 * 1000000LL)
#define MQ_CLOSE_WAIT_MS 200
#define MQ_RETRY_MS 10
#define MQ_MSGSIZE_MAX_FILE "/proc/sys/fs/mqueue/msgsize_max"
#define MQ_MSG_MAX_FILE "/proc/sys/fs/mqueue/msg_max"

struct mq_chan {
	mqd_t rq, sq;            /* receive and send queues */
	int life;                /* peer pidfd, or the pair's socket; -1 unknown */
	int lock;                /* server: the name lock until attached */
	bool server, paired, block_wait;
	pid_t owner;             /* the process that opened the channel */
	size_t msgsize;          /* mq_msgsize of both queues */
	atomic_bool ready;       /* handshake done */
	atomic_bool gone;        /* peer exited or closed (life readable) */
	atomic_bool eof;         /* recv returns -EPIPE from now on */
	atomic_size_t peer_max;  /* server: the client's max_msg (0 until attached) */
	atomic_int err;          /* sticky -EPROTO */
	pthread_mutex_t alock;   /* serialises the server's attach */
	pthread_mutex_t slock;   /* owns the stash buffer */
	unsigned char *stash;    /* msgsize bytes */
	atomic_long stash_len;   /* length of a stashed message, -1 if none */
	pthread_mutex_t evlock;  /* ipc_fd state */
	int epfd, evfd;
	bool ev_on;
	char name[NAME_MAX + 2], sname[NAME_MAX + 2], cname[NAME_MAX + 2];
};

#define MQ(c) ((struct mq_chan *)(void *)(c)->priv)

/* hello: "IPCK", u8 version, u8 role ('S' or 'C'), u16 0, u32 pid,
 * u32 max_msg (host byte order: both ends are on this machine). */
static void mq_hello_make(unsigned char *h, char role, size_t max_msg)
{
	uint32_t pid = (uint32_t)getpid();
	uint32_t mx = max_msg > UINT32_MAX ? UINT32_MAX : (uint32_t)max_msg;
	memcpy(h, "IPCK", 4);
	h[4] = MQ_VERSION;
	h[5] = (unsigned char)role;
	h[6] = h[7] = 0;
	memcpy(h + 8, &pid, 4);
	memcpy(h + 12, &mx, 4);
}

static int mq_hello_parse(const unsigned char *h, ssize_t n, unsigned prio, char role,
                          pid_t *pid, size_t *max_msg)
{
	uint32_t p, mx;
	if (prio != MQ_PRIO_HELLO || n != MQ_HELLO_LEN || memcmp(h, "IPCK", 4) != 0 ||
	    h[4] != MQ_VERSION || h[5] != (unsigned char)role)
		return -EPROTO;
	memcpy(&p, h + 8, 4);
	memcpy(&mx, h + 12, 4);
	if (p == 0 || p > INT32_MAX)
		return -EPROTO;
	*pid = (pid_t)p;
	*max_msg = mx;
	return 0;
}

static int mq_read_limit(const char *file, size_t *out)
{
	char buf[32];
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	int e = errno;
	close(fd);
	if (n <= 0)
		return n < 0 ? -e : -EIO;
	buf[n] = 0;
	char *end;
	unsigned long long v = strtoull(buf, &end, 10);
	if (end == buf || v == 0)
		return -EIO;
	*out = (size_t)v;
	return 0;
}

static int mq_limit(size_t *out)
{
	return mq_read_limit(MQ_MSGSIZE_MAX_FILE, out);
}

/* The queue attributes for c: max_msg and depth checked against the
 * kernel limits (never clamped). */
static int mq_attr_for(ipc_chan *c, struct mq_attr *attr)
{
	size_t msgsize_max, msg_max;
	int r = mq_read_limit(MQ_MSGSIZE_MAX_FILE, &msgsize_max);
	if (r == 0)
		r = mq_read_limit(MQ_MSG_MAX_FILE, &msg_max);
	if (r < 0)
		return r;
	if (c->max_msg > msgsize_max)
		return -EMSGSIZE;
	size_t depth = c->cfg.capacity ? c->cfg.capacity : msg_max;
	if (depth > msg_max)
		return -EMSGSIZE;
	memset(attr, 0, sizeof *attr);
	attr->mq_maxmsg = (long)depth;
	/* The hello must fit even when max_msg is tiny. */
	attr->mq_msgsize = (long)(c->max_msg < MQ_HELLO_LEN ? MQ_HELLO_LEN : c->max_msg);
	return 0;
}

static int mq_names(struct mq_chan *m, const char *name)
{
	/* name is "/x"; NAME_MAX counts the characters after the slash. */
	size_t len = strlen(name);
	if (len < 2 || name[0] != '/' || strchr(name + 1, '/'))
		return -EINVAL;
	if (len - 1 + 4 > NAME_MAX)
		return -ENAMETOOLONG;
	snprintf(m->name, sizeof m->name, "%s", name);
	snprintf(m->sname, sizeof m->sname, "%s.s2c", name);
	snprintf(m->cname, sizeof m->cname, "%s.c2s", name);
	return 0;
}

static int mq_pidfd(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return errno == ESRCH ? -ESRCH : -errno;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 0) > 0) { /* exited, not yet reaped */
		close(fd);
		return -ESRCH;
	}
	return fd;
}

static void mq_close_q(mqd_t *q)
{
	if (*q != (mqd_t)-1) {
		mq_close(*q);
		*q = (mqd_t)-1;
	}
}

/* An absolute CLOCK_REALTIME timeout for one mq_timed* call: at once for
 * NOWAIT or poll mode, else the deadline or one slice, whichever is first. */
static void mq_ts(const struct mq_chan *m, ipc_deadline *dl, bool sliced, struct timespec *ts)
{
	if (ipc__dl_nowait(dl) || (m->block_wait && sliced)) {
		ts->tv_sec = 0;
		ts->tv_nsec = 0;
		return;
	}
	int64_t wait = MQ_SLICE_NS;
	if (!ipc__dl_forever(dl)) {
		int64_t left = ipc__dl_at(dl) - ipc__now_ns();
		if (left < 0)
			left = 0;
		if (!sliced || left < wait)
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

/* Keep the ipc_fd eventfd signalled exactly while recv would return
 * without touching the queue (stashed message, end of stream, error). */
static void mq_ev_update(struct mq_chan *m)
{
	if (m->evfd < 0)
		return;
	pthread_mutex_lock(&m->evlock);
	if (m->evfd >= 0) {
		bool want = atomic_load(&m->stash_len) >= 0 || atomic_load(&m->eof) ||
		            atomic_load(&m->err) != 0;
		uint64_t v = 1;
		if (want && !m->ev_on && write(m->evfd, &v, sizeof v) == (ssize_t)sizeof v)
			m->ev_on = true;
		else if (!want && m->ev_on && read(m->evfd, &v, sizeof v) == (ssize_t)sizeof v)
			m->ev_on = false;
	}
	pthread_mutex_unlock(&m->evlock);
}

/* True once the peer exited or (pair) closed its end. */
static bool mq_peer_gone(struct mq_chan *m)
{
	if (atomic_load(&m->gone))
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

/*
 * The queue was empty (recv) or full (send) when last tried. Wait as the
 * mode says and return 0 to try again, or the timeout error. *gone is set
 * when the peer is gone (the caller tries once more, then gives -EPIPE).
 */
static int mq_idle(struct mq_chan *m, mqd_t q, short ev, ipc_deadline *dl, bool *gone)
{
	if (m->block_wait && !ipc__dl_nowait(dl)) {
		if (atomic_load(&m->gone)) {
			*gone = true;
			return 0;
		}
		struct pollfd p[2] = { { .fd = q, .events = ev }, { .fd = m->life, .events = POLLIN } };
		int r = ipc__wait_fds(p, m->life >= 0 ? 2 : 1, dl);
		if (m->life >= 0 && p[1].revents) {
			atomic_store(&m->gone, true);
			*gone = true;
			return 0;
		}
		return r < 0 ? r : 0;
	}
	if (mq_peer_gone(m)) {
		*gone = true;
		return 0;
	}
	if (ipc__expired(dl))
		return ipc__timeout_err(dl);
	return 0;
}

/* The server's first op: take the client's hello (it has priority 2, so
 * it comes before any data), watch the client's pid, drop the names. */
static int mq_attach(ipc_chan *c, ipc_deadline *dl)
{
	struct mq_chan *m = MQ(c);
	int r = ipc__mutex_lock_dl(&m->alock, dl);
	if (r < 0)
		return r;
	if (atomic_load(&m->ready))
		goto out;

	unsigned prio;
	ssize_t n;
	for (;;) {
		struct timespec ts;
		mq_ts(m, dl, false, &ts);
		if (ipc__dl_forever(dl))
			n = mq_receive(m->rq, (char *)m->stash, m->msgsize, &prio);
		else
			n = mq_timedreceive(m->rq, (char *)m->stash, m->msgsize, &prio, &ts);
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		r = errno == ETIMEDOUT || errno == EAGAIN ? ipc__timeout_err(dl) : -errno;
		goto out;
	}
	pid_t pid;
	size_t peer_max;
	r = mq_hello_parse(m->stash, n, prio, 'C', &pid, &peer_max);
	if (r < 0) {
		atomic_store(&m->err, r);
	} else {
		atomic_store(&m->peer_max, peer_max);
		int fd = mq_pidfd(pid);
		if (fd < 0) {
			/* The client died (or closed) after its hello: sends give
			 * -EPIPE; receives drain what it sent, then -EPIPE. */
			atomic_store(&m->gone, true);
		} else {
			pthread_mutex_lock(&m->evlock);
			m->life = fd;
			if (m->epfd >= 0) {
				struct epoll_event e = { .events = EPOLLIN };
				epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &e);
			}
			pthread_mutex_unlock(&m->evlock);
		}
	}
	mq_unlink(m->sname);
	mq_unlink(m->cname);
	ipc__close_fd(&m->lock);
	atomic_store(&m->ready, true);
	mq_ev_update(m);
	r = 0;
out:
	pthread_mutex_unlock(&m->alock);
	return r;
}

static inline int mq_ready(ipc_chan *c, ipc_deadline *dl)
{
	if (__builtin_expect(atomic_load_explicit(&MQ(c)->ready, memory_order_acquire), 1))
		return 0;
	return mq_attach(c, dl);
}

/* Hand out the stashed message, if any: its length, -EMSGSIZE, or -EAGAIN
 * when the stash is empty. */
static ssize_t mq_stash_take(ipc_chan *c, struct mq_chan *m, void *buf, size_t cap)
{
	pthread_mutex_lock(&m->slock);
	long n = atomic_load(&m->stash_len);
	ssize_t r = -EAGAIN;
	if (n >= 0) {
		if ((size_t)n > cap) {
			c->need_len = (size_t)n;
			r = -EMSGSIZE;
		} else {
			if (n)
				memcpy(buf, m->stash, (size_t)n);
			atomic_store(&m->stash_len, -1);
			r = n;
		}
	}
	pthread_mutex_unlock(&m->slock);
	if (r >= 0)
		mq_ev_update(m);
	return r;
}

static ssize_t mqb_recv(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl)
{
	struct mq_chan *m = MQ(c);
	int r = mq_ready(c, dl);
	if (r < 0)
		return r;
	bool direct = cap >= m->msgsize, gone = false;
	for (;;) {
		if (atomic_load_explicit(&m->stash_len, memory_order_acquire) >= 0) {
			ssize_t s = mq_stash_take(c, m, buf, cap);
			if (s != -EAGAIN)
				return s;
		}
		if (atomic_load_explicit(&m->eof, memory_order_relaxed))
			return -EPIPE;
		if ((r = atomic_load_explicit(&m->err, memory_order_relaxed)) != 0)
			return r;

		struct timespec ts;
		unsigned prio;
		ssize_t n;
		int e;
		mq_ts(m, gone ? IPC_NOWAIT : dl, true, &ts);
		if (direct) {
			n = mq_timedreceive(m->rq, buf, m->msgsize, &prio, &ts);
			e = errno;
			if (n >= 0 && prio == MQ_PRIO_DATA)
				return n;
		} else {
			pthread_mutex_lock(&m->slock);
			n = mq_timedreceive(m->rq, (char *)m->stash, m->msgsize, &prio, &ts);
			e = errno;
			if (n >= 0 && prio == MQ_PRIO_DATA) {
				if ((size_t)n > cap) {
					atomic_store(&m->stash_len, n);
					c->need_len = (size_t)n;
					n = -EMSGSIZE;
				} else if (n) {
					memcpy(buf, m->stash, (size_t)n);
				}
				pthread_mutex_unlock(&m->slock);
				if (n == -EMSGSIZE)
					mq_ev_update(m);
				return n;
			}
			pthread_mutex_unlock(&m->slock);
		}
		if (n >= 0) {
			if (prio == MQ_PRIO_EOS)
				atomic_store(&m->eof, true);
			else
				atomic_store(&m->err, -EPROTO);
			mq_ev_update(m);
			continue;
		}
		if (e == EINTR)
			continue;
		if (e != ETIMEDOUT && e != EAGAIN)
			return -e;
		/* Empty. After the peer went, one more look was taken: done. */
		if (gone) {
			atomic_store(&m->eof, true);
			mq_ev_update(m);
			return -EPIPE;
		}
		r = mq_idle(m, m->rq, POLLIN, dl, &gone);
		if (r < 0)
			return r;
	}
}

/* The send queue is full: if the peer closed cleanly its end-of-stream
 * marker may be the next message waiting for us. Take one message into
 * the stash to find out (recv hands a data message out later). */
static bool mq_pull_eos(struct mq_chan *m)
{
	if (atomic_load(&m->eof))
		return true;
	if (m->paired || atomic_load(&m->stash_len) >= 0 || pthread_mutex_trylock(&m->slock) != 0)
		return false;
	struct timespec zero = { 0, 0 };
	unsigned prio;
	ssize_t n = mq_timedreceive(m->rq, (char *)m->stash, m->msgsize, &prio, &zero);
	if (n >= 0) {
		if (prio == MQ_PRIO_EOS)
			atomic_store(&m->eof, true);
		else if (prio == MQ_PRIO_DATA)
			atomic_store(&m->stash_len, n);
		else
			atomic_store(&m->err, -EPROTO);
	}
	pthread_mutex_unlock(&m->slock);
	if (n >= 0)
		mq_ev_update(m);
	return atomic_load(&m->eof);
}

static int mqb_send(ipc_chan *c, const void *msg, size_t len, ipc_deadline *dl)
{
	struct mq_chan *m = MQ(c);
	int r = mq_ready(c, dl);
	if (r < 0)
		return r;
	/* (a client adopted the server's limit as its own max_msg at open;
	 * the server learns the client's from its hello) */
	size_t pm = atomic_load_explicit(&m->peer_max, memory_order_relaxed);
	if (pm && len > pm)
		return -EMSGSIZE;
	for (;;) {
		if (atomic_load_explicit(&m->eof, memory_order_relaxed) ||
		    atomic_load_explicit(&m->gone, memory_order_relaxed))
			return -EPIPE;
		if ((r = atomic_load_explicit(&m->err, memory_order_relaxed)) != 0)
			return r;
		struct timespec ts;
		mq_ts(m, dl, true, &ts);
		if (mq_timedsend(m->sq, msg, len, MQ_PRIO_DATA, &ts) == 0)
			return 0;
		int e = errno;
		if (e == EINTR)
			continue;
		if (e != ETIMEDOUT && e != EAGAIN)
			return -e;
		/* Full. */
		bool gone = false;
		if (mq_pull_eos(m))
			return -EPIPE;
		r = mq_idle(m, m->sq, POLLOUT, dl, &gone);
		if (gone)
			return -EPIPE;
		if (r < 0)
			return r;
	}
}

static void mq_init(struct mq_chan *m, ipc_chan *c)
{
	m->rq = m->sq = (mqd_t)-1;
	m->life = m->lock = m->epfd = m->evfd = -1;
	m->owner = getpid();
	m->block_wait = c->cfg.wait == IPC_WAIT_BLOCK;
	atomic_init(&m->stash_len, -1);
	pthread_mutex_init(&m->alock, NULL);
	pthread_mutex_init(&m->slock, NULL);
	pthread_mutex_init(&m->evlock, NULL);
}

static void mq_fini(struct mq_chan *m)
{
	mq_close_q(&m->rq);
	mq_close_q(&m->sq);
	ipc__close_fd(&m->life);
	ipc__close_fd(&m->lock);
	ipc__close_fd(&m->epfd);
	ipc__close_fd(&m->evfd);
	free(m->stash);
	m->stash = NULL;
	pthread_mutex_destroy(&m->alock);
	pthread_mutex_destroy(&m->slock);
	pthread_mutex_destroy(&m->evlock);
}

static mqd_t mq_create(const char *name, int flags, unsigned mode, struct mq_attr *attr)
{
	mqd_t q = mq_open(name, flags | O_CREAT | O_EXCL, (mode_t)mode, attr);
	if (q == (mqd_t)-1 && errno == EEXIST) {
		/* We hold the name's lock: whatever is there is stale. */
		mq_unlink(name);
		q = mq_open(name, flags | O_CREAT | O_EXCL, (mode_t)mode, attr);
	}
	return q;
}

static int mq_open_server(ipc_chan *c, struct mq_chan *m, const char *name)
{
	struct mq_attr attr;
	int r = mq_attr_for(c, &attr);
	if (r < 0)
		return r;
	m->msgsize = (size_t)attr.mq_msgsize;
	if (!(m->stash = malloc(m->msgsize)))
		return -ENOMEM;
	if ((r = ipc__name_lock("mq", name, &m->lock)) < 0)
		return r;
	m->server = true;
	m->sq = mq_create(m->sname, O_WRONLY, c->cfg.mode, &attr);
	if (m->sq == (mqd_t)-1)
		return -errno;
	m->rq = mq_create(m->cname, O_RDONLY, c->cfg.mode, &attr);
	if (m->rq == (mqd_t)-1) {
		r = -errno;
		mq_unlink(m->sname);
		return r;
	}
	unsigned char h[MQ_HELLO_LEN];
	mq_hello_make(h, 'S', c->max_msg);
	struct timespec zero = { 0, 0 };
	if (mq_timedsend(m->sq, (const char *)h, sizeof h, MQ_PRIO_HELLO, &zero) < 0) {
		r = -errno;
		mq_unlink(m->sname);
		mq_unlink(m->cname);
		return r;
	}
	return 0;
}

/* One attempt to attach to a server: 0, or -ENOENT / -ECONNREFUSED to
 * retry, or another error to give up with. */
static int mq_client_try(ipc_chan *c, struct mq_chan *m)
{
	mq_close_q(&m->rq);
	mq_close_q(&m->sq);
	m->rq = mq_open(m->sname, O_RDONLY);
	if (m->rq == (mqd_t)-1)
		return errno == ENOENT ? -ENOENT : -errno;
	m->sq = mq_open(m->cname, O_WRONLY);
	if (m->sq == (mqd_t)-1)
		return errno == ENOENT ? -ENOENT : -errno;
	struct mq_attr attr;
	if (mq_getattr(m->rq, &attr) < 0)
		return -errno;
	if ((size_t)attr.mq_msgsize != m->msgsize || !m->stash) {
		free(m->stash);
		m->msgsize = (size_t)attr.mq_msgsize;
		if (!(m->stash = malloc(m->msgsize)))
			return -ENOMEM;
	}
	struct timespec zero = { 0, 0 };
	unsigned prio;
	ssize_t n = mq_timedreceive(m->rq, (char *)m->stash, m->msgsize, &prio, &zero);
	if (n < 0) /* no hello: another client has it, or the server is half-made */
		return errno == ETIMEDOUT || errno == EAGAIN ? -ECONNREFUSED : -errno;
	pid_t pid;
	size_t server_max;
	int r = mq_hello_parse(m->stash, n, prio, 'S', &pid, &server_max);
	if (r < 0)
		return r;
	int fd = mq_pidfd(pid);
	if (fd < 0) /* a pair left by a dead server: the next server reclaims it */
		return fd == -ESRCH ? -ECONNREFUSED : fd;
	unsigned char h[MQ_HELLO_LEN];
	mq_hello_make(h, 'C', c->max_msg);
	if (mq_timedsend(m->sq, (const char *)h, sizeof h, MQ_PRIO_HELLO, &zero) < 0) {
		r = -errno;
		close(fd);
		return r == -ETIMEDOUT || r == -EAGAIN ? -ECONNREFUSED : r;
	}
	m->life = fd;
	if (server_max < c->max_msg)
		c->max_msg = server_max;
	return 0;
}

static int mq_open_client(ipc_chan *c, struct mq_chan *m)
{
	struct mq_attr attr;
	int r = mq_attr_for(c, &attr); /* refuse what no queue could carry */
	if (r < 0)
		return r;
	int ms = c->cfg.connect_timeout_ms;
	ipc_deadline dl = IPC_DL_INIT(ms);
	for (;;) {
		r = mq_client_try(c, m);
		if (r == 0)
			return 0;
		if (r != -ENOENT && r != -ECONNREFUSED)
			return r;
		if (ms == 0)
			return r;
		if (ipc__expired(&dl))
			return -ETIMEDOUT;
		ipc__sleep_ms(MQ_RETRY_MS, &dl);
	}
}

static int mq_open_(ipc_chan *c, const ipc_url *u, int flags)
{
	struct mq_chan *m = MQ(c);
	mq_init(m, c);
	int r = mq_names(m, u->path);
	if (r == 0)
		r = flags == IPC_SERVER ? mq_open_server(c, m, u->path) : mq_open_client(c, m);
	if (r < 0) {
		mq_fini(m);
		return r;
	}
	atomic_store(&m->ready, flags != IPC_SERVER);
	return 0;
}

static int mq_pair(ipc_chan *a, ipc_chan *b)
{
	struct mq_chan *ma = MQ(a), *mb = MQ(b);
	mq_init(ma, a);
	mq_init(mb, b);
	ma->paired = mb->paired = true;
	struct mq_attr attr;
	int sv[2] = { -1, -1 };
	char n1[64], n2[64];
	int r = mq_attr_for(a, &attr);
	if (r < 0)
		goto fail;
	ma->msgsize = mb->msgsize = (size_t)attr.mq_msgsize;
	if (!(ma->stash = malloc(ma->msgsize)) || !(mb->stash = malloc(mb->msgsize))) {
		r = -ENOMEM;
		goto fail;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		goto fail;
	}
	/* Names that exist only for the time it takes to open them twice. */
	snprintf(n1, sizeof n1, "/ipckit-pair.%d.%p.a", (int)getpid(), (void *)a);
	snprintf(n2, sizeof n2, "/ipckit-pair.%d.%p.b", (int)getpid(), (void *)a);
	ma->sq = mq_create(n1, O_WRONLY, a->cfg.mode, &attr);
	if (ma->sq == (mqd_t)-1)
		goto fail_errno;
	mb->rq = mq_open(n1, O_RDONLY);
	mq_unlink(n1);
	if (mb->rq == (mqd_t)-1)
		goto fail_errno;
	mb->sq = mq_create(n2, O_WRONLY, a->cfg.mode, &attr);
	if (mb->sq == (mqd_t)-1)
		goto fail_errno;
	ma->rq = mq_open(n2, O_RDONLY);
	mq_unlink(n2);
	if (ma->rq == (mqd_t)-1)
		goto fail_errno;
	if (!(a->url = ipc__url_format("mq", "pair")) || !(b->url = ipc__url_format("mq", "pair"))) {
		r = -ENOMEM;
		goto fail;
	}
	ma->life = sv[0];
	mb->life = sv[1];
	atomic_store(&ma->ready, true);
	atomic_store(&mb->ready, true);
	return 0;
fail_errno:
	r = -errno;
fail:
	ipc__close_fd(&sv[0]);
	ipc__close_fd(&sv[1]);
	mq_fini(ma);
	mq_fini(mb);
	return r;
}

static int mq_fd(ipc_chan *c)
{
	struct mq_chan *m = MQ(c);
	int r;
	pthread_mutex_lock(&m->evlock);
	if (m->epfd >= 0) {
		r = m->epfd;
		goto out;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		r = -errno;
		goto out;
	}
	int ev = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ev < 0) {
		r = -errno;
		close(ep);
		goto out;
	}
	int fds[3] = { (int)m->rq, ev, m->life };
	for (int i = 0; i < 3; i++) {
		struct epoll_event e = { .events = EPOLLIN };
		if (fds[i] >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e) < 0) {
			r = -errno;
			close(ev);
			close(ep);
			goto out;
		}
	}
	m->epfd = r = ep;
	m->evfd = ev;
	m->ev_on = false;
out:
	pthread_mutex_unlock(&m->evlock);
	if (r >= 0)
		mq_ev_update(m);
	return r;
}

static void mq_close_(ipc_chan *c)
{
	struct mq_chan *m = MQ(c);
	if (m->owner == getpid() && !m->paired) {
		bool ready = atomic_load(&m->ready);
		if (!atomic_load(&m->gone) && (ready || m->server)) {
			/* End of stream, after all data. A server nobody attached
			 * to does not wait: its hello may fill the queue. */
			ipc_deadline dl = IPC_DL_INIT(ready ? MQ_CLOSE_WAIT_MS : 0);
			struct timespec ts;
			int n = 0;
			do
				mq_ts(m, &dl, false, &ts);
			while (mq_timedsend(m->sq, "", 0, MQ_PRIO_EOS, &ts) < 0 && errno == EINTR &&
			       ++n < 100);
		}
		if (m->server && !ready) {
			mq_unlink(m->sname);
			mq_unlink(m->cname);
		} else if (!m->server) {
			/* A server that died before attaching left the names:
			 * remove them if no live server holds the name now. */
			int fd = -1;
			if (ipc__name_lock("mq", m->name, &fd) == 0) {
				mq_unlink(m->sname);
				mq_unlink(m->cname);
				ipc__close_fd(&fd);
			}
		}
	}
	mq_fini(m);
}

const struct ipc_backend ipc__backend_mq = {
	.scheme = "mq",
	.addr_kind = IPC_ADDR_MQNAME,
	.caps = IPC_CAP_RELIABLE | IPC_CAP_UNRELATED | IPC_CAP_PAIR | IPC_CAP_PROCESS,
	.chan_size = sizeof(struct mq_chan),
	.max_msg_limit = 0,
	.limit = mq_limit,
	.open = mq_open_,
	.pair = mq_pair,
	.send = mqb_send,
	.recv = mqb_recv,
	.fd = mq_fd,
	.close = mq_close_,
};
