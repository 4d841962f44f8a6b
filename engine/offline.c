/* Offline messages: stored when no resource can take a message (XEP-0160), delivered at the
 * next available presence with a delay stamp (XEP-0203), deleted once handed over, so each
 * is delivered exactly once.  XEP-0013 flexible retrieval lets a client view, fetch and
 * remove them itself instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "lib/log.h"
#include "lib/pg.h"
#include "lib/strmap.h"

#define FLUSH_BATCH 500
/* A write that never reached the database (its queue timed out: the database is slow, not
 * wrong) is queued again, this many times in all: a message whose sender was told it was
 * handled must not be dropped for a busy moment. */
#define OFFLINE_WRITE_TRIES 3

struct offline_op {
	struct user *u;
	char resource[JID_PART_MAX + 1];
	struct xml_node *iq; /* XEP-0013 request being answered, or NULL */
	char *stanza;        /* insert: the stored text, to bounce if the store is full */
	int mode;
	int tries;
	char max_id[24]; /* flush: the DELETE's bound */
	struct conn_hold hold; /* insert: the sender's replies wait for the commit */
};

enum { OP_FLUSH, OP_FETCH, OP_VIEW, OP_INSERT, OP_DELETE };

static struct offline_op *op_new(struct user *u, const char *resource, int mode)
{
	struct offline_op *op = calloc(1, sizeof *op);
	if (!op)
		return NULL;
	op->u = u;
	user_hold(u);
	if (resource)
		snprintf(op->resource, sizeof op->resource, "%s", resource);
	op->mode = mode;
	return op;
}

static void op_free(struct offline_op *op)
{
	conn_hold_release(&op->hold);
	xml_free(op->iq);
	free(op->stanza);
	user_release(op->u);
	free(op);
}

static void deliver_pending(struct user *u);
static void store_query(struct offline_op *op);

static void bounce_stored(struct offline_op *op, const char *condition)
{
	struct xml_node *m = xml_parse_string(op->stanza, strlen(op->stanza));
	if (m) {
		stanza_bounce_to_sender(m, "wait", condition);
		xml_free(m);
	}
}

/* A write that never reached the database (lib/pg.h) is queued again, up to
 * OFFLINE_WRITE_TRIES runs in all: true when it was. */
static bool queued_again(struct offline_op *op, const PGresult *res, const char *errmsg,
			 const char *what, void (*query)(struct offline_op *))
{
	if (res || !pg_err_never_sent(errmsg) || ++op->tries >= OFFLINE_WRITE_TRIES)
		return false;
	log_info("offline %s: %s not run (%s): queued again", op->u->name, what, errmsg);
	query(op);
	return true;
}

static void inserted(void *arg, PGresult *res, const char *errmsg)
{
	struct offline_op *op = arg;
	if (queued_again(op, res, errmsg, "store", store_query))
		return; /* the sender's replies still wait (conn_hold) */
	if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_warnx("offline %s: store failed: %s", op->u->name,
			  res ? PQresultErrorMessage(res) : errmsg);
		/* It surely did not commit (the server refused it, or it was never sent): the
		 * sender hears so.  A connection lost in flight may have committed: silence. */
		if (res || pg_err_never_sent(errmsg))
			bounce_stored(op, "internal-server-error");
	} else if (atoi(PQcmdTuples(res)) == 0) {
		/* The user's offline store is full: tell the sender instead of dropping. */
		log_info("offline %s: store full, message bounced", op->u->name);
		bounce_stored(op, "resource-constraint");
	} else {
		server.stats.offline_stored++;
		/* The user may have come online while this was being written. */
		deliver_pending(op->u);
	}
	op_free(op);
}

void offline_store(struct user *u, struct xml_node *m) { offline_store_held(u, m, NULL); }

void offline_store_held(struct user *u, struct xml_node *m, struct conn_hold *h)
{
	stanza_add_delay(m, server.cfg.domain, time(NULL));
	struct offline_op *op = op_new(u, NULL, OP_INSERT);
	if (op && h && (h->serial || h->route_seq))
		conn_hold_move(&op->hold, h);
	else if (op)
		conn_hold_take(m, &op->hold);
	char *text = xml_to_string(m, NULL);
	xml_free(m);
	if (!op || !text) {
		free(text);
		if (op)
			op_free(op);
		return;
	}
	op->stanza = text;
	u->offline_known_empty = false;
	store_query(op);
}

