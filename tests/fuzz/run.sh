#!/bin/sh
# run.sh FUZZER CORPUS [SECONDS] - one bounded libFuzzer run: the seeds in
# CORPUS first (read only: new inputs go to a temporary directory), then
# fuzzing for SECONDS (default $FUZZ_SECONDS, else 60). Exit status 0 when
# nothing was found; otherwise libFuzzer's status, with the crashing input
# kept in $FUZZ_ARTIFACTS (default: the current directory) and shown in hex.
# Run by `meson test -C build-fuzz --suite fuzz` (tests/fuzz/meson.build).
set -u
fuzzer=$1 corpus=$2 secs=${3:-${FUZZ_SECONDS:-60}}
name=$(basename "$fuzzer")
art=${FUZZ_ARTIFACTS:-.}
mkdir -p "$art"
work=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
# -timeout: an input that takes 10 s is a hang; -rss_limit_mb: a leak or a
# runaway allocation; leaks are reported per input (ASan's LeakSanitizer).
"$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$art/$name-" "$work" "$corpus" 2>"$work.log"
rc=$?
grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)|^#[0-9]+ *DONE|ERROR|SUMMARY|check failed|^artifact_prefix|Test unit written' "$work.log"
if [ $rc -ne 0 ]; then
	tail -n 60 "$work.log"
	for f in "$art/$name"-*; do
		[ -f "$f" ] || continue
		echo "--- $f:"
		od -A x -t x1z "$f" | head -n 40
	done
fi
rm -f "$work.log"
exit $rc
