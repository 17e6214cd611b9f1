#!/bin/bash
# listener.sh LISTENER REQREP SCHEME: the listener example serving four
# reqrep clients at once over SCHEME (skipped, status 77, when the backend
# has no listener descriptor yet).
. "$(dirname "$0")/lib.sh"
listener=$1 reqrep=$2 scheme=$3
N=4

bg listener "$listener" "$(url_for "$scheme" ls)" $N
srv=$LAST
if ! url=$(ready listener "$srv"); then
	reap "$srv" 5
	st=$?
	[ $st -eq 3 ] && { echo "SKIP: $(cat "$T/listener.err")"; exit 77; }
	fail "listener never printed ready (status $st)"
fi
pids=""
for i in $(seq $N); do
	bg client$i "$reqrep" client "$url" "a$i" "b$i" "c$i"
	pids="$pids $LAST"
done
reap_all client $pids
for i in $(seq $N); do
	printf 're: a%s\nre: b%s\nre: c%s\n' $i $i $i | cmp -s - "$T/client$i.out" ||
		fail "client $i got: $(cat "$T/client$i.out")"
done
reap "$srv" || fail "listener exited $?"
grep -q "^served $N clients" "$T/listener.out" || fail "listener: $(cat "$T/listener.out")"
echo "ok listener over $scheme with $N clients"