static void store_query(struct offline_op *op)
{
	char max[32];
	snprintf(max, sizeof max, "%ld", server.cfg.max_offline_per_user);
	const char *params[3] = {op->u->name, op->stanza, max};
	/* Through the user's ordered queue: two inserts on two pool connections could commit
	 * (and take their ids) in the wrong order, and flushing is by id. */
	user_query(op->u,
		   "INSERT INTO offline_messages (username, stanza) SELECT $1, $2"
		   " WHERE (SELECT count(*) FROM offline_messages WHERE username = $1) < $3::int",
		   3, params, inserted, op);
}

static struct resource *first_target(struct user *u)
{
	struct resource *best = NULL;
	for (struct resource *r = u->resources; r; r = r->next)
		if (resource_takes_bare(r) && !r->flexible_offline &&
		    (!best || r->priority > best->priority))
			best = r;
	return best;
}

static void start_flush(struct user *u, struct resource *r);

/* Every end of a flush comes here.  A message stored meanwhile (offline_again) or a full
 * batch (more) starts the next flush at once: it must not wait for the next login. */
static void flush_ended(struct offline_op *op, bool more)
{
	struct user *u = op->u;
	u->offline_flushing = false;
	more = more || u->offline_again;
	u->offline_again = false;
	user_hold(u);
	op_free(op);
	if (more)
		deliver_pending(u);
	user_release(u);
}

static void delete_query(struct offline_op *op);

static void deleted(void *arg, PGresult *res, const char *errmsg)
{
	struct offline_op *op = arg;
	/* Delivered and still stored: the next flush would deliver them again. */
	if (queued_again(op, res, errmsg, "delete", delete_query))
		return;
	if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
		log_warnx("offline %s: delete failed: %s", op->u->name,
			  res ? PQresultErrorMessage(res) : errmsg);
	flush_ended(op, op->mode == OP_FLUSH + 100);
}

static void delete_query(struct offline_op *op)
{
	const char *params[2] = {op->u->name, op->max_id};
	user_query(op->u, "DELETE FROM offline_messages WHERE username = $1 AND id <= $2", 2,
		   params, deleted, op);
}

static void delete_upto(struct offline_op *op, const char *max_id, bool more)
{
	snprintf(op->max_id, sizeof op->max_id, "%s", max_id);
	op->mode = more ? OP_FLUSH + 100 : OP_DELETE;
	op->tries = 0;
	delete_query(op);
}

static void add_offline_item(struct xml_node *m, const char *node)
{
	struct xml_node *o = xml_new_child_ns(m, "offline", NS_OFFLINE);
	struct xml_node *item = xml_new_child(o, "item");
	xml_set_attr(item, "node", node);
}

static void fetched(void *arg, PGresult *res, const char *errmsg)
{
	struct offline_op *op = arg;
	struct resource *r = user_find_resource(op->u, op->resource);
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || !r || !r->conn) {
		if (!r && res && PQresultStatus(res) == PGRES_TUPLES_OK)
			log_debug("offline %s: resource went away, messages kept", op->u->name);
		else if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
			log_warnx("offline %s: fetch failed: %s", op->u->name,
				  res ? PQresultErrorMessage(res) : errmsg);
		if (op->mode == OP_FLUSH)
			flush_ended(op, false); /* another resource may take them */
		else
			op_free(op);
		return;
	}
	int n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		struct xml_node *m = xml_parse_string(PQgetvalue(res, i, 1),
						      (size_t)PQgetlength(res, i, 1));
		if (!m)
			continue;
		xml_set_attr(m, "to", r->full);
		if (op->mode != OP_FLUSH)
			add_offline_item(m, PQgetvalue(res, i, 0));
		conn_send(r->conn, m);
		xml_free(m);
	}
	if (op->mode == OP_FLUSH) {
		server.stats.offline_delivered += (uint64_t)n;
		if (n == 0) {
			flush_ended(op, false);
			return;
		}
		delete_upto(op, PQgetvalue(res, n - 1, 0), n == FLUSH_BATCH);
		return;
	}
	/* XEP-0013 fetch / view: messages stay until the client removes them. */
	struct xml_node *reply = stanza_iq_result(op->iq, NULL);
	if (reply)
		conn_send(r->conn, reply);
	xml_free(reply);
	op_free(op);
}

