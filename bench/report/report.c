/*
 * report/report.c - the layout of report.md. The first screen answers the
 * question the reader came with: the needs they stated (--need), then
 * "Which mechanism should I use?" with how far the run can be trusted.
 * The evidence follows: the machine, key ratios, plots, and one table per
 * mode and size that names the size and shows every backend.
 */
#include "report.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

static void method_line(FILE *f, json_t **docs, int n)
{
	bool pinned = true, remote = false;
	for (int k = 0; k < n; k++) {
		json_t *m = json_object_get(docs[k], "machine");
		pinned &= json_array_size(json_object_get(m, "pin")) == 2;
		remote |= json_object_get(m, "remote") != NULL;
	}
	fprintf(f, "## How this was measured\n\nEvery row ran in two processes%s (two threads where a "
		   "backend has no IPC_CAP_PROCESS)%s, through the same harness: latency is the ping-pong "
		   "round trip (RTT, not RTT/2) of one message at a time; throughput is a one-way stream "
		   "acknowledged at the end. Every message is written whole and checked whole by its "
		   "receiver. `raw` rows are the mechanism's own system calls with the tuning of the ipckit "
		   "row they are compared with; `zmq` and `nng` rows are ZeroMQ (PAIR, PUSH/PULL) and nng "
		   "(pair1, push0/pull0) over ipc:// (labelled `ipc`) and tcp://. Rows marked ~unstable had "
		   "rounds that disagreed by more than 10%%. See docs/benchmarking.md for the method.\n\n",
		pinned ? " pinned to two CPUs" : "", remote ? ", the echo side on another host" : "");
}

static void hyperfine_block(FILE *f, const char *hyperfine_md)
{
	FILE *h = hyperfine_md ? fopen(hyperfine_md, "r") : NULL;
	fprintf(f, "## Whole transfers (hyperfine)\n\n");
	if (!h) {
		fprintf(f, "Not run. `ninja -C build hyperfine` (bench/hyperfine.sh) times one whole "
			   "transfer per backend and writes hyperfine.md here; `ipckit-report` then "
			   "includes it.\n\n");
		return;
	}
	char buf[4096];
	size_t got;
	fprintf(f, "Wall time of whole `ipckit-bench --transfer` processes (start, connect, transfer, "
		   "exit), measured by hyperfine (bench/hyperfine.sh):\n\n");
	while ((got = fread(buf, 1, sizeof(buf), h)) > 0)
		fwrite(buf, 1, got, f);
	fclose(h);
	fprintf(f, "\n");
}

static void evidence(FILE *f, json_t *doc, const char *dir, const char *prefix, bool tables)
{
	size_t i;
	json_t *g;
	key_ratios(f, doc);
	fprintf(f, "## Plots\n\nLog-log axes; error bars are the 95%% intervals.\n\n");
	const char *note = make_plots(doc, dir, prefix, f);
	if (*note)
		fprintf(f, "_%s_\n\n", note);
	if (!tables)
		return;
	fprintf(f, "## Latency\n");
	lat_tables(f, doc, "latency", 0);
	fprintf(f, "## Throughput\n\nCPU ns/msg is user+system time of each side (all its threads; "
		   "the thread alone for rows between threads) per message it handled; ctx switches are "
		   "voluntary+involuntary context switches. ipckit rows send with ipc_sendv and receive with "
		   "ipc_recvv in batches (column batch); `send` rows make one ipc_send per message; raw rows "
		   "one system call per message; peers one call per message, batching inside the library.\n");
	tput_tables(f, doc);
	json_array_foreach(json_object_get(json_object_get(doc, "config"), "gaps_ms"), i, g) {
		if (!i)
			fprintf(f, "## Idle-gap latency\n");
		lat_tables(f, doc, "gap", json_number_value(g));
	}
	skipped_block(f, doc);
}

int write_report(json_t **docs, const char **names, int n, const char *dir, const char *hyperfine_md,
		 const char *need)
{
	char path[PATH_MAX], err[160];
	snprintf(path, sizeof(path), "%s/data", dir);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/report.md", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "# ipckit benchmark report\n\n");
	for (int k = 0; k < n; k++) {
		json_t *doc = docs[k];
		char prefix[16] = "";
		if (n > 1) {
			snprintf(prefix, sizeof(prefix), "m%d_", k + 1);
			fprintf(f, "# Machine %d: %s\n\n", k + 1, names[k]);
		}
		if (jnum(doc, "failures") > 0)
			fprintf(f, "**Warning: %.0f row(s) or group(s) failed in this run; they are missing "
				   "(see \"Not measured\").**\n\n", jnum(doc, "failures"));
		if (need && need_report(f, doc, need, err, sizeof(err)))
			fprintf(f, "_--need: %s_\n\n", err);
		recommend(f, doc);
		fprintf(f, "## Machine\n\n");
		machine_block(f, doc, names[k]);
		if (k == 0)
			method_line(f, docs, n);
		evidence(f, doc, dir, prefix, n == 1);
	}
	if (n > 1)
		side_by_side(f, docs, names, n);
	hyperfine_block(f, hyperfine_md);
	return fclose(f) ? -errno : 0;
}
