/*
 * bench.h - ipckit-bench internals: channels (one per row implementation),
 * the two-process harness and the result rows.
 *
 * A "group" is every channel measured for one mechanism at one size: the
 * ipckit backend, its raw-syscall baselines and, for unix and tcp, the
 * ZeroMQ and nng peers. One pair of processes (the leader, side 0, pinned
 * to CPU A and the child, side 1, pinned to CPU B) opens all of them and
 * runs the latency rounds interleaved, so machine noise hits every row of
 * the group alike; then the throughput streams one after another.
 */
#ifndef BENCH_H
#define BENCH_H

#include "hist.h"
#include "ipckit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Every message starts with its sequence number and a checksum (16 bytes),
 * so the smallest size measured is 16. Control messages have the same size
 * as data messages and a flag in the sequence number. */
#define MSG_HDR 16
#define SEQ_STOP (1ull << 63)  /* end of a latency round; low bits: round */
#define SEQ_END (1ull << 62)   /* end of a throughput stream */

enum chan_kind {
	CK_IPCKIT,
	CK_RAW_TCP, CK_RAW_UDP, CK_RAW_UNIX, CK_RAW_FIFO, CK_RAW_PIPE, CK_RAW_MQ,
	CK_RAW_SPIN, CK_RAW_EVENTFD,
	CK_ZMQ, CK_NNG,
};

enum { MODE_LATENCY = 1, MODE_THROUGHPUT = 2 };

struct chan;

/* What a row implementation does on an open channel. recv returns the
 * message length or a negative errno; timeout_ms as in ipckit (-1 forever,
 * 0 poll). The t* ops carry the one-way throughput stream; NULL means the
 * latency ops carry it too. tsendv may be NULL (one send per message). */
struct ep_ops {
	int (*send)(struct chan *c, const void *buf, size_t len);
	ssize_t (*recv)(struct chan *c, void *buf, size_t cap, int timeout_ms);
	int (*tsend)(struct chan *c, const void *buf, size_t len);
	ssize_t (*trecv)(struct chan *c, void *buf, size_t cap, int timeout_ms);
	int (*tsendv)(struct chan *c, const ipc_msg *m, size_t n);
	void (*close)(struct chan *c);
	/* Sleep until a message may be there to receive or deadline_ns
	 * (CLOCK_MONOTONIC; 0: none) passes; NULL: the row spins, so the
	 * caller polls recv(..., 0) instead. Used by the open-loop pinger. */
	int (*wait)(struct chan *c, uint64_t deadline_ns);
};

struct chan {
	/* Labels of the rows this channel produces. */
	char backend[16];  /* ipckit scheme; "ipc" or "tcp" for peers */
	char impl[8];      /* ipckit, raw, zmq, nng */
	char variant[16];  /* "" or a baseline variant: spin, eventfd */
	char wait[12];     /* adaptive, block, spin */
	int kind;          /* enum chan_kind */
	int wait_mode;     /* IPC_WAIT_* for ipckit channels */
	bool lossy;        /* udp: messages may be dropped or reordered */
	bool zerocopy;     /* ipckit through reserve/commit and peek/release */
	bool tput_only;    /* a throughput row only (no latency row) */
	int batch;         /* throughput: 1 = one ipc_send per message; 0 = --batch */
	size_t size;       /* message size of this group */
	int idx;           /* position in the group (unique names) */
	int ctl;           /* control socket to the other process */
	bool name_mq;      /* name[] are POSIX queue names, not paths */
	int side;          /* 0 leader (server, pinger, sender), 1 child */
	bool tput;         /* the throughput stream is running */

	/* Prepared by the leader before fork. */
	int pfd[4];
	void *map;
	size_t map_len;
	ipc_chan *pair[2];
	char name[2][128];
	int port;

	/* Open state of this side. */
	const struct ep_ops *ops;
	int rfd, wfd;
	int efd_data[2], efd_free[2];
	ipc_chan *ic;
	void *zctx, *zsock, *ztsock;   /* ZeroMQ */
	uint32_t nsock, ntsock;        /* nng socket ids */
	int peer_hwm;
	int peer_tmo[2];               /* nng receive timeout last set */

