/* Replication frames (docs/replication-protocol.md §3): pure encode/decode, libc only (the
 * fuzz target includes this file directly).  Decoding checks every field against the exact
 * length it is given; anything malformed is an error, trailing bytes included. */
#include "replication/replication.h"
#include "lib/bytes.h"

#include <stdlib.h>
#include <string.h>

const char *repl_wire_strerror(int err)
{
	switch (err) {
	case REPL_WIRE_OK:
		return "ok";
	case REPL_WIRE_SHORT:
		return "length does not match the fields";
	case REPL_WIRE_VERSION:
		return "unsupported version";
	case REPL_WIRE_FIELD:
		return "field out of range";
	case REPL_WIRE_ORDER:
		return "change ids out of order";
	case REPL_WIRE_NOMEM:
		return "out of memory";
	case REPL_WIRE_SPACE:
		return "does not fit in one frame";
	}
	return "unknown error";
}

/* ---- HELLO ---- */

int repl_hello_encode(const struct repl_hello *h, uint8_t out[REPL_HELLO_SIZE])
{
	if (h->version_min < 1 || h->version_max < h->version_min || h->node_id == 0 ||
	    h->epoch == 0)
		return REPL_WIRE_FIELD;
	memset(out, 0, REPL_HELLO_SIZE);
	out[0] = 1; /* HELLO is always read as version 1 */
	out[1] = h->version_min;
	out[2] = h->version_max;
	put32(out + 4, h->node_id);
	put32(out + 8, h->schema_version);
	put64(out + 16, h->epoch);
	put64(out + 24, h->head);
	put64(out + 32, h->peer_epoch);
	put64(out + 40, h->applied);
	return REPL_WIRE_OK;
}

int repl_hello_decode(const uint8_t *p, size_t len, struct repl_hello *h)
{
	if (len != REPL_HELLO_SIZE)
		return REPL_WIRE_SHORT;
	if (p[0] != 1)
		return REPL_WIRE_VERSION;
	h->version_min = p[1];
	h->version_max = p[2];
	h->node_id = get32(p + 4);
	h->schema_version = get32(p + 8);
	h->epoch = get64(p + 16);
	h->head = get64(p + 24);
	h->peer_epoch = get64(p + 32);
	h->applied = get64(p + 40);
	if (p[3] != 0 || get32(p + 12) != 0 || h->version_min < 1 ||
	    h->version_max < h->version_min || h->node_id == 0 || h->epoch == 0 ||
	    h->head > INT64_MAX || h->applied > INT64_MAX || h->peer_epoch > INT64_MAX ||
	    h->epoch > INT64_MAX)
		return REPL_WIRE_FIELD;
	return REPL_WIRE_OK;
}

/* ---- ACK ---- */

int repl_ack_encode(const struct repl_ack *a, uint8_t out[REPL_ACK_SIZE])
{
	if ((a->flags & ~REPL_ACK_SNAPSHOT) || a->node_id == 0 || a->epoch == 0)
		return REPL_WIRE_FIELD;
	memset(out, 0, REPL_ACK_SIZE);
	out[0] = a->version;
	out[1] = a->flags;
	put32(out + 4, a->node_id);
	put64(out + 8, a->epoch);
	put64(out + 16, a->value);
	return REPL_WIRE_OK;
}

int repl_ack_decode(const uint8_t *p, size_t len, struct repl_ack *a)
{
	if (len != REPL_ACK_SIZE)
		return REPL_WIRE_SHORT;
	if (p[0] < REPL_VERSION_MIN || p[0] > REPL_VERSION_MAX)
		return REPL_WIRE_VERSION;
	a->version = p[0];
	a->flags = p[1];
	a->node_id = get32(p + 4);
	a->epoch = get64(p + 8);
	a->value = get64(p + 16);
	if ((a->flags & ~REPL_ACK_SNAPSHOT) || get16(p + 2) != 0 || a->node_id == 0 ||
	    a->epoch == 0 || a->epoch > INT64_MAX || a->value > INT64_MAX)
		return REPL_WIRE_FIELD;
	return REPL_WIRE_OK;
}

/* ---- RESYNC_BEGIN / RESYNC_END ---- */

int repl_mark_encode(const struct repl_mark *m, uint8_t out[REPL_MARK_SIZE])
{
	if (m->origin == 0 || m->epoch == 0)
		return REPL_WIRE_FIELD;
	memset(out, 0, REPL_MARK_SIZE);
	out[0] = m->version;
	put32(out + 4, m->origin);
	put64(out + 8, m->epoch);
	put64(out + 16, m->position);
	put64(out + 24, m->rows);
	put64(out + 32, m->seen_hlc);
	return REPL_WIRE_OK;
}

