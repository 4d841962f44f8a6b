/* Encoding of the HA layer's APP payloads (see ha_wire.h).  Big-endian, fixed layouts with a
 * version byte first; docs/state-machine.md "Wiring" has the tables. */
#include "ha/ha_wire.h"
#include "lib/utf8.h"
#include "lib/bytes.h"

#include <stdio.h>
#include <string.h>

#define ST_SERVICES_OK 0x01
#define ST_MANUAL 0x02
#define ST_ENGINE_UP 0x04
#define ST_DB_UP 0x08

int ha_wire_state_encode(const struct ha_wire_state *s, uint8_t *buf, size_t cap)
{
	if (cap < HA_WIRE_STATE_SIZE || !ha_peer_info_valid(&s->info))
		return -1;
	memset(buf, 0, HA_WIRE_STATE_SIZE);
	buf[0] = HA_WIRE_VERSION;
	buf[1] = (uint8_t)s->info.state;
	buf[2] = (uint8_t)s->info.reason;
	buf[3] = (uint8_t)s->info.resume;
	buf[4] = s->info.serve;
	buf[5] = (uint8_t)((s->info.services_ok ? ST_SERVICES_OK : 0) |
			   (s->info.manual_failover ? ST_MANUAL : 0) |
			   (s->engine_up ? ST_ENGINE_UP : 0) | (s->db_up ? ST_DB_UP : 0));
	put32(buf + 8, s->info.txid);
	put64(buf + 12, s->since_unix);
	put32(buf + 20, s->sessions[0]);
	put32(buf + 24, s->sessions[1]);
	for (int i = 0; i < 3; i++)
		put32(buf + 28 + 4 * i, s->accounts[i]);
	return HA_WIRE_STATE_SIZE;
}

int ha_wire_state_decode(const uint8_t *buf, size_t len, struct ha_wire_state *s)
{
	if (len != HA_WIRE_STATE_SIZE || buf[0] != HA_WIRE_VERSION || buf[6] || buf[7] ||
	    (buf[5] & ~(ST_SERVICES_OK | ST_MANUAL | ST_ENGINE_UP | ST_DB_UP)))
		return -1;
	memset(s, 0, sizeof *s);
	s->info.state = (enum ha_state)buf[1];
	s->info.reason = (enum ha_reason)buf[2];
	s->info.resume = (enum ha_state)buf[3];
	s->info.serve = buf[4];
	s->info.services_ok = buf[5] & ST_SERVICES_OK;
	s->info.manual_failover = buf[5] & ST_MANUAL;
	s->engine_up = (buf[5] & ST_ENGINE_UP) != 0;
	s->db_up = (buf[5] & ST_DB_UP) != 0;
	s->info.txid = get32(buf + 8);
	s->since_unix = get64(buf + 12);
	s->sessions[0] = get32(buf + 20);
	s->sessions[1] = get32(buf + 24);
	for (int i = 0; i < 3; i++)
		s->accounts[i] = get32(buf + 28 + 4 * i);
	return ha_peer_info_valid(&s->info) ? 0 : -1;
}

int ha_wire_msg_encode(const struct ha_msg *m, uint8_t *buf, size_t cap)
{
	if (cap < HA_WIRE_MSG_SIZE || !ha_msg_valid(m))
		return -1;
	buf[0] = HA_WIRE_VERSION;
	buf[1] = (uint8_t)m->type;
	buf[2] = (uint8_t)m->reason;
	buf[3] = m->home;
	put32(buf + 4, m->txid);
	put32(buf + 8, m->txid2);
	return HA_WIRE_MSG_SIZE;
}

int ha_wire_msg_decode(const uint8_t *buf, size_t len, struct ha_msg *m)
{
	if (len != HA_WIRE_MSG_SIZE || buf[0] != HA_WIRE_VERSION || buf[3] > 2)
		return -1;
	memset(m, 0, sizeof *m);
	m->type = (enum ha_msg_type)buf[1];
	m->reason = (enum ha_reason)buf[2];
	m->home = buf[3];
	m->txid = get32(buf + 4);
	m->txid2 = get32(buf + 8);
	return ha_msg_valid(m) ? 0 : -1;
}

/* ---- provisioning ---- */

int ha_localpart_valid(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > HA_PROV_USER_MAX)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		if (*p <= 0x20 || *p == 0x7f || (*p >= 'A' && *p <= 'Z') || strchr("\"&'/:<>@", *p))
			return 0;
		size_t n = utf8_char_len_no_c1(p);
		if (!n)
			return 0;
		p += n;
	}
	return 1;
}

static int hex_literal_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 4 || n > HA_PROV_HEX_MAX || n % 2 || s[0] != '\\' || s[1] != 'x')
		return 0;
	for (size_t i = 2; i < n; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return 0;
	return 1;
}

static int iter_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 9 || s[0] == '0')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static int creds_valid(const struct ha_prov_creds *c)
{
	return hex_literal_valid(c->salt) && iter_valid(c->iter) && hex_literal_valid(c->stored) &&
	       hex_literal_valid(c->server);
}

