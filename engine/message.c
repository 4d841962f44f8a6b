/* Messages (RFC 6121 §5, §8.5) with IM forking as the manual describes it: a chat to a
 * bare JID goes to every available resource until the recipient answers from one; from
 * then on to that resource only, until it goes away ("locking", cf. XEP-0296). */
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "lib/log.h"
#include "lib/strmap.h"

static const char *msg_type(const struct xml_node *m)
{
	const char *t = xml_get_attr(m, "type");
	return t ? t : "normal";
}

/* Remember that res answered 'peer': later chats from peer go to res only. */
static void lock_conversation(struct resource *res, const char *peer_bare)
{
	struct user *u = res->user;
	char *cur = strmap_get(u->im_lock, peer_bare);
	if (cur && !strcmp(cur, res->name))
		return;
	char *name = strdup(res->name);
	if (!name)
		return;
	free(cur);
	if (strmap_put(u->im_lock, peer_bare, name) < 0)
		free(name), strmap_del(u->im_lock, peer_bare);
}

void message_resource_gone(struct resource *r)
{
	const char *k;
	void *v;
	for (size_t it = 0; strmap_next(r->user->im_lock, &it, &k, &v);) {
		if (!strcmp(v, r->name)) {
			free(v);
			strmap_del(r->user->im_lock, k);
		}
	}
}

void message_from_client(struct resource *res, struct xml_node *m)
{
	if (!server.cfg.instant_messaging) {
		stanza_bounce(res, m, "cancel", "service-unavailable");
		xml_free(m);
		return;
	}
	const char *to = xml_get_attr(m, "to");
	struct jid j;
	if (!to) {
		xml_set_attr(m, "to", res->user->bare);
		to = res->user->bare;
	}
	if (jid_parse(to, &j) < 0 || !j.local[0]) {
		/* Messages to the server itself: nothing here consumes them. */
		stanza_bounce(res, m, "cancel", "service-unavailable");
		xml_free(m);
		return;
	}
	const char *type = msg_type(m);
	if (!strcmp(type, "chat") || !strcmp(type, "normal")) {
		char bare[JID_BUF];
		jid_bare(&j, bare, sizeof bare);
		if (strcmp(bare, res->user->bare) != 0)
			lock_conversation(res, bare);
	}
	server.stats.messages++;
	route_to_local(&j, m);
}

void message_from_released(const char *full, struct xml_node *m)
{
	const char *to = xml_get_attr(m, "to");
	struct jid j;
	if (!server.cfg.instant_messaging || !to || jid_parse(to, &j) < 0 || !j.local[0]) {
		log_debug("released session %s: message dropped (nowhere to route it)", full);
		xml_free(m);
		return;
	}
	server.stats.messages++;
	route_to_local(&j, m);
}

struct pending_msg {
	struct xml_node *m;
	char sender_bare[JID_BUF];
	struct conn_hold hold; /* the sender's replies wait for the recipient's row */
};

static void deliver_bare(void *arg, struct user *u)
{
	struct pending_msg *pm = arg;
	struct xml_node *m = pm->m;
	const char *type = msg_type(m);
	if (!u) {
		if (strcmp(type, "headline") && strcmp(type, "error"))
			stanza_bounce_to_sender(m, "cancel", "service-unavailable");
		goto done;
	}
	if (!strcmp(type, "groupchat")) {
		stanza_bounce_to_sender(m, "cancel", "service-unavailable");
		goto done;
	}
	/* A locked conversation goes to its resource while that one is available. */
	const char *locked = strmap_get(u->im_lock, pm->sender_bare);
	struct resource *lr = locked ? user_find_resource(u, locked) : NULL;
	if (lr && resource_takes_bare(lr) && !strcmp(type, "chat")) {
		conn_send(lr->conn, m);
		goto done;
	}
	int delivered = 0;
	for (struct resource *r = u->resources; r; r = r->next) {
		if (resource_takes_bare(r)) {
			conn_send(r->conn, m);
			delivered++;
		}
	}
	if (delivered || !strcmp(type, "headline") || !strcmp(type, "error"))
		goto done;
	if (server.cfg.suppress_offline) {
		stanza_bounce_to_sender(m, "cancel", "service-unavailable");
		goto done;
	}
	offline_store_held(u, m, &pm->hold); /* the hold goes on until the INSERT commits */
	pm->m = NULL;
done:
	conn_hold_release(&pm->hold);
	xml_free(pm->m);
	free(pm);
}

void message_to_local(const struct jid *to, struct xml_node *m)
{
	const char *type = msg_type(m);
	if (to->resource[0]) {
		struct resource *r = session_find(to);
		if (r && r->conn) {
			conn_send(r->conn, m);
			xml_free(m);
			return;
		}
		/* RFC 6121 §8.5.3.2.1: chat/normal to an absent resource go to the bare JID. */
		if (strcmp(type, "chat") && strcmp(type, "normal")) {
			if (!strcmp(type, "groupchat"))
				stanza_bounce_to_sender(m, "cancel", "service-unavailable");
			xml_free(m);
			return;
		}
	}
	struct pending_msg *pm = calloc(1, sizeof *pm);
	if (!pm) {
		xml_free(m);
		return;
	}
	pm->m = m;
	const char *from = xml_get_attr(m, "from");
	struct jid fj;
	if (from && jid_parse(from, &fj) == 0)
		jid_bare(&fj, pm->sender_bare, sizeof pm->sender_bare);
	if (!user_find_loaded(to->local)) /* else user_with answers at once */
		conn_hold_take(m, &pm->hold);
	user_with(to->local, deliver_bare, pm);
}
