/* Building replies: stanza errors (RFC 6120 §8.3), iq results, delay stamps, ids. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "engine/engine.h"
#include "lib/log.h"

static struct xml_node *reply_skeleton(const struct xml_node *stanza, const char *type)
{
	struct xml_node *r = xml_elem_new(stanza->name);
	if (!r)
		return NULL;
	const char *from = xml_get_attr(stanza, "from"), *to = xml_get_attr(stanza, "to");
	const char *id = xml_get_attr(stanza, "id");
	if (from)
		xml_set_attr(r, "to", from);
	/* No 'to' means the account itself: its reply carries no 'from' (RFC 6120 §8.1.2.1). */
	if (to)
		xml_set_attr(r, "from", to);
	if (id)
		xml_set_attr(r, "id", id);
	xml_set_attr(r, "type", type);
	return r;
}

struct xml_node *stanza_error_reply(const struct xml_node *stanza, const char *type,
				    const char *condition, const char *text)
{
	struct xml_node *r = reply_skeleton(stanza, "error");
	if (!r)
		return NULL;
	/* Messages and presences carry their payload back (RFC 6120 §8.3.1); iq does not
	 * need to, and keeping replies small is kinder to a flooding sender. */
	if (strcmp(stanza->name, "iq") != 0) {
		for (struct xml_node *ch = stanza->children; ch; ch = ch->next) {
			struct xml_node *copy = xml_copy(ch);
			if (copy)
				xml_append(r, copy);
		}
	}
	struct xml_node *e = xml_new_child(r, "error");
	xml_set_attr(e, "type", type);
	xml_new_child_ns(e, condition, NS_STANZA_ERR);
	if (text) {
		struct xml_node *t = xml_new_child_ns(e, "text", NS_STANZA_ERR);
		xml_add_text(t, text, strlen(text));
	}
	return r;
}

struct xml_node *stanza_iq_result(const struct xml_node *iq, struct xml_node *payload)
{
	struct xml_node *r = reply_skeleton(iq, "result");
	if (r && payload)
		xml_append(r, payload);
	else if (payload)
		xml_free(payload);
	return r;
}

static bool is_error(const struct xml_node *stanza)
{
	const char *t = xml_get_attr(stanza, "type");
	return t && !strcmp(t, "error");
}

void stanza_bounce(struct resource *res, const struct xml_node *stanza, const char *type,
		   const char *condition)
{
	if (is_error(stanza) || !res || !res->conn)
		return;
	struct xml_node *r = stanza_error_reply(stanza, type, condition, NULL);
	if (r)
		conn_send(res->conn, r);
	xml_free(r);
}

void stanza_bounce_to_sender(const struct xml_node *stanza, const char *type,
			     const char *condition)
{
	const char *from = xml_get_attr(stanza, "from");
	struct jid j;
	if (is_error(stanza) || !from || jid_parse(from, &j) < 0)
		return;
	struct xml_node *r = stanza_error_reply(stanza, type, condition, NULL);
	if (r)
		route_to_local(&j, r);
}

void format_xmpp_time(time_t t, char *buf, size_t len)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void stanza_add_delay(struct xml_node *stanza, const char *from, time_t when)
{
	char stamp[32];
	format_xmpp_time(when, stamp, sizeof stamp);
	struct xml_node *d = xml_new_child_ns(stanza, "delay", NS_DELAY);
	if (!d)
		return;
	xml_set_attr(d, "from", from);
	xml_set_attr(d, "stamp", stamp);
	xml_add_text(d, "Offline Storage", 15);
}

void random_id(char *buf, size_t len)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char raw[64];
	size_t n = len - 1 < sizeof raw ? len - 1 : sizeof raw;
	if (RAND_bytes(raw, (int)n) != 1)
		fatalx("RAND_bytes failed");
	for (size_t i = 0; i < n; i++)
		buf[i] = alphabet[raw[i] % 36];
	buf[n] = '\0';
}
