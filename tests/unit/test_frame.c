/* Tests for heartbeat/frame.c: round trips of every message, the exact wire bytes of one frame
 * (docs/peer-protocol.md), every truncation, every malformed field, and random garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "heartbeat/frame.h"

static struct frame hello_sample(void)
{
	struct frame f = {.h.type = FRAME_HELLO};
	f.u.hello.version_min = 1;
	f.u.hello.version_max = 1;
	f.u.hello.node_id = 2;
	for (int i = 0; i < FRAME_BOOT_ID_SIZE; i++)
		f.u.hello.boot_id[i] = (uint8_t)(0xa0 + i);
	f.u.hello.heartbeat_interval_ms = 100;
	f.u.hello.dead_timeout_ms = 1000;
	return f;
}

static struct frame heartbeat_sample(void)
{
	struct frame f = {.h.type = FRAME_HEARTBEAT};
	f.u.hb.seq = UINT64_MAX;
	f.u.hb.send_time_us = 0x0102030405060708ull;
	f.u.hb.echo_time_us = 42;
	f.u.hb.echo_hold_us = UINT32_MAX;
	f.u.hb.st.state = 0xffff;
	f.u.hb.st.reason = 7;
	f.u.hb.st.services = 0x80000001u;
	f.u.hb.st.users_home = 15000;
	f.u.hb.st.users_served = 30000;
	for (int i = 0; i < HB_REPL_POS_COUNT; i++)
		f.u.hb.st.repl_pos[i] = UINT64_MAX - (uint64_t)i;
	return f;
}

/* Encode f, decode it back, compare the decoded frame with f. */
static void roundtrip(const struct frame *f, uint8_t *buf, size_t cap, struct frame *out)
{
	long n = frame_encode(f, 1, buf, cap);
	size_t used = 0;

	assert_true(n > 0);
	assert_int_equal((size_t)n, frame_encoded_size(f));
	assert_int_equal(frame_decode(buf, (size_t)n, out, &used), FRAME_OK);
	assert_int_equal(used, (size_t)n);
	assert_int_equal(out->h.type, f->h.type);
	assert_int_equal(out->h.version, 1);
	assert_int_equal(out->h.flags, 0);
	assert_int_equal(out->h.length, (size_t)n - FRAME_HEADER_SIZE);
}

static void test_hello_roundtrip(void **state)
{
	struct frame f = hello_sample(), g;
	uint8_t buf[64];

	roundtrip(&f, buf, sizeof buf, &g);
	assert_memory_equal(&g.u.hello, &f.u.hello, sizeof f.u.hello);
}

static void test_heartbeat_roundtrip(void **state)
{
	struct frame f = heartbeat_sample(), g;
	uint8_t buf[128];

	roundtrip(&f, buf, sizeof buf, &g);
	assert_int_equal(g.u.hb.seq, f.u.hb.seq);
	assert_int_equal(g.u.hb.send_time_us, f.u.hb.send_time_us);
	assert_int_equal(g.u.hb.echo_time_us, f.u.hb.echo_time_us);
	assert_int_equal(g.u.hb.echo_hold_us, f.u.hb.echo_hold_us);
	assert_memory_equal(&g.u.hb.st, &f.u.hb.st, sizeof f.u.hb.st);
	/* No echo at all is valid too. */
	f.u.hb.echo_time_us = 0;
	f.u.hb.echo_hold_us = 0;
	f.u.hb.seq = 1;
	roundtrip(&f, buf, sizeof buf, &g);
	assert_int_equal(g.u.hb.echo_time_us, 0);
}

static void test_goodbye_roundtrip(void **state)
{
	uint8_t buf[32];
	struct frame g;

	for (int r = GOODBYE_SHUTDOWN; r <= GOODBYE_RESTART; r++) {
		struct frame f = {.h.type = FRAME_GOODBYE, .u.bye.reason = (uint8_t)r};
		roundtrip(&f, buf, sizeof buf, &g);
		assert_int_equal(g.u.bye.reason, r);
	}
}

