# lib.sh - sourced by the shell tests of the examples, ipckit-cat and the
# Python binding: a private temporary folder, unique names, background jobs
# that are always reaped, and bounded waits (no timing thresholds: every
# bound is generous and only stops a hang).
set -u
# RLIMIT_MSGQUEUE counts every queue of the user in every process; lift it
# for these tests as far as we may (see tests/util.c)
ulimit -q unlimited 2>/dev/null || ulimit -q "$(ulimit -H -q)" 2>/dev/null || true
T=$(mktemp -d "${TMPDIR:-/tmp}/ipckit-test.XXXXXX") || exit 1
BG=""
cleanup() {
	for p in $BG; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	for f in "$T"/*.err; do [ -s "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }; done
	exit 1
}

# url_for SCHEME TAG: a URL of SCHEME that no other test uses.
url_for() {
	case $1 in
	unix) echo "unix://$T/$2.sock" ;;
	tcp) echo "tcp://127.0.0.1:0" ;;
	shm) echo "shm://@ipckit-test-$$-$2" ;;
	mq) echo "mq:///ipckit-test-$$-$2" ;;
	fifo) echo "fifo://$T/$2.fifo" ;;
	*) fail "no URL for scheme $1" ;;
	esac
}

# bg NAME CMD...: run CMD in the background, stdout to $T/NAME.out and
# stderr to $T/NAME.err; $! is kept in BG (killed at exit) and in LAST.
bg() {
	local name=$1
	shift
	"$@" >"$T/$name.out" 2>"$T/$name.err" &
	LAST=$!
	BG="$BG $LAST"
}

# ready NAME [PID]: wait (up to 60 s, or until PID exits) until
# $T/NAME.out has a "ready URL" line and print the URL.
ready() {
	local u i gone=
	for i in $(seq 600); do
		[ -z "${2:-}" ] || kill -0 "$2" 2>/dev/null || gone=1
		u=$(sed -n 's/^ready \([^ ]*\).*/\1/p' "$T/$1.out" 2>/dev/null | head -n 1)
		[ -n "$u" ] && { echo "$u"; return 0; }
		[ -z "$gone" ] || return 1
		sleep 0.1
	done
	return 1
}

# reap PID [SECONDS]: wait for a background job (killing it after SECONDS,
# default 60) and return its exit status (137 when it had to be killed).
reap() {
	local pid=$1 n=$((${2:-60} * 10))
	while kill -0 "$pid" 2>/dev/null && [ $n -gt 0 ]; do
		sleep 0.1
		n=$((n - 1))
	done
	kill -9 "$pid" 2>/dev/null
	wait "$pid"
}

# reap_all WHAT PID...: reap each job; fail naming the first that failed.
reap_all() {
	local what=$1 i=0 p
	shift
	for p in "$@"; do
		i=$((i + 1))
		reap "$p" || fail "$what $i exited $?"
	done
}
