/*
 * test_fifo.c - fifo specifics: the FIFOs a server creates get the
 * requested mode, are removed again, and are never opened through a
 * symlink or replaced over a file that is not a FIFO.
 *
 * The names of the FIFOs are derived from the URL path by the backend;
 * fifo_names() learns them by opening a server on a fresh path and
 * listing what appeared next to it, so these tests do not hard-code them.
 */
#include "conn.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_NAMES 4

/* Suffixes appended to the URL path to make the FIFO names ("" when the
 * path itself is one). Returns how many. */
static int fifo_suffixes(char suf[MAX_NAMES][32])
{
	char name[64], url[128];
	ipc_chan *s = NULL;
	struct dirent *e;
	int n = 0;
	DIR *d;

	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "fifo:///tmp/%s", name);
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	d = opendir("/tmp");
	cr_assert(d);
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(name);

		/* name, or name followed by a non-digit (not name + "1..."). */
		if (strncmp(e->d_name, name, len) != 0 ||
		    (e->d_name[len] >= '0' && e->d_name[len] <= '9'))
			continue;
		cr_assert(n < MAX_NAMES, "more than %d names next to /tmp/%s", MAX_NAMES, name);
		snprintf(suf[n++], 32, "%s", e->d_name + len);
	}
	closedir(d);
	ipc_close(s);
	cr_assert(n > 0, "a fifo server created nothing next to /tmp/%s", name);
	return n;
}

/* Leaks fail the test run under -Db_sanitize=address (sanitize.c). */
TestSuite(fifo, .fini = tu_leak_check);

Test(fifo, mode_and_removal, .timeout = 30)
{
	char suf[MAX_NAMES][32], name[64], url[160], path[160], buf[8];
	int n;
	ipc_chan *s = NULL;
	pid_t pid;

	snprintf(tu_tag, sizeof(tu_tag), "fifo/mode");
	n = fifo_suffixes(suf);
	for (int pass = 0; pass < 3; pass++) {
		static const char *const query[] = { "", "?mode=0660", "?mode=0604" };
		static const mode_t want[] = { 0600, 0660, 0604 };

		tu_name(name, sizeof(name));
		snprintf(url, sizeof(url), "fifo:///tmp/%s%s", name, query[pass]);
		umask(022);
		T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
		for (int i = 0; i < n; i++) {
			struct stat st;

			snprintf(path, sizeof(path), "/tmp/%s%s", name, suf[i]);
			cr_assert(lstat(path, &st) == 0, "[%s] %s missing", tu_tag, path);
			cr_expect(S_ISFIFO(st.st_mode), "[%s] %s is not a FIFO", tu_tag, path);
			cr_expect((st.st_mode & 07777) == want[pass], "[%s] %s: mode %04o, expected %04o",
				  tu_tag, url, (unsigned)(st.st_mode & 07777), (unsigned)want[pass]);
		}
		if (pass == 0) {
			/* With a client: names go once attached (or at close). */
			pid = fork();
			cr_assert(pid >= 0);
			if (pid == 0) {
				ipc_chan *c = NULL;

				alarm(30);
				C_OK(ipc_open(&c, url, IPC_CLIENT, NULL));
				C_OK(ipc_send(c, "hi", 2, 5000));
				ipc_recv(c, buf, sizeof(buf), 10000);
				ipc_close(c);
				_exit(0);
			}
			T_EQ(ipc_recv(s, buf, sizeof(buf), 10000), 2);
		}
		ipc_close(s);
		if (pass == 0)
			peer_reap_ok(pid, "peer");
		for (int i = 0; i < n; i++) {
			snprintf(path, sizeof(path), "/tmp/%s%s", name, suf[i]);
			cr_expect(access(path, F_OK) < 0, "[%s] %s left after close", tu_tag, path);
		}
	}
}

/* A target that must survive untouched. */
static void make_target(const char *path)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);

	cr_assert(fd >= 0, "create %s: %s", path, strerror(errno));
	cr_assert(write(fd, "precious", 8) == 8);
	close(fd);
}

static void check_target(const char *path)
{
	struct stat st;
	char buf[16] = { 0 };
	int fd;

	cr_assert(lstat(path, &st) == 0, "[%s] %s disappeared", tu_tag, path);
	cr_expect(S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0644,
		  "[%s] %s changed: mode %o", tu_tag, path, (unsigned)st.st_mode);
	fd = open(path, O_RDONLY);
	cr_assert(fd >= 0);
	cr_expect(read(fd, buf, sizeof(buf)) == 8 && memcmp(buf, "precious", 8) == 0,
		  "[%s] %s content changed", tu_tag, path);
	close(fd);
}

/* Symlinks at every FIFO name, pointing at regular files, or at FIFOs
 * elsewhere: neither server nor client may use them. */