static void test_app_roundtrip(void **state)
{
	size_t max = FRAME_MAX_PAYLOAD - FRAME_APP_MIN_SIZE;
	uint8_t *payload = malloc(max), *buf = malloc(FRAME_HEADER_SIZE + FRAME_MAX_PAYLOAD);
	uint8_t hdr[FRAME_HEADER_SIZE + 2];
	struct frame f = {.h.type = FRAME_APP}, g;

	assert_non_null(payload);
	assert_non_null(buf);
	for (size_t i = 0; i < max; i++)
		payload[i] = (uint8_t)(i * 31);
	/* Empty, small and the largest payload. */
	size_t sizes[] = {0, 1, 1000, max};
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		f.u.app.subtype = (uint16_t)(k + 1);
		f.u.app.payload = payload;
		f.u.app.len = sizes[k];
		roundtrip(&f, buf, FRAME_HEADER_SIZE + FRAME_MAX_PAYLOAD, &g);
		assert_int_equal(g.u.app.subtype, k + 1);
		assert_int_equal(g.u.app.len, sizes[k]);
		if (sizes[k])
			assert_memory_equal(g.u.app.payload, payload, sizes[k]);
		/* The header-only encoder produces the same first 14 bytes. */
		assert_int_equal(frame_app_header_encode(1, f.u.app.subtype, sizes[k], hdr), FRAME_OK);
		assert_memory_equal(hdr, buf, sizeof hdr);
	}
	/* One byte more does not fit the frame limit. */
	f.u.app.len = max + 1;
	assert_int_equal(frame_encoded_size(&f), 0);
	assert_true(frame_encode(&f, 1, buf, FRAME_HEADER_SIZE + FRAME_MAX_PAYLOAD + 8) < 0);
	assert_int_equal(frame_app_header_encode(1, 1, max + 1, hdr), FRAME_ERR_LENGTH);
	assert_int_equal(frame_app_header_encode(1, 0, 1, hdr), FRAME_ERR_FIELD);
	assert_int_equal(frame_app_header_encode(2, 1, 1, hdr), FRAME_ERR_VERSION);
	free(payload);
	free(buf);
}

/* The exact bytes of a GOODBYE and a HELLO, as docs/peer-protocol.md shows them. */
static void test_wire_bytes(void **state)
{
	struct frame bye = {.h.type = FRAME_GOODBYE, .u.bye.reason = GOODBYE_RESTART};
	struct frame hello = hello_sample();
	static const uint8_t want_bye[] = {0x44, 0x55, 0x50, 0x4c, 0x01, 0x03, 0x00, 0x00,
					   0x00, 0x00, 0x00, 0x01, 0x02};
	static const uint8_t want_hello_head[] = {
		0x44, 0x55, 0x50, 0x4c, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, /* header */
		0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, /* versions 1-1, node 2 */
	};
	static const uint8_t want_hello_tail[] = {0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x03, 0xe8};
	uint8_t buf[64];

	assert_int_equal(frame_encode(&bye, 1, buf, sizeof buf), sizeof want_bye);
	assert_memory_equal(buf, want_bye, sizeof want_bye);
	assert_int_equal(frame_encode(&hello, 1, buf, sizeof buf), FRAME_HEADER_SIZE + 32);
	assert_memory_equal(buf, want_hello_head, sizeof want_hello_head);
	assert_int_equal(buf[20], 0xa0);
	assert_int_equal(buf[35], 0xaf);
	assert_memory_equal(buf + 36, want_hello_tail, sizeof want_hello_tail);
}

/* Every proper prefix of a valid frame is "need more", never an error or a read beyond it
 * (each prefix is copied to an exact-size heap block so ASan sees any overread). */
static void test_truncations(void **state)
{
	struct frame samples[3] = {hello_sample(), heartbeat_sample(),
				   {.h.type = FRAME_GOODBYE, .u.bye.reason = 1}};
	uint8_t buf[128];

	for (int s = 0; s < 3; s++) {
		long n = frame_encode(&samples[s], 1, buf, sizeof buf);
		assert_true(n > 0);
		for (long k = 0; k < n; k++) {
			uint8_t *copy = malloc(k ? (size_t)k : 1);
			struct frame g;
			size_t used = 99;
			memcpy(copy, buf, (size_t)k);
			assert_int_equal(frame_decode(copy, (size_t)k, &g, &used), FRAME_NEED_MORE);
			assert_int_equal(used, 0);
			free(copy);
		}
	}
}

