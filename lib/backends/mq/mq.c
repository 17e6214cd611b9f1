/*
 * mq.c - POSIX message queue backend: what it is, how it maps the
 * contract, and the channel's life (init, open, pair, close, vtable).
 * handshake.c holds the names, hellos, reclaim and attach; data.c the
 * send and receive paths and ipc_fd; mqb.h the state they share.
 *
 * Mechanism: two queues per channel, "/name.s2c" (server to client) and
 * "/name.c2s", each message one whole queue message. Data travels with
 * priority 1, the handshake hellos with priority 2 (read first), the
 * end-of-stream marker of a clean close with priority 0 (read after all
 * data). URL: mq:///name (no further '/'); the name plus ".s2c" must fit
 * NAME_MAX (-ENAMETOOLONG).
 *
 * Limits: read at every open from /proc/sys/fs/mqueue/msgsize_max and
 * msg_max (a failed read is its errno, e.g. -EMFILE). max_msg defaults to
 * msgsize_max, capacity (the queue depth in messages) to msg_max; asking
 * for more gives -EMSGSIZE, also for root. Each queue costs about depth *
 * max_msg bytes of RLIMIT_MSGQUEUE: mq_open's -EMFILE says so.
 *
 * Contract mapping:
 * - Ownership of a name: the server holds flock(LOCK_EX) on its receive
 *   queue from creation until its client attached; a pair whose flock can
 *   be taken belongs to a dead server and is removed and created again, a
 *   locked one gives -EADDRINUSE (the rules in handshake.c). The abstract
 *   name lock "ipckit-mq:<name>" only serialises this user's servers while
 *   they create or reclaim, so another user squatting it changes nothing.
 * - Handshake: the server puts a hello holding its pid in s2c at open; a
 *   client takes it (a pair whose pid is dead is stale: it retries), opens
 *   a pidfd on the server and sends its own hello with its pid in c2s.
 *   The server's first send/recv takes that hello, opens a pidfd on the
 *   client, removes both names and drops its flock: nothing stays in
 *   /dev/mqueue once both are attached. Each side's c->peer_max is set
 *   from the other's hello (the client at open, the server at attach), so
 *   every send is checked against it (-EMSGSIZE). Out of descriptors for
 *   the pidfd is an error of that call, never a dead peer: the client puts
 *   the server's hello back, the server keeps the client's and a later
 *   call finishes the attach. A client closing removes the pair of a
 *   server that died before attaching.
 * - Peer death: the peer's pidfd is readable once it exited. Blocking
 *   calls wait in mq_timedsend/mq_timedreceive in slices of MQB_SLICE_NS
 *   and look at the pidfd between slices (-EPIPE within a slice), because
 *   a blocked mq_receive is the fastest wake-up there is (measured in
 *   docs/backends/mq.md). With wait=block the calls poll() the queue and
 *   the pidfd instead. ipc_pair has no pids: its ends are tied by a
 *   socketpair that reports the other end's close or death the same way.
 * - Clean close sends the end-of-stream marker; the survivor returns the
 *   queued messages, then -EPIPE. If the queue stays full for
 *   MQB_CLOSE_WAIT_MS the marker is dropped and the peer learns of the
 *   close when this process exits. A sender whose peer closed sees -EPIPE
 *   once its queue is full and the marker is the next message to it.
 * - A receive buffer smaller than the queue's message size cannot be
 *   given to mq_receive: such a receive goes through a one-message stash
 *   (one copy); a message larger than cap stays there (-EMSGSIZE) until a
 *   large enough receive. One sending and one receiving thread: see data.c.
 * - ipc_fd: an epoll set of the receive queue, the peer's pidfd (or the
 *   pair's socket) and an eventfd signalled while recv would return at
 *   once without the queue (stash, end of stream, error, attach pending).
 * - Named channels belong to the process that opened them: a copy closed
 *   in a forked child sends no marker and removes no name.
 */
#include "mqb.h"
#include "posix/fdio.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static void mqb_init(ipc_chan *c)
{
	struct mqb_chan *m = ipc__mqb(c);
	m->rq = m->sq = MQB_NOQ;
	m->life = m->epfd = m->evfd = -1;
	m->spin_ns = ipc__spin_ns(&c->cfg, IPC_KERNEL_SPIN_NS);
	atomic_init(&m->stash_len, -1);
	pthread_mutex_init(&m->alock, NULL);
	pthread_mutex_init(&m->rlock, NULL);
	pthread_mutex_init(&m->evlock, NULL);
}

static int mqb_open(ipc_chan *c, const ipc_url *u, int flags)
{
	struct mqb_chan *m = ipc__mqb(c);
	int r = ipc__mqb_names(m, u->path);
	if (r < 0)
		return r;
	/* first: nothing can fail after the peer has seen us */
	if (!(c->url = ipc__url_format("mq", "%s", u->path)))
		return -ENOMEM;
	r = flags == IPC_SERVER ? ipc__mqb_server_open(c) : ipc__mqb_client_open(c);
	if (r < 0)
		return r;
	m->opened = true;
	atomic_store(&m->ready, flags != IPC_SERVER);
	return 0;
}