static int req_valid(const struct ha_prov_req *r)
{
	if (!ha_localpart_valid(r->user) || r->home > 2)
		return 0;
	switch (r->op) {
	case HA_PROV_UPSERT:
		return creds_valid(&r->sha1) && creds_valid(&r->sha256);
	case HA_PROV_DELETE:
	case HA_PROV_ASSIGN:
		return 1;
	default:
		return 0;
	}
}

static size_t put_str8(uint8_t *p, const char *s)
{
	size_t n = strlen(s);
	p[0] = (uint8_t)n;
	memcpy(p + 1, s, n);
	return n + 1;
}

/* One u8-length string into out (size cap, n < cap); 0 or -1. */
static int get_str8(const uint8_t *buf, size_t len, size_t *off, char *out, size_t cap)
{
	if (*off >= len)
		return -1;
	size_t n = buf[*off];
	if (n >= cap || len - *off - 1 < n || memchr(buf + *off + 1, 0, n))
		return -1;
	memcpy(out, buf + *off + 1, n);
	out[n] = '\0';
	*off += n + 1;
	return 0;
}

static const struct ha_prov_creds *creds_at(const struct ha_prov_req *r, int i)
{
	return i == 0 ? &r->sha1 : &r->sha256;
}

int ha_prov_req_encode(const struct ha_prov_req *r, uint8_t *buf, size_t cap)
{
	if (cap < HA_PROV_REQ_MAX || !req_valid(r))
		return -1;
	buf[0] = HA_WIRE_VERSION;
	buf[1] = (uint8_t)r->op;
	buf[2] = r->home;
	buf[3] = 0;
	put32(buf + 4, r->id);
	size_t ulen = strlen(r->user), off = 8;
	put16(buf + off, (uint16_t)ulen);
	memcpy(buf + off + 2, r->user, ulen);
	off += 2 + ulen;
	if (r->op == HA_PROV_UPSERT) {
		for (int i = 0; i < 2; i++) {
			const struct ha_prov_creds *c = creds_at(r, i);
			off += put_str8(buf + off, c->salt);
			off += put_str8(buf + off, c->iter);
			off += put_str8(buf + off, c->stored);
			off += put_str8(buf + off, c->server);
		}
	}
	return (int)off;
}

int ha_prov_req_decode(const uint8_t *buf, size_t len, struct ha_prov_req *r)
{
	memset(r, 0, sizeof *r);
	if (len < 10 || len > HA_PROV_REQ_MAX || buf[0] != HA_WIRE_VERSION || buf[3] != 0)
		return -1;
	r->op = (enum ha_prov_op)buf[1];
	r->home = buf[2];
	r->id = get32(buf + 4);
	size_t ulen = get16(buf + 8), off = 10;
	if (ulen == 0 || ulen > HA_PROV_USER_MAX || len - off < ulen || memchr(buf + off, 0, ulen))
		return -1;
	memcpy(r->user, buf + off, ulen);
	r->user[ulen] = '\0';
	off += ulen;
	if (r->op == HA_PROV_UPSERT) {
		for (int i = 0; i < 2; i++) {
			struct ha_prov_creds *c = i == 0 ? &r->sha1 : &r->sha256;
			if (get_str8(buf, len, &off, c->salt, sizeof c->salt) < 0 ||
			    get_str8(buf, len, &off, c->iter, sizeof c->iter) < 0 ||
			    get_str8(buf, len, &off, c->stored, sizeof c->stored) < 0 ||
			    get_str8(buf, len, &off, c->server, sizeof c->server) < 0)
				return -1;
		}
	}
	if (off != len || !req_valid(r))
		return -1;
	return 0;
}

int ha_prov_resp_encode(const struct ha_prov_resp *r, uint8_t *buf, size_t cap)
{
	size_t n = strlen(r->msg);
	if (n > HA_PROV_MSG_MAX || cap < 8 + n || (unsigned)r->status > HA_PROV_BAD_REQUEST)
		return -1;
	buf[0] = HA_WIRE_VERSION;
	buf[1] = (uint8_t)r->status;
	put16(buf + 2, (uint16_t)n);
	put32(buf + 4, r->id);
	memcpy(buf + 8, r->msg, n);
	return (int)(8 + n);
}

int ha_prov_resp_decode(const uint8_t *buf, size_t len, struct ha_prov_resp *r)
{
	memset(r, 0, sizeof *r);
	if (len < 8 || buf[0] != HA_WIRE_VERSION || buf[1] > HA_PROV_BAD_REQUEST)
		return -1;
	size_t n = get16(buf + 2);
	if (n > HA_PROV_MSG_MAX || len != 8 + n)
		return -1;
	r->status = (enum ha_prov_status)buf[1];
	r->id = get32(buf + 4);
	/* Text for an operator's terminal: keep it printable. */
	for (size_t i = 0; i < n; i++)
		r->msg[i] = buf[8 + i] < 0x20 || buf[8 + i] == 0x7f ? '?' : (char)buf[8 + i];
	r->msg[n] = '\0';
	return 0;
}
