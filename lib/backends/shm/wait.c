/*
 * wait.c - waiting for data or space, and noticing that the peer went
 * (shm.h has the folder's map).
 *
 * Holds: the asymmetric-fence set-up (membarrier registration, what a
 * ring's rwait says), the sticky protocol error, the socket look for peer
 * death, and ipc__shm_wait: the spin phase, then the sleep on the doorbell pipe
 * and the socket, within the caller's deadline, in every wait mode.
 * Leaves to others: the wake-ups a writer or reader sends after an index
 * update (inline in shm.h), the ipc_fd level that a wait in fd mode keeps
 * (fd.c), the rings themselves (ring.c).
 */
#include "backends/shm/shm.h"
#include "posix/fdio.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>

/* Online CPUs: adaptive waiting never spins on a single-CPU machine. (Not
 * this thread's affinity: a process pinned to one CPU may well have its
 * peer on another, and spinning then is what pays.) */
int ipc__shm_cpus(void)
{
	return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

/*
 * Asymmetric fences. After each index update a writer must not miss a
 * reader that is going to sleep: classically both sides issue a full fence
 * (Dekker), which costs the writer a drained store buffer per message, half
 * of a small message's cost across two CPUs. Towards a reader in adaptive
 * mode (which sleeps only after spinning) the fence moves to the reader:
 * about to sleep, it stores rsleep and calls membarrier(GLOBAL_EXPEDITED),
 * which runs a full barrier on every CPU that runs a thread of a process
 * registered for it; a writer whose process is registered then only needs
 * a compiler barrier between its head store and its rsleep load. A writer
 * whose process is not registered (membarrier missing, or refused) keeps
 * the fence, so correctness never depends on the peer's registration.
 * Every process that uses shm registers once; a forked child is registered
 * again by an atfork handler (the kernel keeps the state across fork only
 * in some versions).
 */
atomic_int ipc__shm_mb;       /* 1 registered, -1 unavailable, 0 not tried */
static pthread_once_t shm_mb_once = PTHREAD_ONCE_INIT;


static bool shm_mb_register(void)
{
	long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	return q >= 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
	       (q & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) &&
	       syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
}

static void shm_mb_child(void)
{
	if (atomic_load(&ipc__shm_mb) == 1 && !shm_mb_register())
		atomic_store(&ipc__shm_mb, -1);
}

static void shm_mb_init(void)
{
	atomic_store(&ipc__shm_mb, shm_mb_register() ? 1 : -1);
	if (atomic_load(&ipc__shm_mb) == 1 && pthread_atfork(NULL, NULL, shm_mb_child) != 0)
		atomic_store(&ipc__shm_mb, -1);
}

bool ipc__shm_mb_ready(void)
{
	pthread_once(&shm_mb_once, shm_mb_init);
	return atomic_load(&ipc__shm_mb) == 1;
}

/* rwait of a ring whose reader waits in mode wait (see shm_ring.h). */
uint32_t ipc__shm_rwait_for(int wait)
{
	if (wait == IPC_WAIT_SPIN)
		return IPC_RWAIT_NEVER;
	if (wait == IPC_WAIT_ADAPTIVE && ipc__shm_cpus() > 1 && ipc__shm_mb_ready())
		return IPC_RWAIT_MEMBARRIER;
	return IPC_RWAIT_FENCE;
}

/* Reader about to sleep on a ring marked IPC_RWAIT_MEMBARRIER (after its
 * rsleep store and fence): make the writers' earlier head stores visible.
 * False if the kernel refused, in which case the caller must not sleep
 * for long. */
bool ipc__shm_reader_barrier(void)
{
	return syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0;
}

/* A corrupt ring or welcome: sticky -EPROTO; the peer sees us hang up,
 * ipc_fd wakes. */
int ipc__shm_fail(struct shm *s)
{
	int expect = 0;
	if (atomic_compare_exchange_strong(&s->err, &expect, -EPROTO)) {
		shutdown(s->sock, SHUT_RDWR);  /* (ipc_fd: the hang-up makes it readable) */
	}
	return -EPROTO;
}

/* The socket part of shm_peer_gone (shm.h): a system call. */
bool ipc__shm_sock_gone(struct shm *s)
{
	struct pollfd p = { s->sock, POLLRDHUP, 0 };
	if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
		atomic_store(&s->gone, true);
		return true;
	}
	return false;
}

static int shm_sleep(struct shm *s, uint64_t space, ipc_deadline *dl, bool fdm);

/*
 * Wait until the receive ring has data (space == 0) or the send ring has
 * space bytes free. Returns 0 (the caller looks again), -EPIPE when the
 * peer is gone, a timeout error, -EPROTO.
 */
