/* Rosters (RFC 6121 §2) with versioning (XEP-0237): get, set, remove, pushes to every
 * resource that asked for the roster.  A version is a per-user counter bumped by every
 * change; a client holding the current version gets an empty result and the pushes that
 * follow, any other version gets the whole roster. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "lib/log.h"
#include "lib/pg.h"
#include "lib/strmap.h"

#define MAX_GROUPS 64
#define MAX_NAME 1023

struct roster_item *roster_item_new(const char *contact)
{
	struct roster_item *it = calloc(1, sizeof *it);
	if (!it || !(it->contact = strdup(contact))) {
		free(it);
		return NULL;
	}
	return it;
}

static void groups_free(char **g)
{
	for (char **p = g; p && *p; p++)
		free(*p);
	free(g);
}

void roster_item_free(struct roster_item *it)
{
	if (!it)
		return;
	free(it->contact);
	free(it->name);
	groups_free(it->groups);
	free(it->pending_in_stanza);
	free(it);
}

struct roster_item *roster_get(struct user *u, const char *contact)
{
	return strmap_get(u->roster, contact);
}

/* "a\nb\nc" -> {"a","b","c",NULL}; "" -> NULL. */
static char **groups_split(const char *s)
{
	if (!s || !*s)
		return NULL;
	size_t n = 1;
	for (const char *p = s; *p; p++)
		n += *p == '\n';
	char **g = calloc(n + 1, sizeof *g);
	if (!g)
		return NULL;
	size_t i = 0;
	for (const char *p = s;; i++) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		g[i] = strndup(p, len);
		if (!g[i]) {
			groups_free(g);
			return NULL;
		}
		if (!e)
			break;
		p = e + 1;
	}
	return g;
}

static char *groups_join(char **g)
{
	size_t len = 1;
	for (char **p = g; p && *p; p++)
		len += strlen(*p) + 1;
	char *s = malloc(len);
	if (!s)
		return NULL;
	s[0] = '\0';
	for (char **p = g; p && *p; p++) {
		if (p != g)
			strcat(s, "\n");
		strcat(s, *p);
	}
	return s;
}

static bool col_true(PGresult *res, int row, int col)
{
	return PQgetvalue(res, row, col)[0] == 't';
}

int roster_load_rows(struct user *u, void *pgresult, int c)
{
	PGresult *res = pgresult;
	for (int row = 0; row < PQntuples(res); row++) {
		if (PQgetisnull(res, row, c))
			continue; /* the LEFT JOIN's empty roster */
		struct roster_item *it = roster_item_new(PQgetvalue(res, row, c));
		if (!it)
			return -1;
		if (!PQgetisnull(res, row, c + 1))
			it->name = strdup(PQgetvalue(res, row, c + 1));
		enum sub_state st = SUB_NONE;
		sub_state_from_name(PQgetvalue(res, row, c + 2), &st);
		it->st = (struct sub_item){
			.exists = true,
			.sub = st,
			.ask_out = col_true(res, row, c + 3),
			.pending_in = col_true(res, row, c + 4),
			.preapproved = col_true(res, row, c + 5),
			.visible = col_true(res, row, c + 6),
		};
		it->groups = groups_split(PQgetvalue(res, row, c + 7));
		it->ver = strtoll(PQgetvalue(res, row, c + 8), NULL, 10);
		if (!PQgetisnull(res, row, c + 9))
			it->pending_in_stanza = strdup(PQgetvalue(res, row, c + 9));
		if (strmap_put(u->roster, it->contact, it) < 0) {
			roster_item_free(it);
			return -1;
		}
	}
	return 0;
}

size_t roster_count_visible(struct user *u)
{
	size_t n = 0;
	void *v;
	for (size_t it = 0; strmap_next(u->roster, &it, NULL, &v);)
		n += ((struct roster_item *)v)->st.visible;
	return n;
}

size_t roster_count_watchers(struct user *u)
{
	size_t n = 0;
	void *v;
	for (size_t it = 0; strmap_next(u->roster, &it, NULL, &v);)
		n += sub_contact_sees_user(((struct roster_item *)v)->st);
	return n;
}

static struct xml_node *item_xml(const struct roster_item *it, bool removed)
{
	struct xml_node *x = xml_elem_new("item");
	if (!x)
		return NULL;
	xml_set_attr(x, "jid", it->contact);
	if (removed) {
		xml_set_attr(x, "subscription", "remove");
		return x;
	}
	if (it->name)
		xml_set_attr(x, "name", it->name);
	xml_set_attr(x, "subscription", sub_state_name(it->st.sub));
	if (it->st.ask_out)
		xml_set_attr(x, "ask", "subscribe");
	if (it->st.preapproved)
		xml_set_attr(x, "approved", "true");
	for (char **g = it->groups; g && *g; g++) {
		struct xml_node *gx = xml_new_child(x, "group");
		xml_add_text(gx, *g, strlen(*g));
	}
	return x;
}

