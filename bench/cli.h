/* cli.h - the command line of ipckit-bench (cli.c). */
#ifndef BENCH_CLI_H
#define BENCH_CLI_H

#include "plan.h"

#define MAX_SIZES 32

struct config {
	struct bench_opts o;
	struct plan plan;            /* backends named, waits, baselines, peers */
	size_t sizes[MAX_SIZES];
	int nsizes;
	char sizes_str[256], waits_str[64];
	bool backends_all;           /* "all": a backend without rows is only listed */
	bool quiet;
	const char *json_path, *csv_path, *report_dir;
	uint64_t transfer;           /* --transfer BYTES */
	char serve[160], connect[160];   /* host:port of --serve / --connect */
	const char *connect_url;
};

/* Parse argv into cfg: -1 to go on, or the exit status to return (0 after
 * --help or --list, 2 for a bad command line). */
int cli_parse(int argc, char **argv, struct config *cfg);

#endif