/* One direction of a pair: a queue under a name that exists only for the
 * time it takes to open it twice. */
static int mqb_pair_queue(const char *name, mqd_t *w, mqd_t *r, unsigned mode,
			  struct mq_attr *attr)
{
	int q = ipc__mqb_qopen(name, O_WRONLY | O_CREAT | O_EXCL, mode, attr);
	if (q == -EEXIST) { /* left by a crashed process that had our pid */
		mq_unlink(name);
		q = ipc__mqb_qopen(name, O_WRONLY | O_CREAT | O_EXCL, mode, attr);
	}
	if (q < 0)
		return q;
	*w = q;
	q = ipc__mqb_qopen(name, O_RDONLY, 0, NULL);
	mq_unlink(name);
	if (q < 0)
		return q;
	*r = q;
	return 0;
}

static int mqb_pair(ipc_chan *a, ipc_chan *b)
{
	struct mqb_chan *ma = ipc__mqb(a), *mb = ipc__mqb(b);
	struct mq_attr attr;
	char n1[64], n2[64];
	int sv[2];
	ma->paired = mb->paired = true;
	int r = ipc__mqb_attr(a, &attr);
	if (r < 0)
		return r;
	ma->msgsize = mb->msgsize = (size_t)attr.mq_msgsize;
	if (!(ma->stash = ipc__malloc(ma->msgsize)) || !(mb->stash = ipc__malloc(mb->msgsize)))
		return -ENOMEM;
	if (ipc__fd_fault())
		return -EMFILE;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	ma->life = sv[0];
	mb->life = sv[1];
	snprintf(n1, sizeof n1, "/ipckit-pair.%d.%p.a", (int)getpid(), (void *)a);
	snprintf(n2, sizeof n2, "/ipckit-pair.%d.%p.b", (int)getpid(), (void *)a);
	if ((r = mqb_pair_queue(n1, &ma->sq, &mb->rq, a->cfg.mode, &attr)) < 0 ||
	    (r = mqb_pair_queue(n2, &mb->sq, &ma->rq, a->cfg.mode, &attr)) < 0)
		return r;
	if (!(a->url = ipc__url_format("mq", "pair")) || !(b->url = ipc__url_format("mq", "pair")))
		return -ENOMEM;
	atomic_store(&a->peer_max, a->max_msg);
	atomic_store(&b->peer_max, b->max_msg);
	ma->opened = mb->opened = true;
	atomic_store(&ma->ready, true);
	atomic_store(&mb->ready, true);
	return 0;
}

/* The end-of-stream marker, after all data; waits up to wait_ms for room. */
static void mqb_send_eos(struct mqb_chan *m, int wait_ms)
{
	struct timespec ts = { 0, 0 };
	bool waited = false;
	for (int n = 0; n < 100; n++) {
		if (mq_timedsend(m->sq, "", 0, MQB_PRIO_EOS, &ts) == 0)
			return;
		if (errno == EINTR)
			continue;
		if ((errno != ETIMEDOUT && errno != EAGAIN) || waited || !wait_ms)
			return;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		waited = true;
	}
}

static void mqb_close(ipc_chan *c)
{
	struct mqb_chan *m = ipc__mqb(c);
	if (ipc__owned(c->owner)) {
		bool ready = atomic_load(&m->ready);
		if (m->opened && !m->paired && !atomic_load(&m->gone) && !atomic_load(&m->eof))
			/* A server nobody attached to does not wait: its hello
			 * may fill the queue. */
			mqb_send_eos(m, ready ? MQB_CLOSE_WAIT_MS : 0);
		if (m->server)
			ipc__mqb_unmake(m); /* (nothing left once attached) */
		else if (m->opened && !m->paired)
			ipc__mqb_remove_stale(m);
	}
	ipc__mqb_qclose(&m->rq);
	ipc__mqb_qclose(&m->sq);
	ipc__close_fd(&m->life);
	ipc__close_fd(&m->epfd);
	ipc__close_fd(&m->evfd);
	free(m->stash);
	m->stash = NULL;
	pthread_mutex_destroy(&m->alock);
	pthread_mutex_destroy(&m->rlock);
	pthread_mutex_destroy(&m->evlock);
}

const struct ipc_backend ipc__backend_mq = {
	.scheme = "mq",
	.addr_kind = IPC_ADDR_MQNAME,
	.caps = IPC_CAP_RELIABLE | IPC_CAP_UNRELATED | IPC_CAP_PAIR | IPC_CAP_PROCESS,
	.chan_size = sizeof(struct mqb_chan),
	.max_msg_limit = 0,
	.limit = ipc__mqb_limit,
	.init = mqb_init,
	.open = mqb_open,
	.pair = mqb_pair,
	.send = ipc__mqb_send,
	.recv = ipc__mqb_recv,
	.fd = ipc__mqb_fd,
	.close = mqb_close,
};
