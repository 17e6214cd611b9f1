/*
 * plan.c - which rows run. Everything about a backend comes from the library:
 * ipc_backends() names them, ipc_backend_info() gives caps and limits, and
 * those decide the URL form (host:port, @name, a path, or ipc_pair), whether
 * the two ends are processes or threads (IPC_CAP_PROCESS), whether the row is
 * lossy (IPC_CAP_RELIABLE), gets a zero-copy row (IPC_CAP_ZERO_COPY) and one
 * row per wait mode. Backend names appear only in the two tables below: the
 * raw mechanism each backend is compared with, and the peers that use it.
 */
#include "plan.h"
#include "fmt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Sizes up to this also get a one-ipc_send-per-message throughput row. */
#define SEND_ROW_MAX 4096

const char *const wait_names[3] = { "adaptive", "block", "spin" };

/* Stable ids: index = id. */
static const struct kind *const kinds[] = {
	&kind_ipckit, &kind_ipckit_zc,
	&kind_raw_tcp, &kind_raw_udp, &kind_raw_unix, &kind_raw_fifo, &kind_raw_pipe, &kind_raw_mq,
	&kind_raw_spin, &kind_raw_eventfd,
#ifdef BENCH_HAVE_ZMQ
	&kind_zmq,
#else
	NULL,
#endif
#ifdef BENCH_HAVE_NNG
	&kind_nng,
#else
	NULL,
#endif
};

const struct kind *kind_by_id(int id)
{
	return id >= 0 && id < kind_count() ? kinds[id] : NULL;
}

int kind_count(void)
{
	return (int)(sizeof(kinds) / sizeof(kinds[0]));
}

static int kind_id(const struct kind *k)
{
	for (int i = 0; i < kind_count(); i++)
		if (kinds[i] == k)
			return i;
	return -1;
}

/* The raw-baseline table: the mechanism's own system calls for each
 * backend; wait says how its reader waits (block: in the kernel, spin). */
static const struct raw_entry {
	const char *backend;
	const struct kind *kind;
	const char *variant, *wait;
} raw_table[] = {
	{ "tcp", &kind_raw_tcp, "", "block" },
	{ "udp", &kind_raw_udp, "", "block" },
	{ "unix", &kind_raw_unix, "", "block" },
	{ "fifo", &kind_raw_fifo, "", "block" },
	{ "pipe", &kind_raw_pipe, "", "block" },
	{ "mq", &kind_raw_mq, "", "block" },
	{ "shm", &kind_raw_spin, "spin", "spin" },
	{ "shm", &kind_raw_eventfd, "eventfd", "block" },
};

/* The peers that use a backend's mechanism, and their transport label. */
static const struct peer_entry {
	const char *backend, *label;
	int form;
} peer_table[] = {
	{ "unix", "ipc", FORM_PATH_TMP },
	{ "tcp", "tcp", FORM_INET },
};

void plan_skip(struct plan *p, const char *be, const char *impl, const char *variant, size_t size,
	       const char *why)
{
	if (p->nskips == p->cap_skips) {
		int n = p->cap_skips ? 2 * p->cap_skips : 32;
		struct skip *s = realloc(p->skips, (size_t)n * sizeof(*s));
		if (!s)
			return;
		p->skips = s;
		p->cap_skips = n;
	}
	struct skip *s = &p->skips[p->nskips++];
	memset(s, 0, sizeof(*s));
	snprintf(s->backend, sizeof(s->backend), "%s", be);
	snprintf(s->impl, sizeof(s->impl), "%s", impl);
	snprintf(s->variant, sizeof(s->variant), "%s", variant);
	s->size = (uint32_t)size;
	snprintf(s->reason, sizeof(s->reason), "%s", why);
}

/* Can a server be opened on this URL form? (path forms: which spelling of
 * a name the backend takes) */
static bool form_works(const char *be, int form, int *err)
{
	char url[256];
	ipc_chan *c = NULL;
	int pid = (int)getpid();
	if (form == FORM_PATH_TMP)
		snprintf(url, sizeof(url), "%s:///tmp/ipckit-bench-probe-%d", be, pid);
	else if (form == FORM_PATH_ROOT)
		snprintf(url, sizeof(url), "%s:///ipckit-bench-probe-%d", be, pid);
	else
		snprintf(url, sizeof(url), "%s://ipckit-bench-probe-%d", be, pid);
	int r = ipc_open(&c, url, IPC_SERVER, NULL);
	ipc_close(c);
	if (r < 0 && (*err == 0 || *limit_hint(be, r)))
		*err = r; /* the first error, or one a limit explains */
	return r >= 0;
}

