/* iq stanzas (RFC 6120 §8.2.3): addressed to the server, to the user's own account, to
 * another user's account, or to a connected resource.  The server answers service
 * discovery (XEP-0030, with a XEP-0128 form), ping (XEP-0199), software version
 * (XEP-0092), entity time (XEP-0202/XEP-0082) and last activity (XEP-0012). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/route.h"
#include "lib/log.h"
#include "lib/pg.h"

static void send_reply(struct resource *res, struct xml_node *r)
{
	if (r && res->conn)
		conn_send(res->conn, r);
	xml_free(r);
}

static void answer_error(struct resource *res, struct xml_node *iq, const char *type,
			 const char *cond)
{
	send_reply(res, stanza_error_reply(iq, type, cond, NULL));
	xml_free(iq);
}

static void answer(struct resource *res, struct xml_node *iq, struct xml_node *payload)
{
	send_reply(res, stanza_iq_result(iq, payload));
	xml_free(iq);
}

static void add_feature(struct xml_node *q, const char *var)
{
	struct xml_node *f = xml_new_child(q, "feature");
	xml_set_attr(f, "var", var);
}

static void add_field(struct xml_node *x, const char *var, const char *type, const char *value)
{
	struct xml_node *f = xml_new_child(x, "field");
	xml_set_attr(f, "var", var);
	if (type)
		xml_set_attr(f, "type", type);
	struct xml_node *v = xml_new_child(f, "value");
	xml_add_text(v, value, strlen(value));
}

static struct xml_node *server_disco_info(void)
{
	struct xml_node *q = xml_elem_new("query");
	xml_set_attr(q, "xmlns", NS_DISCO_INFO);
	struct xml_node *id = xml_new_child(q, "identity");
	xml_set_attr(id, "category", "server");
	xml_set_attr(id, "type", "im");
	xml_set_attr(id, "name", "Duet");
	static const char *const features[] = {
		NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_VERSION, NS_TIME, NS_LAST,
		NS_VCARD, "msgoffline", NS_OFFLINE, NS_ROSTERVER, NS_PREAPPROVAL,
		NS_DELAY, "urn:xmpp:time", NULL,
	};
	for (int i = 0; features[i]; i++)
		add_feature(q, features[i]);
	/* XEP-0128: which node this is, for clients that care about the pair. */
	struct xml_node *x = xml_new_child_ns(q, "x", NS_DATA);
	xml_set_attr(x, "type", "result");
	add_field(x, "FORM_TYPE", "hidden", "urn:xmpp:duet:node:0");
	char node[16];
	snprintf(node, sizeof node, "%ld", server.cfg.node_id);
	add_field(x, "node-id", NULL, node);
	add_field(x, "node-name", NULL, server.cfg.node_name);
	relogin_disco_form(q); /* the re-login window, for clients that spread themselves */
	return q;
}

static struct xml_node *version_payload(void)
{
	struct xml_node *q = xml_elem_new("query");
	xml_set_attr(q, "xmlns", NS_VERSION);
	struct xml_node *n = xml_new_child(q, "name");
	xml_add_text(n, "Duet presenced", 14);
	struct xml_node *v = xml_new_child(q, "version");
	xml_add_text(v, DUET_VERSION, strlen(DUET_VERSION));
	return q;
}

static struct xml_node *time_payload(void)
{
	char utc[32];
	format_xmpp_time(time(NULL), utc, sizeof utc);
	struct xml_node *t = xml_elem_new("time");
	xml_set_attr(t, "xmlns", NS_TIME);
	struct xml_node *tzo = xml_new_child(t, "tzo");
	xml_add_text(tzo, "+00:00", 6);
	struct xml_node *u = xml_new_child(t, "utc");
	xml_add_text(u, utc, strlen(utc));
	return t;
}

static struct xml_node *last_payload(long seconds, const char *status)
{
	struct xml_node *q = xml_elem_new("query");
	char s[24];
	snprintf(s, sizeof s, "%ld", seconds < 0 ? 0 : seconds);
	xml_set_attr(q, "xmlns", NS_LAST);
	xml_set_attr(q, "seconds", s);
	if (status && *status)
		xml_add_text(q, status, strlen(status));
	return q;
}

