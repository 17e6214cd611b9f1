/*
 * limits.c - which per-user or system limit an error means, and how to
 * raise it, for the bench's messages: an -EMFILE is the open-file limit
 * (RLIMIT_NOFILE) when this process is at it, else, on mq, the user's
 * message-queue memory (RLIMIT_MSGQUEUE); -ENFILE the system's file table;
 * -ENOSPC on mq the system's queue count. No backend locks memory, so
 * RLIMIT_MEMLOCK never applies (docs/reliability.md, "Limits"). Without a
 * backend (a whole group failed, in another process) both limits are named.
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = -1; /* the directory's own descriptor */
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void limit_text(char *buf, size_t cap, int res, const char *unit)
{
	struct rlimit rl;
	if (getrlimit(res, &rl) != 0) {
		snprintf(buf, cap, "?");
		return;
	}
	if (rl.rlim_cur == RLIM_INFINITY)
		snprintf(buf, cap, "unlimited");
	else if (rl.rlim_max == RLIM_INFINITY)
		snprintf(buf, cap, "%llu%s, hard limit unlimited", (unsigned long long)rl.rlim_cur, unit);
	else
		snprintf(buf, cap, "%llu%s, hard limit %llu", (unsigned long long)rl.rlim_cur, unit,
			 (unsigned long long)rl.rlim_max);
}

const char *limit_hint(const char *backend, int err)
{
	static _Thread_local char buf[400];
	char lim[96];
	bool mq = backend && strcmp(backend, "mq") == 0;
	if (err == -EMFILE) {
		struct rlimit rl;
		long fds = open_fds();
		bool at_nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
				 fds >= 0 && (rlim_t)fds + 4 >= rl.rlim_cur;
		if (!backend) {
			char qlim[96];
			limit_text(lim, sizeof(lim), RLIMIT_NOFILE, "");
			limit_text(qlim, sizeof(qlim), RLIMIT_MSGQUEUE, " bytes");
			snprintf(buf, sizeof(buf),
				 "a process ran out of descriptors (RLIMIT_NOFILE: %s; raise it with `ulimit -n "
				 "N`) or, with mq rows, the user's message-queue memory ran out "
				 "(RLIMIT_MSGQUEUE: %s; raise it with `ulimit -q BYTES`)", lim, qlim);
		} else if (mq && !at_nofile) {
			limit_text(lim, sizeof(lim), RLIMIT_MSGQUEUE, " bytes");
			snprintf(buf, sizeof(buf),
				 "the per-user message-queue memory ran out (RLIMIT_MSGQUEUE: %s; each queue "
				 "counts about depth x max_msg bytes, two queues per channel, summed over all "
				 "of the user's processes): raise it with `ulimit -q BYTES` (LimitMSGQUEUE= in "
				 "a systemd unit, msgqueue in /etc/security/limits.conf), or open smaller "
				 "queues (max_msg, capacity)", lim);
		} else {
			limit_text(lim, sizeof(lim), RLIMIT_NOFILE, "");
			snprintf(buf, sizeof(buf),
				 "this process ran out of descriptors (RLIMIT_NOFILE: %s): raise it with "
				 "`ulimit -n N` (LimitNOFILE= in a systemd unit, nofile in "
				 "/etc/security/limits.conf)", lim);
		}
	} else if (err == -ENFILE) {
		snprintf(buf, sizeof(buf), "the system's open-file table is full: raise fs.file-max "
			 "(sysctl -w fs.file-max=N)");
	} else if (err == -ENOSPC && mq) {
		snprintf(buf, sizeof(buf), "the system's number of message queues ran out: raise "
			 "fs.mqueue.queues_max (sysctl -w fs.mqueue.queues_max=N)");
	} else {
		return "";
	}
	return buf;
}

const char *bench_strerror(const char *backend, int err)
{
	static _Thread_local char buf[512];
	const char *hint = limit_hint(backend, err);
	snprintf(buf, sizeof(buf), "%s%s%s", ipc_strerror(err), *hint ? ": " : "", hint);
	return buf;
}