	/* Open loop (--rate): the row's own schedule, continuous over its
	 * turns. Message ol_next is due at ol_next / rate on the row's own
	 * clock, which stood at ol_clock_ns when its last turn stopped
	 * scheduling. */
	uint64_t ol_next;
	double ol_clock_ns;
};

/* One measured row (also what a leader sends to the main process). */
struct row {
	char backend[16], impl[8], variant[16], wait[12];
	int mode;
	uint32_t size;
	int pairs;
	int batch;          /* throughput: messages per ipc_sendv call */
	double rate;        /* latency: open-loop rate (msg/s), 0 closed loop */
	uint64_t count;     /* samples (latency) or messages delivered */
	uint64_t sent;      /* throughput: messages sent */
	uint64_t errors;    /* sequence / checksum / length failures */
	uint64_t lost;      /* lossy backends: messages that never arrived */
	double elapsed_s;
	double msgs_per_s, bytes_per_s;
	double cpu_ns[2];   /* per message: sender, receiver */
	uint64_t ctx[2];    /* context switches: sender, receiver */
	hist h;             /* latency: RTT samples in ns */
};

/* Options shared by the harness. */
struct bench_opts {
	int modes;              /* MODE_* bits */
	uint64_t count;         /* latency samples per row */
	bool count_set;         /* --count given: also the throughput length */
	uint64_t warmup;
	double duration;        /* throughput seconds per row */
	double lat_cap;         /* latency seconds per row at most (0: none) */
	int rounds;             /* interleaved latency rounds */
	int batch;              /* ipc_sendv batch for ipckit throughput */
	double rate;            /* --rate, 0 = closed loop */
	int pairs;
	int pin[2];             /* CPUs, -1 = no pinning */
	bool verbose;
};

/* chan.c: channel life cycle. prepare runs in the leader before fork,
 * open on each side after fork (the leader sends the child what it needs
 * over ctl), cleanup in the leader after the child has exited. */
int chan_prepare(struct chan *c);
int chan_open(struct chan *c, int side, int ctl);
void chan_close(struct chan *c);
void chan_cleanup(struct chan *c);
/* Remove the filesystem / queue names of c (async-signal-safe). */
void chan_unlink_names(const struct chan *c);
/* The largest message the raw or peer mechanism of c carries. */
size_t chan_raw_limit(const struct chan *c);
/* Control socket helpers (blocking, bounded by a generous timeout). */
int ctl_write(int fd, const void *p, size_t n);
int ctl_read(int fd, void *p, size_t n, int timeout_ms);
/* A length-prefixed string (URLs). */
int ctl_send_str(int fd, const char *s);
int ctl_recv_str(int fd, char *s, size_t cap);
/* Has the peer process gone (its control socket hung up)? */
bool ctl_peer_gone(int fd);
/* Wait in ppoll until fd is readable or deadline_ns (0: none) passes;
 * each call sleeps 100 ms at most. 0 or a negative errno. */
int wait_fd_until(int fd, uint64_t deadline_ns);

/* peers.c (only with ZeroMQ / nng). */
int peer_zmq_open(struct chan *c, int side, int ctl);
int peer_nng_open(struct chan *c, int side, int ctl);

/* harness.c: run one group in a pair of processes. Fills rows (n_rows
 * returned, at most max_rows) and returns 0, or a negative errno. */
int run_group(struct chan *chans, int n, const struct bench_opts *o,
	      struct row *rows, int max_rows, void (*progress)(const char *msg));

/* Message integrity. */
void msg_fill(unsigned char *buf, size_t len, uint64_t seq);
/* 0 when buf holds an intact message of len bytes; sets *seq. */
int msg_check(const unsigned char *buf, ssize_t got, size_t len, uint64_t *seq);

uint64_t now_ns(void);
int pin_cpu(int cpu);

#endif