/* Two frames back to back decode one at a time. */
static void test_stream_of_frames(void **state)
{
	struct frame a = hello_sample(), b = heartbeat_sample(), g;
	uint8_t buf[256];
	long na = frame_encode(&a, 1, buf, sizeof buf);
	long nb = frame_encode(&b, 1, buf + na, sizeof buf - (size_t)na);
	size_t used;

	assert_true(na > 0 && nb > 0);
	assert_int_equal(frame_decode(buf, (size_t)(na + nb), &g, &used), FRAME_OK);
	assert_int_equal(used, (size_t)na);
	assert_int_equal(g.h.type, FRAME_HELLO);
	assert_int_equal(frame_decode(buf + used, (size_t)nb, &g, &used), FRAME_OK);
	assert_int_equal(g.h.type, FRAME_HEARTBEAT);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int decode_copy(const uint8_t *buf, size_t n)
{
	uint8_t *copy = malloc(n ? n : 1);
	struct frame g;
	size_t used;
	int r;

	memcpy(copy, buf, n);
	r = frame_decode(copy, n, &g, &used);
	free(copy);
	return r;
}

static void test_bad_headers(void **state)
{
	struct frame f = heartbeat_sample();
	uint8_t good[128], buf[128];
	long n = frame_encode(&f, 1, good, sizeof good);
	struct frame_header h;

	assert_true(n > 0);
#define MUTATE(stmt, want)                                                                    \
	do {                                                                                  \
		memcpy(buf, good, (size_t)n);                                                 \
		stmt;                                                                         \
		assert_int_equal(decode_copy(buf, (size_t)n), want);                          \
	} while (0)
	MUTATE(buf[0] = 'X', FRAME_ERR_MAGIC);
	MUTATE(buf[3] ^= 1, FRAME_ERR_MAGIC);
	MUTATE(buf[4] = 0, FRAME_ERR_VERSION);
	MUTATE(buf[4] = 2, FRAME_ERR_VERSION);
	MUTATE(buf[4] = 0xff, FRAME_ERR_VERSION);
	MUTATE(buf[5] = 0, FRAME_ERR_TYPE);
	MUTATE(buf[5] = 5, FRAME_ERR_TYPE);
	MUTATE(buf[5] = 0xff, FRAME_ERR_TYPE);
	MUTATE(buf[6] = 0x80, FRAME_ERR_FLAGS);
	MUTATE(buf[7] = 1, FRAME_ERR_FLAGS);
	MUTATE(put32(buf + 8, FRAME_HEARTBEAT_SIZE + 1), FRAME_ERR_LENGTH);
	MUTATE(put32(buf + 8, FRAME_HEARTBEAT_SIZE - 1), FRAME_ERR_LENGTH);
	MUTATE(put32(buf + 8, 0), FRAME_ERR_LENGTH);
	MUTATE(put32(buf + 8, FRAME_MAX_PAYLOAD + 1), FRAME_ERR_LENGTH);
	MUTATE(put32(buf + 8, UINT32_MAX), FRAME_ERR_LENGTH);
	/* A type whose fixed size the length does not match. */
	MUTATE(buf[5] = FRAME_HELLO, FRAME_ERR_LENGTH);
	MUTATE(buf[5] = FRAME_GOODBYE, FRAME_ERR_LENGTH);
#undef MUTATE
	/* The header check alone rejects an oversized APP before any payload arrives. */
	memcpy(buf, good, FRAME_HEADER_SIZE);
	buf[5] = FRAME_APP;
	put32(buf + 8, FRAME_MAX_PAYLOAD + 1);
	assert_int_equal(frame_header_decode(buf, FRAME_HEADER_SIZE, &h), FRAME_ERR_LENGTH);
	put32(buf + 8, 1);
	assert_int_equal(frame_header_decode(buf, FRAME_HEADER_SIZE, &h), FRAME_ERR_LENGTH);
	put32(buf + 8, FRAME_MAX_PAYLOAD);
	assert_int_equal(frame_header_decode(buf, FRAME_HEADER_SIZE, &h), FRAME_OK);
	assert_int_equal(frame_header_decode(buf, FRAME_HEADER_SIZE - 1, &h), FRAME_NEED_MORE);
}

/* Every field of every message out of range, in the payload bytes. */
static void test_bad_fields(void **state)
{
	struct frame hello = hello_sample(), hb = heartbeat_sample();
	struct frame bye = {.h.type = FRAME_GOODBYE, .u.bye.reason = 1};
	uint8_t good[128], buf[128];
	long n;

#define MUTATE(stmt, want)                                                                    \
	do {                                                                                  \
		memcpy(buf, good, (size_t)n);                                                 \
		stmt;                                                                         \
		assert_int_equal(decode_copy(buf, (size_t)n), want);                          \
	} while (0)
	n = frame_encode(&hello, 1, good, sizeof good);
	assert_true(n > 0);
	MUTATE((void)0, FRAME_OK);
	MUTATE(buf[12] = 0; buf[13] = 0, FRAME_ERR_FIELD);              /* version_min 0 */
	MUTATE(buf[13] = 2, FRAME_ERR_FIELD);                           /* min 2 > max 1 */
	MUTATE(put32(buf + 16, 0), FRAME_ERR_FIELD);                    /* node id 0 */
	MUTATE(memset(buf + 20, 0, FRAME_BOOT_ID_SIZE), FRAME_ERR_FIELD); /* boot id 0 */
	MUTATE(put32(buf + 36, 0), FRAME_ERR_FIELD);                    /* interval 0 */
	MUTATE(put32(buf + 40, 0), FRAME_ERR_FIELD);                    /* dead timeout 0 */
	/* A newer peer's wider range is fine: negotiation happens above this layer. */
	MUTATE(buf[15] = 9, FRAME_OK);

	n = frame_encode(&hb, 1, good, sizeof good);
	assert_true(n > 0);
	MUTATE((void)0, FRAME_OK);
	MUTATE(memset(buf + 12, 0, 8), FRAME_ERR_FIELD);  /* seq 0 */
	MUTATE(memset(buf + 20, 0, 8), FRAME_ERR_FIELD);  /* send time 0 */
	MUTATE(memset(buf + 28, 0, 8), FRAME_ERR_FIELD);  /* hold without echo */
	MUTATE(memset(buf + 28, 0, 12), FRAME_OK);        /* neither: fine */

	n = frame_encode(&bye, 1, good, sizeof good);
	assert_true(n > 0);
	MUTATE(buf[12] = 0, FRAME_ERR_FIELD);
	MUTATE(buf[12] = 3, FRAME_ERR_FIELD);
	MUTATE(buf[12] = 0xff, FRAME_ERR_FIELD);

	{
		struct frame app = {.h.type = FRAME_APP, .u.app = {.subtype = 1}};
		n = frame_encode(&app, 1, good, sizeof good);
		assert_int_equal(n, FRAME_HEADER_SIZE + 2);
		MUTATE(buf[13] = 0, FRAME_ERR_FIELD); /* subtype 0 */
	}
#undef MUTATE
}

/* The encoder refuses what the decoder would refuse. */
static void test_encode_rejects(void **state)
{
	uint8_t buf[128];
	struct frame f = hello_sample();

	assert_int_equal(frame_encode(&f, 0, buf, sizeof buf), FRAME_ERR_VERSION);
	assert_int_equal(frame_encode(&f, 2, buf, sizeof buf), FRAME_ERR_VERSION);
	assert_int_equal(frame_encode(&f, 1, buf, FRAME_HEADER_SIZE + FRAME_HELLO_SIZE - 1),
			 FRAME_ERR_SPACE);
	f.u.hello.node_id = 0;
	assert_int_equal(frame_encode(&f, 1, buf, sizeof buf), FRAME_ERR_FIELD);
	f = hello_sample();
	memset(f.u.hello.boot_id, 0, FRAME_BOOT_ID_SIZE);
	assert_int_equal(frame_encode(&f, 1, buf, sizeof buf), FRAME_ERR_FIELD);
	f = heartbeat_sample();
	f.u.hb.seq = 0;
	assert_int_equal(frame_encode(&f, 1, buf, sizeof buf), FRAME_ERR_FIELD);
	f = (struct frame){.h.type = FRAME_GOODBYE, .u.bye.reason = 9};
	assert_int_equal(frame_encode(&f, 1, buf, sizeof buf), FRAME_ERR_FIELD);
	f = (struct frame){.h.type = FRAME_APP, .u.app = {.subtype = 0}};
	assert_int_equal(frame_encode(&f, 1, buf, sizeof buf), FRAME_ERR_FIELD);
	f = (struct frame){.h.type = FRAME_APP, .u.app = {.subtype = 1, .len = 3}};
	assert_int_equal(frame_encode(&f, 1, buf, sizeof buf), FRAME_ERR_FIELD); /* NULL payload */
	f = (struct frame){.h.type = 9};
	assert_int_equal(frame_encode(&f, 1, buf, sizeof buf), FRAME_ERR_TYPE);
	assert_int_equal(frame_encoded_size(&f), 0);
}

/* Single-byte changes and random garbage: decode never crashes, and whatever it accepts
 * re-encodes to the same bytes (so nothing is silently misread). */
static void test_garbage(void **state)
{
	struct frame samples[2] = {hello_sample(), heartbeat_sample()};
	uint8_t good[128], buf[256], again[256];
	uint32_t x = 12345;

	for (int s = 0; s < 2; s++) {
		long n = frame_encode(&samples[s], 1, good, sizeof good);
		for (long i = 0; i < n; i++)
			for (int b = 0; b < 8; b++) {
				struct frame g;
				size_t used;
				memcpy(buf, good, (size_t)n);
				buf[i] ^= (uint8_t)(1u << b);
				if (frame_decode(buf, (size_t)n, &g, &used) == FRAME_OK) {
					long m = frame_encode(&g, g.h.version, again, sizeof again);
					assert_int_equal(m, (long)used);
					assert_memory_equal(again, buf, used);
				}
			}
	}
	for (int iter = 0; iter < 200000; iter++) {
		size_t len = 0;
		struct frame g;
		size_t used;
		x = x * 1103515245u + 12345u;
		len = (x >> 16) % sizeof buf;
		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = (uint8_t)(x >> 16);
		}
		/* Half the time start from a valid header so the payload checks get exercised. */
		if ((iter & 1) && len >= FRAME_HEADER_SIZE) {
			memcpy(buf, "DUPL\x01", 5);
			buf[5] = (uint8_t)(1 + iter % 4);
			buf[6] = buf[7] = 0;
			put32(buf + 8, (uint32_t)(len - FRAME_HEADER_SIZE));
		}
		if (decode_copy(buf, len) == FRAME_OK) {
			assert_int_equal(frame_decode(buf, len, &g, &used), FRAME_OK);
			long m = frame_encode(&g, g.h.version, again, sizeof again);
			assert_int_equal(m, (long)used);
			assert_memory_equal(again, buf, used);
		}
	}
}

static void test_names(void **state)
{
	assert_string_equal(frame_type_name(FRAME_APP), "APP");
	assert_string_equal(frame_type_name(99), "?");
	assert_string_equal(goodbye_reason_name(GOODBYE_RESTART), "restart");
	assert_string_equal(frame_strerror(FRAME_ERR_MAGIC), "bad magic");
	assert_string_equal(frame_strerror(-99), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_roundtrip),  cmocka_unit_test(test_heartbeat_roundtrip),
		cmocka_unit_test(test_goodbye_roundtrip), cmocka_unit_test(test_app_roundtrip),
		cmocka_unit_test(test_wire_bytes),        cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_stream_of_frames),  cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_bad_fields),        cmocka_unit_test(test_encode_rejects),
		cmocka_unit_test(test_garbage),           cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