void plan_backend(struct backend *b, bool remote)
{
	ipc_info info;
	int r = ipc_backend_info(b->name, &info);
	b->ok = false;
	if (r < 0) {
		snprintf(b->why, sizeof(b->why), "not usable here: %s", ipc_strerror(r));
		return;
	}
	b->max_msg = info.max_msg;
	b->caps = info.caps;
	if (remote && !(b->caps & IPC_CAP_CROSS_HOST)) {
		snprintf(b->why, sizeof(b->why), "cannot reach another host (no IPC_CAP_CROSS_HOST)");
		return;
	}
	if (b->caps & IPC_CAP_CROSS_HOST) {
		b->form = FORM_INET;
	} else if (b->caps & IPC_CAP_ABSTRACT) {
		b->form = FORM_ABSTRACT;
	} else if (b->caps & IPC_CAP_UNRELATED) {
		int err = 0;
		for (b->form = FORM_PATH_TMP; b->form <= FORM_NAME && !form_works(b->name, b->form, &err);
		     b->form++)
			;
		if (b->form > FORM_NAME) {
			snprintf(b->why, sizeof(b->why), "no address form could be opened: %s",
				 bench_strerror(b->name, err));
			return;
		}
	} else if (b->caps & IPC_CAP_PAIR) {
		b->form = FORM_PAIR;
	} else {
		snprintf(b->why, sizeof(b->why), "neither a URL nor ipc_pair can give two ends");
		return;
	}
	b->ok = true;
}

static struct chan *add(struct chan *cs, int *n, int max, const struct kind *k, const char *backend,
			const char *group, const char *variant, int wait, size_t size)
{
	if (*n >= max)
		return NULL;
	struct chan *c = &cs[(*n)++];
	memset(c, 0, sizeof(*c));
	c->k = k;
	c->s.kind = kind_id(k);
	c->s.tune_from = -1;
	c->s.wait_mode = wait;
	c->s.size = (uint32_t)size;
	snprintf(c->s.backend, sizeof(c->s.backend), "%s", backend);
	snprintf(c->s.group, sizeof(c->s.group), "%s", group);
	snprintf(c->s.impl, sizeof(c->s.impl), "%s", k->impl);
	snprintf(c->s.variant, sizeof(c->s.variant), "%s", variant);
	snprintf(c->s.wait, sizeof(c->s.wait), "%s", wait_names[wait]);
	return c;
}

static bool kind_usable(const struct plan *p, const struct kind *k)
{
	return !p->remote || (k->cross_host && (p->remote_kinds >> kind_id(k) & 1));
}

/* The raw rows of backend b (from raw_table), their ipckit rows' baseline
 * labels and tuning source. */
static void plan_raw(struct plan *p, const struct backend *b, size_t size, struct chan *cs, int *n,
		     int max, int first_ik, bool threads)
{
	int raw_block = -1, raw_spin = -1;
	char why[96];
	for (size_t i = 0; i < sizeof(raw_table) / sizeof(raw_table[0]); i++) {
		const struct raw_entry *e = &raw_table[i];
		if (strcmp(e->backend, b->name) || !kind_usable(p, e->kind))
			continue;
		int wait = !strcmp(e->wait, "spin") ? IPC_WAIT_SPIN : IPC_WAIT_BLOCK;
		struct chan *c = add(cs, n, max, e->kind, b->name, b->name, e->variant, wait, size);
		if (!c)
			return;
		size_t lim = e->kind->limit ? e->kind->limit(c) : SIZE_MAX;
		if (size > lim) {
			snprintf(why, sizeof(why), "larger than the mechanism's limit (%zu)", lim);
			plan_skip(p, b->name, "raw", e->variant, size, why);
			(*n)--;
			continue;
		}
		c->s.lossy = !(b->caps & IPC_CAP_RELIABLE);
		c->s.threads = threads;
		c->s.tune_from = first_ik;
		if (wait == IPC_WAIT_SPIN && raw_spin < 0)
			raw_spin = *n - 1;
		if (wait == IPC_WAIT_BLOCK && raw_block < 0)
			raw_block = *n - 1;
	}
	/* Each ipckit row is compared with the raw row that waits as it does:
	 * wait=block with a reader asleep in the kernel; spin and adaptive with
	 * a spinning one where there is one. */
	for (int i = first_ik; first_ik >= 0 && i < *n; i++) {
		struct chan *c = &cs[i];
		if (strcmp(c->s.impl, "ipckit") || strcmp(c->s.group, b->name))
			continue;
		int bi = c->s.wait_mode == IPC_WAIT_BLOCK || raw_spin < 0 ? raw_block : raw_spin;
		if (bi >= 0)
			series_label(c->s.baseline, sizeof(c->s.baseline), cs[bi].s.backend, "raw",
				     cs[bi].s.variant, "", cs[bi].s.threads, 1);
	}
}