static const char *payload_ns(const struct xml_node *iq, struct xml_node **payload)
{
	*payload = xml_first_elem(iq);
	return *payload ? xml_ns(*payload) : NULL;
}

/* iq to the domain. */
static void server_iq(struct resource *res, struct xml_node *iq, bool get)
{
	struct xml_node *pl;
	const char *ns = payload_ns(iq, &pl);
	if (!ns) {
		answer_error(res, iq, "modify", "bad-request");
	} else if (!strcmp(ns, NS_PING)) {
		answer(res, iq, NULL);
	} else if (!strcmp(ns, NS_SESSION)) {
		answer(res, iq, NULL); /* RFC 3921 sessions are a no-op (RFC 6121 Appendix E) */
	} else if (!get) {
		answer_error(res, iq, "cancel", "service-unavailable");
	} else if (!strcmp(ns, NS_DISCO_INFO) && !xml_get_attr(pl, "node")) {
		answer(res, iq, server_disco_info());
	} else if (!strcmp(ns, NS_DISCO_ITEMS) && !xml_get_attr(pl, "node")) {
		struct xml_node *q = xml_elem_new("query");
		xml_set_attr(q, "xmlns", NS_DISCO_ITEMS);
		answer(res, iq, q);
	} else if (!strcmp(ns, NS_VERSION)) {
		answer(res, iq, version_payload());
	} else if (!strcmp(ns, NS_TIME)) {
		answer(res, iq, time_payload());
	} else if (!strcmp(ns, NS_LAST)) {
		answer(res, iq, last_payload((long)(time(NULL) - server.started), NULL));
	} else {
		answer_error(res, iq, "cancel", "service-unavailable");
	}
}

/* iq to the user's own account (no 'to', or the bare JID). */
static void account_iq(struct resource *res, struct xml_node *iq, bool get)
{
	struct xml_node *pl;
	const char *ns = payload_ns(iq, &pl);
	if (!ns)
		answer_error(res, iq, "modify", "bad-request");
	else if (!strcmp(ns, NS_ROSTER))
		roster_iq(res, iq);
	else if (!strcmp(ns, NS_VCARD))
		vcard_iq(res, iq, res->user->name);
	else if (!strcmp(ns, NS_OFFLINE))
		offline_iq(res, iq);
	else if (!strcmp(ns, NS_PING) || !strcmp(ns, NS_SESSION))
		answer(res, iq, NULL);
	else if (!strcmp(ns, NS_BIND))
		answer_error(res, iq, "cancel", "not-allowed");
	else if ((!strcmp(ns, NS_DISCO_INFO) || !strcmp(ns, NS_DISCO_ITEMS)) && get &&
		 xml_get_attr(pl, "node") && !strcmp(xml_get_attr(pl, "node"), NS_OFFLINE))
		offline_disco(res, iq, !strcmp(ns, NS_DISCO_ITEMS));
	else if (!strcmp(ns, NS_DISCO_INFO) && get) {
		struct xml_node *q = xml_elem_new("query");
		xml_set_attr(q, "xmlns", NS_DISCO_INFO);
		struct xml_node *id = xml_new_child(q, "identity");
		xml_set_attr(id, "category", "account");
		xml_set_attr(id, "type", "registered");
		add_feature(q, NS_DISCO_INFO);
		add_feature(q, NS_VCARD);
		answer(res, iq, q);
	} else
		answer_error(res, iq, "cancel", "service-unavailable");
}

struct contact_iq {
	struct resource *res; /* checked by name when the user arrives */
	char res_full[JID_BUF];
	char asker[JID_PART_MAX + 1];
	struct xml_node *iq;
};