int repl_mark_decode(const uint8_t *p, size_t len, struct repl_mark *m)
{
	if (len != REPL_MARK_SIZE)
		return REPL_WIRE_SHORT;
	if (p[0] < REPL_VERSION_MIN || p[0] > REPL_VERSION_MAX)
		return REPL_WIRE_VERSION;
	m->version = p[0];
	m->origin = get32(p + 4);
	m->epoch = get64(p + 8);
	m->position = get64(p + 16);
	m->rows = get64(p + 24);
	m->seen_hlc = get64(p + 32);
	if (p[1] || p[2] || p[3] || m->origin == 0 || m->epoch == 0 || m->epoch > INT64_MAX ||
	    m->position > INT64_MAX || m->rows > INT64_MAX || m->seen_hlc > INT64_MAX)
		return REPL_WIRE_FIELD;
	return REPL_WIRE_OK;
}

/* ---- BATCH ---- */

static int tbl_ok(const char *s, size_t n)
{
	if (n < 1 || n > REPL_MAX_TBL)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int ok = (c >= 'a' && c <= 'z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return 0;
	}
	return 1;
}

int repl_change_check(const struct repl_change *c, uint8_t flags, uint32_t batch_origin)
{
	int snap = flags & REPL_BATCH_SNAPSHOT;
	if (c->op != 'I' && c->op != 'U' && c->op != 'D')
		return REPL_WIRE_FIELD;
	if (!tbl_ok(c->tbl, c->tbl_len))
		return REPL_WIRE_FIELD;
	if (c->pk_len < 2 || c->pk_len > REPL_MAX_PK || memchr(c->pk, 0, c->pk_len))
		return REPL_WIRE_FIELD;
	if (c->op == 'D' ? c->data_len != 0
			 : (c->data_len < 2 || c->data_len > REPL_MAX_DATA ||
			    memchr(c->data, 0, c->data_len)))
		return REPL_WIRE_FIELD;
	if (c->hlc > INT64_MAX || c->prev_hlc > INT64_MAX || c->origin > INT32_MAX ||
	    c->prev_origin > INT32_MAX || c->id > INT64_MAX)
		return REPL_WIRE_FIELD;
	if (snap) {
		if (c->id != 0 || c->prev_hlc != 0 || c->prev_origin != 0 || c->op == 'I')
			return REPL_WIRE_FIELD;
	} else {
		if (c->id == 0 || c->hlc == 0 || c->origin != batch_origin)
			return REPL_WIRE_FIELD;
	}
	return REPL_WIRE_OK;
}

int repl_batch_decode(const uint8_t *p, size_t len, struct repl_batch **out)
{
	*out = NULL;
	if (len < REPL_BATCH_HEADER_SIZE || len > REPL_FRAME_MAX)
		return REPL_WIRE_SHORT;
	if (p[0] < REPL_VERSION_MIN || p[0] > REPL_VERSION_MAX)
		return REPL_WIRE_VERSION;
	uint8_t flags = p[1];
	uint32_t count = get16(p + 2);
	uint32_t origin = get32(p + 4);
	uint64_t epoch = get64(p + 8), after = get64(p + 16), last = get64(p + 24);
	uint64_t head = get64(p + 32);
	int snap = flags & REPL_BATCH_SNAPSHOT;
	if ((flags & ~REPL_BATCH_SNAPSHOT) || count < 1 || count > REPL_MAX_CHANGES ||
	    origin == 0 || origin > INT32_MAX || epoch == 0 || epoch > INT64_MAX ||
	    after > INT64_MAX || last > INT64_MAX || head > INT64_MAX || get64(p + 40) != 0)
		return REPL_WIRE_FIELD;
	if (snap ? (after < 1 || last != 0) : last <= after)
		return REPL_WIRE_FIELD;
	/* Every change needs at least its fixed part: bound count by the length before
	 * allocating anything. */
	if ((size_t)count * REPL_CHANGE_FIXED_SIZE > len - REPL_BATCH_HEADER_SIZE)
		return REPL_WIRE_SHORT;

	struct repl_batch *b = calloc(1, sizeof *b);
	if (!b)
		return REPL_WIRE_NOMEM;
	b->changes = calloc(count, sizeof *b->changes);
	b->copy = malloc(len);
	if (!b->changes || !b->copy) {
		repl_batch_free(b);
		return REPL_WIRE_NOMEM;
	}
	memcpy(b->copy, p, len);
	b->size = len;
	b->version = p[0];
	b->flags = flags;
	b->count = count;
	b->origin = origin;
	b->epoch = epoch;
	b->after = after;
	b->last = last;
	b->head = head;

	const uint8_t *q = b->copy;
	size_t off = REPL_BATCH_HEADER_SIZE;
	uint64_t prev_id = after;
	int rc = REPL_WIRE_OK;
	for (uint32_t i = 0; i < count && rc == REPL_WIRE_OK; i++) {
		struct repl_change *c = &b->changes[i];
		if (len - off < REPL_CHANGE_FIXED_SIZE) {
			rc = REPL_WIRE_SHORT;
			break;
		}
		c->id = get64(q + off);
		c->hlc = get64(q + off + 8);
		c->prev_hlc = get64(q + off + 16);
		c->origin = get32(q + off + 24);
		c->prev_origin = get32(q + off + 28);
		c->op = (char)q[off + 32];
		c->tbl_len = q[off + 33];
		c->pk_len = get32(q + off + 34);
		c->data_len = get32(q + off + 38);
		off += REPL_CHANGE_FIXED_SIZE;
		/* Each length is bounded before the sum, so nothing overflows. */
		if (c->tbl_len > REPL_MAX_TBL || c->pk_len > REPL_MAX_PK ||
		    c->data_len > REPL_MAX_DATA) {
			rc = REPL_WIRE_FIELD;
			break;
		}
		size_t var = c->tbl_len + c->pk_len + c->data_len;
		if (len - off < var) {
			rc = REPL_WIRE_SHORT;
			break;
		}
		c->tbl = (const char *)q + off;
		c->pk = c->tbl + c->tbl_len;
		c->data = c->pk + c->pk_len;
		off += var;
		rc = repl_change_check(c, flags, origin);
		if (rc == REPL_WIRE_OK && !snap) {
			if (c->id <= prev_id)
				rc = REPL_WIRE_ORDER;
			prev_id = c->id;
		}
	}
	if (rc == REPL_WIRE_OK && off != len)
		rc = REPL_WIRE_SHORT;
	if (rc == REPL_WIRE_OK && !snap && prev_id != last)
		rc = REPL_WIRE_ORDER;
	if (rc != REPL_WIRE_OK) {
		repl_batch_free(b);
		return rc;
	}
	*out = b;
	return REPL_WIRE_OK;
}

