#!/bin/sh
# bench_run.sh CASE IPCKIT_BENCH CHECK_RESULTS IPCKIT_REPORT - smoke runs of
# ipckit-bench (not timed: they check what a run writes, not how fast).
set -u
case_=$1 bench=$2 check=$3 report=$4
t=$(mktemp -d /tmp/ipckit-bench-test.XXXXXX)
serve_pid=
cleanup() {
	[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
	rm -rf "$t"
}
trap cleanup EXIT
run() { echo "+ $*"; "$@"; }
# RLIMIT_MSGQUEUE is one budget for every queue of the user, in every
# process: test programs running at the same time share it. Lift it where
# permitted (root), as the Criterion tests do (tests/util.c).
prlimit --pid $$ --msgqueue=unlimited 2>/dev/null || true

case $case_ in
rounds)   # every compiled backend, 4 rounds, schema and per-row rounds
	run "$bench" --quick --rounds 4 --no-peers --quiet --json "$t/r.json" || exit 1
	run "$check" "$t/r.json" --rounds 4 || exit 1
	# the report reads it back, answers first, and ranks stated needs
	run "$report" --report "$t/rep" "$t/r.json" >/dev/null || exit 1
	head -3 "$t/rep/report.md" | grep -q "Which mechanism should I use" || { echo "report does not open with the answer"; exit 1; }
	run "$report" --need "size=64 rate=1000/s p99<=1s reliable" "$t/r.json" > "$t/need.md" || exit 1
	grep -q "| 1 | \*\*" "$t/need.md" || { cat "$t/need.md"; echo "no mechanism ranked first meets the needs"; exit 1; }
	if "$report" --need "size=64 p99<=fast" "$t/r.json" >/dev/null 2>&1; then
		echo "a malformed need was accepted"; exit 1
	fi
	;;
gap)      # idle-gap rows: one message every 2 ms
	run "$bench" --gap 2 --count 12 --rounds 2 --no-peers --quiet --json "$t/g.json" || exit 1
	run "$check" "$t/g.json" --gap 2 --rounds 2 || exit 1
	;;
corrupt)  # one flipped middle byte per row must fail the run
	if run "$bench" --quick --corrupt --size 4K --no-peers --quiet --json "$t/c.json"; then
		echo "a run with corrupted messages exited 0"; exit 1
	fi
	run "$check" "$t/c.json" --errors || exit 1
	;;
memcpy)   # no row, zero-copy ones included, moves more than memcpy of the same run
	run "$bench" --quick --mode throughput --size 64K,1M --no-peers --quiet --json "$t/m.json" || exit 1
	run "$check" "$t/m.json" --memcpy || exit 1
	;;
threads)  # every row between two threads of one process
	run "$bench" --quick --threads --no-peers --quiet --json "$t/t.json" || exit 1
	run "$check" "$t/t.json" --threads || exit 1
	;;
serve)    # --serve / --connect over loopback
	port=$((20000 + $$ % 20000))
	"$bench" --serve "tcp://127.0.0.1:$port" 2>"$t/serve.log" &
	serve_pid=$!
	run "$bench" --connect "tcp://127.0.0.1:$port" --backend tcp,udp --quick --quiet --json "$t/s.json" || { cat "$t/serve.log"; exit 1; }
	run "$check" "$t/s.json" --remote || exit 1
	;;
*)
	echo "unknown case $case_"; exit 2 ;;
esac
echo "ok: $case_"