static void plan_peers(struct plan *p, const struct backend *b, size_t size, struct chan *cs, int *n,
		       int max)
{
	static const struct kind *const peer_kinds[] = {
#ifdef BENCH_HAVE_ZMQ
		&kind_zmq,
#endif
#ifdef BENCH_HAVE_NNG
		&kind_nng,
#endif
		NULL,
	};
	const char *baseline = "";
	for (int i = 0; i < *n; i++)
		if (!strcmp(cs[i].s.impl, "raw") && !strcmp(cs[i].s.group, b->name) &&
		    cs[i].s.wait_mode == IPC_WAIT_BLOCK)
			baseline = cs[i].s.backend;
	for (size_t i = 0; i < sizeof(peer_table) / sizeof(peer_table[0]); i++) {
		const struct peer_entry *e = &peer_table[i];
		if (strcmp(e->backend, b->name))
			continue;
		for (int k = 0; peer_kinds[k]; k++) {
			if (!kind_usable(p, peer_kinds[k]))
				continue;
			struct chan *c = add(cs, n, max, peer_kinds[k], e->label, b->name, "", IPC_WAIT_BLOCK,
					     size);
			if (!c)
				return;
			c->s.form = e->form;
			if (*baseline)
				series_label(c->s.baseline, sizeof(c->s.baseline), baseline, "raw", "", "",
					     false, 1);
		}
	}
}

int plan_group(struct plan *p, const struct bench_opts *o, size_t size, struct chan *cs, int max)
{
	int n = 0;
	char why[96];
	for (int i = 0; i < p->nbe; i++) {
		const struct backend *b = &p->be[i];
		if (!b->ok)
			continue;
		bool threads = o->threads || !(b->caps & IPC_CAP_PROCESS);
		bool lossy = !(b->caps & IPC_CAP_RELIABLE);
		if (size > b->max_msg) {
			snprintf(why, sizeof(why), "larger than the backend's max_msg (%zu)", b->max_msg);
			plan_skip(p, b->name, "ipckit", "", size, why);
			continue;
		}
		/* Every wait mode where the backend waits on its own rings in
		 * user space (the zero-copy backends), or wherever --wait asked. */
		int nw = p->waits_given || (b->caps & IPC_CAP_ZERO_COPY) ? p->nwaits : 1;
		int first = n;
		for (int w = 0; w < nw + 2; w++) {
			const struct kind *k = &kind_ipckit;
			const char *variant = "";
			int wait = p->waits[w < nw ? w : 0];
			if (w == nw) {
				/* one ipc_send per message: like for like with the raw
				 * rows, and between backends whatever their batching */
				if (!(o->modes & MODE_THROUGHPUT) || o->batch <= 1 || size > SEND_ROW_MAX)
					continue;
				variant = "send";
			} else if (w == nw + 1) {
				if (!(b->caps & IPC_CAP_ZERO_COPY))
					continue;
				k = &kind_ipckit_zc;
				variant = "zerocopy";
			}
			if (!kind_usable(p, k))
				continue;
			struct chan *c = add(cs, &n, max, k, b->name, b->name, variant, wait, size);
			if (!c)
				return n;
			c->s.form = b->form;
			c->s.lossy = lossy;
			c->s.threads = threads;
			c->s.tput_only = w == nw;
			c->s.batch = w == nw ? 1 : 0;
			c->s.max_msg = size > ((size_t)16 << 20) ? size : 0;
		}
		if (p->baseline)
			plan_raw(p, b, size, cs, &n, max, n > first ? first : -1, threads);
	}
	/* Peers last: their libraries open descriptors in background threads,
	 * which must not be taken for the tuning of an ipckit or raw row. */
	for (int i = 0; i < p->nbe; i++)
		if (p->peers && p->be[i].ok && size <= p->be[i].max_msg &&
		    !o->threads && (p->be[i].caps & IPC_CAP_PROCESS))
			plan_peers(p, &p->be[i], size, cs, &n, max);
	return n;
}
