/* rows/peer.c - what the ZeroMQ and nng rows share: queue depth, the URL the
 * serving side binds, and the removal of ipc:// socket files. */
#include "row.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int peer_queue_depth(size_t size)
{
	size_t d = ((size_t)4 << 20) / (size ? size : 1);
	return d < 4 ? 4 : d > 1000 ? 1000 : (int)d;
}

void peer_url(const struct chan *c, const char *lib, int i, bool any_port_star, char *url, size_t cap)
{
	struct peer_prep *p = c->prep;
	if (c->s.form == FORM_INET) {
		char hp[96];
		fmt_hostport(hp, sizeof(hp), c->host, 0);
		if (any_port_star)   /* ZeroMQ spells "any port" as '*' */
			hp[strlen(hp) - 1] = '*';
		snprintf(url, cap, "tcp://%s", hp);
		return;
	}
	snprintf(p->name[i], sizeof(p->name[i]), "/tmp/ipckit-bench-%s-%d-%d.%s", lib, (int)getpid(),
		 c->idx, i ? "push" : "pair");
	snprintf(url, cap, "ipc://%s", p->name[i]);
}

void peer_unlink(const struct chan *c)
{
	const struct peer_prep *p = c->prep;
	for (int i = 0; p && i < 2; i++)
		if (p->name[i][0])
			unlink(p->name[i]);
}
