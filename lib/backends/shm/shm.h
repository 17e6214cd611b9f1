/*
 * shm.h - private to lib/backends/shm/: the state of a channel and a
 * listener, the rendezvous messages, the constants, the few hot-path
 * helpers that every file inlines (the wake-ups after each index update,
 * the cheap peer-death look), and what the files call of each other.
 *
 * The folder (each file opens with a map of its own):
 *   shm.c         the vtable and the lifecycle: init, open, pair, close,
 *                 listen, accept, listener close
 *   rendezvous.c  hello, welcome, the checks on what arrives over
 *                 SCM_RIGHTS, the mapping, server endpoints with their
 *                 pending connections, attach
 *   wait.c        spinning, doorbells, membarrier, peer death: ipc__shm_wait
 *   data.c        send, sendv, recv, recvv, zero-copy, the tail's writer
 *   fd.c          ipc_fd and ipc_listener_fd: epoll sets and their level
 *   ring.[ch]     the shared layout and the SPSC rings: no system calls,
 *                 the only code a hostile peer's bytes reach (fuzzed)
 * docs/backends/shm.md describes the bytes and the rules.
 */
#ifndef IPC_SHM_H
#define IPC_SHM_H

#include "backend.h"
#include "backends/shm/ring.h"
#include "posix/fdio.h"
#include "posix/sock.h"
#include "tail.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
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
	int efd_tx;             /* the peer's: a pipe's write end (written without waiting) */
	int selfd;              /* ipc_fd: an eventfd we signal ourselves */
	int epfd;               /* ipc_fd, -1 until asked for */
	uint64_t capacity;      /* our ring size request (rounded) */
	size_t peer_max;
	int spin_ns;            /* 0: never spin; -1: spin only */
	pthread_mutex_t lock;   /* serialises attach and ipc_fd set-up */
	bool lock_init;
	int rx_sleepers;        /* receivers asleep on the doorbell without fd
	                           mode (under lock; see fd.c fd_level_first) */
	atomic_bool ready;
	atomic_int err;         /* sticky -EPROTO */
	atomic_bool gone;       /* the peer closed or died */
	_Atomic uint32_t hint_seen; /* the peer's close count we found stale */
	bool fd_sloppy;         /* ipc_fd without signals: always readable */
	atomic_bool fd_mode;    /* ipc_fd was asked for: the receiving thread
	                           keeps its level (set with release, after
	                           selfd and fd_sloppy) */
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



/* ---- between the files of this folder ---- */

/* rendezvous.c */
int ipc__shm_ring_size_for(uint64_t cap, uint64_t *out);
int ipc__shm_hello_send(ipc_chan *c);
int ipc__shm_conn_read(struct shm_conn *k);
int ipc__shm_serve(ipc_chan *c, const struct shm_conn *k);
int ipc__shm_join(ipc_chan *c, ipc_deadline *dl);
int ipc__shm_attach(ipc_chan *c, ipc_deadline *dl);
void ipc__shm_hs_drop(struct shm *s);
void ipc__shm_accq_init(struct shm_accq *q);
int ipc__shm_accq_listen(struct shm_accq *q, const ipc_url *u, unsigned mode, int backlog);
void ipc__shm_accq_close(struct shm_accq *q, bool remove_name, bool unwatch);
int ipc__shm_accept_from(ipc_chan *c, struct shm_accq *q, ipc_deadline *dl);

/* wait.c */
extern atomic_int ipc__shm_mb;  /* 1: this process is registered for membarrier */
int ipc__shm_cpus(void);
bool ipc__shm_mb_ready(void);
uint32_t ipc__shm_rwait_for(int wait);
bool ipc__shm_reader_barrier(void);
int ipc__shm_fail(struct shm *s);
bool ipc__shm_sock_gone(struct shm *s);
int ipc__shm_wait(struct shm *s, uint64_t space, ipc_deadline *dl, int mode);