static void symlink_case(bool to_fifo)
{
	char suf[MAX_NAMES][32], name[64], url[160], link[160], target[160];
	ipc_chan *c = NULL;
	int n, rc;

	n = fifo_suffixes(suf);
	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "fifo:///tmp/%s?connect_timeout_ms=0", name);
	for (int i = 0; i < n; i++) {
		snprintf(link, sizeof(link), "/tmp/%s%s", name, suf[i]);
		snprintf(target, sizeof(target), "/tmp/%s-target%d", name, i);
		if (to_fifo)
			cr_assert(mkfifo(target, 0600) == 0);
		else
			make_target(target);
		cr_assert(symlink(target, link) == 0, "symlink %s: %s", link, strerror(errno));
	}
	rc = ipc_open(&c, url, IPC_SERVER, NULL);
	cr_expect(rc < 0, "[%s] server opened FIFOs through symlinks", tu_tag);
	if (rc >= 0)
		ipc_close(c);
	c = NULL;
	rc = ipc_open(&c, url, IPC_CLIENT, NULL);
	cr_expect(rc < 0, "[%s] client opened FIFOs through symlinks", tu_tag);
	if (rc >= 0)
		ipc_close(c);
	for (int i = 0; i < n; i++) {
		struct stat st;

		snprintf(link, sizeof(link), "/tmp/%s%s", name, suf[i]);
		snprintf(target, sizeof(target), "/tmp/%s-target%d", name, i);
		if (!to_fifo)
			check_target(target);
		else
			cr_expect(lstat(target, &st) == 0 && S_ISFIFO(st.st_mode) &&
				  (st.st_mode & 07777) == 0600, "[%s] FIFO target %s changed",
				  tu_tag, target);
		unlink(link);
		unlink(target);
	}
}

Test(fifo, symlink_to_file_refused)
{
	snprintf(tu_tag, sizeof(tu_tag), "fifo/symlink");
	symlink_case(false);
}

Test(fifo, symlink_to_fifo_refused)
{
	snprintf(tu_tag, sizeof(tu_tag), "fifo/symlink-fifo");
	symlink_case(true);
}

/* Regular files at the FIFO names: refused, and never removed. */
Test(fifo, regular_file_refused)
{
	char suf[MAX_NAMES][32], name[64], url[160], path[160];
	ipc_chan *c = NULL;
	int n, rc;

	snprintf(tu_tag, sizeof(tu_tag), "fifo/regular");
	n = fifo_suffixes(suf);
	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "fifo:///tmp/%s?connect_timeout_ms=0", name);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/tmp/%s%s", name, suf[i]);
		make_target(path);
	}
	rc = ipc_open(&c, url, IPC_SERVER, NULL);
	cr_expect(rc < 0, "[%s] server opened over regular files", tu_tag);
	if (rc >= 0)
		ipc_close(c);
	c = NULL;
	rc = ipc_open(&c, url, IPC_CLIENT, NULL);
	cr_expect(rc < 0, "[%s] client opened regular files as FIFOs", tu_tag);
	if (rc >= 0)
		ipc_close(c);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/tmp/%s%s", name, suf[i]);
		check_target(path);
		unlink(path);
	}
}

/* Only one of the names is a regular file: still refused, nothing of
 * the half-made endpoint is left, and the file survives. */
Test(fifo, one_regular_file_refused)
{
	char suf[MAX_NAMES][32], name[64], url[160], path[160], left[300];
	ipc_chan *c = NULL;
	int n, rc;

	snprintf(tu_tag, sizeof(tu_tag), "fifo/regular1");
	n = fifo_suffixes(suf);
	if (n < 2)
		cr_skip_test("one FIFO name only");
	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "fifo:///tmp/%s", name);
	snprintf(path, sizeof(path), "/tmp/%s%s", name, suf[n - 1]);
	make_target(path);
	rc = ipc_open(&c, url, IPC_SERVER, NULL);
	cr_expect(rc < 0, "[%s] server opened with a regular file at %s", tu_tag, path);
	if (rc >= 0)
		ipc_close(c);
	check_target(path);
	unlink(path);
	cr_expect(tu_leftovers(left, sizeof(left)) == 0, "[%s] failed open left %s", tu_tag, left);
}

/* Stale FIFOs of a dead server are reclaimed. */
Test(fifo, stale_fifos_reclaimed, .timeout = 30)
{
	char suf[MAX_NAMES][32], name[64], url[160], path[160];
	ipc_chan *s = NULL;
	int n;

	snprintf(tu_tag, sizeof(tu_tag), "fifo/stale");
	n = fifo_suffixes(suf);
	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "fifo:///tmp/%s", name);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/tmp/%s%s", name, suf[i]);
		cr_assert(mkfifo(path, 0600) == 0);
	}
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	ipc_close(s);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/tmp/%s%s", name, suf[i]);
		cr_expect(access(path, F_OK) < 0, "[%s] %s left", tu_tag, path);
	}
}

