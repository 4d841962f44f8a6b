/* libFuzzer target for the route link's wire format (engine/route_frame.c, and the stanza
 * parser of engine/route.c), docs/route-protocol.md.
 *
 * Input: a byte stream as the peer engine would send it after TLS.  Frames are decoded one
 * after another until the first bad or incomplete one, as route_link.c does, and each
 * payload goes through the parser of its type.  Properties checked:
 *   - nothing reads outside the input (ASan) nor misbehaves (UBSan);
 *   - a header re-encodes to the same 8 bytes;
 *   - a HELLO, ACK number, SERVE set or ADMIT that parses formats back to a form that
 *     parses to the same values (an ADMIT to the same bytes), and our own HELLO parses;
 *   - a STANZA/PRESENCE body parses to at most one message, presence or iq, which
 *     serializes and parses back to the same element name. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_stanza(const char *body, size_t len)
{
	struct xml_node *st = route_stanza_parse(body, len);
	if (!st)
		return;
	if (strcmp(st->name, "message") && strcmp(st->name, "presence") && strcmp(st->name, "iq"))
		abort();
	size_t n;
	char *xml = xml_to_string(st, &n);
	if (!xml)
		abort();
	struct xml_node *again = route_stanza_parse(xml, n);
	if (!again || strcmp(again->name, st->name))
		abort();
	xml_free(again);
	free(xml);
	xml_free(st);
}

static void check_hello(const char *p, size_t len)
{
	struct route_hello h, h2;
	if (route_hello_parse(p, len, &h) < 0)
		return;
	if (h.instance == 0 || h.vmin > h.vmax)
		abort();
	char buf[ROUTE_HELLO_MAX];
	int n = snprintf(buf, sizeof buf, "duet-route %u %u %u %016llx", h.vmin, h.vmax, h.node,
			 (unsigned long long)h.instance);
	if (n > 0 && (size_t)n < sizeof buf &&
	    (route_hello_parse(buf, (size_t)n, &h2) < 0 || h2.vmin != h.vmin ||
	     h2.vmax != h.vmax || h2.node != h.node || h2.instance != h.instance))
		abort();
}

static void check_serve(const char *p, size_t len)
{
	bool set[ROUTE_MAX_NODE + 1], again[ROUTE_MAX_NODE + 1];
	if (route_serve_parse(p, len, set) < 0)
		return;
	char buf[4 * ROUTE_MAX_NODE];
	size_t off = 0;
	for (int i = 1; i <= ROUTE_MAX_NODE; i++)
		if (set[i])
			off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%d", off ? "," : "", i);
	if (!off)
		buf[off++] = '-';
	if (route_serve_parse(buf, off, again) < 0 || memcmp(set, again, sizeof set))
		abort();
}

static void check_ack(const char *p, size_t len)
{
	uint64_t v;
	if (route_parse_u64(p, len, &v) < 0)
		return;
	char buf[24];
	int n = snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
	if (n < 0 || (size_t)n != len || memcmp(buf, p, len)) /* one spelling per number */
		abort();
}

static void check_admit(const char *p, size_t len)
{
	struct route_admit a, again;
	if (route_admit_parse(p, len, &a) < 0)
		return;
	char buf[96];
	int n = route_admit_format(buf, sizeof buf, &a);
	if (n < 0 || (size_t)n != len || memcmp(buf, p, len) ||
	    route_admit_parse(buf, (size_t)n, &again) < 0 || memcmp(&a, &again, sizeof a))
		abort();
}

static void check_list(const char *p, size_t len, bool with_body)
{
	char *list = malloc(len + 1);
	const char *body = NULL;
	size_t body_len = 0;
	if (!list)
		return;
	if (route_list_split(p, len, with_body, list, len + 1, &body, &body_len) == 0) {
		if (strlen(list) == 0 || strlen(list) > len)
			abort();
		if (with_body) {
			if (body < p || body + body_len != p + len)
				abort();
			check_stanza(body, body_len);
		}
	}
	free(list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int once;
	if (!once) {
		once = 1;
		server.cfg.max_xml_depth = 16;
		char own[ROUTE_HELLO_MAX];
		struct route_hello h;
		int n = route_hello_format(own, sizeof own, 1, 0x0123456789abcdefULL);
		if (n < 0 || route_hello_parse(own, (size_t)n, &h) < 0 || h.node != 1 ||
		    h.instance != 0x0123456789abcdefULL)
			abort();
	}
	size_t off = 0;
	while (off < size) {
		enum route_frame_type type;
		uint32_t len;
		int r = route_frame_header(data + off, size - off, &type, &len);
		if (r != 0)
			break;
		unsigned char again[ROUTE_HEADER_SIZE];
		route_frame_header_encode(again, type, len);
		if (memcmp(again, data + off, sizeof again))
			abort();
		if (size - off - ROUTE_HEADER_SIZE < len)
			break;
		const char *p = (const char *)data + off + ROUTE_HEADER_SIZE;
		uint64_t seq;
		const char *rest;
		size_t rest_len;
		switch (type) {
		case ROUTE_HELLO:
			check_hello(p, len);
			break;
		case ROUTE_SERVE:
			check_serve(p, len);
			break;
		case ROUTE_STANZA:
			if (route_seq_split(p, len, &seq, &rest, &rest_len) == 0) {
				if (seq == 0 || rest + rest_len != p + len)
					abort();
				check_stanza(rest, rest_len);
			}
			break;
		case ROUTE_PRESENCE:
			check_list(p, len, true);
			break;
		case ROUTE_PROBE:
			check_list(p, len, false);
			break;
		case ROUTE_ACK:
			check_ack(p, len);
			break;
		case ROUTE_ADMIT:
			check_admit(p, len);
			break;
		case ROUTE_PING:
			break;
		}
		off += ROUTE_HEADER_SIZE + len;
	}
	return 0;
}
