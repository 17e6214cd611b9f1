/*
 * shm.c - shared-memory backend: two SPSC byte rings in a memfd.
 *
 * URL: shm:///abs/path or shm://@name, the Unix socket where the two ends
 * meet (abstract names accept only peers of our uid).
 *
 * Rendezvous: the server listens at open. The client connects at open and
 * writes a hello (its max_msg and capacity); it returns at once. The
 * server's first send/recv (a listener's accept) keeps the connections it
 * takes from the backlog pending until their hello is complete (each has
 * a second), never waiting on one of them; it serves the first complete
 * one: a sealed memfd holding a header page and two rings (sized from the
 * larger capacity of the two ends, default 1 MiB each, rounded up to a
 * power of two), two pipes, and the memfd and the client's pipe ends go
 * with SCM_RIGHTS after a welcome naming the sizes; a server channel then
 * closes the listener and removes the path. The client checks what it got
 * and maps it in its first operation. Nothing lives in /dev/shm or on disk
 * afterwards, so a crash leaves nothing behind.
 *
 * Each pipe is the "data" doorbell of one ring: the writer puts a byte in
 * it only when the ring's reader announced that it sleeps (rsleep), and
 * only the reader reads it. A pipe rather than an eventfd because a
 * blocked read() also returns when the peer dies (EOF): a reader blocked
 * forever costs one system call per wake-up, as a raw eventfd ping-pong
 * does. The socket stays open: its hang-up is the peer-death signal for
 * everything else, and it carries one-byte "space freed" doorbells to a
 * writer that sleeps on a full ring. A sending and a receiving thread
 * therefore never consume each other's wake-ups.
 *
 * Limits: max_msg up to 1 GiB; a message whose record fits in half the
 * ring is one record, a larger one passes in fragments of at most a
 * quarter ring; when a send's deadline cuts one, lib/tail.c finishes it.
 * Zero-copy is in place for records that fit the ring.
 * docs/backends/shm.md describes the bytes and the rules.
 */
#include "backend.h"
#include "backends/shm_ring.h"
#include "posix/fdio.h"
#include "posix/sock.h"
#include "tail.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SHM_DEFAULT_CAPACITY ((uint64_t)1 << 20)
#define SHM_SPIN_NS 50000          /* adaptive: spin this long before sleeping */
#define SHM_PEER_CHECK_NS 2000000  /* spinning: look at the socket this often */
#define SHM_CLOSE_LINGER_MS 1000   /* close: time given to the rest of a cut message */
#define SHM_HELLO_MS 1000          /* server: time a connected client has to say hello */
#define SHM_PENDING_MAX 64         /* server: connections awaiting their hello, per endpoint */

/* Rendezvous messages on the socket (native byte order: same machine). */
struct shm_hello {
	char magic[8];     /* "IPCKSHMc" */
	uint32_t version;  /* 1 */
	uint32_t size;     /* sizeof(struct shm_hello) */
	uint64_t max_msg;  /* the client's */
	uint64_t capacity; /* the client's ring size (rounded), or 0 */
	uint32_t wait;     /* the client's IPC_WAIT_* */
	uint32_t zero;
};
struct shm_welcome {
	char magic[8];     /* "IPCKSHMs" */
	uint32_t version;  /* 1 */
	uint32_t size;     /* sizeof(struct shm_welcome) */
	uint64_t max_msg;  /* the server's */
	uint64_t hdr_size;
	uint64_t ring_size[2];
};
#define SHM_NFDS 3 /* memfd, read end of ring 0's pipe, write end of ring 1's */

struct shm_map {
	unsigned char *base;
	size_t len;
	struct ipc_shm_page *page;
};

/* A connection accepted by a server whose hello is not served yet. */
struct shm_conn {
	int fd;
	bool done;              /* hello[] holds its whole hello, checked */
	size_t got;
	int64_t until;          /* CLOCK_MONOTONIC ns: its hello is due then */
	unsigned char hello[sizeof(struct shm_hello)];
};

/* A server endpoint: the listening socket and the connections taken from
 * its backlog whose hello has not (all) arrived. A server channel has one
 * until it attaches, a listener for its life. */
struct shm_accq {
	int lfd;
	bool abstract;          /* an abstract name: peers of our uid only */
	struct ipc_file file;   /* the socket file (removed by its creator) */
	int epfd, evfd;         /* the owner's pollable set and eventfd, once
	                           asked for (borrowed), or -1 */
	bool ev_set;            /* evfd signalled: a conn is done */
	int n;
	struct shm_conn conn[SHM_PENDING_MAX];
};

struct shm {
	int role;               /* IPC_SERVER or IPC_CLIENT */
	int side;               /* 0 server (sends on ring 0), 1 client */
	struct shm_accq *acc;   /* server channel, until attached */
	int sock;               /* connected socket */
	int efd_rx;             /* our data doorbell: a pipe's read end (blocking) */
	int efd_tx;             /* the peer's: a pipe's write end (nonblocking) */
	int selfd;              /* ipc_fd: an eventfd we signal ourselves */
	int epfd;               /* ipc_fd, -1 until asked for */
	uint64_t capacity;      /* our ring size request (rounded) */
	size_t peer_max;
	int spin_ns;            /* 0: never spin; -1: spin only */
	pthread_mutex_t lock;   /* serialises attach and ipc_fd set-up */
	bool lock_init;
	atomic_bool ready;
	atomic_int err;         /* sticky -EPROTO */
	atomic_bool gone;       /* the peer closed or died */
	_Atomic uint32_t hint_seen; /* the peer's close count we found stale */
	bool fd_sloppy;         /* ipc_fd without signals: always readable */
	atomic_bool fd_mode;    /* ipc_fd was asked for: keep its level */
	struct shm_map map;
	/* client: the welcome so far */
	unsigned char hs[sizeof(struct shm_welcome)];
	size_t hs_got;
	int hs_fds[SHM_NFDS];
	int hs_nfds;