Test(fifo, client_without_server)
{
	ipc_chan *c = NULL;
	char name[64], url[160];
	int rc;

	snprintf(tu_tag, sizeof(tu_tag), "fifo/client");
	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "fifo:///tmp/%s?connect_timeout_ms=0", name);
	rc = ipc_open(&c, url, IPC_CLIENT, NULL);
	cr_expect(rc == -ENOENT || rc == -ECONNREFUSED, "[%s] %d %s", tu_tag, rc, tu_err(rc));
}

/* The directory of the path must exist; nothing is created elsewhere. */
Test(fifo, missing_directory)
{
	ipc_chan *c = NULL;
	char name[64], url[160];

	snprintf(tu_tag, sizeof(tu_tag), "fifo/dir");
	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "fifo:///tmp/%s/no/such/dir/x", name);
	T_EQ(ipc_open(&c, url, IPC_SERVER, NULL), -ENOENT);
}

/* A client that says hello and dies before the server's first call: the
 * server's receive gives -EPIPE (it used to wait forever), and so does a
 * send. */
Test(fifo, client_died_after_hello, .timeout = 30)
{
	char url[128], buf[16];
	ipc_chan *s = NULL;
	pid_t pid;

	cr_assert(tu_url(url, sizeof(url), "fifo", false));
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_chan *c = NULL;
		_exit(ipc_open(&c, url, IPC_CLIENT, NULL) == 0 ? 0 : 1);
	}
	peer_reap_ok(pid, "peer");
	T_EQ(ipc_recv(s, buf, sizeof(buf), -1), -EPIPE);
	T_EQ(ipc_send(s, "x", 1, -1), -EPIPE);
	ipc_close(s);
}

/* A server driven by poll on ipc_fd (receives with timeout 0) whose .c2s
 * is opened and closed by a writer that says nothing (a client that died
 * before its hello, any process): the server forgets that writer, and
 * ipc_fd still wakes for the real client that comes next. */
Test(fifo, event_loop_after_silent_writer, .timeout = 60)
{
	char url[128], c2s[160], buf[16];
	ipc_chan *s = NULL;
	pid_t pid;

	cr_assert(tu_url(url, sizeof(url), "fifo", false));
	snprintf(c2s, sizeof(c2s), "%s.c2s", url + strlen("fifo://"));
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	int fd = ipc_fd(s);
	T_OK(fd);
	cr_assert(!readable(fd, 0), "[fifo] ipc_fd readable with no client");
	int w = open(c2s, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	cr_assert(w >= 0, "[fifo] open %s: %s", c2s, strerror(errno));
	close(w);
	/* the loop wakes (or not) for the silent writer and gets nothing */
	if (readable(fd, 1000))
		T_EQ(ipc_recv(s, buf, sizeof(buf), 0), -EAGAIN);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_chan *c = NULL;
		alarm(PEER_ALARM_S);
		C_OK(ipc_open(&c, url, IPC_CLIENT, NULL));
		C_OK(ipc_send(c, "hello", 5, 20000));
		C_EQ(ipc_recv(c, buf, sizeof(buf), 20000), 2);
		ipc_close(c);
		_exit(0);
	}
	ssize_t n = -EAGAIN;
	for (int i = 0; i < 100 && n == -EAGAIN; i++) {
		cr_assert(readable(fd, 20000), "[fifo] ipc_fd never woke for the client (%d)", i);
		n = ipc_recv(s, buf, sizeof(buf), 0);
	}
	T_EQ(n, 5);
	T_OK(ipc_send(s, "ok", 2, 20000));
	peer_reap_ok(pid, "client");
	ipc_close(s);
}

/* Two servers reclaiming the same stale names at once: exactly one wins,
 * the other gets -EADDRINUSE (a race: repeated to give it a chance). */
Test(fifo, reclaim_race_one_winner, .timeout = 60)
{
	char race_url[128], c2s[160], s2c[160];
	int race_res[2];
	ipc_chan *race_ch[2];

	cr_assert(tu_url(race_url, sizeof(race_url), "fifo", false));
	snprintf(c2s, sizeof(c2s), "%s.c2s", race_url + 7);
	snprintf(s2c, sizeof(s2c), "%s.s2c", race_url + 7);
	for (int it = 0; it < 500; it++) {
		cr_assert(mkfifo(c2s, 0600) == 0 && mkfifo(s2c, 0600) == 0); /* stale pair */
		tu_open_race(race_url, race_res, race_ch);
		int wins = (race_res[0] == 0) + (race_res[1] == 0);
		cr_assert(wins == 1, "iteration %d: results %d and %d", it, race_res[0], race_res[1]);
		cr_assert(race_res[0] == -EADDRINUSE || race_res[1] == -EADDRINUSE);
		ipc_close(race_ch[race_res[0] == 0 ? 0 : 1]);
		/* the winner never attached: its close removed the names */
		cr_assert(access(c2s, F_OK) != 0 && access(s2c, F_OK) != 0);
	}
}
