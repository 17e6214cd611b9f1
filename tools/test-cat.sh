#!/bin/bash
# test-cat.sh IPCKIT-CAT SCHEME: drive ipckit-cat from the shell over
# SCHEME: line, raw and hex input and output, --echo with --send --recv,
# --count, --listen with several clients (where SCHEME has a listener),
# and the exit status of each kind of error.
. "$(dirname "$0")/../tests/examples/lib.sh"
cat=$1 scheme=$2
n=0

# server NAME ARGS...: start `ipckit-cat --server URL ARGS` in the
# background; sets URL (the real one for tcp port 0) and SRV (its pid).
server() {
	local name=$1 role=--server
	shift
	[ "$name" = "${name#listen}" ] || role=--listen
	n=$((n + 1))
	URL=$(url_for "$scheme" "cat$n")
	bg "$name" "$cat" $role "$URL" "$@"
	SRV=$LAST
	case $URL in *:0) served "$name" ;; esac
}

# served NAME: wait for "serving URL" on NAME's stderr and set URL.
served() {
	local i u
	for i in $(seq 600); do
		u=$(sed -n 's/^ipckit-cat: serving \(.*\)$/\1/p' "$T/$1.err")
		[ -n "$u" ] && { URL=$u; return 0; }
		kill -0 "$SRV" 2>/dev/null || break
		sleep 0.1
	done
	fail "$1 never said which port it serves"
}

# expect STATUS NAME CMD...: run CMD, check its exit status.
expect() {
	local want=$1 name=$2 st
	shift 2
	"$@" >"$T/$name.out" 2>"$T/$name.err"
	st=$?
	[ $st -eq "$want" ] || fail "$name: exit $st, want $want: $(cat "$T/$name.err")"
}

# same FILE TEXT: FILE holds exactly TEXT (printf format).
same() {
	printf "$2" | cmp -s - "$1" || fail "$1: got '$(od -c "$1" | head -5)'"
}

# 1. Lines in, lines out; an empty line is an empty message.
server recv1 --recv --format line
printf 'alpha\nbeta\n\ngamma' | expect 0 send1 "$cat" --client "$URL" --send --format line
reap "$SRV" || fail "recv1 exited $?"
same "$T/recv1.out" 'alpha\nbeta\n\ngamma\n'

# 2. Raw stdin is one message, bytes as they are (NUL and newlines too);
#    printed back as hex.
server recv2 --recv --count 1 --format hex
printf 'a\000b\nc\377' | expect 0 send2 "$cat" --client "$URL"  --send
reap "$SRV" || fail "recv2 exited $?"
same "$T/recv2.out" '6100620a63ff\n'

# 3. --echo with --send --recv: each message's reply is printed.
server echo3 --echo --count 3
expect 0 req3 "$cat" --client "$URL" --send --recv --data hi --count 3 --format line
reap "$SRV" || fail "echo3 exited $?"
same "$T/req3.out" 'hi\nhi\nhi\n'

# 4. --file, written in hex; the server sends, the client receives.
printf '68 65 6c\n6c 6f\n' >"$T/hello.hex"
server send4 --send --file "$T/hello.hex" --format hex
expect 0 recv4 "$cat" --client "$URL" --recv --count 1
reap "$SRV" || fail "send4 exited $?"
same "$T/recv4.out" 'hello'

# 5. Errors and their exit statuses.
expect 2 usage "$cat" --client "$URL" --echo --send
expect 2 usage2 "$cat" --recv
expect 2 usage3 "$cat" --client "$URL" --count many
server recv5 --recv --count 5 --format line
printf 'one\ntwo\n' | expect 0 send5 "$cat" --client "$URL" --send --format line
reap "$SRV"
st=$?
[ $st -eq 1 ] || fail "server whose peer left early exited $st"
grep -q "peer closed after 2 of 5 messages" "$T/recv5.err" || fail "recv5: $(cat "$T/recv5.err")"
server recv6 --recv --timeout 300
reap "$SRV"
st=$?
[ $st -eq 4 ] || fail "server with no client and --timeout exited $st"
none=$(url_for "$scheme" none)
[ "$scheme" != tcp ] || none=tcp://127.0.0.1:1
expect 3 noserver "$cat" --client "$none" --timeout 0 --data x
grep -q "^ipckit-cat: cannot open $none: " "$T/noserver.err" || fail "$(cat "$T/noserver.err")"
if [ "$scheme" != tcp ]; then
	expect 4 noserver2 "$cat" --client "$none" --timeout 200 --data x
fi
expect 5 nofile "$cat" --client "$none" --file "$T/does-not-exist"
expect 5 badhex "$cat" --client "$none" --data 6g --format hex
expect 3 badurl "$cat" --client "$scheme://relative/../x" --data x

# 6. --listen: several clients at once, --echo and --send.
if "$cat" --listen "$(url_for "$scheme" probe)" --timeout 0 >/dev/null 2>"$T/probe.err"; then
	fail "--listen with --timeout 0 and no client should time out"
fi
if grep -qE "cannot listen|no listener descriptor" "$T/probe.err"; then
	grep -q "cannot listen" "$T/probe.err" && expect 3 listen-no "$cat" --listen "$(url_for "$scheme" probe2)"
	echo "ok ipckit-cat over $scheme (no --listen: $(cat "$T/probe.err"))"
	exit 0
fi
server listen7 --echo --count 3 --format line
pids=""
for i in 1 2 3; do
	bg c7-$i "$cat" --client "$URL" --send --recv --data "client $i" --format line
	pids="$pids $LAST"
done
reap_all "--listen --echo client" $pids
for i in 1 2 3; do same "$T/c7-$i.out" "client $i\n"; done
reap "$SRV" || fail "listen7 exited $?"
server listen8 --send --data hello --count 2
for i in 1 2; do expect 0 c8-$i "$cat" --client "$URL" --recv; same "$T/c8-$i.out" hello; done
reap "$SRV" || fail "listen8 exited $?"
echo "ok ipckit-cat over $scheme"
