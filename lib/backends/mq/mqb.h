/*
 * mqb.h - what the three files of the mq backend share: the channel state,
 * the wire constants and the functions one file calls in another.
 *
 *   mq.c         the mechanism and how it maps the contract (read it
 *                first); init, open, pair, close and the vtable
 *   handshake.c  limits, names, hellos, creating and reclaiming a name
 *                (flock liveness), the client's attach, the server's
 *                attach, removing a dead server's pair
 *   data.c       send, recv (receive lock and stash), waiting and peer
 *                death, ipc_fd
 *
 * Statics are prefixed mqb_ (<mqueue.h> owns mq_); the functions shared
 * between the files are ipc__mqb_*.
 */
#ifndef IPC_BACKENDS_MQB_H
#define IPC_BACKENDS_MQB_H

#include "backend.h"

#include <limits.h>
#include <mqueue.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define MQB_PRIO_EOS 0u
#define MQB_PRIO_DATA 1u
#define MQB_PRIO_HELLO 2u
#define MQB_HELLO_LEN 16
#define MQB_SLICE_NS (250 * 1000000LL)
#define MQB_CLOSE_WAIT_MS 200
#define MQB_NOQ ((mqd_t)-1)

struct mqb_chan {
	mqd_t rq, sq;            /* receive and send queues (MQB_NOQ: none) */
	int life;                /* peer pidfd, or the pair's socket; -1 unknown */
	bool server, paired;
	int spin_ns;             /* wait: -1 spin only, > 0 spin this long first, 0 sleep at once */
	bool opened;             /* open or pair succeeded (close may send EOS) */
	bool made_c2s, made_s2c; /* server: names we created and still own
	                            (c2s is flocked through rq until attach) */
	size_t msgsize;          /* mq_msgsize of both queues */
	pid_t peer_pid;          /* server: from the client's hello */
	atomic_bool hello_in;    /* server: the client's hello was taken */
	atomic_bool ready;       /* handshake done */
	atomic_bool gone;        /* peer exited or closed (life readable) */
	atomic_bool eof;         /* recv returns -EPIPE from now on */
	atomic_int err;          /* sticky -EPROTO */
	pthread_mutex_t alock;   /* serialises the server's attach */
	pthread_mutex_t rlock;   /* every read of rq and of the stash (after attach) */
	unsigned char *stash;    /* msgsize bytes, under rlock */
	atomic_long stash_len;   /* length of a stashed message, -1 if none */
	pthread_mutex_t evlock;  /* ipc_fd state, life's epoll registration */
	int epfd, evfd;
	bool ev_on;
	atomic_bool ev_armed;    /* ipc_fd was called: evfd exists */
	char name[NAME_MAX + 2], sname[NAME_MAX + 2], cname[NAME_MAX + 2];
};

static inline struct mqb_chan *ipc__mqb(ipc_chan *c)
{
	return IPC_PRIV(c, struct mqb_chan);
}

/* A queue opened through the descriptor choke point: the descriptor, or
 * -errno. */
int ipc__mqb_qopen(const char *name, int flags, unsigned mode, struct mq_attr *attr);
void ipc__mqb_qclose(mqd_t *q);

/* ---- handshake.c ---- */
/* The kernel's msgsize_max (the limit op): 0 or -errno (-EMFILE...). */
int ipc__mqb_limit(size_t *out);
/* The queue attributes for c, checked against the kernel limits. */
int ipc__mqb_attr(ipc_chan *c, struct mq_attr *attr);
/* Derive the queue names from the URL's name. */
int ipc__mqb_names(struct mqb_chan *m, const char *name);
int ipc__mqb_server_open(ipc_chan *c);
int ipc__mqb_client_open(ipc_chan *c);
/* The server's first op (within dl): 0 once attached. */
int ipc__mqb_attach(ipc_chan *c, ipc_deadline *dl);
/* Server close before attach: remove the names we made. */
void ipc__mqb_unmake(struct mqb_chan *m);
/* Client close: remove the pair of a server that died before attaching. */
void ipc__mqb_remove_stale(struct mqb_chan *m);

/* ---- data.c ---- */
/* How a call waits on a queue that was empty (recv) or full (send) when
 * last tried: ts is the next try's CLOCK_REALTIME limit ({0, 0}: do not
 * block, so a call that never waits never reads the clock). */
struct mqb_wait {
	struct timespec ts;     /* the next try's CLOCK_REALTIME limit (0: do not wait) */
	bool waited;            /* a blocking try was made */
	bool gone;              /* the peer is gone: one more look, then -EPIPE */
	bool spinning;          /* wait=spin/adaptive: trying without waiting */
	int64_t spin_start;     /* when the first try failed (0: not yet) */
};
/* Set up the first try of a call: without waiting for never-block calls
 * and while spinning, else one timed call (a slice). */
void ipc__mqb_wait_init(struct mqb_chan *m, ipc_deadline *dl, struct mqb_wait *w);
int ipc__mqb_wait(struct mqb_chan *m, mqd_t q, short ev, ipc_deadline *dl, struct mqb_wait *w);
/* Keep the ipc_fd eventfd in step with what recv would return at once. */
void ipc__mqb_ev_update(struct mqb_chan *m);
/* Watch the peer's life descriptor in the ipc_fd set, if there is one. */
void ipc__mqb_ev_watch(struct mqb_chan *m, int fd);
int ipc__mqb_send(ipc_chan *c, const void *msg, size_t len, ipc_deadline *dl);
ssize_t ipc__mqb_recv(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl);
int ipc__mqb_fd(ipc_chan *c);

#endif
