/* Presence (RFC 6121 §4): initial presence with probes, broadcast to subscribers, directed
 * presence, unavailable on logout, and subscriptions (§3) through the pure table in
 * subscription.c.  Every contact lives in our domain, so both halves of a subscription
 * exchange (the user's server and the contact's server) run here, one after the other.
 * The manual's Enable availability sharing and Presence Change Throttle Rate apply here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/route.h"
#include "lib/log.h"
#include "lib/strmap.h"

static const char *ptype(const struct xml_node *p)
{
	const char *t = xml_get_attr(p, "type");
	return t ? t : "";
}

static bool is_subscription_type(const char *t)
{
	return !strcmp(t, "subscribe") || !strcmp(t, "subscribed") || !strcmp(t, "unsubscribe") ||
	       !strcmp(t, "unsubscribed");
}

/* Send a copy of p, addressed to r, to r's connection. */
static void send_to_resource(struct resource *r, struct xml_node *p)
{
	if (!r->conn)
		return;
	xml_set_attr(p, "to", r->full);
	conn_send(r->conn, p);
	server.stats.presence_broadcasts++;
}

/* Deliver p to every available resource of u. */
static void send_to_available(struct user *u, struct xml_node *p)
{
	for (struct resource *r = u->resources; r; r = r->next)
		if (r->presence)
			send_to_resource(r, p);
}

static struct xml_node *unavailable_from(const char *from)
{
	struct xml_node *p = xml_elem_new("presence");
	if (p) {
		xml_set_attr(p, "type", "unavailable");
		xml_set_attr(p, "from", from);
	}
	return p;
}

/* Send the presence of every available resource of 'from' to every available resource
 * of 'to' (probe answers, approvals). */
static void share_presences(struct user *from, struct user *to)
{
	for (struct resource *r = from->resources; r; r = r->next) {
		if (!r->presence)
			continue;
		struct xml_node *copy = xml_copy(r->presence);
		if (!copy)
			continue;
		xml_set_attr(copy, "from", r->full);
		send_to_available(to, copy);
		xml_free(copy);
	}
}

static void send_unavailables(struct user *from, struct user *to)
{
	for (struct resource *r = from->resources; r; r = r->next) {
		if (!r->presence)
			continue;
		struct xml_node *p = unavailable_from(r->full);
		if (p)
			send_to_available(to, p);
		xml_free(p);
	}
}

/* The same two for a contact named by bare JID, who may be here or (pair hook) on the
 * peer engine. */
static void presences_to_contact(struct user *from, const char *to_bare, bool available)
{
	struct jid j;
	if (jid_parse(to_bare, &j) < 0 || !domain_is_local(j.domain))
		return;
	struct user *to = user_find_loaded(j.local);
	if (to && available)
		share_presences(from, to);
	else if (to)
		send_unavailables(from, to);
	if (!route_contact_remote(j.local))
		return;
	for (struct resource *r = from->resources; r; r = r->next) {
		if (!r->presence)
			continue;
		struct xml_node *p = available ? xml_copy(r->presence) : unavailable_from(r->full);
		if (p) {
			xml_set_attr(p, "from", r->full);
			route_send_presence(p, &to_bare, 1);
		}
		xml_free(p);
	}
}

/* A growing list of contact bare JIDs (pointers into roster items) for the route link. */
struct bare_list {
	const char **v;
	size_t n, cap;
};

static void bare_list_add(struct bare_list *l, const char *bare)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		const char **v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = bare;
}

/* p goes to every subscriber (FROM/BOTH) that is online, and to the user's own other
 * available resources. */
static void broadcast(struct resource *res, struct xml_node *p)
{
	struct user *u = res->user;
	/* RFC 6121 §4.2.2, §4.4.2: available presence also goes back to the resource that
	 * sent it (a user is implicitly subscribed to itself). */
	bool echo = !xml_get_attr(p, "type");
	for (struct resource *r = u->resources; r; r = r->next)
		if (r->presence || (r == res && echo))
			send_to_resource(r, p);
	if (!server.cfg.availability_sharing)
		return;
	struct bare_list remote = {0};
	void *v;
	for (size_t i = 0; strmap_next(u->roster, &i, NULL, &v);) {
		struct roster_item *it = v;
		if (!sub_contact_sees_user(it->st))
			continue;
		struct jid j;
		if (jid_parse(it->contact, &j) < 0 || !domain_is_local(j.domain))
			continue;
		struct user *cu = user_find_loaded(j.local);
		if (cu)
			send_to_available(cu, p);
		if (route_contact_remote(j.local)) /* pair hook: the peer fans it out */
			bare_list_add(&remote, it->contact);
	}
	route_send_presence(p, remote.v, remote.n);
	free(remote.v);
}