static void contact_loaded(void *arg, struct user *cu)
{
	struct contact_iq *ci = arg;
	struct jid aj;
	struct resource *res = NULL;
	if (jid_parse(ci->res_full, &aj) == 0)
		res = session_find(&aj);
	struct xml_node *iq = ci->iq;
	free(ci);
	if (!res) {
		xml_free(iq);
		return;
	}
	if (!cu) {
		answer_error(res, iq, "cancel", "service-unavailable");
		return;
	}
	struct xml_node *pl;
	const char *ns = payload_ns(iq, &pl);
	const char *type = xml_get_attr(iq, "type");
	bool get = !strcmp(type, "get");
	if (ns && !strcmp(ns, NS_VCARD) && get) {
		vcard_iq(res, iq, cu->name);
	} else if (ns && !strcmp(ns, NS_LAST) && get) {
		/* XEP-0012 §4: only for someone who may see the contact's presence. */
		struct roster_item *it = roster_get(res->user, cu->bare);
		if (!it || !sub_user_sees_contact(it->st))
			answer_error(res, iq, "auth", "forbidden");
		else if (cu->nresources > 0)
			answer(res, iq, last_payload(0, NULL));
		else if (!cu->last_logout)
			answer_error(res, iq, "cancel", "service-unavailable");
		else
			answer(res, iq, last_payload((long)(time(NULL) - cu->last_logout),
						     cu->last_status));
	} else if (ns && !strcmp(ns, NS_DISCO_INFO) && get) {
		struct xml_node *q = xml_elem_new("query");
		xml_set_attr(q, "xmlns", NS_DISCO_INFO);
		struct xml_node *id = xml_new_child(q, "identity");
		xml_set_attr(id, "category", "account");
		xml_set_attr(id, "type", "registered");
		add_feature(q, NS_DISCO_INFO);
		answer(res, iq, q);
	} else if (ns && !strcmp(ns, NS_PING)) {
		answer(res, iq, NULL);
	} else {
		answer_error(res, iq, "cancel", "service-unavailable");
	}
}

void iq_from_client(struct resource *res, struct xml_node *iq)
{
	const char *type = xml_get_attr(iq, "type");
	const char *to = xml_get_attr(iq, "to");
	bool get = type && !strcmp(type, "get"), set = type && !strcmp(type, "set");
	bool resp = type && (!strcmp(type, "result") || !strcmp(type, "error"));
	if (!type || !xml_get_attr(iq, "id") || (!get && !set && !resp)) {
		answer_error(res, iq, "modify", "bad-request");
		return;
	}
	/* RFC 6120 §8.2.3: a request carries exactly one payload. */
	struct xml_node *first = xml_first_elem(iq);
	if ((get || set) && (!first || xml_next_elem(first))) {
		answer_error(res, iq, "modify", "bad-request");
		return;
	}
	struct jid j;
	if (to && jid_parse(to, &j) < 0) {
		answer_error(res, iq, "modify", "jid-malformed");
		return;
	}
	if (resp) {
		if (to && j.resource[0])
			route_to_local(&j, iq);
		else
			xml_free(iq);
		return;
	}
	if (!to) {
		account_iq(res, iq, get);
		return;
	}
	if (!j.local[0]) {
		if (j.resource[0])
			answer_error(res, iq, "cancel", "service-unavailable");
		else
			server_iq(res, iq, get);
		return;
	}
	char bare[JID_BUF];
	jid_bare(&j, bare, sizeof bare);
	if (!j.resource[0] && !strcmp(bare, res->user->bare)) {
		account_iq(res, iq, get);
		return;
	}
	if (j.resource[0]) {
		struct resource *r = session_find(&j);
		if (r && r->conn) {
			conn_send(r->conn, iq);
			xml_free(iq);
		} else if (!route_intercept(&j, iq)) {
			/* (pair hook: a resource on the peer engine gets it over the route link) */
			answer_error(res, iq, "cancel", "service-unavailable");
		}
		return;
	}
	struct contact_iq *ci = calloc(1, sizeof *ci);
	if (!ci) {
		answer_error(res, iq, "wait", "resource-constraint");
		return;
	}
	snprintf(ci->res_full, sizeof ci->res_full, "%s", res->full);
	ci->iq = iq;
	user_with(j.local, contact_loaded, ci);
}

void iq_to_local(const struct jid *to, struct xml_node *iq)
{
	struct resource *r = to->resource[0] ? session_find(to) : NULL;
	if (r && r->conn)
		conn_send(r->conn, iq);
	xml_free(iq);
}
