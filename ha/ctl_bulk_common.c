/* Small pieces the bulk commands share (ctl_bulk.h). */
#include "ha/ctl_bulk.h"

#include "ha/engine_child.h"
#include "ha/pair.h"
#include "ha/srm.h"
#include "lib/log.h"

#include <event2/buffer.h>

#include <stdio.h>
#include <string.h>

static int job_running;

void bulk_served_nodes(const struct srm *srm, char *out, size_t cap)
{
	if (!srm->pair) {
		snprintf(out, cap, "{%ld}", srm->cfg.node_id);
		return;
	}
	uint8_t serve = pair_fsm(srm->pair)->serve;
	size_t used = (size_t)snprintf(out, cap, "{");
	for (int n = 1; n <= 2 && used < cap; n++)
		if (serve & HA_HOME_BIT(n))
			used += (size_t)snprintf(out + used, cap - used, "%s%d",
						 used > 1 ? "," : "", n);
	if (used < cap)
		snprintf(out + used, cap - used, "}");
}

void bulk_domain(const struct srm *srm, char *out, size_t cap)
{
	snprintf(out, cap, "%s", srm->cfg.domain);
	for (char *p = out; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

int bulk_engine_reload(struct srm *srm, const char *user)
{
	char dom[CFG_NAME], line[1001];
	bulk_domain(srm, dom, sizeof dom);
	if ((size_t)snprintf(line, sizeof line, "roster-reload %s@%s", user, dom) >= sizeof line) {
		log_warnx("bulk: %s: JID too long for the engine's request; its sessions see "
			  "the change at their next login", user);
		return -1;
	}
	/* The reply only matters to the log (the engine logs what it reloaded). */
	return engine_child_request(srm->engine, line, NULL, NULL) ? 0 : -1;
}

int bulk_job_begin(struct ctl_conn *c)
{
	if (job_running) {
		ctl_reply_error(c, "busy",
				"another bulk import, rename or assignment runs on this node; try "
				"again when it is done");
		return -1;
	}
	job_running = 1;
	return 0;
}

void bulk_job_end(void)
{
	job_running = 0;
}

void bulk_db_error(PGresult *res, const char *errmsg, char *out, size_t cap)
{
	snprintf(out, cap, "%s",
		 res ? PQresultErrorMessage(res) : errmsg ? errmsg : "query failed");
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

void bulk_printable(const char *s, size_t len, char *out, size_t cap)
{
	size_t used = 0;
	if (cap < 8)
		return;
	out[used++] = '"';
	for (size_t i = 0; i < len && used + 6 < cap; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\')
			used += (size_t)snprintf(out + used, cap - used, "\\x%02x", ch);
		else
			out[used++] = (char)ch;
	}
	if (len && used + 6 >= cap) {
		out[used++] = '.';
		out[used++] = '.';
	}
	out[used++] = '"';
	out[used] = '\0';
}

void bulk_hex_encode(const void *p, size_t len, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *b = p;
	size_t i = 0;
	for (; i < len && 2 * i + 2 < cap; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * i] = '\0';
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

int bulk_hex_decode(const char *hex, char *out, size_t cap)
{
	size_t n = strlen(hex);
	if (n % 2 || n / 2 >= cap)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (char)(hi << 4 | lo);
		if (!out[i])
			return -1;
	}
	out[n / 2] = '\0';
	return 0;
}

void bulk_pg_array_add(struct evbuffer *b, const char *s)
{
	evbuffer_add(b, evbuffer_get_length(b) ? "," : "{", 1);
	if (!s) {
		evbuffer_add(b, "NULL", 4);
		return;
	}
	evbuffer_add(b, "\"", 1);
	for (const char *p = s; *p; p++) {
		if (*p == '"' || *p == '\\')
			evbuffer_add(b, "\\", 1);
		evbuffer_add(b, p, 1);
	}
	evbuffer_add(b, "\"", 1);
}

const char *bulk_pg_array_end(struct evbuffer *b)
{
	if (!evbuffer_get_length(b))
		evbuffer_add(b, "{", 1);
	evbuffer_add(b, "}", 2); /* with the NUL */
	return (const char *)evbuffer_pullup(b, -1);
}
