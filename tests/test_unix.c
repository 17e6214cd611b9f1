/*
 * test_unix.c - unix specifics: abstract endpoints accept only the same
 * uid (checked with a forked child that drops to nobody; the suite runs
 * as root), path sockets get the requested mode and disappear once the
 * peer attached, stale socket files are reclaimed and other files are
 * never removed.
 */
#include "conn.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOBODY 65534

/* A child that becomes nobody, then tries to talk to url: it must not get
 * a message through (exit 0 when refused, 1 when it got through). */
static pid_t foreign_client(const char *url)
{
	pid_t pid = fork();

	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_opts o = { .connect_timeout_ms = 1000 };
		ipc_chan *c = NULL;
		char buf[8];
		int rc;
		ssize_t n;

		alarm(30);
		if (setgid(NOBODY) < 0 || setuid(NOBODY) < 0) {
			perror("setuid");
			_exit(3);
		}
		rc = ipc_open(&c, url, IPC_CLIENT, &o);
		if (rc < 0)
			_exit(0);
		rc = ipc_send(c, "intruder", 8, 2000);
		n = ipc_recv(c, buf, sizeof(buf), 2000);
		ipc_close(c);
		_exit(rc == 0 && n > 0 ? 1 : 0);
	}
	return pid;
}

static bool running_as_root(void)
{
	return geteuid() == 0;
}

/* Leaks fail the test run under -Db_sanitize=address (sanitize.c). */
TestSuite(unix, .fini = tu_leak_check);

Test(unix, abstract_other_uid_refused, .timeout = 60)
{
	ipc_chan *s = NULL;
	char name[64], url[128], buf[16];
	pid_t pid;
	ssize_t n;

	snprintf(tu_tag, sizeof(tu_tag), "unix/abstract uid");
	if (!running_as_root())
		cr_skip_test("needs root to become another user");
	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "unix://@%s", name);
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	pid = foreign_client(url);
	/* The intruder's message must not arrive. */
	n = ipc_recv(s, buf, sizeof(buf), 1500);
	/* -ETIMEDOUT (still waiting for a peer) or -EACCES (told once). */
	cr_expect(n == -ETIMEDOUT || n == -EACCES,
		  "[%s] server recv while another uid knocked: %zd %s (%.*s)",
		  tu_tag, n, tu_err(n), n > 0 ? (int)n : 0, buf);
	peer_reap_ok(pid, "the other-uid client got a message through");
	/* The endpoint still serves its own user. */
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_chan *c = NULL;

		alarm(30);
		C_OK(ipc_open(&c, url, IPC_CLIENT, NULL));
		C_OK(ipc_send(c, "friend", 6, 5000));
		ipc_close(c);
		_exit(0);
	}
	T_EQ(ipc_recv(s, buf, sizeof(buf), 10000), 6);
	cr_expect(memcmp(buf, "friend", 6) == 0);
	peer_reap_ok(pid, "same-uid client");
	ipc_close(s);
}

/* The same as a listener. */
Test(unix, abstract_listener_other_uid_refused, .timeout = 60)
{
	ipc_listener *l = NULL;
	ipc_chan *c = NULL;
	char name[64], url[128];
	pid_t pid;
	int rc;

	snprintf(tu_tag, sizeof(tu_tag), "unix/abstract listener uid");
	if (!running_as_root())
		cr_skip_test("needs root to become another user");
	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "unix://@%s", name);
	T_OK(ipc_listen(&l, url, NULL));
	pid = foreign_client(url);
	rc = ipc_accept(l, &c, 1500);
	if (rc == 0) {
		char buf[16];
		ssize_t n = ipc_recv(c, buf, sizeof(buf), 1000);

		cr_expect(n < 0, "[%s] accepted a channel from another uid and got %zd bytes", tu_tag,
			  n);
		ipc_close(c);
	}
	peer_reap_ok(pid, "the other-uid client got a message through");
	ipc_listener_close(l);
}

static mode_t file_mode(const char *path, bool *is_sock)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return (mode_t)-1;
	*is_sock = S_ISSOCK(st.st_mode);
	return st.st_mode & 07777;
}

static void check_mode(const char *query, mode_t want)
{
	ipc_chan *s = NULL;
	char name[64], url[160], path[128];
	bool sock = false;
	mode_t m;

	tu_name(name, sizeof(name));
	snprintf(path, sizeof(path), "/tmp/%s.sock", name);
	snprintf(url, sizeof(url), "unix://%s%s", path, query);
	umask(022);
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	m = file_mode(path, &sock);
	cr_assert(m != (mode_t)-1, "[%s] no socket file at %s while waiting", tu_tag, path);
	cr_expect(sock, "[%s] %s is not a socket", tu_tag, path);
	cr_expect(m == want, "[%s] %s has mode %04o, expected %04o", tu_tag, url, (unsigned)m,
		  (unsigned)want);
	ipc_close(s);
	cr_expect(access(path, F_OK) < 0, "[%s] %s left after close", tu_tag, path);
}

Test(unix, path_mode)
{
	snprintf(tu_tag, sizeof(tu_tag), "unix/mode");
	check_mode("", 0600);
	check_mode("?mode=0660", 0660);
	check_mode("?mode=0606", 0606);
}

Test(unix, path_mode_opts)
{
	ipc_opts o = { .mode = 0640 };
	ipc_chan *s = NULL;
	char name[64], url[160], path[128];
	bool sock;

	snprintf(tu_tag, sizeof(tu_tag), "unix/mode");
	tu_name(name, sizeof(name));
	snprintf(path, sizeof(path), "/tmp/%s.sock", name);
	snprintf(url, sizeof(url), "unix://%s", path);
	T_OK(ipc_open(&s, url, IPC_SERVER, &o));
	cr_expect(file_mode(path, &sock) == 0640, "[%s] mode %04o", tu_tag,
		  (unsigned)file_mode(path, &sock));
	ipc_close(s);
}

