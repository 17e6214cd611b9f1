#!/bin/bash
# reqrep.sh REQREP SCHEME: the reqrep example's server and client over
# SCHEME, then the client's error message and status with no server.
. "$(dirname "$0")/lib.sh"
exe=$1 scheme=$2

bg server "$exe" server "$(url_for "$scheme" rr)"
server=$LAST
url=$(ready server "$server") || fail "server never printed ready"
"$exe" client "$url" hello "two words" "" >"$T/client.out" 2>"$T/client.err" ||
	fail "client exited $?"
printf 're: hello\nre: two words\nre: \n' | cmp -s - "$T/client.out" ||
	fail "unexpected replies: $(cat "$T/client.out")"
reap "$server" || fail "server exited $?"
grep -q "client left after 3 requests" "$T/server.out" || fail "server: $(cat "$T/server.out")"

# No server: one try, a clear message and status 1.
rm -f "$T/rr.sock"
nourl=$(url_for "$scheme" none)
case $scheme in tcp) nourl=tcp://127.0.0.1:1 ;; esac
"$exe" client "$nourl?connect_timeout_ms=0" x >/dev/null 2>"$T/none.err"
st=$?
[ $st -eq 1 ] || fail "client with no server exited $st"
grep -q "^reqrep: cannot reach a server at " "$T/none.err" || fail "message: $(cat "$T/none.err")"
echo "ok reqrep over $scheme"
