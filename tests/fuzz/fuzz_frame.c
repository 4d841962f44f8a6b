/* libFuzzer target for the peer link's frame decoder (heartbeat/frame.c).
 *
 * Input: a byte stream as a peer would send it.  Frames are decoded one after another until
 * the first error or incomplete frame, as peer_link.c does.  Properties checked:
 *   - the decoder never reads outside the input (ASan) nor misbehaves (UBSan);
 *   - whatever decodes re-encodes to exactly the same bytes, so no two encodings mean the
 *     same frame and nothing is silently skipped;
 *   - the header check and the full decode agree on errors. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The fuzz build links engine/ and lib/ only: take the decoder's source directly. */
#include "heartbeat/frame.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t again[FRAME_HEADER_SIZE + FRAME_MAX_PAYLOAD];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		struct frame f;
		struct frame_header h;
		size_t used = 0;
		int hr = frame_header_decode(data + off, size - off, &h);
		int r = frame_decode(data + off, size - off, &f, &used);

		if (hr < 0 && r != hr)
			abort(); /* a bad header must fail the whole decode the same way */
		if (r != FRAME_OK)
			break;
		if (used < FRAME_HEADER_SIZE || used > size - off)
			abort();
		long n = frame_encode(&f, f.h.version, again, sizeof again);
		if (n < 0 || (size_t)n != used || memcmp(again, data + off, used) != 0)
			abort();
		if (frame_encoded_size(&f) != used)
			abort();
		off += used;
	}
	return 0;
}
