#!/bin/sh
# hyperfine.sh - time one whole-process transfer per backend with hyperfine.
#
#   bench/hyperfine.sh [IPCKIT_BENCH [OUTDIR]]      (also: ninja -C build hyperfine)
#
# Each command is `ipckit-bench --transfer $TRANSFER --size $SIZE --backend B`:
# fork, connect, move TRANSFER bytes one way in SIZE-byte messages, wait for
# the acknowledgement, exit. Backends that cannot carry SIZE use their own
# largest message (ipckit-bench --list-max), named in the command.
# Writes OUTDIR/hyperfine.{json,md}; if OUTDIR/results.json exists, the
# report there is rebuilt with ipckit-report so that it includes the table.
# Environment: TRANSFER (default 256M), SIZE (default 64K), RUNS (default 5).
set -eu

bench=${1:-}
out=${2:-ipckit-report}
if [ -z "$bench" ]; then
	for c in ./build/bench/ipckit-bench ./bench/ipckit-bench "$(command -v ipckit-bench || true)"; do
		if [ -n "$c" ] && [ -x "$c" ]; then bench=$c; break; fi
	done
fi
if [ -z "$bench" ] || [ ! -f "$bench" ] || [ ! -x "$bench" ]; then
	echo "hyperfine.sh: ipckit-bench not found; pass its path" >&2
	exit 2
fi
if ! command -v hyperfine >/dev/null 2>&1; then
	echo "hyperfine.sh: hyperfine is not installed (apt-get install hyperfine)" >&2
	exit 2
fi
transfer=${TRANSFER:-256M}
size=${SIZE:-64K}
runs=${RUNS:-5}
mkdir -p "$out"

to_bytes() {
	case $1 in
	*K) echo $(( ${1%K} * 1024 )) ;;
	*M) echo $(( ${1%M} * 1048576 )) ;;
	*) echo "$1" ;;
	esac
}

set --
s=$(to_bytes "$size")
"$bench" --list-max > "$out/.backends"
while read -r b max; do
	m=$s
	[ "$m" -gt "$max" ] && m=$max
	set -- "$@" --command-name "$b ($m B messages)" \
		"$bench --quiet --transfer $transfer --size $m --backend $b"
done < "$out/.backends"
rm -f "$out/.backends"

hyperfine -N --warmup 3 --runs "$runs" \
	--export-json "$out/hyperfine.json" --export-markdown "$out/hyperfine.md" "$@"

report=$(dirname "$bench")/ipckit-report
if [ -f "$out/results.json" ] && [ -x "$report" ]; then
	"$report" --name "this machine" --report "$out" --hyperfine "$out/hyperfine.md" "$out/results.json" >/dev/null
	echo "hyperfine.sh: report rebuilt: $out/report.md"
fi
