/*
 * inproc/rendezvous.c - the names of this process: a table of endpoints
 * (servers and listeners) under reg_mu, each with a backlog of clients
 * waiting to be taken; a client's connect, a server's attach, and how a
 * channel's ipc_fd is bound to its receive direction.
 */
#include "backends/inproc/inproc.h"
#include "posix/fdio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct endpoint *reg;

/* ----------------------------------------------------------- rendezvous */

static struct endpoint *ipc__ip_reg_find(const char *name)
{
	for (struct endpoint *e = reg; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

int ipc__ip_ep_register(struct endpoint **out, const char *name, bool listener,
		       size_t max_msg)
{
	struct endpoint *e = ipc__calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->listener = listener;
	e->max_msg = max_msg;
	e->evfd = -1;
	if (pthread_mutex_init(&e->mu, NULL) != 0 || ipc__ip_cond_init(&e->cv) < 0) {
		free(e);
		return -ENOMEM;
	}
	pthread_mutex_lock(&reg_mu);
	if (ipc__ip_reg_find(name)) {
		pthread_mutex_unlock(&reg_mu);
		pthread_cond_destroy(&e->cv);
		pthread_mutex_destroy(&e->mu);
		free(e);
		return -EADDRINUSE;
	}
	e->next = reg;
	reg = e;
	pthread_mutex_unlock(&reg_mu);
	*out = e;
	return 0;
}

/* Unregister e and free it; clients still in its backlog see the server
 * gone. */
void ipc__ip_ep_unregister(struct endpoint *e)
{
	pthread_mutex_lock(&reg_mu);
	for (struct endpoint **p = &reg; *p; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			break;
		}
	pthread_mutex_unlock(&reg_mu);
	/* no client can reach e now (they look it up under reg_mu) */
	for (unsigned i = 0; i < e->nb; i++) {
		ipc__ip_core_close_side(e->backlog[i], 0);
		ipc__ip_core_unref(e->backlog[i]);
	}
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

/* (e->mu held) */
void ipc__ip_ep_ev(struct endpoint *e)
{
	ipc__ev_level(e->evfd, &e->ev_on, e->nb > 0);
}

/* Take the first client of e within dl: its core, or an error. */
int ipc__ip_ep_take(struct endpoint *e, struct ip_chan *ic, ipc_deadline *dl, struct core **out)
{
	int r = 0;
	pthread_mutex_lock(&e->mu);
	while (e->nb == 0) {
		if (ipc__dl_nowait(dl)) {
			r = -EAGAIN;
			break;
		}
		if (ipc__dl_forever(dl)) {
			pthread_cond_wait(&e->cv, &e->mu);
			continue;
		}
		int64_t at = ipc__dl_at(dl);
		struct timespec ts = { (time_t)(at / 1000000000), (long)(at % 1000000000) };
		if (pthread_cond_timedwait(&e->cv, &e->mu, &ts) == ETIMEDOUT && e->nb == 0) {
			r = -ETIMEDOUT;
			break;
		}
	}
	if (r == 0) {
		*out = e->backlog[0];
		memmove(e->backlog, e->backlog + 1, --e->nb * sizeof(e->backlog[0]));
		ipc__ip_ep_ev(e);
	}
	pthread_mutex_unlock(&e->mu);
	(void)ic;
	return r;
}


/* One client attempt: the core is queued at the endpoint, or -ECONNREFUSED
 * (no such name), -EAGAIN (backlog full), -ENOMEM. */
int ipc__ip_connect_try(void *arg)
{
	struct connect_try *t = arg;
	struct core *k = NULL;
	pthread_mutex_lock(&reg_mu);
	bool there = ipc__ip_reg_find(t->name) != NULL;
	pthread_mutex_unlock(&reg_mu);
	if (!there)
		return -ECONNREFUSED; /* (no rings made for nothing while we wait) */
	int r = ipc__ip_core_new(&k, 0, t->cap);
	if (r < 0)
		return r;
	pthread_mutex_lock(&reg_mu);
	struct endpoint *e = ipc__ip_reg_find(t->name);
	if (!e) {
		r = -ECONNREFUSED;
	} else {
		pthread_mutex_lock(&e->mu);
		if (e->nb == IP_BACKLOG) {
			r = -EAGAIN;
		} else {
			k->max_msg[0] = e->max_msg;
			k->max_msg[1] = t->max_msg;
			t->peer_max = e->max_msg;
			e->backlog[e->nb++] = k;
			pthread_cond_signal(&e->cv);
			ipc__ip_ep_ev(e);
		}
		pthread_mutex_unlock(&e->mu);
	}
	pthread_mutex_unlock(&reg_mu);
	if (r < 0) {
		ipc__ip_core_unref(k);
		ipc__ip_core_unref(k);
		return r;
	}
	t->k = k;
	return 0;
}

/* Point this end's receive direction at its ipc_fd, if it has one. */
void ipc__ip_bind_evfd(struct ip_chan *ic)
{
	if (ic->evfd < 0 || !ic->k)
		return;
	struct dir *in = &ic->k->d[1 - ic->side];
	pthread_mutex_lock(&in->mu);
	in->evfd = ic->evfd;
	in->ev_on = false;
	{
		/* the eventfd may hold a count from the endpoint: start clean */
		uint64_t v;
		(void)!read(ic->evfd, &v, sizeof(v));
	}
	ipc__ip_dir_ev(in);
	pthread_mutex_unlock(&in->mu);
}

int ipc__ip_attach(ipc_chan *c, ipc_deadline *dl)
{
	struct ip_chan *ic = IP(c);
	int r = ipc__mutex_lock_dl(&ic->alock, dl);
	if (r < 0)
		return r;
	if (!atomic_load(&ic->ready)) {
		struct core *k;
		if ((r = ipc__ip_ep_take(ic->ep, ic, dl, &k)) == 0) {
			/* a channel is a pair: release the name */
			ipc__ip_ep_unregister(ic->ep);
			ic->ep = NULL;
			ic->k = k;
			ic->side = 0;
			atomic_store(&c->peer_max, k->max_msg[1]);
			ipc__ip_bind_evfd(ic);
			atomic_store_explicit(&ic->ready, true, memory_order_release);
		}
	}
	pthread_mutex_unlock(&ic->alock);
	return r;
}

