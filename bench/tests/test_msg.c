/* test_msg.c - the integrity check covers every byte. */
#include "../bench.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static unsigned char buf[1 << 20], copy[1 << 20];

Test(msg, roundtrip_at_many_sizes)
{
	for (size_t len = MSG_HDR; len < 600; len++) {
		uint64_t s = 0;
		msg_fill(buf, len, 1000 + len);
		cr_assert_eq(msg_check(buf, (ssize_t)len, len, &s), 0, "len %zu", len);
		cr_assert_eq(s, 1000 + len);
		cr_assert_neq(msg_check(buf, (ssize_t)len - 1, len, &s), 0, "short, len %zu", len);
	}
}

Test(msg, every_single_byte_flip_fails)
{
	for (size_t len = MSG_HDR; len <= 300; len += 17)
		for (size_t i = 0; i < len; i++)
			for (int bit = 0; bit < 8; bit += 3) {
				uint64_t s;
				msg_fill(buf, len, 42);
				buf[i] ^= (unsigned char)(1u << bit);
				cr_assert_neq(msg_check(buf, (ssize_t)len, len, &s), 0, "len %zu byte %zu", len, i);
			}
}

Test(msg, corrupted_middle_of_a_big_message_fails)
{
	const size_t sizes[] = { 4096, 65536, 1 << 20 };
	for (size_t k = 0; k < 3; k++) {
		uint64_t s;
		size_t len = sizes[k];
		msg_fill(buf, len, 7);
		cr_assert_eq(msg_check(buf, (ssize_t)len, len, &s), 0);
		msg_corrupt(buf, len);
		cr_assert_neq(msg_check(buf, (ssize_t)len, len, &s), 0, "len %zu", len);
	}
}

Test(msg, messages_differ_and_a_stale_or_torn_payload_fails)
{
	uint64_t s;
	size_t len = 4096;
	msg_fill(buf, len, 1);
	msg_fill(copy, len, 2);
	cr_assert_neq(memcmp(buf + MSG_HDR, copy + MSG_HDR, len - MSG_HDR), 0);
	/* message 2's header on message 1's payload */
	memcpy(copy + MSG_HDR, buf + MSG_HDR, len - MSG_HDR);
	cr_assert_neq(msg_check(copy, (ssize_t)len, len, &s), 0);
	/* torn: the second half from another message */
	msg_fill(copy, len, 2);
	msg_fill(buf, len, 3);
	memcpy(copy + len / 2, buf + len / 2, len / 2);
	cr_assert_neq(msg_check(copy, (ssize_t)len, len, &s), 0);
	/* two payload words swapped */
	msg_fill(buf, len, 9);
	uint64_t a, b;
	memcpy(&a, buf + 64, 8);
	memcpy(&b, buf + 96, 8);
	memcpy(buf + 64, &b, 8);
	memcpy(buf + 96, &a, 8);
	cr_assert_neq(msg_check(buf, (ssize_t)len, len, &s), 0);
}
