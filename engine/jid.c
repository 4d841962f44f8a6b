#include "engine/jid.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* RFC 7622 forbids these in a localpart (plus controls and space). */
static int local_char_ok(unsigned char c)
{
	return c > 0x20 && c != 0x7f && !strchr("\"&'/:<>@", c);
}

int jid_local_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > JID_PART_MAX)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (!local_char_ok(*p))
			return 0;
	return 1;
}

int jid_resource_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > JID_PART_MAX)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

static void lower_ascii(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static int domain_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (!(isalnum(*p) || *p == '-' || *p == '.' || *p == ':' || *p == '[' ||
		      *p == ']' || *p >= 0x80))
			return 0;
	return 1;
}

int jid_parse(const char *s, struct jid *out)
{
	memset(out, 0, sizeof *out);
	size_t n = strlen(s);
	if (n == 0 || n > 3 * JID_PART_MAX)
		return -1;
	const char *slash = strchr(s, '/');
	const char *end = slash ? slash : s + n;
	const char *at = memchr(s, '@', (size_t)(end - s));
	const char *dom = at ? at + 1 : s;
	if (at) {
		size_t ln = (size_t)(at - s);
		if (ln == 0 || ln > JID_PART_MAX)
			return -1;
		memcpy(out->local, s, ln);
		lower_ascii(out->local);
		if (!jid_local_valid(out->local))
			return -1;
	}
	size_t dn = (size_t)(end - dom);
	if (dn == 0 || dn > JID_PART_MAX)
		return -1;
	memcpy(out->domain, dom, dn);
	if (out->domain[dn - 1] == '.') /* a trailing dot is dropped (RFC 7622 §3.2) */
		out->domain[dn - 1] = '\0';
	lower_ascii(out->domain);
	if (!domain_valid(out->domain))
		return -1;
	if (slash) {
		size_t rn = strlen(slash + 1);
		if (rn == 0 || rn > JID_PART_MAX)
			return -1;
		memcpy(out->resource, slash + 1, rn + 1);
		if (!jid_resource_valid(out->resource))
			return -1;
	}
	return 0;
}

char *jid_bare(const struct jid *j, char *buf, size_t len)
{
	if (j->local[0])
		snprintf(buf, len, "%s@%s", j->local, j->domain);
	else
		snprintf(buf, len, "%s", j->domain);
	return buf;
}

char *jid_full(const struct jid *j, char *buf, size_t len)
{
	char bare[2 * JID_PART_MAX + 2];
	jid_bare(j, bare, sizeof bare);
	if (j->resource[0])
		snprintf(buf, len, "%s/%s", bare, j->resource);
	else
		snprintf(buf, len, "%s", bare);
	return buf;
}