void repl_batch_free(struct repl_batch *b)
{
	if (!b)
		return;
	free(b->changes);
	free(b->copy);
	free(b);
}

int repl_builder_init(struct repl_builder *b, uint8_t flags, uint32_t origin, uint64_t epoch,
		      uint64_t after, uint64_t head, size_t max_bytes)
{
	memset(b, 0, sizeof *b);
	if ((flags & ~REPL_BATCH_SNAPSHOT) || origin == 0 || epoch == 0)
		return REPL_WIRE_FIELD;
	if (max_bytes == 0 || max_bytes > REPL_FRAME_MAX)
		max_bytes = REPL_FRAME_MAX;
	if (max_bytes < REPL_BATCH_HEADER_SIZE + REPL_CHANGE_FIXED_SIZE)
		return REPL_WIRE_FIELD;
	b->buf = malloc(max_bytes);
	if (!b->buf)
		return REPL_WIRE_NOMEM;
	b->max_bytes = max_bytes;
	b->flags = flags;
	b->origin = origin;
	b->after = after;
	b->last_id = after;
	memset(b->buf, 0, REPL_BATCH_HEADER_SIZE);
	b->buf[0] = REPL_VERSION_MAX;
	b->buf[1] = flags;
	put32(b->buf + 4, origin);
	put64(b->buf + 8, epoch);
	put64(b->buf + 16, after);
	put64(b->buf + 32, head);
	b->len = REPL_BATCH_HEADER_SIZE;
	return REPL_WIRE_OK;
}

int repl_builder_add(struct repl_builder *b, const struct repl_change *c)
{
	int rc = repl_change_check(c, b->flags, b->origin);
	if (rc != REPL_WIRE_OK)
		return rc;
	if (!(b->flags & REPL_BATCH_SNAPSHOT) && c->id <= b->last_id)
		return REPL_WIRE_ORDER;
	size_t need = REPL_CHANGE_FIXED_SIZE + c->tbl_len + c->pk_len + c->data_len;
	if (b->count >= REPL_MAX_CHANGES || need > b->max_bytes - b->len)
		return REPL_WIRE_SPACE;
	uint8_t *q = b->buf + b->len;
	put64(q, c->id);
	put64(q + 8, c->hlc);
	put64(q + 16, c->prev_hlc);
	put32(q + 24, c->origin);
	put32(q + 28, c->prev_origin);
	q[32] = (uint8_t)c->op;
	q[33] = (uint8_t)c->tbl_len;
	put32(q + 34, (uint32_t)c->pk_len);
	put32(q + 38, (uint32_t)c->data_len);
	q += REPL_CHANGE_FIXED_SIZE;
	memcpy(q, c->tbl, c->tbl_len);
	memcpy(q + c->tbl_len, c->pk, c->pk_len);
	if (c->data_len)
		memcpy(q + c->tbl_len + c->pk_len, c->data, c->data_len);
	b->len += need;
	b->count++;
	if (!(b->flags & REPL_BATCH_SNAPSHOT))
		b->last_id = c->id;
	return REPL_WIRE_OK;
}

size_t repl_builder_finish(struct repl_builder *b)
{
	if (b->count == 0)
		return 0;
	put16(b->buf + 2, (uint16_t)b->count);
	put64(b->buf + 24, (b->flags & REPL_BATCH_SNAPSHOT) ? 0 : b->last_id);
	return b->len;
}

void repl_builder_release(struct repl_builder *b)
{
	free(b->buf);
	b->buf = NULL;
}
