/*
 * ipckit-report - rebuild a report from one or more saved results.json
 * files (several: one machine per file, side by side), or rank a run's
 * mechanisms against stated needs:
 *
 *   ipckit-report [--need "size=4K rate=50000/s p99<=100us cpu<=0.5"]
 *                 [--report DIR] [--hyperfine FILE] [--name NAME]... RESULTS.json...
 *
 * With --need the ranking is printed, and written at the top of the report
 * only when --report is given.
 */
#include "out.h"
#include "report/report.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DOCS 16

static void usage(FILE *f)
{
	fprintf(f, "usage: ipckit-report [--need NEEDS] [--report DIR] [--hyperfine FILE] [--name NAME]... "
		   "results.json...\nWrites DIR/report.md (default ./ipckit-report) and its plots; several "
		   "files are compared side by side.\n--need \"size=4K rate=50000/s p99<=100us cpu<=0.5\" "
		   "ranks the mechanisms of the run against those needs (see docs/benchmarking.md).\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "report", 1, 0, 'R' }, { "hyperfine", 1, 0, 'H' }, { "name", 1, 0, 'n' },
		{ "need", 1, 0, 'N' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	const char *dir = NULL, *hf = NULL, *need = NULL, *names[MAX_DOCS] = { 0 };
	json_t *docs[MAX_DOCS];
	char auto_names[MAX_DOCS][256], hfpath[PATH_MAX], err[160];
	int nnames = 0, opt, n = 0, rc = 0;

	while ((opt = getopt_long(argc, argv, "R:H:n:N:h", lo, NULL)) != -1) {
		switch (opt) {
		case 'R': dir = optarg; break;
		case 'H': hf = optarg; break;
		case 'N': need = optarg; break;
		case 'n':
			if (nnames < MAX_DOCS)
				names[nnames++] = optarg;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc || argc - optind > MAX_DOCS) {
		fprintf(stderr, "ipckit-report: give 1 to %d results.json files\n", MAX_DOCS);
		return 2;
	}
	for (int i = optind; i < argc; i++) {
		json_error_t jerr;
		json_t *d = json_load_file(argv[i], 0, &jerr);
		if (!d || !json_is_array(json_object_get(d, "results"))) {
			fprintf(stderr, "ipckit-report: %s: %s\n", argv[i],
				d ? "not an ipckit-bench results file" : jerr.text);
			json_decref(d);
			rc = 1;
			goto out;
		}
		docs[n] = d;
		if (!names[n]) {
			snprintf(auto_names[n], sizeof(auto_names[n]), "%s (%s)", argv[i],
				 jstr(json_object_get(d, "machine"), "cpu"));
			names[n] = auto_names[n];
		}
		n++;
	}
	if (need) {
		for (int k = 0; k < n; k++) {
			if (n > 1)
				printf("# %s\n\n", names[k]);
			if (need_report(stdout, docs[k], need, err, sizeof(err))) {
				fprintf(stderr, "ipckit-report: --need: %s\n", err);
				rc = 2;
				goto out;
			}
		}
		if (!dir)
			goto out;
	}
	if (!dir)
		dir = "ipckit-report";
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "ipckit-report: %s: %s\n", dir, strerror(errno));
		rc = 1;
		goto out;
	}
	if (!hf) {
		snprintf(hfpath, sizeof(hfpath), "%s/hyperfine.md", dir);
		if (access(hfpath, R_OK) == 0)
			hf = hfpath;
	}
	if (n == 1 && !need) {
		char p[PATH_MAX];
		print_table(docs[0], stdout);
		snprintf(p, sizeof(p), "%s/results.csv", dir);
		write_csv(docs[0], p);
	}
	int e = write_report(docs, names, n, dir, hf, need);
	if (e) {
		fprintf(stderr, "ipckit-report: writing the report in %s: %s\n", dir, strerror(-e));
		rc = 1;
	} else {
		printf("Report: %s/report.md\n", dir);
	}
out:
	for (int i = 0; i < n; i++)
		json_decref(docs[i]);
	return rc;
}