	/* sending thread */
	_Alignas(64) struct ipc_ring tx;
	int64_t tx_checked;     /* last socket check by the send path */
	unsigned tx_n;          /* sends since then */
	bool resv_inplace;
	size_t resv_len;
	ipc_deadline resv_dl;   /* the reserve's deadline, for commit */
	unsigned char *resv_buf;
	size_t resv_cap;
	struct ipc_tail tail;   /* the rest of a fragmented message cut by its deadline */

	/* receiving thread */
	_Alignas(64) struct ipc_ring rx;
	struct ipc_rx_seq seq;
	uint64_t wake_pos;      /* rx.pos at the last sure wake-up check */
	uint64_t wake_batch;    /* bytes consumed between sure checks */
	unsigned char *part;    /* fragments assembled here when they cannot go to the caller */
	size_t part_cap;
	bool part_active;       /* seq.in_msg and its bytes so far are in part */
	bool part_done;         /* part holds a whole message not yet returned */
	int peek;               /* 0, PEEK_INPLACE or PEEK_PART */
	const void *peek_ptr;
	size_t peek_len;
	struct ipc_rec peek_rec;
	bool drained;           /* fd mode: we consumed the doorbell this call */
};
enum { PEEK_INPLACE = 1, PEEK_PART = 2 };

struct shm_listener {
	pthread_mutex_t lock;   /* one accept (or listener_fd set-up) at a time */
	bool lock_init;
	int epfd, evfd;         /* listener_fd and its eventfd, -1 until asked for */
	struct shm_accq q;
};

static struct shm *S(ipc_chan *c)
{
	return (struct shm *)(void *)c->priv;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static int64_t coarse_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Online CPUs: adaptive waiting never spins on a single-CPU machine. (Not
 * this thread's affinity: a process pinned to one CPU may well have its
 * peer on another, and spinning then is what pays.) */
static int shm_cpus(void)
{
	return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

static uint64_t page_size(void)
{
	long p = sysconf(_SC_PAGESIZE);
	return p > 0 ? (uint64_t)p : 4096;
}

/* Ring size for a capacity request: a power of two, at least a page. */
static int ring_size_for(uint64_t cap, uint64_t *out)
{
	uint64_t min = page_size() > IPC_SHM_MIN_RING ? page_size() : IPC_SHM_MIN_RING;
	if (cap == 0)
		cap = SHM_DEFAULT_CAPACITY;
	if (cap > IPC_SHM_MAX_RING)
		return -EMSGSIZE;
	uint64_t s = min;
	while (s < cap)
		s <<= 1;
	*out = s;
	return 0;
}

static bool ring_size_ok(uint64_t s)
{
	return s >= IPC_SHM_MIN_RING && s >= page_size() && s <= IPC_SHM_MAX_RING &&
	       (s & (s - 1)) == 0;
}

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

/* ---- mapping ---- */

/* Map the header page and each ring twice, back to back. */
static int shm_map(struct shm_map *m, int memfd, uint64_t hdr, const uint64_t size[2])
{
	size_t len = hdr + 2 * size[0] + 2 * size[1];
	unsigned char *base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return -errno;
	struct { size_t at, len; off_t off; } part[5] = {
		{ 0, hdr, 0 },
		{ hdr, size[0], (off_t)hdr },
		{ hdr + size[0], size[0], (off_t)hdr },
		{ hdr + 2 * size[0], size[1], (off_t)(hdr + size[0]) },
		{ hdr + 2 * size[0] + size[1], size[1], (off_t)(hdr + size[0]) },
	};
	for (int i = 0; i < 5; i++) {
		/* populate up front: no page faults on the hot path */
		void *p = mmap(base + part[i].at, part[i].len, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_FIXED | MAP_POPULATE, memfd, part[i].off);
		if (p == MAP_FAILED) {
			int r = -errno;
			munmap(base, len);
			return r;
		}
	}
	m->base = base;
	m->len = len;
	m->page = (struct ipc_shm_page *)(void *)base;
	return 0;
}

/* Point the rings and flags of this end at the mapping. */
static void shm_bind(ipc_chan *c, uint64_t hdr, const uint64_t size[2], size_t peer_max)
{
	struct shm *s = S(c);
	struct ipc_shm_page *pg = s->map.page;
	unsigned char *d0 = s->map.base + hdr, *d1 = d0 + 2 * size[0];
	int tx = s->side, rx = 1 - s->side; /* server sends on ring 0 */
	ipc__ring_init(&s->tx, &pg->ctl[tx], tx ? d1 : d0, size[tx], 0);
	ipc__ring_init(&s->rx, &pg->ctl[rx], rx ? d1 : d0, size[rx], c->max_msg);
	s->peer_max = peer_max < c->max_msg ? peer_max : c->max_msg;
	s->wake_pos = s->rx.pos;
	s->wake_batch = size[rx] / 8;
	s->tx_checked = coarse_ns();
}

/* ---- socket helpers ---- */

/* Client: read the welcome into s->hs (resuming at s->hs_got) within dl,
 * collecting up to SHM_NFDS descriptors. 0, -EPIPE on EOF, a timeout
 * error, -EPROTO (unexpected descriptors) or -errno. */
static int welcome_read(struct shm *s, ipc_deadline *dl)
{
	while (s->hs_got < sizeof(struct shm_welcome)) {
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int) * SHM_NFDS)];
		} cm;
		struct iovec iov = { s->hs + s->hs_got, sizeof(struct shm_welcome) - s->hs_got };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
		/* (this read creates the descriptors: the choke point first,
		 * so that an injected EMFILE consumes nothing) */
		if (s->hs_nfds < SHM_NFDS && ipc__fd_fault())
			return -EMFILE;
		ssize_t k = recvmsg(s->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECONNRESET)
				return -EPIPE;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			int r = ipc__wait_fd(s->sock, POLLIN, dl);
			if (r < 0)
				return r;
			continue;
		}
		int bad = 0;
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
			if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
				continue;
			size_t nf = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < nf; i++) {
				int f;
				memcpy(&f, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
				if (s->hs_nfds < SHM_NFDS)
					s->hs_fds[s->hs_nfds++] = f;
				else {
					close(f);
					bad = 1;
				}
			}
		}
		if (bad || (mh.msg_flags & MSG_CTRUNC))
			return -EPROTO;
		if (k == 0)
			return -EPIPE;
		s->hs_got += (size_t)k;
	}
	return 0;
}

