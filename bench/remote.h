/* remote.h - the echo side on another host (remote.c). */
#ifndef BENCH_REMOTE_H
#define BENCH_REMOTE_H

#include "bench.h"

/* What the serving side says about itself. */
struct remote_info {
	char machine[256];   /* CPU, kernel */
	uint32_t kinds;      /* bit i: it has row kind i (plan.c's registry) */
};

/* --connect: ask the serving side at hostport about itself. */
int remote_probe(const char *hostport, struct remote_info *info);
/* --connect: one group's session; returns the control socket (>= 0) with
 * the plan sent, or -errno. */
int remote_session(const char *hostport, const struct chan *chans, int n, const struct bench_opts *o);
/* --serve: answer sessions on hostport until SIGINT / SIGTERM. */
int remote_serve(const char *hostport, const struct bench_opts *o);
/* "tcp://host:port" -> "host:port" (the control connection's address). */
int remote_parse_url(const char *url, char *hostport, size_t cap);

#endif
