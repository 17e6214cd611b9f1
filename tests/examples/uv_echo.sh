#!/bin/bash
# uv_echo.sh UV_ECHO SCHEME: the libuv example over SCHEME (77 = skipped
# when the backend has no listener descriptor yet).
. "$(dirname "$0")/lib.sh"
"$1" "$(url_for "$2" uv)" 4 200 >"$T/uv.out" 2>"$T/uv.err"
st=$?
[ $st -eq 3 ] && { echo "SKIP: $(cat "$T/uv.err")"; exit 77; }
[ $st -eq 0 ] || fail "uv_echo exited $st"
grep -q "4 clients x 200 requests served from one libuv loop; 0 clients failed" "$T/uv.out" ||
	fail "uv_echo: $(cat "$T/uv.out")"
cat "$T/uv.out"