static void start_flush(struct user *u, struct resource *r)
{
	struct offline_op *op = op_new(u, r->name, OP_FLUSH);
	if (!op)
		return;
	u->offline_flushing = true;
	char lim[16];
	snprintf(lim, sizeof lim, "%d", FLUSH_BATCH);
	const char *params[2] = {u->name, lim};
	/* In the user's ordered queue, like the INSERTs: a SELECT queued after an INSERT sees
	 * it, and an INSERT queued after the SELECT calls back before the flush ends. */
	user_query(u,
		   "SELECT id, stanza FROM offline_messages WHERE username = $1"
		   " ORDER BY id LIMIT $2::int",
		   2, params, fetched, op);
}

/* Only the node serving the user's home node flushes its store.  Each node of a pair holds
 * a copy of every stored message (replication); while a planned move runs, a user not yet
 * released is still online on the node that no longer serves it, and a message the serving
 * node stored for it reaches this node's copy too (NOTIFY duet_offline): both flushing,
 * each from its own copy before the other's DELETE came across, delivered it twice. */
static void deliver_pending(struct user *u)
{
	if (!engine_serves(u->home_node))
		return; /* the serving node delivers it; a node serving it again looks then */
	struct resource *r = first_target(u);
	if (r && u->offline_flushing)
		u->offline_again = true; /* deleted() looks again */
	if (!r || u->offline_flushing)
		return;
	if (u->offline_known_empty) {
		u->offline_known_empty = false; /* a login's query saved; later ones look */
		return;
	}
	start_flush(u, r);
}

/* offline_listen.c: replication wrote an offline message for u (loaded here).  Looked for
 * even if the login found the store empty; a running flush looks again when it ends. */
void offline_replicated(struct user *u)
{
	u->offline_known_empty = false;
	deliver_pending(u);
}

/* This node serves home node `node` again (a release stopped): its users online here may
 * have had messages stored meanwhile, which no flush here looked at. */
void offline_serve_started(int node)
{
	const char *k;
	void *v;
	for (size_t it = 0; strmap_next(server.users, &it, &k, &v);) {
		struct user *u = v;
		if (u->loaded && u->home_node == node && first_target(u))
			offline_replicated(u); /* as if a message had come: look */
	}
}

void offline_flush(struct resource *res)
{
	if (!res->flexible_offline)
		deliver_pending(res->user);
}

/* ---- XEP-0013 ---- */

static void run_iq_query(struct resource *res, struct xml_node *iq, const char *sql, int mode,
			 int nparams, const char *const *params, pg_cb cb)
{
	struct offline_op *op = op_new(res->user, res->name, mode);
	if (!op) {
		stanza_bounce(res, iq, "wait", "resource-constraint");
		xml_free(iq);
		return;
	}
	op->iq = iq;
	if (!pg_query(server.db, sql, nparams, params, cb, op)) {
		stanza_bounce(res, iq, "wait", "resource-constraint");
		op_free(op);
	}
}

static void removed(void *arg, PGresult *res, const char *errmsg)
{
	struct offline_op *op = arg;
	struct resource *r = user_find_resource(op->u, op->resource);
	if (r && r->conn) {
		struct xml_node *reply =
			res && PQresultStatus(res) == PGRES_COMMAND_OK
				? stanza_iq_result(op->iq, NULL)
				: stanza_error_reply(op->iq, "wait", "internal-server-error", NULL);
		if (reply)
			conn_send(r->conn, reply);
		xml_free(reply);
	}
	op_free(op);
}

/* Collect the node ids of <item action='view|remove' node='..'/> as a SQL array literal. */
static char *item_ids(struct xml_node *offline, const char *action)
{
	size_t cap = 64, len = 1;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	strcpy(out, "{");
	for (struct xml_node *it = xml_first_elem(offline); it; it = xml_next_elem(it)) {
		const char *a = xml_get_attr(it, "action"), *node = xml_get_attr(it, "node");
		if (strcmp(it->name, "item") || !a || strcmp(a, action) || !node)
			continue;
		char *end;
		long long v = strtoll(node, &end, 10);
		if (*end || v <= 0 || strlen(node) > 19) {
			free(out);
			return NULL;
		}
		if (len + strlen(node) + 2 > cap) {
			cap = (len + strlen(node) + 2) * 2;
			char *n = realloc(out, cap);
			if (!n) {
				free(out);
				return NULL;
			}
			out = n;
		}
		len += (size_t)sprintf(out + len, "%s%lld", len > 1 ? "," : "", v);
	}
	strcpy(out + len, "}");
	return out;
}