void roster_push(struct user *u, const struct roster_item *it, bool removed)
{
	char ver[24];
	snprintf(ver, sizeof ver, "%lld", (long long)u->roster_ver);
	for (struct resource *r = u->resources; r; r = r->next) {
		if (!r->interested || !r->conn)
			continue;
		struct xml_node *iq = xml_elem_new("iq");
		char id[24] = "push";
		random_id(id + 4, sizeof id - 4);
		xml_set_attr(iq, "type", "set");
		xml_set_attr(iq, "id", id);
		xml_set_attr(iq, "to", r->full);
		struct xml_node *q = xml_new_child_ns(iq, "query", NS_ROSTER);
		xml_set_attr(q, "ver", ver);
		struct xml_node *x = item_xml(it, removed);
		if (x)
			xml_append(q, x);
		conn_send(r->conn, iq);
		xml_free(iq);
	}
}

static const char upsert_sql[] =
	"WITH v AS (UPDATE users SET roster_ver = greatest(roster_ver, $10::bigint)"
	" WHERE username = $1)"
	" INSERT INTO roster_items (username, contact, name, subscription, ask_out, pending_in,"
	" preapproved, visible, groups, ver, pending_in_stanza)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, string_to_array($9, E'\\n'), $10, $11)"
	" ON CONFLICT (username, contact) DO UPDATE SET name = EXCLUDED.name,"
	" subscription = EXCLUDED.subscription, ask_out = EXCLUDED.ask_out,"
	" pending_in = EXCLUDED.pending_in, preapproved = EXCLUDED.preapproved,"
	" visible = EXCLUDED.visible, groups = EXCLUDED.groups, ver = EXCLUDED.ver,"
	" pending_in_stanza = EXCLUDED.pending_in_stanza";

void roster_update(struct user *u, struct roster_item *it, bool push)
{
	it->ver = ++u->roster_ver;
	it->st.exists = true;
	if (strmap_get(u->roster, it->contact) != it && strmap_put(u->roster, it->contact, it) < 0) {
		log_warnx("roster %s: out of memory", u->name);
		roster_item_free(it);
		return;
	}
	char ver[24];
	snprintf(ver, sizeof ver, "%lld", (long long)it->ver);
	char *groups = groups_join(it->groups);
	const char *params[11] = {
		u->name, it->contact, it->name, sub_state_name(it->st.sub),
		it->st.ask_out ? "t" : "f", it->st.pending_in ? "t" : "f",
		it->st.preapproved ? "t" : "f", it->st.visible ? "t" : "f",
		groups ? groups : "", ver, it->pending_in_stanza,
	};
	user_write(u, upsert_sql, 11, params);
	free(groups);
	if (push && it->st.visible)
		roster_push(u, it, false);
}

void roster_remove(struct user *u, const char *contact)
{
	struct roster_item *it = strmap_del(u->roster, contact);
	if (!it)
		return;
	u->roster_ver++;
	char ver[24];
	snprintf(ver, sizeof ver, "%lld", (long long)u->roster_ver);
	const char *params[3] = {u->name, it->contact, ver};
	user_write(u,
		   "WITH v AS (UPDATE users SET roster_ver = greatest(roster_ver, $3::bigint)"
		   " WHERE username = $1)"
		   " DELETE FROM roster_items WHERE username = $1 AND contact = $2",
		   3, params);
	if (it->st.visible)
		roster_push(u, it, true);
	roster_item_free(it);
}

/* ---- the roster iq ---- */

static void reply(struct resource *res, struct xml_node *iq, struct xml_node *r)
{
	if (r && res->conn)
		conn_send(res->conn, r);
	xml_free(r);
	xml_free(iq);
}

static void roster_get_iq(struct resource *res, struct xml_node *iq, struct xml_node *q)
{
	struct user *u = res->user;
	res->interested = true;
	char ver[24];
	snprintf(ver, sizeof ver, "%lld", (long long)u->roster_ver);
	const char *have = xml_get_attr(q, "ver");
	if (have && !strcmp(have, ver)) {
		reply(res, iq, stanza_iq_result(iq, NULL));
		return;
	}
	struct xml_node *out = xml_elem_new("query");
	xml_set_attr(out, "xmlns", NS_ROSTER);
	xml_set_attr(out, "ver", ver);
	void *v;
	for (size_t i = 0; strmap_next(u->roster, &i, NULL, &v);) {
		struct roster_item *it = v;
		struct xml_node *x = it->st.visible ? item_xml(it, false) : NULL;
		if (x)
			xml_append(out, x);
	}
	reply(res, iq, stanza_iq_result(iq, out));
}

