/*
 * shm.c - shared-memory backend: two SPSC byte rings in a memfd; the
 * vtable and the lifecycle (shm.h has the folder's map).
 *
 * URL: shm:///abs/path or shm://@name, the Unix socket where the two ends
 * meet (abstract names accept only peers of our uid).
 *
 * Rendezvous (rendezvous.c): the server listens at open. The client
 * connects at open and writes a hello (its max_msg and capacity); it
 * returns at once. The server's first send/recv (a listener's accept)
 * keeps the connections it takes from the backlog pending until their
 * hello is complete (each has a second), never waiting on one of them,
 * and serves the first complete one: a sealed memfd holding a header page
 * and two rings (sized from the larger capacity of the two ends, default
 * 1 MiB each, rounded up to a power of two) and two pipes; the memfd and
 * the client's pipe ends go with SCM_RIGHTS after a welcome naming the
 * sizes; a server channel then closes the listener and removes the path.
 * The client checks what it got and maps it in its first operation.
 * Nothing lives in /dev/shm or on disk afterwards, so a crash leaves
 * nothing behind.
 *
 * Each pipe is the data doorbell of one ring (wait.c): the writer puts a
 * byte in it only when the ring's reader announced that it sleeps, and
 * only the reader reads it. A pipe rather than an eventfd because a
 * blocked read() also returns when the peer dies (EOF). The socket stays
 * open: its hang-up is the peer-death signal for everything else, and it
 * carries one-byte "space freed" doorbells to a writer that sleeps on a
 * full ring, so a sending and a receiving thread never consume each
 * other's wake-ups.
 *
 * Limits: max_msg up to 1 GiB; a message whose record fits in half the
 * ring is one record, a larger one passes in fragments of at most a
 * quarter ring; when a send's deadline cuts one, lib/tail.c finishes it
 * (data.c). Zero-copy is in place for records that fit the ring.
 *
 * This file holds: init (a zeroed channel made closable), open, pair,
 * close (which undoes whatever a failed open, pair or accept set up),
 * the listener's listen, accept and close, and the vtable.
 */
#include "backends/shm/shm.h"
#include "posix/fdio.h"
#include "posix/sock.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* The init op: a zeroed channel made closable (see Lifecycle in
 * backend.h): after a failed open, pair or accept the core calls
 * shm_close, which releases whatever was set up. */
static void shm_init(ipc_chan *c)
{
	struct shm *s = S(c);
	s->sock = s->efd_rx = s->efd_tx = s->selfd = s->epfd = -1;
	for (int i = 0; i < SHM_NFDS; i++)
		s->hs_fds[i] = -1;
}

static int shm_prepare(ipc_chan *c, int role)
{
	struct shm *s = S(c);
	s->role = role;
	s->side = role == IPC_SERVER ? 0 : 1;
	int r = ipc__shm_ring_size_for(c->cfg.capacity, &s->capacity);
	if (r < 0)
		return r;
	if (c->cfg.wait == IPC_WAIT_SPIN)
		s->spin_ns = -1;
	else
		s->spin_ns = ipc__shm_cpus() > 1 ? SHM_SPIN_NS : 0;
	(void)ipc__shm_mb_ready(); /* register this process before it writes */
	if (pthread_mutex_init(&s->lock, NULL) != 0)
		return -ENOMEM;
	s->lock_init = true;
	return ipc__tail_init(&s->tail, c, ipc__shm_tail_write, ipc__shm_tail_abort);
}

/* (failures are undone by shm_close, called by the core) */
static int shm_open_chan(ipc_chan *c, const ipc_url *u, int flags)
{
	struct shm *s = S(c);
	int r = shm_prepare(c, flags);
	if (r < 0)
		return r;
	if (flags == IPC_SERVER) {
		if (!(s->acc = ipc__malloc(sizeof(*s->acc))))
			return -ENOMEM;
		ipc__shm_accq_init(s->acc);
		return ipc__shm_accq_listen(s->acc, u, c->cfg.mode, 8);
	}
	r = ipc__unix_connect(u->path, u->abstract, c->cfg.connect_timeout_ms);
	if (r < 0)
		return r;
	s->sock = r;
	if (u->abstract && (r = ipc__unix_peer_same_uid(s->sock)) < 0)
		return r;
	return ipc__shm_hello_send(c);
}

/* (failures are undone by shm_close on both ends, called by the core) */
static int shm_pair(ipc_chan *a, ipc_chan *b)
{
	struct shm *sa = S(a), *sb = S(b);
	int sv[2], r;
	if ((r = shm_prepare(a, IPC_SERVER)) < 0 || (r = shm_prepare(b, IPC_CLIENT)) < 0)
		return r;
	if (ipc__fd_fault())
		return -EMFILE;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* the same rendezvous as over a named socket, through the buffers */
	sb->sock = sv[1];
	struct shm_conn k = { .fd = sv[0] };
	if ((r = ipc__shm_hello_send(b)) < 0 || (r = ipc__shm_conn_read(&k) > 0 ? 0 : -EPROTO) < 0 ||
	    (r = ipc__shm_serve(a, &k)) < 0) {
		close(sv[0]);
		return r;
	}
	atomic_store(&sa->ready, true);
	if ((r = ipc__shm_join(b, IPC_NOWAIT)) < 0)
		return r;
	atomic_store(&sb->ready, true);
	return 0;
}