int ipc__shm_wait(struct shm *s, uint64_t space, ipc_deadline *dl, int mode)
{
	bool data = space == 0;
	struct ipc_ring *ring = data ? &s->rx : &s->tx;
	int64_t r;

	if (ipc__dl_nowait(dl))
		return shm_peer_gone(s, true) ? -EPIPE : -EAGAIN;

	/* spin phase */
	if (mode != IPC_WAIT_BLOCK && s->spin_ns != 0) {
		int64_t start = 0, checked = 0;
		for (unsigned i = 1;; i++) {
			if (data ? ipc__ring_nonempty(ring) : (r = ipc__ring_space(ring, space)) < 0 ||
								 (uint64_t)r >= space)
				return 0;
			ipc__cpu_relax();
			if (i % 64)
				continue;
			if (atomic_load_explicit(&s->err, memory_order_relaxed))
				return -EPROTO;
			int64_t now = ipc__now_ns();
			if (!start)  /* (the clock is read only once we really wait) */
				start = checked = now;
			bool sock = now - checked >= SHM_PEER_CHECK_NS;
			if (sock)
				checked = now;
			if (shm_peer_gone(s, sock))
				return -EPIPE;
			if (!ipc__dl_forever(dl) && now >= ipc__dl_at(dl))
				return -ETIMEDOUT;
			if (mode != IPC_WAIT_SPIN && s->spin_ns > 0 && now - start >= s->spin_ns)
				break;
		}
	}

	bool fdm = data && atomic_load_explicit(&s->fd_mode, memory_order_acquire);
	if (!data || fdm)
		return shm_sleep(s, space, dl, fdm);
	/* A receiver about to sleep without fd mode is counted under the lock
	 * that ipc_fd's first call holds: that call then knows whether bytes
	 * in the doorbell may be somebody's wake-up (fd.c, fd_level_first),
	 * and a receiver that comes after it sees fd mode. */
	pthread_mutex_lock(&s->lock);
	fdm = atomic_load_explicit(&s->fd_mode, memory_order_acquire);
	if (!fdm)
		s->rx_sleepers++;
	pthread_mutex_unlock(&s->lock);
	int w = shm_sleep(s, space, dl, fdm);
	if (!fdm) {
		pthread_mutex_lock(&s->lock);
		s->rx_sleepers--;
		pthread_mutex_unlock(&s->lock);
	}
	return w;
}

/* The sleep phase of ipc__shm_wait: on the doorbell pipe and the socket,
 * within dl; fdm: ipc_fd's level is kept (the doorbell is drained here). */
static int shm_sleep(struct shm *s, uint64_t space, ipc_deadline *dl, bool fdm)
{
	bool data = space == 0;
	struct ipc_ring *ring = data ? &s->rx : &s->tx;
	_Atomic uint32_t *flag = data ? &ring->ctl->rsleep : &ring->ctl->wsleep;
	int64_t r;
	bool recheck = !data;  /* writer: look at the tail again soon once */
	for (;;) {
		if (fdm) {
			ipc__shm_fd_drain(s);
			s->drained = true;
		}
		atomic_store(flag, 1);
		atomic_thread_fence(memory_order_seq_cst);
		/* a writer towards us may skip its fence: make up for it */
		bool nap = data &&
			   atomic_load_explicit(&ring->ctl->rwait, memory_order_relaxed) ==
				   IPC_RWAIT_MEMBARRIER &&
			   !ipc__shm_reader_barrier();
		if (data ? ipc__ring_nonempty(ring) : (r = ipc__ring_space(ring, space)) < 0 ||
							(uint64_t)r >= space) {
			if (!fdm)
				atomic_store_explicit(flag, 0, memory_order_relaxed);
			return 0;
		}
		if (shm_peer_gone(s, false))
			return -EPIPE;
		if (atomic_load(&s->err))
			return -EPROTO;
		/* (the peer may send doorbells at will: they must not keep us
		 * past dl, so the deadline is checked here, not only by poll) */
		if (ipc__expired(dl)) {
			if (!fdm)
				atomic_store_explicit(flag, 0, memory_order_relaxed);
			return ipc__timeout_err(dl);
		}
		if (data && !fdm && ipc__dl_forever(dl) && !nap) {
			/* one system call: a doorbell, or EOF when the peer died */
			char b[256];
			ssize_t k = read(s->efd_rx, b, sizeof(b));
			if (k > 0 || (k < 0 && errno == EINTR))
				continue;
			if (k == 0) {
				atomic_store(&s->gone, true);
				return -EPIPE;
			}
			/* EAGAIN (a peer made our end nonblocking) or worse: poll */
		}
		struct pollfd p[2] = {
			{ s->sock, data ? POLLRDHUP : POLLIN | POLLRDHUP, 0 },
			{ s->efd_rx, POLLIN, 0 },
		};
		/* Look again soon instead of sleeping until woken when a wake-up
		 * may be missed: membarrier was refused (nap); or, for a writer
		 * waiting for space, once, because the reader checks wsleep
		 * without a fence on most receives (shm_wake_writer) and may
		 * have missed our store while its tail store was in flight: 1 ms
		 * later that store is visible. */
		ipc_deadline soon;
		ipc_deadline *wdl = dl;
		if (nap || recheck) {
			soon = ipc__dl_slice(dl, 1);
			wdl = &soon;
			recheck = false;
		}
		int n = ipc__wait_fds(p, data ? 2 : 1, wdl);
		if (n < 0 && wdl != dl && (n == -ETIMEDOUT || n == -EAGAIN) && !ipc__expired(dl))
			continue;
		if (n < 0) {
			atomic_store_explicit(flag, 0, memory_order_relaxed);
			return n;
		}
		if ((p[0].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) ||
		    (data && (p[1].revents & (POLLHUP | POLLERR | POLLNVAL)) &&
		     !(p[1].revents & POLLIN))) {
			atomic_store(&s->gone, true);
			return -EPIPE;
		}
		if (!data && (p[0].revents & POLLIN)) {
			char buf[64];
			ssize_t k = recv(s->sock, buf, sizeof(buf), MSG_DONTWAIT);
			if (k == 0) {
				atomic_store(&s->gone, true);
				return -EPIPE;
			}
		}
		if (data && !fdm && (p[1].revents & POLLIN)) {
			char b[256];
			/* (not a plain read: a hostile server holding our read
			 * end could take the doorbell between poll and read) */
			(void)!ipc__pipe_read_nowait(s->efd_rx, b, sizeof(b));
		}
	}
}
