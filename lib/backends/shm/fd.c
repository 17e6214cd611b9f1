/*
 * fd.c - ipc_fd and ipc_listener_fd (shm.h has the folder's map).
 *
 * Holds: the epoll sets and the private eventfds behind them; before
 * attach, a server's set watches its endpoint (the listening socket, the
 * pending connections, an eventfd signalled while a complete hello waits:
 * accq_watch, accq_level), a client's its socket; after attach, the
 * doorbell pipe, the socket's hang-up and the eventfd that keeps the level
 * (readable exactly while a message waits, from the first call on).
 * Leaves to others: which connections are pending (rendezvous.c), the
 * waits that drain the doorbell in fd mode (wait.c).
 */
#include "backends/shm/shm.h"
#include "posix/fdio.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <linux/membarrier.h>

void ipc__shm_ep_del(int epfd, int fd)
{
	if (epfd >= 0)
		epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
}

int ipc__shm_ep_add(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	return epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

/* Keep evfd readable exactly while a connection holds a complete hello
 * (its socket, whose bytes we took, no longer says so). */
void ipc__shm_accq_level(struct shm_accq *q)
{
	if (q->evfd < 0)
		return;
	bool want = false;
	for (int i = 0; i < q->n && !want; i++)
		want = q->conn[i].done;
	ipc__ev_level(q->evfd, &q->ev_set, want);
}

/* The owner's pollable set (ipc_fd, listener_fd) is made: watch the
 * listening socket, the connections still saying hello and evfd. */
int ipc__shm_accq_watch(struct shm_accq *q, int epfd, int evfd)
{
	int r = ipc__shm_ep_add(epfd, evfd);
	if (r == 0 && q->lfd >= 0)
		r = ipc__shm_ep_add(epfd, q->lfd);
	for (int i = 0; r == 0 && i < q->n; i++)
		if (!q->conn[i].done)
			r = ipc__shm_ep_add(epfd, q->conn[i].fd);
	if (r < 0)
		return r; /* (the caller closes epfd: nothing stays registered) */
	q->epfd = epfd;
	q->evfd = evfd;
	q->ev_set = false;
	ipc__shm_accq_level(q);
	return 0;
}

/* Empty our doorbell pipe without blocking (the read end blocks): true
 * when there was something to take. */
static bool pipe_drain(int fd)
{
	char b[256];
	return ipc__pipe_read_nowait(fd, b, sizeof(b)) > 0;
}

/* fd mode: both things that make ipc_fd readable for data */
void ipc__shm_fd_drain(struct shm *s)
{
	uint64_t v;
	pipe_drain(s->efd_rx);
	(void)!read(s->selfd, &v, sizeof(v));
}

static void fd_signal(struct shm *s)
{
	uint64_t one = 1;
	(void)!write(s->selfd, &one, sizeof(one));  /* saturated: readable anyway */
}

/* fd mode: before returning from a receive, make ipc_fd readable exactly
 * while data waits (the peer signals only when rsleep is set; we signal
 * ourselves through selfd when we took the peer's signal but data
 * remains). */
void ipc__shm_fd_level(struct shm *s)
{
	if (s->fd_sloppy) {
		fd_signal(s);
		return;
	}
	if (!ipc__ring_nonempty(&s->rx) && !atomic_load(&s->err)) {
		ipc__shm_fd_drain(s);
		atomic_store(&s->rx.ctl->rsleep, 1);
		atomic_thread_fence(memory_order_seq_cst);
		if (!ipc__ring_nonempty(&s->rx))
			goto out;
	}
	/* data waits: someone must have written the counter since we last
	 * drained it; if the writer did not (rsleep still ours), we do */
	if (s->drained || atomic_exchange(&s->rx.ctl->rsleep, 0))
		fd_signal(s);
out:
	s->drained = false;
}

/*
 * The level at ipc_fd's first call (under s->lock), which may come from any
 * thread while another one receives: only shared state is read (head and
 * tail, not the receiver's private position). Readable at once for
 * messages already waiting: nobody signalled them (the peer rings only a
 * reader that said it sleeps).
 *
 * Not readable for doorbell bytes that nobody needs: a receiver that slept
 * without fd mode may have found its data before the writer's byte arrived
 * (both cleared rsleep), leaving the byte behind. When no such receiver is
 * asleep now (rx_sleepers; the next one takes s->lock and sees fd mode),
 * the bytes are nobody's wake-up: drain them once the ring is seen empty
 * with rsleep set. A byte drained then may also have been a fresh wake-up:
 * look again (a few times: a peer may ring at will). A receiver asleep now
 * keeps its bytes, and may leave the descriptor readable once for nothing;
 * its receive corrects the level on return.
 */
static void fd_level_first(struct shm *s)
{
	struct ipc_ring_ctl *ctl = s->rx.ctl;
	bool quiet = s->rx_sleepers == 0;
	for (int tries = 0; !s->fd_sloppy && atomic_load(&ctl->head) == atomic_load(&ctl->tail);
	     tries++) {
		atomic_store(&ctl->rsleep, 1);
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load(&ctl->head) != atomic_load(&ctl->tail)) {
			if (!atomic_exchange(&ctl->rsleep, 0))
				return; /* the writer rang the doorbell */
			break;
		}
		if (!quiet || tries == 4 || !pipe_drain(s->efd_rx))
			return; /* empty, and no byte nobody needs */
	}
	fd_signal(s);
}

