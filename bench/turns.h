/* turns.h - the measuring loops of one turn (turns.c), used by harness.c. */
#ifndef BENCH_TURNS_H
#define BENCH_TURNS_H

#include "rows/row.h"

/* Buffers of one side: a send area big enough for a batch, a receive area
 * for one message (and room for a recvv batch), all touched up front. */
struct bufs {
	unsigned char *s, *r;
	size_t scap, rcap;
	ipc_buf *rb;         /* batch receive buffers, stride bytes apart in r */
	int nb;
	size_t stride;
};

/* What the echo side tells the leader after each turn (and the hello). */
struct turn_report {
	uint64_t received, errors, cpu_ns, nvcsw, nivcsw;
};

/* One latency / gap / throughput turn's outcome on the leader. */
struct turn_out {
	uint64_t count, sent, errors, lost;
	uint64_t elapsed_ns, cpu_ns, nvcsw, nivcsw;
	struct turn_report echo;
};

void turns_setup(const struct bench_opts *o);
int bufs_init(struct bufs *b, size_t size, int batch);
void bufs_free(struct bufs *b);
/* Messages per ipc_sendv / ipc_recvv call of this row's throughput turns. */
int batch_of(const struct chan *c, const struct bench_opts *o);

/* Leader. warmup: unrecorded pings first; gap_ns: sleep that long after
 * each echo before the next ping (idle-gap rows); h gets the samples. */
int lat_turn(struct ep *e, struct bufs *b, uint32_t turn, uint64_t n, uint64_t budget_ns,
	     uint64_t warmup, uint64_t warmup_budget_ns, uint64_t gap_ns, hist *h, struct turn_out *out);
int tput_turn(struct ep *e, struct bufs *b, uint32_t turn, uint64_t limit, uint64_t dur_ns,
	      struct turn_out *out);
/* The hello: one message each way, then the echo side's report. */
int hello_turn(struct ep *e, struct bufs *b);

/* Echo side. */
int pong_turn(struct ep *e, struct bufs *b, uint32_t turn);
int sink_turn(struct ep *e, struct bufs *b, uint32_t turn);

#endif