/* Server: a hello from a client of ours? */
static bool hello_ok(const struct shm_hello *h)
{
	return memcmp(h->magic, "IPCKSHMc", 8) == 0 && h->version == IPC_SHM_VERSION &&
	       h->size == sizeof(*h) && h->max_msg != 0 && h->max_msg <= IPC_SHM_MAX_MSG &&
	       h->wait <= 2 && (!h->capacity || ring_size_ok(h->capacity));
}

/* Server: read what has arrived of k's hello, never waiting. 1 once it is
 * complete and valid, 0 while bytes are missing, -1 when the connection
 * must go (EOF, an error, descriptors, bytes that are no hello). */
static int conn_read(struct shm_conn *k)
{
	while (k->got < sizeof(k->hello)) {
		/* no control buffer: descriptors a client passes are discarded
		 * by the kernel, and MSG_CTRUNC says it tried */
		struct iovec iov = { k->hello + k->got, sizeof(k->hello) - k->got };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = recvmsg(k->fd, &mh, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		if (n == 0 || (mh.msg_flags & MSG_CTRUNC))
			return -1;
		k->got += (size_t)n;
		/* garbage goes as soon as its first bytes show */
		if (memcmp(k->hello, "IPCKSHMc", k->got < 8 ? k->got : 8) != 0)
			return -1;
	}
	struct shm_hello h;
	memcpy(&h, k->hello, sizeof(h));
	return hello_ok(&h) ? 1 : -1;
}

/* ---- server side of the rendezvous ---- */

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
static atomic_int shm_mb;       /* 1 registered, -1 unavailable, 0 not tried */
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
	if (atomic_load(&shm_mb) == 1 && !shm_mb_register())
		atomic_store(&shm_mb, -1);
}

static void shm_mb_init(void)
{
	atomic_store(&shm_mb, shm_mb_register() ? 1 : -1);
	if (atomic_load(&shm_mb) == 1 && pthread_atfork(NULL, NULL, shm_mb_child) != 0)
		atomic_store(&shm_mb, -1);
}

static bool shm_mb_ready(void)
{
	pthread_once(&shm_mb_once, shm_mb_init);
	return atomic_load(&shm_mb) == 1;
}

/* rwait of a ring whose reader waits in mode wait (see shm_ring.h). */
static uint32_t shm_rwait_for(int wait)
{
	if (wait == IPC_WAIT_SPIN)
		return IPC_RWAIT_NEVER;
	if (wait == IPC_WAIT_ADAPTIVE && shm_cpus() > 1 && shm_mb_ready())
		return IPC_RWAIT_MEMBARRIER;
	return IPC_RWAIT_FENCE;
}

/* Reader about to sleep on a ring marked IPC_RWAIT_MEMBARRIER (after its
 * rsleep store and fence): make the writers' earlier head stores visible.
 * False if the kernel refused, in which case the caller must not sleep
 * for long. */
static bool shm_reader_barrier(void)
{
	return syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0;
}

/* conn sent the complete, checked hello in k: build the mapping and
 * answer. On success the channel owns conn; on failure it is the caller's
 * (-ENOMEM, -EMFILE...: our trouble; -EPIPE...: the client's). */
static int shm_serve(ipc_chan *c, const struct shm_conn *k)
{
	struct shm *s = S(c);
	int conn = k->fd;
	struct shm_hello h;
	memcpy(&h, k->hello, sizeof(h));
	uint64_t rs = s->capacity > h.capacity ? s->capacity : h.capacity;
	uint64_t size[2] = { rs, rs };
	uint64_t hdr = page_size() > 4096 ? page_size() : 4096;
	int r, memfd = -1, p0[2] = { -1, -1 }, p1[2] = { -1, -1 };

	if (ipc__fd_fault())
		return -EMFILE;
	memfd = memfd_create("ipckit-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (memfd < 0)
		return -errno;
	/* sealed: neither end can shrink it under the other (SIGBUS) */
	if (ftruncate(memfd, (off_t)(hdr + size[0] + size[1])) < 0 ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		r = -errno;
		goto fail;
	}
	/* p0: ring 0's doorbell (we write, the client reads); p1: ring 1's */
	if ((r = ipc__pipe2(p0, O_CLOEXEC)) < 0 || (r = ipc__pipe2(p1, O_CLOEXEC)) < 0)
		goto fail;
	ipc__set_nonblock(p0[1], true);
	ipc__set_nonblock(p1[1], true);
	if ((r = shm_map(&s->map, memfd, hdr, size)) < 0)
		goto fail;
	struct ipc_shm_page *pg = s->map.page;
	memcpy(pg->magic, IPC_SHM_MAGIC, 8);
	pg->version = IPC_SHM_VERSION;
	pg->hdr_size = (uint32_t)hdr;
	pg->ring_size[0] = size[0];
	pg->ring_size[1] = size[1];
	pg->max_msg[0] = c->max_msg;
	pg->max_msg[1] = h.max_msg;
	/* who may sleep, and how: ring 0 is written by us, read by the client */
	bool we_sleep = c->cfg.wait != IPC_WAIT_SPIN, they_sleep = h.wait != IPC_WAIT_SPIN;
	atomic_store(&pg->ctl[0].wwait, we_sleep);
	atomic_store(&pg->ctl[0].rwait, shm_rwait_for(h.wait));
	atomic_store(&pg->ctl[1].wwait, they_sleep);
	atomic_store(&pg->ctl[1].rwait, shm_rwait_for(c->cfg.wait));

	struct shm_welcome w = { .magic = "IPCKSHMs", .version = IPC_SHM_VERSION,
				 .size = sizeof(w), .max_msg = c->max_msg, .hdr_size = hdr,
				 .ring_size = { size[0], size[1] } };
	int fds[SHM_NFDS] = { memfd, p0[0], p1[1] };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(fds))];
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct iovec iov = { &w, sizeof(w) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
	ch->cmsg_level = SOL_SOCKET;
	ch->cmsg_type = SCM_RIGHTS;
	ch->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(ch), fds, sizeof(fds));
	ssize_t n;
	do
		n = sendmsg(conn, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	/* a fresh socket's buffer always takes these few bytes at once */
	if (n != (ssize_t)sizeof(w)) {
		r = n < 0 ? (errno == EPIPE || errno == ECONNRESET ? -EPIPE : -errno) : -EPROTO;
		munmap(s->map.base, s->map.len);
		s->map.base = NULL;
		goto fail;
	}
	close(memfd);
	close(p0[0]);
	close(p1[1]);
	s->sock = conn;
	s->efd_rx = p1[0];
	s->efd_tx = p0[1];
	shm_bind(c, hdr, size, h.max_msg);
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		ipc__close_fd(&p0[i]);
		ipc__close_fd(&p1[i]);
	}
	ipc__close_fd(&memfd);
	return r;
}

