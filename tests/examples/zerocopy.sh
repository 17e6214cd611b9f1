#!/bin/bash
# zerocopy.sh ZEROCOPY SCHEME [COUNT SIZE]: the zero-copy producer and
# consumer over SCHEME.
. "$(dirname "$0")/lib.sh"
exe=$1 scheme=$2 count=${3:-20000} size=${4:-4096}

bg producer "$exe" producer "$(url_for "$scheme" zc)" "$count" "$size"
prod=$LAST
url=$(ready producer "$prod") || fail "producer never printed ready"
"$exe" consumer "$url" >"$T/consumer.out" 2>"$T/consumer.err" || fail "consumer exited $?"
reap "$prod" || fail "producer exited $?"
grep -q "received $count messages" "$T/consumer.out" || fail "consumer: $(cat "$T/consumer.out")"
grep -q "consumer saw $count, checksum matches" "$T/producer.out" ||
	fail "producer: $(cat "$T/producer.out")"
[ "$scheme" != shm ] || grep -q "(zero-copy)" "$T/producer.out" || fail "shm is not zero-copy?"
echo "ok zerocopy over $scheme: $count x $size bytes"
