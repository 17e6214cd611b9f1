/*
 * rendezvous.c - how the two ends of a shm channel meet (shm.h has the
 * folder's map).
 *
 * Holds: ring sizes, the mapping (every ring twice, back to back) and
 * binding an end to it; the client's hello and the server's welcome;
 * server endpoints (struct shm_accq): the listening socket and the
 * connections taken from its backlog whose hello is still arriving, each
 * with its own hello deadline, served once complete (memfd, seals, pipes,
 * SCM_RIGHTS); the client's join, which checks every descriptor it got;
 * attach, run once by the first call that needs the peer.
 * Leaves to others: the pollable sets over an endpoint (fd.c: accq_watch,
 * accq_level), waiting for data or space (wait.c), the lifecycle (shm.c).
 */
#include "backends/shm/shm.h"
#include "posix/fdio.h"
#include "posix/sock.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

static uint64_t page_size(void)
{
	long p = sysconf(_SC_PAGESIZE);
	return p > 0 ? (uint64_t)p : 4096;
}

/* Ring size for a capacity request: a power of two, at least a page. */
int ipc__shm_ring_size_for(uint64_t cap, uint64_t *out)
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
		/* Ring pages are not populated: memory follows use. An idle
		 * channel costs its header page; a ring's pages are faulted in
		 * the first time data reaches them (once per page, then never
		 * again) and stay. The header page is populated (both ends
		 * touch it at once). */
		void *p = mmap(base + part[i].at, part[i].len, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_FIXED | (i == 0 ? MAP_POPULATE : 0), memfd,
			       part[i].off);
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
	atomic_store_explicit(&c->peer_max, peer_max, memory_order_relaxed); /* (ipc_info) */
	s->wake_pos = s->rx.pos;
	s->wake_batch = size[rx] / 8;
	s->tx_checked = coarse_ns();
}

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
int ipc__shm_conn_read(struct shm_conn *k)
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

/* conn sent the complete, checked hello in k: build the mapping and
 * answer. On success the channel owns conn; on failure it is the caller's
 * (-ENOMEM, -EMFILE...: our trouble; -EPIPE...: the client's). */
int ipc__shm_serve(ipc_chan *c, const struct shm_conn *k)
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
	atomic_store(&pg->ctl[0].rwait, ipc__shm_rwait_for(h.wait));
	atomic_store(&pg->ctl[1].wwait, they_sleep);
	atomic_store(&pg->ctl[1].rwait, ipc__shm_rwait_for(c->cfg.wait));

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

void ipc__shm_accq_init(struct shm_accq *q)
{
	q->lfd = q->epfd = q->evfd = -1;
	q->n = 0;
}

int ipc__shm_accq_listen(struct shm_accq *q, const ipc_url *u, unsigned mode, int backlog)
{
	int r = ipc__unix_listen(u->path, u->abstract, mode, backlog, &q->file);
	if (r < 0)
		return r;
	q->lfd = r;
	q->abstract = u->abstract;
	return 0;
}

/* Forget connection i: out of the owner's set, closed unless keep (the
 * channel that served it took it). The last one takes its slot. */
static void accq_remove(struct shm_accq *q, int i, bool keep)
{
	ipc__shm_ep_del(q->epfd, q->conn[i].fd);
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
void ipc__shm_accq_close(struct shm_accq *q, bool remove_name, bool unwatch)
{
	if (!unwatch)
		q->epfd = -1;
	while (q->n)
		accq_remove(q, q->n - 1, false);
	if (q->lfd >= 0) {
		ipc__shm_ep_del(q->epfd, q->lfd);
		ipc__close_fd(&q->lfd);
		if (remove_name)
			ipc__file_remove(&q->file);
	}
	q->epfd = q->evfd = -1;
}

/* A connection is done or dropped; *now is read once per pass. */
static void conn_step(struct shm_accq *q, int i, int64_t *now, int64_t *soonest)
{
	struct shm_conn *k = &q->conn[i];
	int h = ipc__shm_conn_read(k);
	if (h > 0) {
		k->done = true;
		ipc__shm_ep_del(q->epfd, k->fd); /* (nothing more to read) */
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
		int r = ipc__shm_ep_add(q->epfd, fd);
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
int ipc__shm_accept_from(ipc_chan *c, struct shm_accq *q, ipc_deadline *dl)
{
	int i, r;
	for (;;) {
		if ((r = accq_next(q, dl, &i)) < 0)
			break;
		if ((r = ipc__shm_serve(c, &q->conn[i])) == 0) {
			accq_remove(q, i, true); /* the channel has it */
			break;
		}
		if (r == -ENOMEM || r == -EMFILE || r == -ENFILE)
			break;
		accq_remove(q, i, false);
	}
	ipc__shm_accq_level(q);
	return r;
}

void ipc__shm_hs_drop(struct shm *s)
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

/* Client: take the welcome and its descriptors, check them, map. A
 * welcome that breaks the protocol closes the channel for good (-EPROTO,
 * sticky; the server sees us hang up); out of memory for the mapping
 * keeps what arrived for the next call. */
int ipc__shm_join(ipc_chan *c, ipc_deadline *dl)
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
	ipc__shm_hs_drop(s);
	return r == -EPROTO ? ipc__shm_fail(s) : r;
}

/* Attach on first use (server: accept; client: take the descriptors). */
int ipc__shm_attach(ipc_chan *c, ipc_deadline *dl)
{
	struct shm *s = S(c);
	/* another thread may be attaching within its own, longer deadline */
	int r = ipc__mutex_lock_dl(&s->lock, dl);
	if (r < 0)
		return r;
	if (!atomic_load(&s->ready)) {
		if (s->role == IPC_SERVER) {
			r = ipc__shm_accept_from(c, s->acc, dl);
			if (r == 0) {
				/* a channel is a pair: release the endpoint, and
				 * drop the other clients */
				ipc__shm_accq_close(s->acc, true, true);
				free(s->acc);
				s->acc = NULL;
			}
		} else {
			r = ipc__shm_join(c, dl);
		}
		if (r == 0) {
			atomic_store(&s->ready, true);
			(void)ipc__shm_fd_update(s);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Client: the hello goes out at once; the answer is read by the first op. */
int ipc__shm_hello_send(ipc_chan *c)
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
