/*
 * bench.h - ipckit-bench internals. What lives where:
 *
 *   main.c       a short main: parse, plan, run every group, write the results
 *   cli.c        the command line -> struct config
 *   plan.c       which rows run, from ipc_backends() and ipc_backend_info() (caps,
 *                limits, address forms), the raw-baseline table, the kind registry
 *   supervise.c  the main process: one leader process per group (and per --pairs),
 *                their records, timeouts, Ctrl-C/SIGTERM, leftover names, reruns
 *   harness.c    one group in a leader and its echo side (a child process, a thread
 *                for rows without IPC_CAP_PROCESS, or a remote host): opening rows,
 *                the shuffled rounds of turns, the echo loop
 *   turns.c      the measuring loop of one turn: ping-pong, open loop, idle gap,
 *                one-way stream
 *   msg.c        message payloads and the checksum over every byte
 *   ctl.c        control socket, clocks, CPU pinning, resource usage
 *   machine.c    the machine under test: noise checks, memcpy and checksum costs
 *   remote.c     --serve / --connect: the echo side on another host
 *   rows/        one file per row kind behind one vtable (rows/row.h)
 *   stats.c      medians and confidence intervals over rounds
 *   out.c        results.json and CSV; table.c the terminal table; fmt.c labels
 *                and the one size formatter
 *   report/      report.md: layout, recommendation, tables, plots, --need
 *
 * A group is every row of one message size: each backend's ipckit rows, their
 * raw baselines and the ZeroMQ/nng peers. All are opened at once in one leader
 * and its echo side, and measured in --rounds rounds; in each round every row
 * takes its turns (latency, throughput, idle gap) in a shuffled order, so a
 * drift of the machine hits every row of the size alike.
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
 * so the smallest size measured is 16. The sequence number holds the turn
 * (bits 40-61) and the message's index in it, or a control flag. */
#define MSG_HDR 16
#define SEQ_STOP (1ull << 63)  /* end of a latency / gap turn */
#define SEQ_END (1ull << 62)   /* end of a throughput turn */
#define SEQ_TURN_SHIFT 40
#define SEQ_TURN_MASK ((1ull << 22) - 1)
#define SEQ_INDEX_MASK ((1ull << SEQ_TURN_SHIFT) - 1)
#define HELLO_TURN 0           /* the first message of every row */

static inline uint64_t seq_make(uint32_t turn, uint64_t i)
{
	return ((uint64_t)(turn & SEQ_TURN_MASK) << SEQ_TURN_SHIFT) | (i & SEQ_INDEX_MASK);
}

static inline uint32_t seq_turn(uint64_t s)
{
	return (uint32_t)((s >> SEQ_TURN_SHIFT) & SEQ_TURN_MASK);
}

enum { MODE_LATENCY = 1, MODE_THROUGHPUT = 2, MODE_GAP = 4 };

#define MAX_ROUNDS 256
#define MAX_GAPS 8
#define MAX_FIGS 5
#define MAX_CHANS 128         /* channels in one group */

/* Per-round figures of a row: latency and gap rows use the first five,
 * throughput rows the first three of the second list. */
enum { FIG_P50, FIG_P90, FIG_P99, FIG_P999, FIG_MEAN };
enum { FIG_MSGS = 0, FIG_CPU_S = 1, FIG_CPU_R = 2 };

/* Options shared by the harness (set by cli.c). */
struct bench_opts {
	int modes;              /* MODE_* bits */
	uint64_t count;         /* latency samples per row (over all rounds) */
	bool count_set;         /* --count given: exact, also the throughput length */
	uint64_t warmup;
	double duration;        /* throughput seconds per row (over all rounds) */
	double lat_cap;         /* latency seconds per row at most (0: none) */
	int rounds;
	int batch;              /* ipc_sendv batch for ipckit throughput */
	double rate;            /* --rate, 0 = closed loop */
	int pairs;
	int pin[2];             /* CPUs, -1 = no pinning */
	double gap_ms[MAX_GAPS];
	int ngaps;
	uint64_t gap_count;     /* idle-gap samples per row (over all rounds) */
	uint64_t seed;          /* of the shuffled turn order */
	bool corrupt;           /* self-test: flip a middle byte of one message per row */
	bool threads;           /* every row in two threads of one process */
	bool verbose;
};

/* The tuning of a row's descriptors: what buffers the mechanism got. */
struct tuning {
	uint32_t pipe_sz;          /* bytes per pipe (F_GETPIPE_SZ); 0: no pipe */
	uint32_t sndbuf, rcvbuf;   /* socket buffers as SO_SNDBUF / SO_RCVBUF report them */
	uint32_t mq_maxmsg, mq_msgsize;
	uint64_t shm_bytes;        /* shared memory (memfd) behind the channel */
};

/* What the plan says about one row: its labels and how to open it. Flat,
 * so that it can be sent to a remote echo side. */
