/* Peer link frames: encode and decode.  Every read goes through a cursor that checks the
 * remaining length first, and every payload must have exactly the size its type says, so
 * trailing garbage is as much an error as a short frame. */
#include "heartbeat/frame.h"

#include <string.h>

struct cursor {
	const uint8_t *p;
	size_t left;
};

static uint8_t get_u8(struct cursor *c)
{
	uint8_t v = c->p[0];
	c->p += 1;
	c->left -= 1;
	return v;
}

static uint16_t get_u16(struct cursor *c)
{
	uint16_t v = (uint16_t)((unsigned)c->p[0] << 8 | c->p[1]);
	c->p += 2;
	c->left -= 2;
	return v;
}

static uint32_t get_u32(struct cursor *c)
{
	uint32_t v = (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 | (uint32_t)c->p[2] << 8 |
		     c->p[3];
	c->p += 4;
	c->left -= 4;
	return v;
}

static uint64_t get_u64(struct cursor *c)
{
	uint64_t hi = get_u32(c);
	return hi << 32 | get_u32(c);
}

static uint8_t *put_u8(uint8_t *p, uint8_t v)
{
	*p = v;
	return p + 1;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
	p = put_u32(p, (uint32_t)(v >> 32));
	return put_u32(p, (uint32_t)v);
}

static int boot_id_is_zero(const uint8_t id[FRAME_BOOT_ID_SIZE])
{
	uint8_t acc = 0;
	for (size_t i = 0; i < FRAME_BOOT_ID_SIZE; i++)
		acc |= id[i];
	return acc == 0;
}

/* The payload size a type requires: exact for fixed types, minimum for APP. */
static int payload_size_ok(uint8_t type, size_t len)
{
	switch (type) {
	case FRAME_HELLO:
		return len == FRAME_HELLO_SIZE;
	case FRAME_HEARTBEAT:
		return len == FRAME_HEARTBEAT_SIZE;
	case FRAME_GOODBYE:
		return len == FRAME_GOODBYE_SIZE;
	case FRAME_APP:
		return len >= FRAME_APP_MIN_SIZE && len <= FRAME_MAX_PAYLOAD;
	default:
		return 0;
	}
}

static int hello_check(const struct frame_hello *m)
{
	if (m->version_min == 0 || m->version_min > m->version_max || m->node_id == 0 ||
	    boot_id_is_zero(m->boot_id) || m->heartbeat_interval_ms == 0 ||
	    m->dead_timeout_ms == 0)
		return FRAME_ERR_FIELD;
	return FRAME_OK;
}

static int heartbeat_check(const struct frame_heartbeat *m)
{
	if (m->seq == 0 || m->send_time_us == 0)
		return FRAME_ERR_FIELD;
	/* A hold time only makes sense together with an echoed time. */
	if (m->echo_time_us == 0 && m->echo_hold_us != 0)
		return FRAME_ERR_FIELD;
	return FRAME_OK;
}

static int goodbye_check(const struct frame_goodbye *m)
{
	if (m->reason != GOODBYE_SHUTDOWN && m->reason != GOODBYE_RESTART)
		return FRAME_ERR_FIELD;
	return FRAME_OK;
}

int frame_header_decode(const uint8_t *buf, size_t len, struct frame_header *h)
{
	struct cursor c = {buf, len};

	if (len < FRAME_HEADER_SIZE)
		return FRAME_NEED_MORE;
	if (get_u32(&c) != FRAME_MAGIC)
		return FRAME_ERR_MAGIC;
	h->version = get_u8(&c);
	h->type = get_u8(&c);
	h->flags = get_u16(&c);
	h->length = get_u32(&c);
	if (h->version < FRAME_VERSION_MIN || h->version > FRAME_VERSION_MAX)
		return FRAME_ERR_VERSION;
	if (h->type < FRAME_HELLO || h->type > FRAME_APP)
		return FRAME_ERR_TYPE;
	if (h->flags != 0)
		return FRAME_ERR_FLAGS;
	if (h->length > FRAME_MAX_PAYLOAD || !payload_size_ok(h->type, h->length))
		return FRAME_ERR_LENGTH;
	return FRAME_OK;
}

static int hello_decode(struct cursor *c, struct frame_hello *m)
{
	m->version_min = get_u16(c);
	m->version_max = get_u16(c);
	m->node_id = get_u32(c);
	memcpy(m->boot_id, c->p, FRAME_BOOT_ID_SIZE);
	c->p += FRAME_BOOT_ID_SIZE;
	c->left -= FRAME_BOOT_ID_SIZE;
	m->heartbeat_interval_ms = get_u32(c);
	m->dead_timeout_ms = get_u32(c);
	return hello_check(m);
}

static int heartbeat_decode(struct cursor *c, struct frame_heartbeat *m)
{
	m->seq = get_u64(c);
	m->send_time_us = get_u64(c);
	m->echo_time_us = get_u64(c);
	m->echo_hold_us = get_u32(c);
	m->st.state = get_u16(c);
	m->st.reason = get_u16(c);
	m->st.services = get_u32(c);
	m->st.users_home = get_u32(c);
	m->st.users_served = get_u32(c);
	for (int i = 0; i < HB_REPL_POS_COUNT; i++)
		m->st.repl_pos[i] = get_u64(c);
	return heartbeat_check(m);
}

int frame_decode(const uint8_t *buf, size_t len, struct frame *f, size_t *consumed)
{
	struct cursor c;
	int r;

	*consumed = 0;
	r = frame_header_decode(buf, len, &f->h);
	if (r != FRAME_OK)
		return r;
	if (len - FRAME_HEADER_SIZE < f->h.length)
		return FRAME_NEED_MORE;
	/* payload_size_ok() in the header check guarantees each fixed type's reads fit. */
	c.p = buf + FRAME_HEADER_SIZE;
	c.left = f->h.length;
	switch (f->h.type) {
	case FRAME_HELLO:
		r = hello_decode(&c, &f->u.hello);
		break;
	case FRAME_HEARTBEAT:
		r = heartbeat_decode(&c, &f->u.hb);
		break;
	case FRAME_GOODBYE:
		f->u.bye.reason = get_u8(&c);
		r = goodbye_check(&f->u.bye);
		break;
	case FRAME_APP:
		f->u.app.subtype = get_u16(&c);
		f->u.app.payload = c.p;
		f->u.app.len = c.left;
		c.left = 0;
		r = f->u.app.subtype == 0 ? FRAME_ERR_FIELD : FRAME_OK;
		break;
	default:
		return FRAME_ERR_TYPE;
	}
	if (r != FRAME_OK)
		return r;
	if (c.left != 0) /* cannot happen with exact sizes; kept as a guard for new types */
		return FRAME_ERR_LENGTH;
	*consumed = FRAME_HEADER_SIZE + f->h.length;
	return FRAME_OK;
}

static size_t payload_size(const struct frame *f)
{
	switch (f->h.type) {
	case FRAME_HELLO:
		return FRAME_HELLO_SIZE;
	case FRAME_HEARTBEAT:
		return FRAME_HEARTBEAT_SIZE;
	case FRAME_GOODBYE:
		return FRAME_GOODBYE_SIZE;
	case FRAME_APP:
		if (f->u.app.len > FRAME_MAX_PAYLOAD - FRAME_APP_MIN_SIZE)
			return 0;
		return FRAME_APP_MIN_SIZE + f->u.app.len;
	default:
		return 0;
	}
}

size_t frame_encoded_size(const struct frame *f)
{
	size_t n = payload_size(f);
	return n ? FRAME_HEADER_SIZE + n : 0;
}

static uint8_t *header_put(uint8_t *p, uint8_t version, uint8_t type, uint32_t length)
{
	p = put_u32(p, FRAME_MAGIC);
	p = put_u8(p, version);
	p = put_u8(p, type);
	p = put_u16(p, 0);
	return put_u32(p, length);
}

static int frame_check(const struct frame *f)
{
	switch (f->h.type) {
	case FRAME_HELLO:
		return hello_check(&f->u.hello);
	case FRAME_HEARTBEAT:
		return heartbeat_check(&f->u.hb);
	case FRAME_GOODBYE:
		return goodbye_check(&f->u.bye);
	case FRAME_APP:
		if (f->u.app.subtype == 0 || (f->u.app.len && !f->u.app.payload))
			return FRAME_ERR_FIELD;
		return FRAME_OK;
	default:
		return FRAME_ERR_TYPE;
	}
}

long frame_encode(const struct frame *f, uint8_t version, uint8_t *buf, size_t cap)
{
	size_t n = payload_size(f), total;
	uint8_t *p = buf;
	int r;

	if (version < FRAME_VERSION_MIN || version > FRAME_VERSION_MAX)
		return FRAME_ERR_VERSION;
	r = frame_check(f);
	if (r != FRAME_OK)
		return r;
	if (n == 0)
		return FRAME_ERR_LENGTH;
	total = FRAME_HEADER_SIZE + n;
	if (cap < total)
		return FRAME_ERR_SPACE;
	p = header_put(p, version, f->h.type, (uint32_t)n);
	switch (f->h.type) {
	case FRAME_HELLO: {
		const struct frame_hello *m = &f->u.hello;
		p = put_u16(p, m->version_min);
		p = put_u16(p, m->version_max);
		p = put_u32(p, m->node_id);
		memcpy(p, m->boot_id, FRAME_BOOT_ID_SIZE);
		p += FRAME_BOOT_ID_SIZE;
		p = put_u32(p, m->heartbeat_interval_ms);
		p = put_u32(p, m->dead_timeout_ms);
		break;
	}
	case FRAME_HEARTBEAT: {
		const struct frame_heartbeat *m = &f->u.hb;
		p = put_u64(p, m->seq);
		p = put_u64(p, m->send_time_us);
		p = put_u64(p, m->echo_time_us);
		p = put_u32(p, m->echo_hold_us);
		p = put_u16(p, m->st.state);
		p = put_u16(p, m->st.reason);
		p = put_u32(p, m->st.services);
		p = put_u32(p, m->st.users_home);
		p = put_u32(p, m->st.users_served);
		for (int i = 0; i < HB_REPL_POS_COUNT; i++)
			p = put_u64(p, m->st.repl_pos[i]);
		break;
	}
	case FRAME_GOODBYE:
		p = put_u8(p, f->u.bye.reason);
		break;
	case FRAME_APP:
		p = put_u16(p, f->u.app.subtype);
		if (f->u.app.len)
			memcpy(p, f->u.app.payload, f->u.app.len);
		p += f->u.app.len;
		break;
	}
	return (long)(p - buf);
}

int frame_app_header_encode(uint8_t version, uint16_t subtype, size_t payload_len,
			    uint8_t out[FRAME_HEADER_SIZE + 2])
{
	if (version < FRAME_VERSION_MIN || version > FRAME_VERSION_MAX)
		return FRAME_ERR_VERSION;
	if (subtype == 0)
		return FRAME_ERR_FIELD;
	if (payload_len > FRAME_MAX_PAYLOAD - FRAME_APP_MIN_SIZE)
		return FRAME_ERR_LENGTH;
	put_u16(header_put(out, version, FRAME_APP, (uint32_t)(payload_len + 2)), subtype);
	return FRAME_OK;
}

const char *frame_strerror(int result)
{
	switch (result) {
	case FRAME_OK:
		return "ok";
	case FRAME_NEED_MORE:
		return "incomplete frame";
	case FRAME_ERR_MAGIC:
		return "bad magic";
	case FRAME_ERR_VERSION:
		return "unsupported frame version";
	case FRAME_ERR_TYPE:
		return "unknown frame type";
	case FRAME_ERR_FLAGS:
		return "reserved flags set";
	case FRAME_ERR_LENGTH:
		return "bad frame length";
	case FRAME_ERR_FIELD:
		return "field out of range";
	case FRAME_ERR_SPACE:
		return "buffer too small";
	default:
		return "unknown error";
	}
}

const char *frame_type_name(int type)
{
	switch (type) {
	case FRAME_HELLO:
		return "HELLO";
	case FRAME_HEARTBEAT:
		return "HEARTBEAT";
	case FRAME_GOODBYE:
		return "GOODBYE";
	case FRAME_APP:
		return "APP";
	default:
		return "?";
	}
}

const char *goodbye_reason_name(int reason)
{
	switch (reason) {
	case GOODBYE_SHUTDOWN:
		return "shutdown";
	case GOODBYE_RESTART:
		return "restart";
	default:
		return "?";
	}
}
