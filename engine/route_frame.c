/* The route link's wire format without its side effects (docs/route-protocol.md): the
 * frame header, and the text fields of HELLO, SERVE, STANZA, ACK, PRESENCE, PROBE and ADMIT.
 * route_link.c and route.c decide what to do with them; the fuzz target
 * tests/fuzz/fuzz_route_frame.c drives these with hostile bytes.  Every function reads only
 * [p, p+len) and fails on anything but the exact form. */
#include <stdio.h>
#include <string.h>

#include "engine/route.h"

int route_frame_header(const unsigned char *h, size_t avail, enum route_frame_type *type,
		       uint32_t *len)
{
	if (avail < ROUTE_HEADER_SIZE)
		return 1;
	uint32_t n = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
	if (h[0] != ROUTE_MAGIC0 || h[1] != ROUTE_MAGIC1 || h[2] != ROUTE_VERSION ||
	    h[3] < ROUTE_HELLO || h[3] > ROUTE_FRAME_LAST || n > ROUTE_MAX_PAYLOAD)
		return -1;
	*type = (enum route_frame_type)h[3];
	*len = n;
	return 0;
}

void route_frame_header_encode(unsigned char h[ROUTE_HEADER_SIZE], enum route_frame_type type,
			       uint32_t len)
{
	h[0] = ROUTE_MAGIC0;
	h[1] = ROUTE_MAGIC1;
	h[2] = ROUTE_VERSION;
	h[3] = (unsigned char)type;
	h[4] = (unsigned char)(len >> 24);
	h[5] = (unsigned char)(len >> 16);
	h[6] = (unsigned char)(len >> 8);
	h[7] = (unsigned char)len;
}

int route_parse_u64(const char *s, size_t len, uint64_t *out)
{
	if (len == 0 || len > 19 || (len > 1 && s[0] == '0'))
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* "duet-route <vmin> <vmax> <node-id> <instance>", instance 16 lowercase hex digits. */
int route_hello_parse(const char *p, size_t len, struct route_hello *out)
{
	char buf[ROUTE_HELLO_MAX + 1];
	if (len >= sizeof buf || memchr(p, '\0', len))
		return -1;
	memcpy(buf, p, len);
	buf[len] = '\0';
	unsigned vmin, vmax, node;
	char inst[17], tail;
	int used = 0;
	if (sscanf(buf, "duet-route %u %u %u %16[0-9a-f]%n%c", &vmin, &vmax, &node, inst, &used,
		   &tail) != 4 ||
	    strlen(inst) != 16 || (size_t)used != len)
		return -1;
	uint64_t v = 0;
	for (int i = 0; i < 16; i++)
		v = v << 4 | (uint64_t)(inst[i] <= '9' ? inst[i] - '0' : inst[i] - 'a' + 10);
	if (v == 0 || vmin > vmax)
		return -1;
	out->vmin = vmin;
	out->vmax = vmax;
	out->node = node;
	out->instance = v;
	return 0;
}

int route_hello_format(char *buf, size_t size, int node, uint64_t instance)
{
	int n = snprintf(buf, size, "duet-route %d %d %d %016llx", ROUTE_VERSION, ROUTE_VERSION,
			 node, (unsigned long long)instance);
	return n > 0 && (size_t)n < size ? n : -1;
}

/* "-" or "1,2": no empty item, no trailing comma, every node 1..ROUTE_MAX_NODE. */
int route_serve_parse(const char *p, size_t len, bool next[ROUTE_MAX_NODE + 1])
{
	memset(next, 0, sizeof(bool) * (ROUTE_MAX_NODE + 1));
	if (len == 0 || len >= 4 * ROUTE_MAX_NODE)
		return -1;
	if (len == 1 && p[0] == '-')
		return 0;
	size_t i = 0;
	while (i < len) {
		size_t start = i;
		while (i < len && p[i] != ',')
			i++;
		uint64_t n;
		if (route_parse_u64(p + start, i - start, &n) < 0 || n < 1 || n > ROUTE_MAX_NODE)
			return -1;
		next[n] = true;
		if (i < len && ++i == len)
			return -1; /* trailing comma */
	}
	return 0;
}

/* "<seq>\n<rest>": seq >= 1. */
int route_seq_split(const char *p, size_t len, uint64_t *seq, const char **rest,
		    size_t *rest_len)
{
	const char *nl = memchr(p, '\n', len);
	if (!nl || route_parse_u64(p, (size_t)(nl - p), seq) < 0 || *seq == 0)
		return -1;
	*rest = nl + 1;
	*rest_len = len - (size_t)(nl + 1 - p);
	return 0;
}

/* "<a> <b> ...\n<body>" (with_body) or "<a> <b> ...": the list is copied, NUL-terminated,
 * into list (size bytes), which must hold it. */
int route_list_split(const char *p, size_t len, bool with_body, char *list, size_t size,
		     const char **body, size_t *body_len)
{
	const char *nl = with_body ? memchr(p, '\n', len) : p + len;
	if (!nl || nl == p)
		return -1;
	size_t ll = (size_t)(nl - p);
	if (ll >= size || memchr(p, '\0', ll))
		return -1;
	memcpy(list, p, ll);
	list[ll] = '\0';
	if (with_body) {
		*body = nl + 1;
		*body_len = len - ll - 1;
	}
	return 0;
}

/* "<capacity> <inflight> <logins> <refused>": four decimal numbers, one space apart. */
int route_admit_parse(const char *p, size_t len, struct route_admit *out)
{
	uint64_t v[4];
	size_t at = 0;
	for (int i = 0; i < 4; i++) {
		size_t end = at;
		while (end < len && p[end] != ' ')
			end++;
		if ((i < 3) != (end < len) || route_parse_u64(p + at, end - at, &v[i]) < 0)
			return -1;
		at = end + 1;
	}
	*out = (struct route_admit){v[0], v[1], v[2], v[3]};
	return 0;
}

int route_admit_format(char *buf, size_t size, const struct route_admit *a)
{
	int n = snprintf(buf, size, "%llu %llu %llu %llu", (unsigned long long)a->capacity,
			 (unsigned long long)a->inflight, (unsigned long long)a->logins,
			 (unsigned long long)a->refused);
	return n > 0 && (size_t)n < size ? n : -1;
}