/* Another user cannot reach a 0600 socket. */
Test(unix, path_other_uid_refused, .timeout = 30)
{
	ipc_chan *s = NULL;
	char name[64], url[160], buf[16];
	pid_t pid;

	snprintf(tu_tag, sizeof(tu_tag), "unix/path uid");
	if (!running_as_root())
		cr_skip_test("needs root to become another user");
	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "unix:///tmp/%s.sock", name);
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	pid = foreign_client(url);
	T_EQ(ipc_recv(s, buf, sizeof(buf), 1500), -ETIMEDOUT);
	peer_reap_ok(pid, "the other-uid client got through a 0600 socket");
	ipc_close(s);
}

Test(unix, socket_file_removed_after_attach, .timeout = 30)
{
	ipc_chan *s = NULL;
	char name[64], url[160], path[128], buf[8];
	bool sock = false;
	pid_t pid;

	snprintf(tu_tag, sizeof(tu_tag), "unix/unlink");
	tu_name(name, sizeof(name));
	snprintf(path, sizeof(path), "/tmp/%s.sock", name);
	snprintf(url, sizeof(url), "unix://%s", path);
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	cr_assert(file_mode(path, &sock) != (mode_t)-1 && sock, "[%s] no socket at %s", tu_tag, path);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_chan *c = NULL;
		char b[8];

		alarm(30);
		C_OK(ipc_open(&c, url, IPC_CLIENT, NULL));
		C_OK(ipc_send(c, "hi", 2, 5000));
		C_EQ(ipc_recv(c, b, sizeof(b), 10000), -EPIPE);
		ipc_close(c);
		_exit(0);
	}
	T_EQ(ipc_recv(s, buf, sizeof(buf), 10000), 2);
	cr_expect(access(path, F_OK) < 0, "[%s] %s still exists after the peer attached", tu_tag,
		  path);
	ipc_close(s);
	peer_reap_ok(pid, "client");
	cr_expect(access(path, F_OK) < 0, "[%s] %s left after close", tu_tag, path);
}

/* A socket file whose server died is reclaimed. */
Test(unix, stale_socket_reclaimed)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	ipc_chan *s = NULL;
	char name[64], url[160];
	int fd;

	snprintf(tu_tag, sizeof(tu_tag), "unix/stale");
	tu_name(name, sizeof(name));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/%s.sock", name);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	cr_assert(listen(fd, 1) == 0);
	close(fd);      /* the file stays, nobody listens */
	snprintf(url, sizeof(url), "unix://%s", sa.sun_path);
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	ipc_close(s);
	cr_expect(access(sa.sun_path, F_OK) < 0);
}

/* A live foreign listener is never stolen. */
Test(unix, live_socket_not_stolen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	ipc_chan *s = NULL;
	char name[64], url[160];
	int fd;

	snprintf(tu_tag, sizeof(tu_tag), "unix/live");
	tu_name(name, sizeof(name));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/%s.sock", name);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	cr_assert(listen(fd, 1) == 0);
	snprintf(url, sizeof(url), "unix://%s", sa.sun_path);
	T_EQ(ipc_open(&s, url, IPC_SERVER, NULL), -EADDRINUSE);
	cr_expect(access(sa.sun_path, F_OK) == 0, "[%s] the live socket file was removed", tu_tag);
	close(fd);
	unlink(sa.sun_path);
}

/* Something that is not a socket is never removed. */
Test(unix, regular_file_not_removed)
{
	ipc_chan *s = NULL;
	char name[64], url[160], path[128];
	int fd, rc;

	snprintf(tu_tag, sizeof(tu_tag), "unix/file");
	tu_name(name, sizeof(name));
	snprintf(path, sizeof(path), "/tmp/%s.sock", name);
	fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0644);
	cr_assert(fd >= 0);
	cr_assert(write(fd, "keep", 4) == 4);
	close(fd);
	snprintf(url, sizeof(url), "unix://%s", path);
	rc = ipc_open(&s, url, IPC_SERVER, NULL);
	cr_expect(rc < 0, "[%s] server opened over a regular file", tu_tag);
	if (rc >= 0)
		ipc_close(s);
	cr_expect(access(path, F_OK) == 0, "[%s] the regular file %s was removed", tu_tag, path);
	unlink(path);
}

/* Two servers reclaiming the same stale socket file at once (or one
 * creating while the other reclaims): exactly one wins, the other gets
 * -EADDRINUSE. A race: repeated to give it a chance. */
Test(unix, reclaim_race_one_winner, .timeout = 60)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char race_url[128];
	int race_res[2];
	ipc_chan *race_ch[2];

	cr_assert(tu_url(race_url, sizeof(race_url), "unix", false));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", race_url + 7);
	for (int it = 0; it < 500; it++) {
		/* a stale socket file: bound, then closed without unlink */
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
		close(fd);
		tu_open_race(race_url, race_res, race_ch);
		int wins = (race_res[0] == 0) + (race_res[1] == 0);
		cr_assert(wins == 1, "iteration %d: results %d and %d", it, race_res[0], race_res[1]);
		cr_assert(race_res[0] == -EADDRINUSE || race_res[1] == -EADDRINUSE);
		ipc_close(race_ch[race_res[0] == 0 ? 0 : 1]);
		cr_assert(access(sa.sun_path, F_OK) != 0, "the winner's close left its file");
	}
}