struct spec {
	char backend[16];    /* ipckit scheme; peers: their transport label */
	char group[16];      /* the ipckit backend this row is compared with */
	char impl[8];        /* ipckit, raw, zmq, nng */
	char variant[16];    /* "", send, zerocopy; raw: spin, eventfd */
	char wait[12];       /* adaptive, block, spin */
	char baseline[64];   /* label of the raw row compared with, "" none */
	int kind;            /* index in the kind registry (plan.c) */
	int wait_mode;       /* IPC_WAIT_* */
	int form;            /* address form (ipckit rows; enum in rows/row.h) */
	uint32_t size;
	int batch;           /* throughput: 1 = one send per message; 0 = --batch */
	int tune_from;       /* row whose tuning this raw row copies, -1 none */
	bool lossy;          /* may drop or reorder (no IPC_CAP_RELIABLE) */
	bool tput_only;      /* no latency or gap rows */
	bool threads;        /* both ends are threads of one process */
	uint64_t max_msg;    /* ipckit rows: max_msg to ask for (0: default) */
};

struct chan;
struct kind;

/* One end of a row's channel. */
struct ep {
	struct chan *c;
	int side;            /* 0 leader (pinger, sender), 1 echo side */
	int ctl;             /* control socket to the other side */
	bool stream;         /* a throughput turn is running */
	bool spins;          /* the row never sleeps while waiting */
	void *st;            /* the kind's state for this end */
};

struct chan {
	struct spec s;
	const struct kind *k;
	int idx;             /* position in the group (unique names) */
	int srv_side;        /* the side that opens servers / binds */
	char host[64];       /* where servers bind and clients connect */
	void *prep;          /* the kind's state made before the fork */
	struct ep ep[2];
	struct tuning want;  /* to apply (raw rows: their ipckit row's) */
	struct tuning got;   /* measured on the leader's descriptors */
	bool corrupted;      /* --corrupt: the one bad message was sent */
	/* Open loop (--rate): the row's own schedule, continuous over its
	 * turns. Message ol_next is due at ol_next / rate on the row's own
	 * clock, which stood at ol_clock_ns when its last turn stopped. */
	uint64_t ol_next;
	double ol_clock_ns;
};

/* One measured row (also what a leader sends to the main process). */
struct row {
	char backend[16], impl[8], variant[16], wait[12], group[16];
	char baseline[64], tuning[96];
	int mode;
	uint32_t size;
	int pairs;
	int batch;          /* throughput: messages per ipc_sendv call */
	bool threads, remote, lossy;
	double rate;        /* latency: open-loop rate (msg/s), 0 closed loop */
	double gap_ms;      /* gap rows */
	uint64_t count;     /* samples (latency, gap) or messages delivered */
	uint64_t sent;      /* throughput: messages sent */
	uint64_t errors;    /* sequence / checksum / length failures */
	uint64_t lost;      /* lossy rows: messages that never arrived */
	double elapsed_s;
	uint64_t ctx[2];    /* context switches: sender / pinger, receiver / echo */
	uint64_t vcsw[2];   /* of which voluntary (the process went to sleep) */
	hist h;             /* latency: every RTT sample in ns */
	int rounds;
	double fig[MAX_ROUNDS][MAX_FIGS];
};

/* ---- limits.c: which limit an error means ---- */
/* For an error that a per-user or system limit explains, which one ran out
 * and how to raise it ("" otherwise); bench_strerror is ipc_strerror with
 * that hint after it. */
const char *limit_hint(const char *backend, int err);
const char *bench_strerror(const char *backend, int err);

/* ---- msg.c: payloads and their check ---- */
/* Write a whole message of len bytes for seq: header, payload, checksum. */
void msg_fill(void *buf, size_t len, uint64_t seq);
/* 0 when buf holds an intact message of len bytes (reads every byte); sets *seq. */
int msg_check(const void *buf, ssize_t got, size_t len, uint64_t *seq);
/* Flip one byte in the middle of a filled message (the --corrupt self-test). */
void msg_corrupt(void *buf, size_t len);
/* The checksum's name, for the results. */
extern const char msg_checksum_name[];

/* ---- ctl.c ---- */
uint64_t now_ns(void);
int pin_cpu(int cpu);
/* CPU time and context switches of this process or (thread) this thread. */
struct usage { uint64_t cpu_ns, nvcsw, nivcsw; };
void usage_now(bool thread, struct usage *u);
int ctl_write(int fd, const void *p, size_t n);
int ctl_read(int fd, void *p, size_t n, int timeout_ms);
int ctl_send_str(int fd, const char *s);
int ctl_recv_str(int fd, char *s, size_t cap);
bool ctl_peer_gone(int fd);
/* 1 if fd is readable now, 0 if not, -errno. */
int fd_readable(int fd);
/* Wait in ppoll until fd is readable or deadline_ns (0: none) passes;
 * each call sleeps 100 ms at most. 0 or a negative errno. */
int wait_fd_until(int fd, uint64_t deadline_ns);

/* ---- harness.c ---- */
/* Progress of a group: what runs now, and the row (chan index) at work. */
typedef void (*progress_fn)(int chan, const char *msg);
/* Run one group: rows (2 + ngaps per channel at most) filled, their count
 * returned, or a negative errno; *bad_row is set to the failing row's index
 * when one row is to blame (-1 otherwise). remote: "host:port" of a
 * --serve side, or NULL for a local echo side. */
int run_group(struct chan *chans, int n, const struct bench_opts *o, struct row *rows,
	      int max_rows, progress_fn progress, const char *remote, int *bad_row);
/* The echo side of a group (a child process, a thread or a remote host):
 * open the rows whose ends are here, then answer turns until done. */
int echo_main(struct chan *chans, int n, const struct bench_opts *o, int ctl, bool threads);
/* Remove the names of every row (async-signal-safe). */
void chans_unlink(const struct chan *chans, int n);

#endif