static void ep_set(int epfd, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno == EEXIST)
		epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

/* Put the right descriptors in the epoll set for the current state
 * (called with s->lock held). */
int ipc__shm_fd_update(struct shm *s)
{
	if (s->epfd < 0)
		return 0;
	if (!atomic_load(&s->ready)) {
		/* not attached: readable while attaching would make progress
		 * (server: a client in the backlog, hello bytes, a complete
		 * hello not served yet; client: the welcome) */
		if (s->role == IPC_SERVER)
			return ipc__shm_accq_watch(s->acc, s->epfd, s->selfd);
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = s->sock };
		return epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sock, &ev) < 0 ? -errno : 0;
	}
	/* (a server's listener left the set when it was closed) */
	ep_set(s->epfd, s->sock, EPOLLRDHUP);
	ep_set(s->epfd, s->efd_rx, EPOLLIN);
	ep_set(s->epfd, s->selfd, EPOLLIN);
	uint32_t rw = atomic_load(&s->rx.ctl->rwait);
	if (rw != IPC_RWAIT_FENCE) {
		/* A spin-mode reader (from now on the peer must signal), or an
		 * adaptive one (the level is re-armed after every receive: a
		 * membarrier each time would cost more than the peer's fence).
		 * The peer looks at rwait right after each index update without
		 * a fence, so a global barrier orders its pending updates before
		 * our look at the ring (asymmetric Dekker). Without membarrier
		 * the level is not kept: the descriptor stays readable. */
		atomic_store(&s->rx.ctl->rwait, IPC_RWAIT_FENCE);
		if ((rw != IPC_RWAIT_MEMBARRIER || !ipc__shm_reader_barrier()) &&
		    syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) < 0)
			s->fd_sloppy = true;
	}
	fd_level_first(s);
	/* the receiving thread keeps the level from now on; (release: it
	 * sees selfd and fd_sloppy once it sees fd_mode) */
	atomic_store_explicit(&s->fd_mode, true, memory_order_release);
	return 0;
}

/* A pollable set and the eventfd we signal in it ourselves: both or
 * neither (-errno). */
static int fd_make(int *ep, int *ev)
{
	int e = ipc__eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int p = e < 0 ? e : ipc__epoll();
	if (p < 0) {
		if (e >= 0)
			close(e);
		return p;
	}
	*ep = p;
	*ev = e;
	return 0;
}

int ipc__shm_fd(ipc_chan *c)
{
	struct shm *s = S(c);
	int r = 0;
	pthread_mutex_lock(&s->lock);
	if (s->epfd < 0 && (r = fd_make(&s->epfd, &s->selfd)) == 0 &&
	    (r = ipc__shm_fd_update(s)) < 0) {
		ipc__close_fd(&s->epfd);
		ipc__close_fd(&s->selfd);
	}
	pthread_mutex_unlock(&s->lock);
	return r < 0 ? r : s->epfd;
}

/* Readable while accept would not block: a client in the backlog, hello
 * bytes (or EOF) on a pending connection, or (evfd) a complete hello
 * taken from its socket but not served yet. */
int ipc__shm_listener_fd(ipc_listener *l)
{
	struct shm_listener *sl = L(l);
	int r = 0;
	pthread_mutex_lock(&sl->lock);
	if (sl->epfd < 0 && (r = fd_make(&sl->epfd, &sl->evfd)) == 0 &&
	    (r = ipc__shm_accq_watch(&sl->q, sl->epfd, sl->evfd)) < 0) {
		ipc__close_fd(&sl->epfd);
		ipc__close_fd(&sl->evfd);
	}
	pthread_mutex_unlock(&sl->lock);
	return r < 0 ? r : sl->epfd;
}
