#!/bin/sh
# netns.sh IPCKIT_BENCH CHECK_RESULTS - cross-host mode through a real
# network path: two network namespaces joined by a veth pair, each side
# delaying by 5 ms and losing 2% with tc netem. tcp rows must show the
# added delay (RTT >= 10 ms), udp rows must count losses. The namespaces
# are created and removed here; without root or iproute2 the test is
# skipped (exit 77). A kernel without netem (CONFIG_NET_SCH_NETEM) still
# gets the run across the namespaces checked, then the test reports itself
# skipped, since the delay and loss checks could not run.
set -u
bench=$1 check=$2
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for network namespaces"; exit 77; }
for p in ip tc; do
	command -v $p >/dev/null 2>&1 || { echo "SKIP: '$p' (iproute2) is not installed"; exit 77; }
done
tag=ikb$(( $$ % 100000 ))
a=${tag}a b=${tag}b net=10.$(( 100 + $$ % 100 )).$(( $$ % 250 ))
t=$(mktemp -d /tmp/ipckit-bench-netns.XXXXXX)
serve_pid=
cleanup() {
	[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
	ip netns del "$a" 2>/dev/null
	ip netns del "$b" 2>/dev/null
	rm -rf "$t"
}
trap cleanup EXIT
if ! ip netns add "$a" 2>"$t/err" || ! ip netns add "$b" 2>>"$t/err"; then
	echo "SKIP: cannot create network namespaces here: $(cat "$t/err")"; exit 77
fi
set -e
ip link add "v$a" type veth peer name "v$b"
ip link set "v$a" netns "$a"
ip link set "v$b" netns "$b"
ip -n "$a" addr add "$net.1/24" dev "v$a"
ip -n "$b" addr add "$net.2/24" dev "v$b"
netem=yes
for n in "$a" "$b"; do
	ip -n "$n" link set lo up
	ip -n "$n" link set "v$n" up
	ip netns exec "$n" tc qdisc add dev "v$n" root netem delay 5ms loss 2% 2>"$t/tc" || netem=no
done
set +e
ip netns exec "$a" "$bench" --serve "tcp://$net.1:7100" --pin none 2>"$t/serve.log" &
serve_pid=$!
echo "+ $bench --connect tcp://$net.1:7100 --backend tcp,udp --quick (in $b)"
if ! ip netns exec "$b" "$bench" --connect "tcp://$net.1:7100" --backend tcp,udp --quick --no-peers \
		--pin none --quiet --json "$t/n.json"; then
	cat "$t/serve.log"; exit 1
fi
if [ $netem = no ]; then
	"$check" "$t/n.json" --remote || exit 1
	echo "SKIP: this kernel has no netem ($(cat "$t/tc")): the run across two namespaces passed, but the delay and loss checks could not run"
	exit 77
fi
"$check" "$t/n.json" --remote --min-p50-us tcp=10000 --lost udp || exit 1
echo "ok: tcp saw the netem delay, udp counted its losses"