void offline_iq(struct resource *res, struct xml_node *iq)
{
	struct xml_node *off = xml_find_child(iq, "offline", NS_OFFLINE);
	const char *type = xml_get_attr(iq, "type");
	const char *params[2] = {res->user->name, NULL};
	res->flexible_offline = true;
	if (!off || !type) {
		stanza_bounce(res, iq, "modify", "bad-request");
		xml_free(iq);
		return;
	}
	if (xml_find_child(off, "fetch", NULL) && !strcmp(type, "get")) {
		run_iq_query(res, iq,
			     "SELECT id, stanza FROM offline_messages WHERE username = $1 ORDER BY id",
			     OP_FETCH, 1, params, fetched);
		return;
	}
	if (xml_find_child(off, "purge", NULL) && !strcmp(type, "set")) {
		run_iq_query(res, iq, "DELETE FROM offline_messages WHERE username = $1", OP_DELETE,
			     1, params, removed);
		return;
	}
	bool view = !strcmp(type, "get");
	char *ids = item_ids(off, view ? "view" : "remove");
	if (!ids) {
		stanza_bounce(res, iq, "modify", "item-not-found");
		xml_free(iq);
		return;
	}
	params[1] = ids;
	if (view)
		run_iq_query(res, iq,
			     "SELECT id, stanza FROM offline_messages WHERE username = $1"
			     " AND id = ANY($2::bigint[]) ORDER BY id",
			     OP_VIEW, 2, params, fetched);
	else
		run_iq_query(res, iq,
			     "DELETE FROM offline_messages WHERE username = $1"
			     " AND id = ANY($2::bigint[])",
			     OP_DELETE, 2, params, removed);
	free(ids);
}

/* XEP-0013 §2.2-2.3: the message count (disco#info) and headers (disco#items) on the node
 * "http://jabber.org/protocol/offline". */
static void disco_answered(void *arg, PGresult *res, const char *errmsg)
{
	struct offline_op *op = arg;
	struct resource *r = user_find_resource(op->u, op->resource);
	struct xml_node *reply = NULL;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		reply = stanza_error_reply(op->iq, "wait", "internal-server-error", NULL);
	} else {
		struct xml_node *q = xml_elem_new("query");
		xml_set_attr(q, "xmlns", op->mode == OP_VIEW ? NS_DISCO_ITEMS : NS_DISCO_INFO);
		xml_set_attr(q, "node", NS_OFFLINE);
		if (op->mode == OP_VIEW) {
			for (int i = 0; i < PQntuples(res); i++) {
				struct xml_node *m = xml_parse_string(PQgetvalue(res, i, 1),
								      (size_t)PQgetlength(res, i, 1));
				const char *from = m ? xml_get_attr(m, "from") : NULL;
				struct xml_node *item = xml_new_child(q, "item");
				xml_set_attr(item, "jid", op->u->bare);
				xml_set_attr(item, "node", PQgetvalue(res, i, 0));
				xml_set_attr(item, "name", from ? from : "");
				xml_free(m);
			}
		} else {
			struct xml_node *id = xml_new_child(q, "identity");
			xml_set_attr(id, "category", "automation");
			xml_set_attr(id, "type", "message-list");
			struct xml_node *f = xml_new_child(q, "feature");
			xml_set_attr(f, "var", NS_OFFLINE);
			struct xml_node *x = xml_new_child_ns(q, "x", NS_DATA);
			xml_set_attr(x, "type", "result");
			struct xml_node *ft = xml_new_child(x, "field");
			xml_set_attr(ft, "var", "FORM_TYPE");
			xml_set_attr(ft, "type", "hidden");
			struct xml_node *v = xml_new_child(ft, "value");
			xml_add_text(v, NS_OFFLINE, strlen(NS_OFFLINE));
			struct xml_node *n = xml_new_child(x, "field");
			xml_set_attr(n, "var", "number_of_messages");
			v = xml_new_child(n, "value");
			xml_add_text(v, PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)));
		}
		reply = stanza_iq_result(op->iq, q);
	}
	if (r && r->conn && reply)
		conn_send(r->conn, reply);
	xml_free(reply);
	op_free(op);
}

void offline_disco(struct resource *res, struct xml_node *iq, bool items)
{
	const char *params[1] = {res->user->name};
	run_iq_query(res, iq,
		     items ? "SELECT id, stanza FROM offline_messages WHERE username = $1 ORDER BY id"
			   : "SELECT count(*) FROM offline_messages WHERE username = $1",
		     items ? OP_VIEW : OP_FETCH, 1, params, disco_answered);
}