static bool text_ok(const char *s)
{
	if (strlen(s) > MAX_NAME)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20)
			return false;
	return true;
}

/* Collect and check <group/> children; NULL + *bad on a bad one. */
static char **groups_from(struct xml_node *item, bool *bad)
{
	char **g = calloc(MAX_GROUPS + 1, sizeof *g);
	size_t n = 0;
	*bad = !g;
	for (struct xml_node *c = xml_first_elem(item); g && c; c = xml_next_elem(c)) {
		if (strcmp(c->name, "group"))
			continue;
		char *t = xml_text(c);
		bool dup = false;
		for (size_t i = 0; t && i < n; i++)
			dup |= !strcmp(g[i], t);
		if (!t || !*t || !text_ok(t) || n == MAX_GROUPS) {
			free(t);
			*bad = true;
			break;
		}
		if (dup)
			free(t);
		else
			g[n++] = t;
	}
	if (*bad || n == 0) {
		groups_free(g);
		return NULL;
	}
	return g;
}

static void roster_set_iq(struct resource *res, struct xml_node *iq, struct xml_node *q)
{
	struct user *u = res->user;
	struct xml_node *item = xml_first_elem(q);
	if (!item || strcmp(item->name, "item") || xml_next_elem(item)) {
		reply(res, iq, stanza_error_reply(iq, "modify", "bad-request", "exactly one item"));
		return;
	}
	const char *jid = xml_get_attr(item, "jid");
	const char *sub = xml_get_attr(item, "subscription");
	const char *name = xml_get_attr(item, "name");
	struct jid j;
	char bare[JID_BUF];
	if (!jid || jid_parse(jid, &j) < 0 || j.resource[0]) {
		reply(res, iq, stanza_error_reply(iq, "modify", "bad-request", "bad jid"));
		return;
	}
	jid_bare(&j, bare, sizeof bare);
	struct roster_item *it = roster_get(u, bare);
	if (sub && !strcmp(sub, "remove")) {
		if (!it) {
			reply(res, iq, stanza_error_reply(iq, "cancel", "item-not-found", NULL));
			return;
		}
		subscription_cancel_all(u, it);
		roster_remove(u, bare);
		reply(res, iq, stanza_iq_result(iq, NULL));
		return;
	}
	if (name && !text_ok(name)) {
		reply(res, iq, stanza_error_reply(iq, "modify", "not-acceptable", "name too long"));
		return;
	}
	bool bad;
	char **groups = groups_from(item, &bad);
	if (bad) {
		reply(res, iq, stanza_error_reply(iq, "modify", "not-acceptable", "bad group"));
		return;
	}
	bool adding = !it || !it->st.visible;
	long max = server.cfg.max_contacts;
	if (adding && max > 0 && roster_count_visible(u) >= (size_t)max) {
		groups_free(groups);
		reply(res, iq, stanza_error_reply(iq, "cancel", "not-allowed",
						  "Maximum Contact List Size reached"));
		return;
	}
	if (!it && !(it = roster_item_new(bare))) {
		groups_free(groups);
		reply(res, iq, stanza_error_reply(iq, "wait", "resource-constraint", NULL));
		return;
	}
	free(it->name);
	it->name = name && *name ? strdup(name) : NULL;
	groups_free(it->groups);
	it->groups = groups;
	it->st.visible = true;
	roster_update(u, it, true);
	reply(res, iq, stanza_iq_result(iq, NULL));
}

void roster_iq(struct resource *res, struct xml_node *iq)
{
	struct xml_node *q = xml_find_child(iq, "query", NS_ROSTER);
	const char *type = xml_get_attr(iq, "type");
	const char *to = xml_get_attr(iq, "to");
	/* Only the user's own account may be addressed (RFC 6121 §2.1.5). */
	if (to) {
		struct jid j;
		char bare[JID_BUF];
		if (jid_parse(to, &j) < 0 || strcmp(jid_bare(&j, bare, sizeof bare), res->user->bare)) {
			reply(res, iq, stanza_error_reply(iq, "auth", "forbidden", NULL));
			return;
		}
	}
	if (!strcmp(type, "get"))
		roster_get_iq(res, iq, q);
	else if (!strcmp(type, "set"))
		roster_set_iq(res, iq, q);
	else
		reply(res, iq, stanza_error_reply(iq, "modify", "bad-request", NULL));
}
