/*
 * tail.h - the rest of a message whose write was cut by its deadline.
 *
 * Backends that write a message in pieces (the stream backends, and shm
 * for messages larger than half its ring) cannot take back the part that
 * already went out when the deadline passes, and the contract says that a
 * send either returns 0 and the whole message arrives, whatever the sender
 * does next, or returns a timeout and nothing of it arrives. So a cut
 * message keeps its unsent bytes here and a short-lived writer thread
 * finishes it in the background, like the I/O threads of nng and ZeroMQ,
 * but only for as long as a cut message is pending (the common path starts
 * no thread and takes no lock). The sender's next send waits for it within
 * its own timeout (ipc__tail_wait); ipc_close lingers up to 1 s for it.
 *
 * Memory for the rest is reserved before the first byte is written
 * (ipc__tail_reserve), so running out of memory is reported before
 * anything is sent (-ENOMEM), never after part of a message left.
 * When no thread can be started (the process is at its thread limit), the
 * send finishes the write itself for up to a second past its deadline;
 * should the peer not take it in that time, the channel is broken off
 * (abort: the peer sees this end end mid-message, -EPIPE) and the send
 * returns -EPIPE: a message is never torn silently.
 *
 * Threads: the tail belongs to the sending side. The flusher is the only
 * writer while it runs; a receiving thread never touches the tail.
 */
#ifndef IPC_TAIL_H
#define IPC_TAIL_H

#include "backend.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/uio.h>

/* Write n bytes of p within dl: 0 once all are written, else the error
 * (a timeout error when dl passed), with *done the bytes that went. */
typedef int (*ipc_tail_write_fn)(ipc_chan *c, const unsigned char *p, size_t n,
				 ipc_deadline *dl, size_t *done);
/* Break the channel off so the peer sees this end gone mid-message, and
 * make later sends fail with -EPIPE. */
typedef void (*ipc_tail_abort_fn)(ipc_chan *c);

struct ipc_tail {
	ipc_chan *c;
	ipc_tail_write_fn write;
	ipc_tail_abort_fn abort;
	unsigned char *buf;     /* reserved room, kept between messages */
	size_t cap;
	size_t len, off;        /* pending bytes are buf[off .. len) */
	atomic_bool active;     /* a flusher owns the pending bytes */
	atomic_bool stop;       /* close gave up waiting: stop at the next slice */
	int err;                /* how the last flusher ended (0 or -errno) */
	bool joinable;
	bool sync_init;
	pid_t th_pid;           /* the process that started th */
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* broadcast when a flusher ends */
};

/* Prepare t for channel c (whose owner is the process that may run a
 * flusher). 0 or -ENOMEM. */
int ipc__tail_init(struct ipc_tail *t, ipc_chan *c, ipc_tail_write_fn write,
		   ipc_tail_abort_fn abort);

/* Before a write that a deadline could cut: room for n bytes of rest.
 * 0 or -ENOMEM (then nothing must be written). */
int ipc__tail_reserve(struct ipc_tail *t, size_t n);

/* Before a new message: wait within dl until no tail is pending. 0, the
 * timeout error (nothing of the new message may go), or the error that
 * ended the last flusher (-EPIPE...). */
int ipc__tail_wait_slow(struct ipc_tail *t, ipc_deadline *dl);
static inline int ipc__tail_wait(struct ipc_tail *t, ipc_deadline *dl)
{
	if (!atomic_load_explicit(&t->active, memory_order_acquire) && !t->err)
		return 0;
	return ipc__tail_wait_slow(t, dl);
}

/* The deadline cut a message: keep the unwritten iovec (n entries, at most
 * the reserved bytes) and finish writing it in the background. Returns 0
 * (the message counts as sent) or, when no thread could be started and
 * the synchronous finish failed, its error (-EPIPE). */
int ipc__tail_start(struct ipc_tail *t, const struct iovec *iov, int n);

/* At close: give a pending tail up to linger_ms, then stop its writer and
 * release everything. In a forked child whose copy of the channel has a
 * writer running in the parent, it frees memory only. */
void ipc__tail_fini(struct ipc_tail *t, int linger_ms);

#endif