/* Initial presence: what the user sees of contacts (probe answers) and own resources. */
static void answer_probes(struct resource *res)
{
	struct user *u = res->user;
	for (struct resource *r = u->resources; r; r = r->next) {
		if (r == res || !r->presence)
			continue;
		struct xml_node *copy = xml_copy(r->presence);
		if (copy) {
			xml_set_attr(copy, "from", r->full);
			send_to_resource(res, copy);
		}
		xml_free(copy);
	}
	if (!server.cfg.availability_sharing)
		return;
	struct bare_list remote = {0};
	void *v;
	for (size_t i = 0; strmap_next(u->roster, &i, NULL, &v);) {
		struct roster_item *it = v;
		if (!sub_user_sees_contact(it->st))
			continue;
		struct jid j;
		if (jid_parse(it->contact, &j) < 0)
			continue;
		if (domain_is_local(j.domain) && route_contact_remote(j.local))
			bare_list_add(&remote, it->contact); /* pair hook: probed on the peer */
		struct user *cu = user_find_loaded(j.local);
		for (struct resource *r = cu ? cu->resources : NULL; r; r = r->next) {
			if (!r->presence)
				continue;
			struct xml_node *copy = xml_copy(r->presence);
			if (copy) {
				xml_set_attr(copy, "from", r->full);
				send_to_resource(res, copy);
			}
			xml_free(copy);
		}
	}
	route_send_probe(res->full, remote.v, remote.n);
	free(remote.v);
}

/* Subscription requests that arrived while the user was away (RFC 6121 §3.1.3). */
static void redeliver_requests(struct resource *res)
{
	void *v;
	for (size_t i = 0; strmap_next(res->user->roster, &i, NULL, &v);) {
		struct roster_item *it = v;
		if (!it->st.pending_in || !it->pending_in_stanza)
			continue;
		struct xml_node *p =
			xml_parse_string(it->pending_in_stanza, strlen(it->pending_in_stanza));
		if (p)
			send_to_resource(res, p);
		xml_free(p);
	}
}

static void directed_forget_all(struct resource *res, bool send_unavailable)
{
	if (!res->directed)
		return;
	const char *k;
	for (size_t i = 0; strmap_next(res->directed, &i, &k, NULL);) {
		struct jid j;
		if (send_unavailable && jid_parse(k, &j) == 0) {
			struct xml_node *p = unavailable_from(res->full);
			if (p) {
				xml_set_attr(p, "to", k);
				route_to_local(&j, p); /* the contact may be on the peer engine */
			}
		}
		strmap_del(res->directed, k);
	}
}

static void apply_broadcast(struct resource *res, struct xml_node *p)
{
	bool available = !strcmp(ptype(p), "");
	bool initial = available && !res->presence;
	xml_set_attr(p, "to", NULL);
	broadcast(res, p);
	xml_free(res->presence);
	res->presence = NULL;
	if (available) {
		res->presence = p;
		res->sent_initial = true;
		if (initial) {
			answer_probes(res);
			redeliver_requests(res);
			offline_flush(res);
		}
	} else {
		/* Kept for last activity (XEP-0012) when this was the last session. */
		char *status = xml_child_text(p, "status");
		struct user *u = res->user;
		free(u->last_status);
		u->last_status = status;
		directed_forget_all(res, true);
		xml_free(p);
	}
}

/* Presence Change Throttle Rate: a token bucket per resource; an update that finds no
 * token waits, and a newer one replaces it (only the latest state matters). */
static bool presence_token(struct resource *r)
{
	long rate = server.cfg.presence_change_rate;
	if (rate <= 0)
		return true;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double dt = (double)(now.tv_sec - r->presence_refill.tv_sec) +
		    (double)(now.tv_nsec - r->presence_refill.tv_nsec) / 1e9;
	r->presence_refill = now;
	r->presence_tokens = fmin((double)rate, r->presence_tokens + dt * (double)rate);
	if (r->presence_tokens < 1.0)
		return false;
	r->presence_tokens -= 1.0;
	return true;
}

