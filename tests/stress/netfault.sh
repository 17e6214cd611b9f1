#!/bin/sh
# netfault.sh NETPEER - the network-fault campaign. Two network namespaces
# made here, joined by a veth pair (private addresses that exist only inside
# them), with faults on the link:
#   - with netem (CONFIG_NET_SCH_NETEM): 20 ms +- 5 ms delay, 5% loss, 25%
#     reordering and 1% duplication on both sides;
#   - without it: tbf on both sides (8 Mbit/s, a 32 KiB queue), which delays
#     by queueing and drops at the queue's tail; reordering and duplication
#     cannot be made then, and the test says so;
#   - always: the link goes down for 2 s in the middle of the tcp transfer.
# Checks: tcp delivers every message in order and whole (or ends in -EPIPE
# after a reset, never with a wrong byte); udp delivers no datagram torn or
# twice (duplicates made by netem are counted, and allowed, see
# docs/reliability.md), and every datagram lost is one the network dropped
# (the qdiscs' drop counters plus the receiver's buffer overflows).
# Exit 77 (skip) without root, iproute2 or network namespaces. Bounded: every
# peer has its own time bound, and everything made here is removed on exit.
set -u
peer=$1
if [ "${STRESS_SHORT:-0}" != 0 ]; then tn=3000 un=2000; else tn=40000 un=20000; fi
tn=${STRESS_NET_TCP_MSGS:-$tn} un=${STRESS_NET_UDP_MSGS:-$un}
say() { echo "netfault: $*"; }
[ "$(id -u)" = 0 ] || { say "SKIP: needs root for network namespaces"; exit 77; }
for p in ip tc; do
	command -v $p >/dev/null 2>&1 || { say "SKIP: '$p' (iproute2) is not installed"; exit 77; }
done
tag=ipst$(( $$ % 100000 ))
a=${tag}a b=${tag}b net=10.$(( 150 + $$ % 100 )).$(( ($$ / 100) % 250 ))
t=$(mktemp -d /tmp/ipckit-netfault.XXXXXX)
pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	ip netns del "$a" 2>/dev/null
	ip netns del "$b" 2>/dev/null
	rm -rf "$t"
}
trap cleanup EXIT INT TERM
if ! ip netns add "$a" 2>"$t/err" || ! ip netns add "$b" 2>>"$t/err"; then
	say "SKIP: cannot create network namespaces here: $(cat "$t/err")"; exit 77
fi
ip link add "v$a" type veth peer name "v$b" || exit 1
ip link set "v$a" netns "$a" && ip link set "v$b" netns "$b" || exit 1
ip -n "$a" addr add "$net.1/24" dev "v$a" && ip -n "$b" addr add "$net.2/24" dev "v$b" || exit 1
for n in "$a" "$b"; do
	ip -n "$n" link set lo up && ip -n "$n" link set "v$n" up || exit 1
done
mode=netem
for n in "$a" "$b"; do
	tc -n "$n" qdisc add dev "v$n" root netem delay 20ms 5ms loss 5% reorder 25% 50% duplicate 1% \
		2>"$t/tc" || { mode=tbf; break; }
done
if [ $mode = netem ]; then
	say "faults injected: netem 20 ms +- 5 ms delay, 5% loss, 25% reordering, 1% duplication (both ways); link down for 2 s"
	export STRESS_NET_DUP_OK=1
else
	for n in "$a" "$b"; do
		tc -n "$n" qdisc del dev "v$n" root 2>/dev/null
		tc -n "$n" qdisc add dev "v$n" root tbf rate 8mbit burst 16kb limit 32kb || exit 1
	done
	say "no netem here ($(cat "$t/tc")): faults injected: tbf 8 Mbit/s with a 32 KiB queue (queueing delay, tail drops) both ways; link down for 2 s"
	say "faults NOT injected (no netem): random loss, reordering, duplication, fixed delay"
fi
drops() { # the qdisc drops on both ends
	for n in "$a" "$b"; do tc -n "$n" -s qdisc show dev "v$n"; done |
		sed -n 's/.*dropped \([0-9]*\).*/\1/p' | awk '{s += $1} END {print s + 0}'
}
rcvbuf() { # the receiver's UDP buffer overflows
	ip netns exec "$a" awk '/^Udp:/ { if (h) print $6; h = 1 }' /proc/net/snmp
}
fail=0

# tcp, with the link down for 2 s in the middle
ip netns exec "$a" "$peer" recv "tcp://$net.1:7201" "$tn" >"$t/tr" 2>&1 & rp=$!
ip netns exec "$b" "$peer" send "tcp://$net.1:7201" "$tn" >"$t/ts" 2>&1 & sp=$!
pids="$rp $sp"
sleep 1
ip -n "$b" link set "v$b" down; sleep 2; ip -n "$b" link set "v$b" up
say "link down 2 s, up again"
wait $rp; rr=$?
wait $sp; sr=$?
pids=
cat "$t/tr" "$t/ts" | sed 's/^/netfault: tcp: /'
if [ $rr != 0 ] || [ $sr != 0 ]; then say "FAIL: tcp (receiver $rr, sender $sr)"; fail=1; fi

# udp: every loss must be one the network made
d0=$(drops) q0=$(rcvbuf)
ip netns exec "$a" "$peer" recv "udp://$net.1:7202" "$un" >"$t/ur" 2>&1 & rp=$!
sleep 0.3
ip netns exec "$b" "$peer" send "udp://$net.1:7202" "$un" >"$t/us" 2>&1 & sp=$!
pids="$rp $sp"
wait $sp; sr=$?
wait $rp; rr=$?
pids=
d1=$(drops) q1=$(rcvbuf)
cat "$t/ur" "$t/us" | sed 's/^/netfault: udp: /'
lost=$(sed -n 's/.* lost=\([0-9]*\).*/\1/p' "$t/ur")
refused=$(sed -n 's/.* refused=\([0-9]*\).*/\1/p' "$t/us")
made=$(( d1 - d0 + q1 - q0 + ${refused:-0} ))
say "udp: lost ${lost:-?}; dropped by the qdiscs $(( d1 - d0 )), by the receiver's buffer $(( q1 - q0 )), refused at send ${refused:-0}${mode:+ (mode $mode)}"
if [ $rr != 0 ] || [ $sr != 0 ] || [ -z "$lost" ]; then say "FAIL: udp (receiver $rr, sender $sr)"; fail=1
elif [ $mode = tbf ] && [ "$lost" -gt "$made" ]; then
	say "FAIL: udp lost $lost datagrams, the network dropped $made"; fail=1
fi
if [ $fail = 0 ]; then echo "netfault: 2 passed, 0 failed"; else echo "netfault: 0 passed, 1 failed"; fi
exit $fail
