/*
 * fuzz_url.c - libFuzzer target for the URL parser (ipc__url_parse).
 * Any input must be parsed or refused with a negative errno; a parse
 * that succeeds must leave consistent, terminated fields.
 */
#include "backend.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static ipc_url u;
	const struct ipc_backend *be = NULL;
	char *str;
	int rc;

	if (size > 16384)
		return 0;
	str = malloc(size + 1);
	if (!str)
		return 0;
	memcpy(str, data, size);
	str[size] = '\0';
	memset(&u, 0x5a, sizeof(u));
	rc = ipc__url_parse(&u, str, NULL, &be);
	if (rc > 0 || rc < -4095)
		abort();
	if (rc == 0) {
		if (!be || !be->scheme)
			abort();
		if (strnlen(u.scheme, sizeof(u.scheme)) == sizeof(u.scheme) ||
		    strnlen(u.addr, sizeof(u.addr)) == sizeof(u.addr) ||
		    strnlen(u.host, sizeof(u.host)) == sizeof(u.host) ||
		    strnlen(u.path, sizeof(u.path)) == sizeof(u.path))
			abort();
		if (strcmp(u.scheme, be->scheme) != 0)
			abort();
		if (be->addr_kind == IPC_ADDR_HOSTPORT && (u.port < 0 || u.port > 65535))
			abort();
		if (be->addr_kind == IPC_ADDR_FDS && (u.rfd < 0 || u.wfd < 0))
			abort();
		if (u.cfg.mode > 0777 || u.cfg.connect_timeout_ms < 0 ||
		    (u.cfg.wait != IPC_WAIT_ADAPTIVE && u.cfg.wait != IPC_WAIT_BLOCK &&
		     u.cfg.wait != IPC_WAIT_SPIN))
			abort();
	}
	free(str);
	return 0;
}