void presence_tick(void)
{
	if (server.cfg.presence_change_rate <= 0)
		return;
	void *v;
	for (size_t i = 0; strmap_next(server.users, &i, NULL, &v);) {
		struct user *u = v;
		for (struct resource *r = u->resources; r; r = r->next) {
			if (r->presence_pending && presence_token(r)) {
				struct xml_node *p = r->presence_pending;
				r->presence_pending = NULL;
				apply_broadcast(r, p);
			}
		}
	}
}

static void broadcast_from_client(struct resource *res, struct xml_node *p)
{
	const char *t = ptype(p);
	if (!strcmp(t, "")) {
		char *prio = xml_child_text(p, "priority");
		if (prio) {
			char *end;
			long v = strtol(prio, &end, 10);
			bool ok = *prio && !*end && v >= -128 && v <= 127;
			free(prio);
			if (!ok) {
				stanza_bounce(res, p, "modify", "bad-request");
				xml_free(p);
				return;
			}
			res->priority = (int)v;
		} else {
			res->priority = 0;
		}
		/* An update (not the initial presence) may be throttled. */
		if (res->presence && !presence_token(res)) {
			xml_free(res->presence_pending);
			res->presence_pending = p;
			return;
		}
	} else if (strcmp(t, "unavailable")) {
		xml_free(p); /* probe or error without 'to': nothing to do */
		return;
	}
	xml_free(res->presence_pending);
	res->presence_pending = NULL;
	apply_broadcast(res, p);
}

/* ---- subscriptions ---- */

struct sub_ctx {
	struct xml_node *p;      /* the stanza as the contact receives it */
	bool from_link;          /* came over the route link: never forwarded back */
	enum sub_event inbound;
	char from_bare[JID_BUF]; /* the user */
	char from_local[JID_PART_MAX + 1];
};

static enum sub_event event_for(const char *type, bool outbound)
{
	enum sub_event ev = SUB_OUT_SUBSCRIBE;
	if (!strcmp(type, "subscribed"))
		ev = SUB_OUT_SUBSCRIBED;
	else if (!strcmp(type, "unsubscribe"))
		ev = SUB_OUT_UNSUBSCRIBE;
	else if (!strcmp(type, "unsubscribed"))
		ev = SUB_OUT_UNSUBSCRIBED;
	return outbound ? ev : (enum sub_event)(ev + SUB_IN_SUBSCRIBE);
}

/* Apply the table's outcome to u's item for contact; returns the actions. */
static unsigned apply_transition(struct user *u, const char *contact, enum sub_event ev,
				 const struct xml_node *stanza)
{
	struct roster_item *it = roster_get(u, contact);
	struct sub_item cur = it ? it->st : (struct sub_item){0};
	struct sub_outcome out = sub_transition(cur, ev);
	if (!(out.actions & SUB_ACT_STORE))
		return out.actions;
	bool fresh = !it;
	if (fresh && !(it = roster_item_new(contact)))
		return out.actions & ~(unsigned)(SUB_ACT_STORE | SUB_ACT_PUSH);
	if (!out.next.exists) {
		if (fresh)
			roster_item_free(it);
		else
			roster_remove(u, contact);
		return out.actions;
	}
	it->st = out.next;
	if (ev == SUB_IN_SUBSCRIBE && out.next.pending_in && stanza) {
		free(it->pending_in_stanza);
		it->pending_in_stanza = xml_to_string(stanza, NULL);
	} else if (!out.next.pending_in) {
		free(it->pending_in_stanza);
		it->pending_in_stanza = NULL;
	}
	roster_update(u, it, (out.actions & SUB_ACT_PUSH) != 0);
	return out.actions;
}

static void subscription_inbound(struct user *cu, const char *from_bare, enum sub_event ev,
				 struct xml_node *p);

struct reply_ctx {
	char to_local[JID_PART_MAX + 1];
	char from_bare[JID_BUF];
	enum sub_event ev;
	struct xml_node *p;
};

static void reply_ready(void *arg, struct user *u)
{
	struct reply_ctx *rc = arg;
	/* Pair hook: the contact's side runs on the peer engine when it serves the contact. */
	if (u && !route_subscription_remote(u, rc->p))
		subscription_inbound(u, rc->from_bare, rc->ev, rc->p);
	xml_free(rc->p);
	free(rc);
}