static void shm_close(ipc_chan *c)
{
	struct shm *s = S(c);
	/* the rest of a cut message goes first (up to a second; not from a
	 * forked child's copy) */
	ipc__tail_fini(&s->tail, SHM_CLOSE_LINGER_MS);
	/* the peer drains what we published, then sees the hang-up */
	if (atomic_load(&s->ready) && s->map.base) {
		atomic_fetch_add_explicit(&s->map.page->closed[s->side], 1, memory_order_release);
	}
	if (s->acc) {
		/* (only the creator removes the name) */
		ipc__shm_accq_close(s->acc, ipc__owned(c->owner), false);
		free(s->acc);
		s->acc = NULL;
	}
	ipc__close_fd(&s->sock);
	ipc__close_fd(&s->efd_rx);
	ipc__close_fd(&s->efd_tx);
	ipc__close_fd(&s->selfd);
	ipc__close_fd(&s->epfd);
	ipc__shm_hs_drop(s);
	if (s->map.base)
		munmap(s->map.base, s->map.len);
	s->map.base = NULL;
	free(s->resv_buf);
	free(s->part);
	s->resv_buf = s->part = NULL;
	if (s->lock_init)
		pthread_mutex_destroy(&s->lock);
	s->lock_init = false;
}

static int shm_listen(ipc_listener *l, const ipc_url *u)
{
	struct shm_listener *sl = L(l);
	uint64_t cap;
	int r = ipc__shm_ring_size_for(l->cfg.capacity, &cap);
	if (r < 0)
		return r;
	sl->epfd = sl->evfd = -1;
	ipc__shm_accq_init(&sl->q);
	if (pthread_mutex_init(&sl->lock, NULL) != 0)
		return -ENOMEM;
	/* (the core frees l after a failed listen without closing it) */
	if ((r = ipc__shm_accq_listen(&sl->q, u, l->cfg.mode, 64)) < 0) {
		pthread_mutex_destroy(&sl->lock);
		return r;
	}
	sl->lock_init = true;
	return 0;
}

/* A client whose hello is incomplete when dl passes stays pending in the
 * listener for the next call (accq_next). */
static int shm_accept(ipc_listener *l, ipc_chan *c, ipc_deadline *dl)
{
	struct shm_listener *sl = L(l);
	int r = shm_prepare(c, IPC_SERVER);
	if (r < 0 || (r = ipc__mutex_lock_dl(&sl->lock, dl)) < 0)
		return r;
	r = ipc__shm_accept_from(c, &sl->q, dl);
	pthread_mutex_unlock(&sl->lock);
	if (r == 0)
		atomic_store(&S(c)->ready, true);
	return r;
}

static void shm_listener_close(ipc_listener *l)
{
	struct shm_listener *sl = L(l);
	bool owned = ipc__owned(l->owner);
	/* (a forked child's copy closes descriptors, nothing more) */
	ipc__shm_accq_close(&sl->q, owned, false);
	ipc__close_fd(&sl->epfd);
	ipc__close_fd(&sl->evfd);
	if (sl->lock_init && owned)
		pthread_mutex_destroy(&sl->lock);
	sl->lock_init = false;
}

const struct ipc_backend ipc__backend_shm = {
	.scheme = "shm",
	.addr_kind = IPC_ADDR_PATH,
	.caps = IPC_CAP_RELIABLE | IPC_CAP_ZERO_COPY | IPC_CAP_LISTEN | IPC_CAP_UNRELATED |
		IPC_CAP_PAIR | IPC_CAP_ABSTRACT | IPC_CAP_PROCESS,
	.chan_size = sizeof(struct shm),
	.listener_size = sizeof(struct shm_listener),
	.max_msg_limit = IPC_SHM_MAX_MSG,
	.init = shm_init,
	.open = shm_open_chan,
	.pair = shm_pair,
	.send = ipc__shm_send,
	.sendv = ipc__shm_sendv,
	.recv = ipc__shm_recv,
	.recvv = ipc__shm_recvv,
	.fd = ipc__shm_fd,
	.send_reserve = ipc__shm_send_reserve,
	.send_commit = ipc__shm_send_commit,
	.recv_peek = ipc__shm_recv_peek,
	.recv_release = ipc__shm_recv_release,
	.close = shm_close,
	.listen = shm_listen,
	.accept = shm_accept,
	.listener_fd = ipc__shm_listener_fd,
	.listener_close = shm_listener_close,
};
