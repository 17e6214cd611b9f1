/*
 * ipckit-report - rebuild a report from one or more saved results.json
 * files (several: one machine per file, side by side).
 *
 *   ipckit-report [--report DIR] [--hyperfine FILE] [--name NAME]... results.json...
 */
#include "out.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DOCS 16

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "report", 1, 0, 'R' }, { "hyperfine", 1, 0, 'H' }, { "name", 1, 0, 'n' },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	const char *dir = "ipckit-report", *hf = NULL, *names[MAX_DOCS] = { 0 };
	json_t *docs[MAX_DOCS];
	char auto_names[MAX_DOCS][256], hfpath[PATH_MAX];
	int nnames = 0, opt, n = 0, rc = 0;

	while ((opt = getopt_long(argc, argv, "R:H:n:h", lo, NULL)) != -1) {
		switch (opt) {
		case 'R': dir = optarg; break;
		case 'H': hf = optarg; break;
		case 'n':
			if (nnames < MAX_DOCS)
				names[nnames++] = optarg;
			break;
		case 'h':
		default:
			fprintf(opt == 'h' ? stdout : stderr,
				"usage: ipckit-report [--report DIR] [--hyperfine FILE] [--name NAME]... "
				"results.json...\nWrites DIR/report.md (default ./ipckit-report) and its "
				"plots; several files are compared side by side.\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (optind >= argc || argc - optind > MAX_DOCS) {
		fprintf(stderr, "ipckit-report: give 1 to %d results.json files\n", MAX_DOCS);
		return 2;
	}
	for (int i = optind; i < argc; i++) {
		json_error_t err;
		json_t *d = json_load_file(argv[i], 0, &err);
		if (!d || !json_is_array(json_object_get(d, "results"))) {
			fprintf(stderr, "ipckit-report: %s: %s\n", argv[i],
				d ? "not an ipckit-bench results file" : err.text);
			json_decref(d);
			rc = 1;
			goto out;
		}
		docs[n] = d;
		if (!names[n]) {
			json_t *m = json_object_get(d, "machine");
			snprintf(auto_names[n], sizeof(auto_names[n]), "%s (%s)", argv[i], jstr(m, "cpu"));
			names[n] = auto_names[n];
		}
		n++;
	}
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
	if (n == 1) {
		print_table(docs[0], stdout);
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/results.csv", dir);
		write_csv(docs[0], p);
	}
	int e = write_report(docs, names, n, dir, hf);
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
