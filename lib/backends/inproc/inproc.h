/*
 * inproc/inproc.h - what the three files of the inproc backend share: the
 * layout of a channel's shared state (core, dir), the endpoints, the
 * records, and the functions that ring.c and rendezvous.c give inproc.c.
 */
#ifndef IPC_INPROC_H
#define IPC_INPROC_H

#include "backend.h"

#include <pthread.h>
#include <stdatomic.h>

#define IP_DEFAULT_CAPACITY ((size_t)1 << 20)
#define IP_MIN_RING ((size_t)4096)
#define IP_MAX_RING ((size_t)1 << 30)
#define IP_MAX_MSG ((size_t)1 << 30)
#define IP_SPIN_NS 50000
#define IP_BACKLOG 128
#define IP_HDR 8u

enum { REC_DATA = 1, REC_HEAP = 2, REC_PAD = 3 };

/* One direction: written by one end, read by the other. */
struct dir {
	pthread_mutex_t mu;
	pthread_cond_t data, space;   /* CLOCK_MONOTONIC */
	unsigned char *ring;
	size_t size;                  /* power of two */
	size_t head, tail;            /* free-running byte counts (mu) */
	size_t heap, heap_cap;        /* heap bytes in flight, and their budget */
	_Atomic unsigned ver;         /* bumped on every change, for spinners */
	bool wclosed, rclosed;        /* the writing / reading end closed */
	int evfd;                     /* the reading end's ipc_fd, or -1 */
	bool ev_on;
};

/* What two connected ends share; d[0] carries side 0 to side 1. */
struct core {
	atomic_int refs;
	size_t max_msg[2];            /* each end's max_msg (the peer's limit) */
	struct dir d[2];
};

struct endpoint {
	struct endpoint *next;
	char name[256];
	bool listener;
	size_t max_msg;               /* the server's or listener's */
	pthread_mutex_t mu;
	pthread_cond_t cv;            /* a client arrived */
	struct core *backlog[IP_BACKLOG];
	unsigned nb;
	int evfd;                     /* the server's or listener's fd, or -1 */
	bool ev_on;
};

struct ip_chan {
	struct core *k;
	int side;                     /* sends on d[side], receives on d[1 - side] */
	struct endpoint *ep;          /* server before attach */
	pthread_mutex_t alock;        /* serialises attach */
	bool alock_init;
	atomic_bool ready;
	int evfd;                     /* ipc_fd, -1 until asked for */
	int spin_ns;                  /* 0 never spin, -1 spin only */
	/* sending side */
	size_t resv_len;
	unsigned char *resv_heap;
	ipc_deadline resv_dl;
	/* receiving side */
	bool peeked;
};

struct ip_listener {
	struct endpoint *ep;
	int evfd;
};

#define IP(c) IPC_PRIV(c, struct ip_chan)
#define IPL(l) IPC_PRIV(l, struct ip_listener)

static inline size_t rec_size(size_t len)
{
	return IP_HDR + ((len + 7) & ~(size_t)7);
}

/* ring.c */
void ipc__ip_dir_ev(struct dir *d);
void ipc__ip_dir_changed(struct dir *d);
int ipc__ip_cond_init(pthread_cond_t *cv);
void ipc__ip_core_unref(struct core *k);
int ipc__ip_core_new(struct core **out, size_t cap0, size_t cap1);
int ipc__ip_dir_wait(struct ip_chan *ic, struct dir *d, pthread_cond_t *cv, ipc_deadline *dl);
void ipc__ip_core_close_side(struct core *k, int side);
int ipc__ip_send_room(struct ip_chan *ic, struct dir *d, size_t len, bool *heap, ipc_deadline *dl,
		      unsigned char **p);
void ipc__ip_publish(struct dir *d, uint32_t len, uint32_t kind, size_t heap);
int ipc__ip_recv_rec(struct ip_chan *ic, struct dir *d, uint32_t hdr[2], unsigned char **p,
		     ipc_deadline *dl);
void ipc__ip_consume(struct dir *d, const uint32_t hdr[2]);
const unsigned char *ipc__ip_rec_data(const uint32_t hdr[2], const unsigned char *p);

/* rendezvous.c */
int ipc__ip_ep_register(struct endpoint **out, const char *name, bool listener, size_t max_msg);
void ipc__ip_ep_unregister(struct endpoint *e);
void ipc__ip_ep_ev(struct endpoint *e);
int ipc__ip_ep_take(struct endpoint *e, struct ip_chan *ic, ipc_deadline *dl, struct core **out);
struct connect_try {
	const char *name;
	size_t cap, max_msg;          /* the client's */
	struct core *k;
	size_t peer_max;              /* the server's, found at the endpoint */
};
int ipc__ip_connect_try(void *arg);
void ipc__ip_bind_evfd(struct ip_chan *ic);
int ipc__ip_attach(ipc_chan *c, ipc_deadline *dl);

#endif
