/*
 * sanitize.c - linked into every test executable: makes LeakSanitizer
 * findings fail the run (builds with -Db_sanitize=address).
 *
 * Criterion runs each test in a worker process (BoxFort re-executes the
 * binary with BXFI_MAP in the environment) and counts the test as passed
 * once its body returned: neither an assertion in fini nor a leak report at
 * the worker's exit fails anything. So:
 * - every suite's fini (TestSuite(name, .fini = tu_leak_check) in each test
 *   file) runs a leak check while the worker is still alive and, on a
 *   finding, appends the test's name to a file the runner created;
 * - the runner process, at exit, fails (exit status 1) if that file is not
 *   empty. Its own leak check is off: Criterion's parallel scheduler
 *   (--jobs 2) leaks 96 bytes in the runner, and a suppression could not
 *   single that out, as every leak's stack passes through libcriterion.
 */
#include "util.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define TU_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_LSAN 1
#endif
#endif

#ifdef TU_LSAN
#include <sanitizer/lsan_interface.h>

#define LEAKS_ENV "IPCKIT_TEST_LEAKS"
static char leaks_path[64];

static int is_worker(void)
{
	return getenv("BXFI_MAP") != NULL;
}

int __lsan_is_turned_off(void)
{
	return !is_worker();
}

__attribute__((constructor)) static void runner_start(void)
{
	if (is_worker())
		return;
	snprintf(leaks_path, sizeof(leaks_path), "/tmp/ipckit-test-leaks-XXXXXX");
	int fd = mkstemp(leaks_path);
	if (fd < 0) {
		leaks_path[0] = 0;
		return;
	}
	close(fd);
	setenv(LEAKS_ENV, leaks_path, 1);
}

__attribute__((destructor)) static void runner_end(void)
{
	struct stat st;
	if (is_worker() || !leaks_path[0])
		return;
	int bad = stat(leaks_path, &st) == 0 && st.st_size > 0;
	if (bad) {
		char buf[4096];
		int fd = open(leaks_path, O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		buf[n > 0 ? n : 0] = 0;
		fprintf(stderr, "LeakSanitizer found leaks in these tests (reports above):\n%s", buf);
		if (fd >= 0)
			close(fd);
	}
	unlink(leaks_path);
	if (bad)
		_exit(1);
}

void tu_leak_check(void)
{
	const char *path = getenv(LEAKS_ENV);
	if (!__lsan_do_recoverable_leak_check() || !path)
		return;
	FILE *f = fopen(path, "a");
	if (f) {
		fprintf(f, "  %s::%s\n", criterion_current_suite->name, criterion_current_test->name);
		fclose(f);
	}
}
#else
void tu_leak_check(void)
{
}
#endif