/* Send a subscription stanza of type 'type' from 'from' (bare) to a local user. */
static void send_subscription(const char *from_bare, const char *to_bare, const char *type)
{
	struct jid j;
	if (jid_parse(to_bare, &j) < 0)
		return;
	struct reply_ctx *rc = calloc(1, sizeof *rc);
	if (!rc)
		return;
	snprintf(rc->to_local, sizeof rc->to_local, "%s", j.local);
	snprintf(rc->from_bare, sizeof rc->from_bare, "%s", from_bare);
	rc->ev = event_for(type, false);
	rc->p = xml_elem_new("presence");
	if (!rc->p) {
		free(rc);
		return;
	}
	xml_set_attr(rc->p, "type", type);
	xml_set_attr(rc->p, "from", from_bare);
	xml_set_attr(rc->p, "to", to_bare);
	user_with(rc->to_local, reply_ready, rc);
}

static bool over_limits(struct user *cu, const char *from_bare)
{
	struct roster_item *it = roster_get(cu, from_bare);
	if (it && it->st.exists)
		return false;
	long maxc = server.cfg.max_contacts, maxw = server.cfg.max_watchers;
	if (maxc > 0 && roster_count_visible(cu) >= (size_t)maxc)
		return true;
	return maxw > 0 && roster_count_watchers(cu) >= (size_t)maxw;
}

/* The contact's server side: p arrives for cu from from_bare. */
static void subscription_inbound(struct user *cu, const char *from_bare, enum sub_event ev,
				 struct xml_node *p)
{
	if (ev == SUB_IN_SUBSCRIBE && over_limits(cu, from_bare)) {
		log_info("presence: %s refused a subscription from %s (contact or watcher limit)",
			 cu->bare, from_bare);
		send_subscription(cu->bare, from_bare, "unsubscribed");
		return;
	}
	unsigned act = apply_transition(cu, from_bare, ev, p);
	if (act & SUB_ACT_DELIVER)
		send_to_available(cu, p);
	struct jid j;
	struct user *fu = jid_parse(from_bare, &j) == 0 ? user_find_loaded(j.local) : NULL;
	if (act & SUB_ACT_AUTO_SUBSCRIBED) {
		send_subscription(cu->bare, from_bare, "subscribed");
		presences_to_contact(cu, from_bare, true);
	}
	/* The user stopped watching us, or we lost sight of the contact: presence ends. */
	if (ev == SUB_IN_UNSUBSCRIBE && (act & SUB_ACT_STORE))
		presences_to_contact(cu, from_bare, false);
	if (fu && ev == SUB_IN_UNSUBSCRIBED && (act & SUB_ACT_STORE))
		send_unavailables(fu, cu);
}

static void contact_ready(void *arg, struct user *cu)
{
	struct sub_ctx *sc = arg;
	if (!cu) {
		/* No such account: the request can never be answered, so say no at once. */
		if (sc->inbound == SUB_IN_SUBSCRIBE) {
			struct jid j;
			if (jid_parse(xml_get_attr(sc->p, "to"), &j) == 0) {
				char bare[JID_BUF];
				send_subscription(jid_bare(&j, bare, sizeof bare), sc->from_bare,
						  "unsubscribed");
			}
		}
	} else if (sc->from_link || !route_subscription_remote(cu, sc->p)) {
		/* (pair hook: otherwise the peer engine serving the contact got it) */
		subscription_inbound(cu, sc->from_bare, sc->inbound, sc->p);
	}
	xml_free(sc->p);
	free(sc);
}

void presence_subscription_in(const struct jid *to, struct xml_node *p)
{
	const char *from = xml_get_attr(p, "from"), *type = xml_get_attr(p, "type");
	struct jid fj;
	struct sub_ctx *sc = NULL;
	if (!to->local[0] || !from || !type || jid_parse(from, &fj) < 0 || !fj.local[0] ||
	    !(sc = calloc(1, sizeof *sc))) {
		xml_free(p);
		return;
	}
	sc->inbound = event_for(type, false);
	sc->from_link = true;
	jid_bare(&fj, sc->from_bare, sizeof sc->from_bare);
	xml_set_attr(p, "from", sc->from_bare);
	sc->p = p;
	user_with(to->local, contact_ready, sc);
}

