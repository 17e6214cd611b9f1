/*
 * handshake.c - everything the mq backend does before data flows: the
 * kernel limits, the queue names, the hellos, creating a name or
 * reclaiming a dead server's (flock liveness, below), the client's
 * attach, the server's attach on its first call, and a client's removal
 * of the pair of a server that died before attaching. The data path and
 * ipc_fd are in data.c; the contract mapping is described in mq.c.
 *
 * Liveness of a server is an flock(LOCK_EX) held on its receive queue
 * (name.c2s) from creation until its client attached. The rules that make
 * the names safe without any other lock:
 * - c2s is only created with O_EXCL, and its creator must then win the
 *   flock: a reclaimer that opened and locked it first owns it, and the
 *   creator gives up (-EADDRINUSE) without removing anything;
 * - s2c is created and removed only by whoever holds the flock of the
 *   queue currently named c2s, and always before c2s is removed, so an
 *   s2c found by the holder is stale;
 * - a reclaimer that won the flock checks that the name still names the
 *   queue it locked before it removes anything.
 * The abstract name lock (lib/posix/sock.c) only serialises this user's
 * servers; when another user squats it the rules above still hold.
 */
#include "mqb.h"
#include "posix/fdio.h"
#include "posix/sock.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MQB_VERSION 1
#define MQB_MSGSIZE_MAX_FILE "/proc/sys/fs/mqueue/msgsize_max"
#define MQB_MSG_MAX_FILE "/proc/sys/fs/mqueue/msg_max"

static const struct timespec mqb_zero = { 0, 0 };

int ipc__mqb_qopen(const char *name, int flags, unsigned mode, struct mq_attr *attr)
{
	if (ipc__fd_fault())
		return -EMFILE;
	mqd_t q;
	do
		q = (flags & O_CREAT) ? mq_open(name, flags, (mode_t)mode, attr) : mq_open(name, flags);
	while (q == MQB_NOQ && errno == EINTR);
	return q == MQB_NOQ ? -errno : (int)q;
}

void ipc__mqb_qclose(mqd_t *q)
{
	if (*q != MQB_NOQ) {
		mq_close(*q);
		*q = MQB_NOQ;
	}
}

/* ---- limits and names ---- */

static int mqb_read_limit(const char *file, size_t *out)
{
	char buf[32];
	int fd = ipc__open(file, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	ssize_t n;
	do
		n = read(fd, buf, sizeof buf - 1);
	while (n < 0 && errno == EINTR);
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

int ipc__mqb_limit(size_t *out)
{
	return mqb_read_limit(MQB_MSGSIZE_MAX_FILE, out);
}

int ipc__mqb_attr(ipc_chan *c, struct mq_attr *attr)
{
	size_t msgsize_max, msg_max;
	int r = mqb_read_limit(MQB_MSGSIZE_MAX_FILE, &msgsize_max);
	if (r == 0)
		r = mqb_read_limit(MQB_MSG_MAX_FILE, &msg_max);
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
	attr->mq_msgsize = (long)(c->max_msg < MQB_HELLO_LEN ? MQB_HELLO_LEN : c->max_msg);
	return 0;
}

int ipc__mqb_names(struct mqb_chan *m, const char *name)
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

/* ---- hellos and pids ---- */

/* hello: "IPCK", u8 version, u8 role ('S' or 'C'), u16 0, u32 pid,
 * u32 max_msg (host byte order: both ends are on this machine). */
static void mqb_hello_make(unsigned char *h, char role, size_t max_msg)
{
	uint32_t pid = (uint32_t)getpid();
	uint32_t mx = max_msg > UINT32_MAX ? UINT32_MAX : (uint32_t)max_msg;
	memcpy(h, "IPCK", 4);
	h[4] = MQB_VERSION;
	h[5] = (unsigned char)role;
	h[6] = h[7] = 0;
	memcpy(h + 8, &pid, 4);
	memcpy(h + 12, &mx, 4);
}

static int mqb_hello_parse(const unsigned char *h, ssize_t n, unsigned prio, char role,
			   pid_t *pid, size_t *max_msg)
{
	uint32_t p, mx;
	if (prio != MQB_PRIO_HELLO || n != MQB_HELLO_LEN || memcmp(h, "IPCK", 4) != 0 ||
	    h[4] != MQB_VERSION || h[5] != (unsigned char)role || h[6] || h[7])
		return -EPROTO;
	memcpy(&p, h + 8, 4);
	memcpy(&mx, h + 12, 4);
	if (p == 0 || p > INT32_MAX || mx == 0)
		return -EPROTO;
	*pid = (pid_t)p;
	*max_msg = mx;
	return 0;
}

/* A pidfd on a live process; -ESRCH when it is dead (or exited and not
 * yet reaped), another -errno (-EMFILE...) when none could be made. */
static int mqb_pidfd(pid_t pid)
{
	if (ipc__fd_fault())
		return -EMFILE;
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return -errno;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 0) > 0) {
		close(fd);
		return -ESRCH;
	}
	return fd;
}