/* ---- server endpoint: the listening socket and pending connections ---- */

static void accq_init(struct shm_accq *q)
{
	q->lfd = q->epfd = q->evfd = -1;
	q->n = 0;
}

static int accq_listen(struct shm_accq *q, const ipc_url *u, unsigned mode, int backlog)
{
	int r = ipc__unix_listen(u->path, u->abstract, mode, backlog, &q->file);
	if (r < 0)
		return r;
	q->lfd = r;
	q->abstract = u->abstract;
	return 0;
}

static void ep_del(int epfd, int fd)
{
	if (epfd >= 0)
		epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
}

static int ep_add(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	return epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

/* Forget connection i: out of the owner's set, closed unless keep (the
 * channel that served it took it). The last one takes its slot. */
static void accq_remove(struct shm_accq *q, int i, bool keep)
{
	ep_del(q->epfd, q->conn[i].fd);
	if (!keep)
		close(q->conn[i].fd);
	q->conn[i] = q->conn[--q->n];
}

/*
 * Close the endpoint: the pending connections, the listening socket, and
 * the name when remove_name (the creating process: ipc__owned). With
 * unwatch, everything leaves the owner's epoll set first: the set lives
 * on (a server channel's ipc_fd after attach), and a copy of a descriptor
 * inherited by a child would keep it in there. (A forked child's close
 * must not unwatch: the set is shared with the parent.)
 */
static void accq_close(struct shm_accq *q, bool remove_name, bool unwatch)
{
	if (!unwatch)
		q->epfd = -1;
	while (q->n)
		accq_remove(q, q->n - 1, false);
	if (q->lfd >= 0) {
		ep_del(q->epfd, q->lfd);
		ipc__close_fd(&q->lfd);
		if (remove_name)
			ipc__file_remove(&q->file);
	}
	q->epfd = q->evfd = -1;
}

/* Keep evfd readable exactly while a connection holds a complete hello
 * (its socket, whose bytes we took, no longer says so). */
static void accq_level(struct shm_accq *q)
{
	if (q->evfd < 0)
		return;
	bool want = false;
	for (int i = 0; i < q->n && !want; i++)
		want = q->conn[i].done;
	if (want == q->ev_set)
		return;
	uint64_t v = 1;
	if (want) {
		if (write(q->evfd, &v, sizeof(v)) == sizeof(v))
			q->ev_set = true;
	} else if (read(q->evfd, &v, sizeof(v)) == sizeof(v) || errno == EAGAIN) {
		q->ev_set = false;
	}
}

/* The owner's pollable set (ipc_fd, listener_fd) is made: watch the
 * listening socket, the connections still saying hello and evfd. */
static int accq_watch(struct shm_accq *q, int epfd, int evfd)
{
	int r = ep_add(epfd, evfd);
	if (r == 0 && q->lfd >= 0)
		r = ep_add(epfd, q->lfd);
	for (int i = 0; r == 0 && i < q->n; i++)
		if (!q->conn[i].done)
			r = ep_add(epfd, q->conn[i].fd);
	if (r < 0)
		return r; /* (the caller closes epfd: nothing stays registered) */
	q->epfd = epfd;
	q->evfd = evfd;
	q->ev_set = false;
	accq_level(q);
	return 0;
}

/* A connection is done or dropped; *now is read once per pass. */
static void conn_step(struct shm_accq *q, int i, int64_t *now, int64_t *soonest)
{
	struct shm_conn *k = &q->conn[i];
	int h = conn_read(k);
	if (h > 0) {
		k->done = true;
		ep_del(q->epfd, k->fd); /* (nothing more to read) */
		return;
	}
	if (h == 0) {
		if (!*now)
			*now = ipc__now_ns();
		if (*now < k->until) {
			if (k->until < *soonest)
				*soonest = k->until;
			return;
		}
	}
	accq_remove(q, i, false); /* not a client of ours, or silent too long */
}

/* Take what waits in the backlog (up to SHM_PENDING_MAX pending) and read
 * each one's hello as far as it came. 0, or -errno of our own (-EMFILE...). */
static int accq_pull(struct shm_accq *q, int64_t *now, int64_t *soonest)
{
	while (q->n < SHM_PENDING_MAX) {
		int fd = ipc__accept4(q->lfd, SOCK_CLOEXEC);
		if (fd == -EINTR || fd == -ECONNABORTED)
			continue;
		if (fd == -EAGAIN || fd == -EWOULDBLOCK)
			return 0;
		if (fd < 0)
			return fd;
		if (q->abstract && ipc__unix_peer_same_uid(fd) < 0) {
			close(fd); /* another user on our abstract name */
			continue;
		}
		int r = ep_add(q->epfd, fd);
		if (r < 0) {
			close(fd);
			return r;
		}
		if (!*now)
			*now = ipc__now_ns();
		q->conn[q->n++] = (struct shm_conn){ .fd = fd, .until = *now + SHM_HELLO_MS * 1000000LL };
		conn_step(q, q->n - 1, now, soonest);
	}
	return 0;
}

/*
 * Find a connection whose complete hello has arrived, within dl: 0 with
 * *idx, the timeout error, or -errno of our own. Every call first looks
 * without waiting (one poll over the listening socket and the connections
 * still saying hello), then waits for any of them. A connection whose
 * hello is still incomplete when dl passes stays pending for the next
 * call; one that has not completed it SHM_HELLO_MS after it was accepted,
 * or that sends something else, is dropped.
 */
static int accq_next(struct shm_accq *q, ipc_deadline *dl, int *idx)
{
	struct pollfd pfd[1 + SHM_PENDING_MAX];
	ipc_deadline slice, *wait = IPC_NOWAIT;
	for (;;) {
		pfd[0] = (struct pollfd){ q->n < SHM_PENDING_MAX ? q->lfd : -1, POLLIN, 0 };
		for (int i = 0; i < q->n; i++)
			pfd[1 + i] = (struct pollfd){ q->conn[i].done ? -1 : q->conn[i].fd, POLLIN, 0 };
		int r = ipc__wait_fds(pfd, 1 + q->n, wait);
		if (r < 0 && r != -EAGAIN && r != -ETIMEDOUT)
			return r;
		int64_t now = 0, soonest = INT64_MAX;
		/* from the last: a dropped one's slot takes the last, already seen */
		for (int i = q->n - 1; i >= 0; i--)
			if (!q->conn[i].done && pfd[1 + i].revents)
				conn_step(q, i, &now, &soonest);
		int err = pfd[0].revents ? accq_pull(q, &now, &soonest) : 0;
		/* the hello deadlines of the quiet ones */
		for (int i = q->n - 1; i >= 0; i--) {
			if (q->conn[i].done)
				continue;
			if (!now)
				now = ipc__now_ns();
			if (now >= q->conn[i].until)
				accq_remove(q, i, false);
			else if (q->conn[i].until < soonest)
				soonest = q->conn[i].until;
		}
		for (int i = 0; i < q->n; i++) {
			if (q->conn[i].done) {
				*idx = i;
				return 0;
			}
		}
		if (err < 0)
			return err;
		if (ipc__expired(dl))
			return ipc__timeout_err(dl);
		/* wait for bytes, a client, or the next hello deadline */
		wait = dl;
		if (soonest != INT64_MAX) {
			int64_t ms = (soonest - now) / 1000000 + 1;
			slice = ipc__dl_slice(dl, ms > INT32_MAX ? INT32_MAX : (int)ms);
			wait = &slice;
		}
	}
}

/* Accept a client from q and serve it within dl. A client that fails
 * (went away) is dropped and the wait goes on; when the failure is ours
 * (-ENOMEM, -EMFILE, -ENFILE) the client stays pending, done, for the
 * next call. */
static int shm_accept_from(ipc_chan *c, struct shm_accq *q, ipc_deadline *dl)
{
	int i, r;
	for (;;) {
		if ((r = accq_next(q, dl, &i)) < 0)
			break;
		if ((r = shm_serve(c, &q->conn[i])) == 0) {
			accq_remove(q, i, true); /* the channel has it */
			break;
		}
		if (r == -ENOMEM || r == -EMFILE || r == -ENFILE)
			break;
		accq_remove(q, i, false);
	}
	accq_level(q);
	return r;
}

/* ---- client side of the rendezvous ---- */

static void hs_drop_fds(struct shm *s)
{
	for (int i = 0; i < SHM_NFDS; i++)
		ipc__close_fd(&s->hs_fds[i]);
	s->hs_nfds = 0;
}

/* The access mode of fd is want: O_RDONLY, O_WRONLY or O_RDWR. */
static bool fd_mode_is(int fd, int want)
{
	int fl = fcntl(fd, F_GETFL);
	return fl >= 0 && (fl & O_ACCMODE) == want;
}

/*
 * What the server passed must be what the protocol says, or a hostile one
 * could make our accesses fault or our waits spin (a /dev/zero doorbell is
 * always readable): the memfd a regular file opened read-write, exactly as
 * large as announced, sealed against shrinking and not against writes;
 * the doorbells pipes (or FIFOs), ours open for reading, the server's for
 * writing.
 */
static bool welcome_fds_ok(const int fds[SHM_NFDS], uint64_t size)
{
	struct stat st;
	int seals = fcntl(fds[0], F_GET_SEALS);
	int no_write = F_SEAL_WRITE;
#ifdef F_SEAL_FUTURE_WRITE
	no_write |= F_SEAL_FUTURE_WRITE;
#endif
	if (fstat(fds[0], &st) < 0 || !S_ISREG(st.st_mode) || seals < 0 ||
	    !(seals & F_SEAL_SHRINK) || (seals & no_write) || !fd_mode_is(fds[0], O_RDWR) ||
	    (uint64_t)st.st_size != size)
		return false;
	for (int i = 1; i < SHM_NFDS; i++)
		if (fstat(fds[i], &st) < 0 || !S_ISFIFO(st.st_mode) ||
		    !fd_mode_is(fds[i], i == 1 ? O_RDONLY : O_WRONLY))
			return false;
	return true;
}

static int shm_fail(struct shm *s);

/* Client: take the welcome and its descriptors, check them, map. A
 * welcome that breaks the protocol closes the channel for good (-EPROTO,
 * sticky; the server sees us hang up); out of memory for the mapping
 * keeps what arrived for the next call. */
static int shm_join(ipc_chan *c, ipc_deadline *dl)
{
	struct shm *s = S(c);
	int r = welcome_read(s, dl);
	if (r == -ETIMEDOUT || r == -EAGAIN || r == -EMFILE)
		return r;
	if (r < 0)
		goto fail;
	struct shm_welcome w;
	memcpy(&w, s->hs, sizeof(w));
	r = -EPROTO;
	uint64_t pg = page_size();
	if (s->hs_nfds != SHM_NFDS || memcmp(w.magic, "IPCKSHMs", 8) != 0 ||
	    w.version != IPC_SHM_VERSION || w.size != sizeof(w) || w.max_msg == 0 ||
	    w.max_msg > IPC_SHM_MAX_MSG || w.hdr_size < sizeof(struct ipc_shm_page) ||
	    w.hdr_size > (1 << 20) || w.hdr_size % pg || !ring_size_ok(w.ring_size[0]) ||
	    !ring_size_ok(w.ring_size[1]) ||
	    !welcome_fds_ok(s->hs_fds, w.hdr_size + w.ring_size[0] + w.ring_size[1]))
		goto fail;
	if ((r = shm_map(&s->map, s->hs_fds[0], w.hdr_size, w.ring_size)) == -ENOMEM)
		return r;
	if (r < 0) {
		r = -EPROTO; /* (checked above: the server's doing) */
		goto fail;
	}
	ipc__close_fd(&s->hs_fds[0]);
	s->efd_rx = s->hs_fds[1];
	s->efd_tx = s->hs_fds[2];
	s->hs_fds[1] = s->hs_fds[2] = -1;
	s->hs_nfds = 0;
	ipc__set_nonblock(s->efd_tx, true);
	shm_bind(c, w.hdr_size, w.ring_size, w.max_msg);
	return 0;
fail:
	hs_drop_fds(s);
	return r == -EPROTO ? shm_fail(s) : r;
}

static int shm_fd_update(struct shm *s);

/* Attach on first use (server: accept; client: take the descriptors). */
static int shm_attach(ipc_chan *c, ipc_deadline *dl)
{
	struct shm *s = S(c);
	/* another thread may be attaching within its own, longer deadline */
	int r = ipc__mutex_lock_dl(&s->lock, dl);
	if (r < 0)
		return r;
	if (!atomic_load(&s->ready)) {
		if (s->role == IPC_SERVER) {
			r = shm_accept_from(c, s->acc, dl);
			if (r == 0) {
				/* a channel is a pair: release the endpoint, and
				 * drop the other clients */
				accq_close(s->acc, true, true);
				free(s->acc);
				s->acc = NULL;
			}
		} else {
			r = shm_join(c, dl);
		}
		if (r == 0) {
			atomic_store(&s->ready, true);
			(void)shm_fd_update(s);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static inline int shm_ready(ipc_chan *c, ipc_deadline *dl)
{
	struct shm *s = S(c);
	if (!atomic_load_explicit(&s->ready, memory_order_acquire)) {
		int r = atomic_load_explicit(&s->err, memory_order_relaxed);
		if (r < 0 || (r = shm_attach(c, dl)) < 0)
			return r;
	}
	return atomic_load_explicit(&s->err, memory_order_relaxed);
}

/* ---- peer state, errors, doorbells ---- */

/* A corrupt ring or welcome: sticky -EPROTO; the peer sees us hang up,
 * ipc_fd wakes. */
static int shm_fail(struct shm *s)
{
	int expect = 0;
	if (atomic_compare_exchange_strong(&s->err, &expect, -EPROTO)) {
		shutdown(s->sock, SHUT_RDWR);  /* (ipc_fd: the hang-up makes it readable) */
	}
	return -EPROTO;
}

/* Has the peer gone? With sock_too, asks the socket (a system call). The
 * socket is the only truth: the close count in the shared page is bumped by
 * whichever process closes its copy of an end, also after fork() when
 * another process still uses it; each new count makes us ask the socket. */
static bool shm_peer_gone(struct shm *s, bool sock_too)
{
	if (atomic_load_explicit(&s->gone, memory_order_relaxed))
		return true;
	uint32_t hint = atomic_load_explicit(&s->map.page->closed[1 - s->side], memory_order_relaxed);
	if (hint != atomic_load_explicit(&s->hint_seen, memory_order_relaxed)) {
		sock_too = true;
		atomic_store(&s->hint_seen, hint);
	}
	if (sock_too) {
		struct pollfd p = { s->sock, POLLRDHUP, 0 };
		if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
			atomic_store(&s->gone, true);
			return true;
		}
	}
	return false;
}

/* Writer: after publishing, wake the reader if it announced sleep. The
 * fence pairs with the reader's (Dekker): either we see rsleep set or the
 * reader sees our head. */
static inline void shm_wake_reader(struct shm *s)
{
	/* a reader in spin mode never sleeps: no fence (see ipc_ring_ctl.rwait);
	 * one in adaptive mode issues membarrier before it sleeps: no fence if
	 * this process is registered (see shm_mb above) */
	atomic_signal_fence(memory_order_seq_cst);
	uint32_t rw = atomic_load_explicit(&s->tx.ctl->rwait, memory_order_relaxed);
	if (rw == IPC_RWAIT_NEVER)
		return;
	if (rw != IPC_RWAIT_MEMBARRIER || atomic_load_explicit(&shm_mb, memory_order_relaxed) != 1)
		atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&s->tx.ctl->rsleep, memory_order_relaxed) &&
	    atomic_exchange(&s->tx.ctl->rsleep, 0)) {
		/* EAGAIN: the pipe is full of doorbells already */
		(void)!write(s->efd_tx, "d", 1);
	}
}

/*
 * Reader: after freeing space, wake a writer that sleeps on a full ring.
 * The sure check needs a full fence (Dekker with the writer's "wsleep = 1,
 * fence, look at the tail"), which would cost more than the rest of a small
 * receive. So it is made only once per wake_batch bytes consumed (an
 * eighth of the ring) and whenever we have caught up with the head we last
 * saw; in between, a plain load of wsleep catches nearly every sleeper at
 * once. Like a socket's write-space watermark, a writer asleep on a full
 * ring is thus woken at the latest once the reader has freed an eighth of
 * the ring or emptied it. (The stress test in tests/test_shm.c runs
 * writers that sleep on a full ring against readers that pause.)
 */
static inline void shm_wake_writer(struct shm *s)
{
	if (!atomic_load_explicit(&s->rx.ctl->wwait, memory_order_relaxed))
		return;
	if (s->rx.pos - s->wake_pos < s->wake_batch && s->rx.pos != s->rx.cache &&
	    !atomic_load_explicit(&s->rx.ctl->wsleep, memory_order_relaxed))
		return;
	s->wake_pos = s->rx.pos;
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&s->rx.ctl->wsleep, memory_order_relaxed) &&
	    atomic_exchange(&s->rx.ctl->wsleep, 0)) {
		char b = 'w';
		/* EAGAIN: the buffer is full of doorbells already */
		(void)!send(s->sock, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
}

/* Empty our doorbell pipe without blocking (the read end blocks). */
static void pipe_drain(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	char b[256];
	if (poll(&p, 1, 0) > 0 && (p.revents & POLLIN))
		(void)!read(fd, b, sizeof(b));
}

/* fd mode: both things that make ipc_fd readable for data */
static void fd_drain(struct shm *s)
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
static void shm_fd_level(struct shm *s)
{
	if (s->fd_sloppy) {
		fd_signal(s);
		return;
	}
	if (!ipc__ring_nonempty(&s->rx) && !atomic_load(&s->err)) {
		fd_drain(s);
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
 * Wait until the receive ring has data (space == 0) or the send ring has
 * space bytes free. Returns 0 (the caller looks again), -EPIPE when the
 * peer is gone, a timeout error, -EPROTO.
 */
static int shm_wait(struct shm *s, uint64_t space, ipc_deadline *dl, int mode)
{
	bool data = space == 0;
	struct ipc_ring *ring = data ? &s->rx : &s->tx;
	_Atomic uint32_t *flag = data ? &ring->ctl->rsleep : &ring->ctl->wsleep;
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
			cpu_relax();
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

	/* sleep phase */
	bool fdm = data && atomic_load(&s->fd_mode);
	bool recheck = !data;  /* writer: look at the tail again soon once */
	for (;;) {
		if (fdm) {
			fd_drain(s);
			s->drained = true;
		}
		atomic_store(flag, 1);
		atomic_thread_fence(memory_order_seq_cst);
		/* a writer towards us may skip its fence: make up for it */
		bool nap = data &&
			   atomic_load_explicit(&ring->ctl->rwait, memory_order_relaxed) ==
				   IPC_RWAIT_MEMBARRIER &&
			   !shm_reader_barrier();
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
			(void)!read(s->efd_rx, b, sizeof(b));  /* readable: does not block */
		}
	}
}

/* ---- sending ---- */

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
			return shm_fail(s);
		if ((uint64_t)r >= want)
			return 0;
		int w = shm_wait(s, want, dl, c->cfg.wait);
		if (w < 0)
			return w == -EPROTO ? shm_fail(s) : w;
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
static int shm_tail_write(ipc_chan *c, const unsigned char *p, size_t n, ipc_deadline *dl,
			  size_t *done)
{
	return shm_frag_out(c, p, n, false, 0, dl, done);
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

static int shm_send(ipc_chan *c, const void *msg, size_t len, ipc_deadline *dl)
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
static int shm_sendv(ipc_chan *c, const ipc_msg *msgs, size_t n, ipc_deadline *dl)
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
			r = shm_fail(s);
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

static int shm_send_reserve(ipc_chan *c, size_t len, void **buf, ipc_deadline *dl)
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

static int shm_send_commit(ipc_chan *c, size_t len)
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

/* ---- receiving ---- */

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
			return shm_fail(s);
		if (atomic_load_explicit(&s->gone, memory_order_relaxed)) {
			/* we saw the peer go before this look at the ring */
			return -EPIPE;
		}
		r = shm_wait(s, 0, dl, c->cfg.wait);
		if (r == -EPIPE)
			continue;  /* look once more: deliver what was sent before */
		if (r < 0)
			return r == -EPROTO ? shm_fail(s) : r;
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
			return shm_fail(s);
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
		return shm_fail(s);
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

static ssize_t shm_recv(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl)
{
	struct shm *s = S(c);
	int r = shm_ready(c, dl);
	if (r < 0)
		return r;
	if (s->peek)
		return -EBUSY;
	ssize_t n = shm_recv_msg(c, buf, cap, dl);
	if (atomic_load_explicit(&s->fd_mode, memory_order_relaxed))
		shm_fd_level(s);
	return n;
}

static ssize_t shm_recv_peek(ipc_chan *c, const void **msg, ipc_deadline *dl)
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
			out = shm_fail(s);
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
	if (atomic_load_explicit(&s->fd_mode, memory_order_relaxed))
		shm_fd_level(s);
	return out;
}

static int shm_recv_release(ipc_chan *c)
{
	struct shm *s = S(c);
	if (s->peek == PEEK_INPLACE) {
		if (!atomic_load(&s->err))
			shm_take(s, &s->peek_rec);
	} else if (s->peek == PEEK_PART) {
		s->part_active = s->part_done = false;
	}
	s->peek = 0;
	if (atomic_load_explicit(&s->fd_mode, memory_order_relaxed))
		shm_fd_level(s);
	return 0;
}

/* ---- ipc_fd ---- */

static void ep_set(int epfd, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno == EEXIST)
		epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

/* Put the right descriptors in the epoll set for the current state
 * (called with s->lock held). */
static int shm_fd_update(struct shm *s)
{
	if (s->epfd < 0)
		return 0;
	if (!atomic_load(&s->ready)) {
		/* not attached: readable while attaching would make progress
		 * (server: a client in the backlog, hello bytes, a complete
		 * hello not served yet; client: the welcome) */
		if (s->role == IPC_SERVER)
			return accq_watch(s->acc, s->epfd, s->selfd);
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
		if ((rw != IPC_RWAIT_MEMBARRIER || !shm_reader_barrier()) &&
		    syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) < 0)
			s->fd_sloppy = true;
	}
	atomic_store(&s->fd_mode, true);
	/* readable at once for messages that are already waiting: nobody
	 * signalled them (the peer rings only a reader that said it sleeps) */
	s->drained = true;
	shm_fd_level(s);
	return 0;
}

static int shm_fd(ipc_chan *c)
{
	struct shm *s = S(c);
	pthread_mutex_lock(&s->lock);
	if (s->epfd < 0) {
		int ev = ipc__eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		int ep = ev < 0 ? ev : ipc__epoll();
		if (ep < 0) {
			if (ev >= 0)
				close(ev);
			pthread_mutex_unlock(&s->lock);
			return ep;
		}
		s->selfd = ev;
		s->epfd = ep;
		int r = shm_fd_update(s);
		if (r < 0) {
			ipc__close_fd(&s->epfd);
			ipc__close_fd(&s->selfd);
			pthread_mutex_unlock(&s->lock);
			return r;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return s->epfd;
}

/* ---- open, pair, close, listener ---- */

static int shm_prepare(ipc_chan *c, int role)
{
	struct shm *s = S(c);
	s->role = role;
	s->side = role == IPC_SERVER ? 0 : 1;
	int r = ring_size_for(c->cfg.capacity, &s->capacity);
	if (r < 0)
		return r;
	if (c->cfg.wait == IPC_WAIT_SPIN)
		s->spin_ns = -1;
	else
		s->spin_ns = shm_cpus() > 1 ? SHM_SPIN_NS : 0;
	(void)shm_mb_ready(); /* register this process before it writes */
	if (pthread_mutex_init(&s->lock, NULL) != 0)
		return -ENOMEM;
	s->lock_init = true;
	return ipc__tail_init(&s->tail, c, shm_tail_write);
}

/* Client: the hello goes out at once; the answer is read by the first op. */
static int shm_hello_send(ipc_chan *c)
{
	struct shm *s = S(c);
	struct shm_hello h = { .magic = "IPCKSHMc", .version = IPC_SHM_VERSION,
			       .size = sizeof(h), .max_msg = c->max_msg,
			       .capacity = (c->cfg.set & IPC_SET_CAPACITY) ? s->capacity : 0,
			       .wait = (uint32_t)c->cfg.wait };
	ssize_t k;
	do
		k = send(s->sock, &h, sizeof(h), MSG_NOSIGNAL | MSG_DONTWAIT);
	while (k < 0 && errno == EINTR);
	if (k == (ssize_t)sizeof(h))
		return 0;
	return k < 0 ? (errno == EPIPE || errno == ECONNRESET ? -ECONNREFUSED : -errno) : -EIO;
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
		accq_init(s->acc);
		return accq_listen(s->acc, u, c->cfg.mode, 8);
	}
	r = ipc__unix_connect(u->path, u->abstract, c->cfg.connect_timeout_ms);
	if (r < 0)
		return r;
	s->sock = r;
	if (u->abstract && (r = ipc__unix_peer_same_uid(s->sock)) < 0)
		return r;
	return shm_hello_send(c);
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
	if ((r = shm_hello_send(b)) < 0 || (r = conn_read(&k) > 0 ? 0 : -EPROTO) < 0 ||
	    (r = shm_serve(a, &k)) < 0) {
		close(sv[0]);
		return r;
	}
	atomic_store(&sa->ready, true);
	if ((r = shm_join(b, IPC_NOWAIT)) < 0)
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
		accq_close(s->acc, ipc__owned(c->owner), false);
		free(s->acc);
		s->acc = NULL;
	}
	ipc__close_fd(&s->sock);
	ipc__close_fd(&s->efd_rx);
	ipc__close_fd(&s->efd_tx);
	ipc__close_fd(&s->selfd);
	ipc__close_fd(&s->epfd);
	hs_drop_fds(s);
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

static struct shm_listener *L(ipc_listener *l)
{
	return (struct shm_listener *)(void *)l->priv;
}

static int shm_listen(ipc_listener *l, const ipc_url *u)
{
	struct shm_listener *sl = L(l);
	uint64_t cap;
	int r = ring_size_for(l->cfg.capacity, &cap);
	if (r < 0)
		return r;
	sl->epfd = sl->evfd = -1;
	accq_init(&sl->q);
	if (pthread_mutex_init(&sl->lock, NULL) != 0)
		return -ENOMEM;
	/* (the core frees l after a failed listen without closing it) */
	if ((r = accq_listen(&sl->q, u, l->cfg.mode, 64)) < 0) {
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
	r = shm_accept_from(c, &sl->q, dl);
	pthread_mutex_unlock(&sl->lock);
	if (r == 0)
		atomic_store(&S(c)->ready, true);
	return r;
}

/* Readable while accept would not block: a client in the backlog, hello
 * bytes (or EOF) on a pending connection, or (evfd) a complete hello
 * taken from its socket but not served yet. */
static int shm_listener_fd(ipc_listener *l)
{
	struct shm_listener *sl = L(l);
	pthread_mutex_lock(&sl->lock);
	if (sl->epfd < 0) {
		int ev = ipc__eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		int ep = ev < 0 ? ev : ipc__epoll();
		int r = ep < 0 ? ep : accq_watch(&sl->q, ep, ev);
		if (r < 0) {
			if (ep >= 0)
				close(ep);
			if (ev >= 0)
				close(ev);
			pthread_mutex_unlock(&sl->lock);
			return r;
		}
		sl->evfd = ev;
		sl->epfd = ep;
	}
	pthread_mutex_unlock(&sl->lock);
	return sl->epfd;
}

static void shm_listener_close(ipc_listener *l)
{
	struct shm_listener *sl = L(l);
	bool owned = ipc__owned(l->owner);
	/* (a forked child's copy closes descriptors, nothing more) */
	accq_close(&sl->q, owned, false);
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
	.send = shm_send,
	.sendv = shm_sendv,
	.recv = shm_recv,
	.fd = shm_fd,
	.send_reserve = shm_send_reserve,
	.send_commit = shm_send_commit,
	.recv_peek = shm_recv_peek,
	.recv_release = shm_recv_release,
	.close = shm_close,
	.listen = shm_listen,
	.accept = shm_accept,
	.listener_fd = shm_listener_fd,
	.listener_close = shm_listener_close,
};