/* The user's server side, then hand over to the contact's side. */
static void subscription_outbound(struct resource *res, struct xml_node *p, const char *type,
				  const struct jid *to)
{
	struct user *u = res->user;
	char contact[JID_BUF];
	jid_bare(to, contact, sizeof contact);
	if (!to->local[0] || !strcmp(contact, u->bare)) {
		xml_free(p); /* to the server or to oneself: nothing to subscribe to */
		return;
	}
	/* type points into p's attributes: done with it before p is re-addressed below. */
	enum sub_event outbound = event_for(type, true), inbound = event_for(type, false);
	unsigned act = apply_transition(u, contact, outbound, NULL);
	if (act & SUB_ACT_SEND_PRESENCE)
		presences_to_contact(u, contact, true);
	if (act & SUB_ACT_SEND_UNAVAILABLE)
		presences_to_contact(u, contact, false);
	if (!(act & SUB_ACT_ROUTE)) {
		xml_free(p);
		return;
	}
	/* RFC 6121 §3.1.2: the user's server stamps the bare JID and strips the resource. */
	struct sub_ctx *sc = calloc(1, sizeof *sc);
	if (!sc) {
		xml_free(p);
		return;
	}
	xml_set_attr(p, "from", u->bare);
	xml_set_attr(p, "to", contact);
	sc->p = p;
	sc->inbound = inbound;
	snprintf(sc->from_bare, sizeof sc->from_bare, "%s", u->bare);
	user_with(to->local, contact_ready, sc);
}

/* Removing a roster item ends both directions of the subscription (RFC 6121 §2.5.2). */
void subscription_cancel_all(struct user *u, struct roster_item *it)
{
	if (it->st.sub == SUB_TO || it->st.sub == SUB_BOTH || it->st.ask_out)
		send_subscription(u->bare, it->contact, "unsubscribe");
	if (it->st.sub == SUB_FROM || it->st.sub == SUB_BOTH || it->st.pending_in)
		send_subscription(u->bare, it->contact, "unsubscribed");
	if (sub_contact_sees_user(it->st))
		presences_to_contact(u, it->contact, false);
}

/* ---- entry points ---- */

void presence_from_client(struct resource *res, struct xml_node *p)
{
	const char *to = xml_get_attr(p, "to");
	const char *t = ptype(p);
	if (!to) {
		broadcast_from_client(res, p);
		return;
	}
	struct jid j;
	if (jid_parse(to, &j) < 0) {
		xml_free(p);
		return;
	}
	if (is_subscription_type(t)) {
		subscription_outbound(res, p, t, &j);
		return;
	}
	if (!strcmp(t, "probe")) {
		xml_free(p); /* the server probes on the client's behalf */
		return;
	}
	/* Directed presence (RFC 6121 §4.6): remember it so unavailable follows at logout. */
	if (!strcmp(t, "") || !strcmp(t, "unavailable")) {
		char key[JID_BUF];
		jid_full(&j, key, sizeof key);
		if (!res->directed)
			res->directed = strmap_new();
		if (res->directed && !strcmp(t, ""))
			strmap_put(res->directed, key, (void *)1);
		else if (res->directed)
			strmap_del(res->directed, key);
	}
	route_to_local(&j, p);
}

void presence_to_local(const struct jid *to, struct xml_node *p)
{
	if (!to->local[0]) {
		xml_free(p);
		return;
	}
	if (to->resource[0]) {
		struct resource *r = session_find(to);
		if (r && r->conn)
			conn_send(r->conn, p);
		xml_free(p);
		return;
	}
	struct user *u = user_find_loaded(to->local);
	if (u)
		send_to_available(u, p);
	xml_free(p);
}

void presence_resource_gone(struct resource *r)
{
	xml_free(r->presence_pending);
	r->presence_pending = NULL;
	if (r->presence) {
		struct xml_node *p = unavailable_from(r->full);
		if (p)
			apply_broadcast(r, p); /* also ends directed presences */
	} else {
		directed_forget_all(r, true);
	}
	bool online = false;
	for (struct resource *o = r->user->resources; o; o = o->next)
		online = online || (o != r && o->presence);
	if (!online) /* pair hook: the remote presences it saw no longer matter */
		route_forget_user(r->user->bare);
}