/* data.c: the data ops of the vtable, and lib/tail.c's writer */
int ipc__shm_send(ipc_chan *c, const void *msg, size_t len, ipc_deadline *dl);
int ipc__shm_sendv(ipc_chan *c, const ipc_msg *msgs, size_t n, ipc_deadline *dl);
ssize_t ipc__shm_recv(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl);
int ipc__shm_recvv(ipc_chan *c, ipc_buf *bufs, size_t n, ipc_deadline *dl);
int ipc__shm_send_reserve(ipc_chan *c, size_t len, void **buf, ipc_deadline *dl);
int ipc__shm_send_commit(ipc_chan *c, size_t len);
ssize_t ipc__shm_recv_peek(ipc_chan *c, const void **msg, ipc_deadline *dl);
int ipc__shm_recv_release(ipc_chan *c);
void ipc__shm_tail_abort(ipc_chan *c);
int ipc__shm_tail_write(ipc_chan *c, const unsigned char *p, size_t n, ipc_deadline *dl,
			size_t *done);

/* fd.c */
int ipc__shm_ep_add(int epfd, int fd);
void ipc__shm_ep_del(int epfd, int fd);
int ipc__shm_accq_watch(struct shm_accq *q, int epfd, int evfd);
void ipc__shm_accq_level(struct shm_accq *q);
void ipc__shm_fd_drain(struct shm *s);
void ipc__shm_fd_level(struct shm *s);
int ipc__shm_fd_update(struct shm *s);
int ipc__shm_fd(ipc_chan *c);
int ipc__shm_listener_fd(ipc_listener *l);

static inline struct shm *S(ipc_chan *c)
{
	return IPC_PRIV(c, struct shm);
}

static inline struct shm_listener *L(ipc_listener *l)
{
	return IPC_PRIV(l, struct shm_listener);
}


static inline int64_t coarse_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Has the peer gone? With sock_too, asks the socket (a system call). The
 * socket is the only truth: the close count in the shared page is bumped by
 * whichever process closes its copy of an end, also after fork() when
 * another process still uses it; each new count makes us ask the socket. */
static inline bool shm_peer_gone(struct shm *s, bool sock_too)
{
	if (atomic_load_explicit(&s->gone, memory_order_relaxed))
		return true;
	uint32_t hint = atomic_load_explicit(&s->map.page->closed[1 - s->side], memory_order_relaxed);
	if (hint != atomic_load_explicit(&s->hint_seen, memory_order_relaxed)) {
		sock_too = true;
		atomic_store(&s->hint_seen, hint);
	}
	return sock_too && ipc__shm_sock_gone(s);
}

/* Writer: after publishing, wake the reader if it announced sleep. The
 * fence pairs with the reader's (Dekker): either we see rsleep set or the
 * reader sees our head. */
static inline void shm_wake_reader(struct shm *s)
{
	/* a reader in spin mode never sleeps: no fence (see ipc_ring_ctl.rwait);
	 * one in adaptive mode issues membarrier before it sleeps: no fence if
	 * this process is registered (ipc__shm_mb, wait.c) */
	atomic_signal_fence(memory_order_seq_cst);
	uint32_t rw = atomic_load_explicit(&s->tx.ctl->rwait, memory_order_relaxed);
	if (rw == IPC_RWAIT_NEVER)
		return;
	if (rw != IPC_RWAIT_MEMBARRIER || atomic_load_explicit(&ipc__shm_mb, memory_order_relaxed) != 1)
		atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&s->tx.ctl->rsleep, memory_order_relaxed) &&
	    atomic_exchange(&s->tx.ctl->rsleep, 0)) {
		/* EAGAIN: the pipe is full of doorbells already (never waits,
		 * whatever a hostile peer did to the flags it shares) */
		(void)!ipc__pipe_write_nowait(s->efd_tx, "d", 1);
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

#endif
