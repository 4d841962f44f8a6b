/* libFuzzer target for the replication frame decoders (replication/repl_wire.c).
 *
 * Input: one byte choosing the frame (low 3 bits: 0 HELLO, 1 ACK, 2 RESYNC mark, else BATCH),
 * then the payload as a peer would send it.  Properties checked:
 *   - the decoders never read outside the input (ASan) nor misbehave (UBSan);
 *   - whatever decodes re-encodes to exactly the same bytes (a BATCH through the builder),
 *     so no two encodings mean the same frame and nothing is silently skipped. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The fuzz build links engine/ and lib/ only: take the codec's source directly. */
#include "replication/repl_wire.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_batch(const uint8_t *p, size_t len)
{
	struct repl_batch *b;
	if (repl_batch_decode(p, len, &b) != REPL_WIRE_OK)
		return;
	struct repl_builder w;
	if (repl_builder_init(&w, b->flags, b->origin, b->epoch, b->after, b->head, 0) !=
	    REPL_WIRE_OK)
		abort();
	for (uint32_t i = 0; i < b->count; i++)
		if (repl_builder_add(&w, &b->changes[i]) != REPL_WIRE_OK)
			abort();
	size_t n = repl_builder_finish(&w);
	if (n != len || memcmp(w.buf, p, len) != 0)
		abort();
	repl_builder_release(&w);
	repl_batch_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t len = size - 1;
	switch (data[0] & 7) {
	case 0: {
		struct repl_hello h;
		uint8_t out[REPL_HELLO_SIZE];
		if (repl_hello_decode(p, len, &h) == REPL_WIRE_OK &&
		    (repl_hello_encode(&h, out) != REPL_WIRE_OK || memcmp(out, p, len) != 0))
			abort();
		break;
	}
	case 1: {
		struct repl_ack a;
		uint8_t out[REPL_ACK_SIZE];
		if (repl_ack_decode(p, len, &a) == REPL_WIRE_OK &&
		    (repl_ack_encode(&a, out) != REPL_WIRE_OK || memcmp(out, p, len) != 0))
			abort();
		break;
	}
	case 2: {
		struct repl_mark m;
		uint8_t out[REPL_MARK_SIZE];
		if (repl_mark_decode(p, len, &m) == REPL_WIRE_OK &&
		    (repl_mark_encode(&m, out) != REPL_WIRE_OK || memcmp(out, p, len) != 0))
			abort();
		break;
	}
	default:
		check_batch(p, len);
		break;
	}
	return 0;
}