/* 1 when descriptors a and b are the same queue, 0 when not, -errno. */
static int mqb_same_queue(int a, int b)
{
	struct stat sa, sb;
	if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
		return -errno;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* 1 when name names the queue open as fd, 0 when not (or no longer
 * exists), -errno when it cannot be told. */
static int mqb_names_queue(const char *name, int fd)
{
	int q = ipc__mqb_qopen(name, O_WRONLY, 0, NULL);
	if (q < 0)
		return q == -ENOENT ? 0 : q;
	int r = mqb_same_queue(q, fd);
	close(q);
	return r;
}

/* ---- server ---- */

/* c2s exists: remove the pair if its server is dead. 0 when removed (or
 * gone meanwhile: create again), -EADDRINUSE while a live server holds it. */
static int mqb_reclaim(struct mqb_chan *m)
{
	int old = ipc__mqb_qopen(m->cname, O_WRONLY, 0, NULL);
	if (old < 0)
		return old == -ENOENT ? 0 : old == -EACCES ? -EADDRINUSE : old;
	int r;
	if (flock(old, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EADDRINUSE : -errno;
	} else if ((r = mqb_names_queue(m->cname, old)) == 1) {
		/* stale, and ours to remove: s2c first */
		mq_unlink(m->sname);
		mq_unlink(m->cname);
		r = 0;
	}
	close(old);
	return r;
}

/* Create c2s (the server's receive queue) and win its flock. */
static int mqb_claim(ipc_chan *c, struct mqb_chan *m, struct mq_attr *attr)
{
	for (int tries = 0; tries < 3; tries++) {
		int q = ipc__mqb_qopen(m->cname, O_RDONLY | O_CREAT | O_EXCL, c->cfg.mode, attr);
		if (q >= 0) {
			m->rq = q;
			/* A reclaimer that locked it first owns it now. (On any
			 * other error the queue is left, unlocked: stale for the
			 * next server.) */
			if (flock(q, LOCK_EX | LOCK_NB) < 0)
				return errno == EWOULDBLOCK ? -EADDRINUSE : -errno;
			m->made_c2s = true;
			return 0;
		}
		if (q != -EEXIST)
			return q;
		int r = mqb_reclaim(m);
		if (r < 0)
			return r;
	}
	return -EADDRINUSE;
}

/* Create s2c; one found is stale (we hold the flock of c2s). */
static int mqb_make_s2c(ipc_chan *c, struct mqb_chan *m, struct mq_attr *attr)
{
	for (int tries = 0;; tries++) {
		int q = ipc__mqb_qopen(m->sname, O_WRONLY | O_CREAT | O_EXCL, c->cfg.mode, attr);
		if (q >= 0) {
			m->sq = q;
			m->made_s2c = true;
			return 0;
		}
		if (q != -EEXIST)
			return q;
		if (tries == 1)
			return -EADDRINUSE; /* (someone else's, and not removable) */
		mq_unlink(m->sname);
	}
}

int ipc__mqb_server_open(ipc_chan *c)
{
	struct mqb_chan *m = ipc__mqb(c);
	struct mq_attr attr;
	int lock = -1;
	int r = ipc__mqb_attr(c, &attr);
	if (r < 0)
		return r;
	m->server = true;
	m->msgsize = (size_t)attr.mq_msgsize;
	if (!(m->stash = ipc__malloc(m->msgsize)))
		return -ENOMEM;
	if ((r = ipc__name_lock("mq", m->name, &lock)) < 0)
		return r;
	if ((r = mqb_claim(c, m, &attr)) == 0 && (r = mqb_make_s2c(c, m, &attr)) == 0) {
		unsigned char h[MQB_HELLO_LEN];
		mqb_hello_make(h, 'S', c->max_msg);
		if (mq_timedsend(m->sq, (const char *)h, sizeof h, MQB_PRIO_HELLO, &mqb_zero) < 0)
			r = -errno;
	}
	ipc__close_fd(&lock); /* from now on the flock says we are alive */
	return r;
}

void ipc__mqb_unmake(struct mqb_chan *m)
{
	/* s2c first: it lives only inside the hold of c2s's flock */
	if (m->made_s2c)
		mq_unlink(m->sname);
	if (m->made_c2s) {
		mq_unlink(m->cname);
		flock(m->rq, LOCK_UN);
	}
	m->made_s2c = m->made_c2s = false;
}

/* Take the client's hello from c2s (priority 2: before any data), waiting
 * within dl. A first message that is no hello breaks the channel. */
static int mqb_take_hello(ipc_chan *c, struct mqb_chan *m, ipc_deadline *dl)
{
	struct mqb_wait w = { .ts = { 0, 0 } };
	unsigned prio;
	ssize_t n;
	for (;;) {
		n = mq_timedreceive(m->rq, (char *)m->stash, m->msgsize, &prio, &w.ts);
		if (n >= 0)
			break;
		int e = errno;
		if (e == EINTR)
			continue;
		if (e != ETIMEDOUT && e != EAGAIN)
			return -e;
		int r = ipc__mqb_wait(m, m->rq, POLLIN, dl, &w);
		if (r < 0)
			return r;
	}
	pid_t pid;
	size_t peer_max;
	int r = mqb_hello_parse(m->stash, n, prio, 'C', &pid, &peer_max);
	if (r < 0) {
		atomic_store(&m->err, r);
	} else {
		m->peer_pid = pid;
		atomic_store(&c->peer_max, peer_max);
	}
	atomic_store(&m->hello_in, true);
	return 0;
}

int ipc__mqb_attach(ipc_chan *c, ipc_deadline *dl)
{
	struct mqb_chan *m = ipc__mqb(c);
	int r = ipc__mutex_lock_dl(&m->alock, dl);
	if (r < 0)
		return r;
	if (atomic_load(&m->ready))
		goto out;
	if (!atomic_load(&m->hello_in)) {
		pthread_mutex_lock(&m->rlock);
		r = mqb_take_hello(c, m, dl);
		pthread_mutex_unlock(&m->rlock);
		if (r < 0)
			goto out;
	}
	if (!atomic_load(&m->err) && m->life < 0) {
		int fd = mqb_pidfd(m->peer_pid);
		if (fd == -ESRCH) {
			/* The client died (or closed) after its hello: sends give
			 * -EPIPE; receives drain what it sent, then -EPIPE. */
			atomic_store(&m->gone, true);
		} else if (fd < 0) {
			/* Out of descriptors: the peer is not dead. The hello is
			 * kept, a later call finishes the attach. */
			r = fd;
			goto out;
		} else {
			ipc__mqb_ev_watch(m, fd);
		}
	}
	/* a channel is a pair: release the endpoint */
	if (ipc__owned(c->owner))
		ipc__mqb_unmake(m);
	atomic_store_explicit(&m->ready, true, memory_order_release);
	r = 0;
out:
	pthread_mutex_unlock(&m->alock);
	ipc__mqb_ev_update(m);
	return r;
}

/* ---- client ---- */

/* Put the server's hello back after a failure that is ours, not the
 * server's (out of descriptors): the next try, or another client, takes it. */
static void mqb_hello_back(struct mqb_chan *m, ssize_t n)
{
	(void)mq_timedsend(m->rq, (const char *)m->stash, (size_t)n, MQB_PRIO_HELLO, &mqb_zero);
}

/* One attempt to attach to a server (ipc__retry's try): 0, -ENOENT or
 * -ECONNREFUSED to retry, or the error to give up with. */
static int mqb_client_try(void *arg)
{
	ipc_chan *c = arg;
	struct mqb_chan *m = ipc__mqb(c);
	ipc__mqb_qclose(&m->rq);
	ipc__mqb_qclose(&m->sq);
	/* O_RDWR: a hello taken by a try that fails on our side goes back
	 * (both queues have one mode: writing c2s needs the same bits) */
	int q = ipc__mqb_qopen(m->sname, O_RDWR, 0, NULL);
	if (q < 0)
		return q;
	m->rq = q;
	if ((q = ipc__mqb_qopen(m->cname, O_WRONLY, 0, NULL)) < 0)
		return q;
	m->sq = q;
	struct mq_attr attr;
	if (mq_getattr(m->rq, &attr) < 0)
		return -errno;
	if ((size_t)attr.mq_msgsize != m->msgsize || !m->stash) {
		free(m->stash);
		m->msgsize = (size_t)attr.mq_msgsize;
		if (!(m->stash = ipc__malloc(m->msgsize)))
			return -ENOMEM;
	}
	unsigned prio;
	ssize_t n = mq_timedreceive(m->rq, (char *)m->stash, m->msgsize, &prio, &mqb_zero);
	if (n < 0) /* no hello: another client has it, or the server is half-made */
		return errno == ETIMEDOUT || errno == EAGAIN ? -ECONNREFUSED : -errno;
	pid_t pid;
	size_t server_max;
	int r = mqb_hello_parse(m->stash, n, prio, 'S', &pid, &server_max);
	if (r < 0)
		return r;
	int fd = mqb_pidfd(pid);
	if (fd == -ESRCH) /* a pair left by a dead server: the next server reclaims it */
		return -ECONNREFUSED;
	if (fd < 0) {
		mqb_hello_back(m, n);
		return fd;
	}
	unsigned char h[MQB_HELLO_LEN];
	mqb_hello_make(h, 'C', c->max_msg);
	if (mq_timedsend(m->sq, (const char *)h, sizeof h, MQB_PRIO_HELLO, &mqb_zero) < 0) {
		r = -errno;
		close(fd);
		mqb_hello_back(m, n);
		return r == -ETIMEDOUT || r == -EAGAIN ? -ECONNREFUSED : r;
	}
	m->life = fd;
	atomic_store(&c->peer_max, server_max);
	return 0;
}

int ipc__mqb_client_open(ipc_chan *c)
{
	struct mq_attr attr;
	int r = ipc__mqb_attr(c, &attr); /* refuse what no queue could carry */
	if (r < 0)
		return r;
	return ipc__retry(c->cfg.connect_timeout_ms, mqb_client_try, c);
}

void ipc__mqb_remove_stale(struct mqb_chan *m)
{
	/* Still the pair we attached to, and its flock free: the server died
	 * before attaching (an attached one removed the names already). */
	if (m->sq == MQB_NOQ)
		return;
	int q = ipc__mqb_qopen(m->cname, O_WRONLY, 0, NULL);
	if (q < 0)
		return;
	if (mqb_same_queue(q, m->sq) == 1 && flock(q, LOCK_EX | LOCK_NB) == 0 &&
	    mqb_names_queue(m->cname, q) == 1) {
		mq_unlink(m->sname);
		mq_unlink(m->cname);
	}
	close(q);
}
