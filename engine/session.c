/* Users and their sessions.  A user is in memory while it has a session, a pending
 * database write, or a caller waiting on it; it is loaded once (account, roster, last
 * activity) and every later operation on it runs synchronously against memory.  The
 * database is written through, each write carrying a version so out-of-order completion
 * across pool connections cannot go backwards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "lib/log.h"
#include "lib/pg.h"
#include "lib/strmap.h"

struct user *user_find_loaded(const char *username)
{
	struct user *u = strmap_get(server.users, username);
	return u && u->loaded ? u : NULL;
}

bool resource_takes_bare(const struct resource *r)
{
	return r->conn && r->presence && r->priority >= 0;
}

struct resource *user_find_resource(struct user *u, const char *name)
{
	for (struct resource *r = u->resources; r; r = r->next)
		if (!strcmp(r->name, name))
			return r;
	return NULL;
}

void user_hold(struct user *u) { u->refs++; }

static void user_free(struct user *u)
{
	const char *k;
	void *v;
	if (u->roster) {
		for (size_t it = 0; strmap_next(u->roster, &it, &k, &v);)
			roster_item_free(v);
		strmap_free(u->roster);
	}
	if (u->im_lock) {
		for (size_t it = 0; strmap_next(u->im_lock, &it, &k, &v);)
			free(v);
		strmap_free(u->im_lock);
	}
	free(u->name);
	free(u->bare);
	free(u->last_status);
	free(u);
}

void user_release(struct user *u)
{
	if (--u->refs > 0)
		return;
	if (strmap_get(server.users, u->name) == u)
		strmap_del(server.users, u->name);
	user_free(u);
}

static void run_waiters(struct user *u, struct user *arg_user, PGresult *res)
{
	struct user_waiter *w = u->waiters;
	u->waiters = NULL;
	while (w) {
		struct user_waiter *next = w->next;
		if (w->row_cb)
			w->row_cb(w->arg, arg_user, res);
		else
			w->cb(w->arg, arg_user);
		free(w);
		w = next;
	}
}

static void user_loaded(void *arg, PGresult *res, const char *errmsg)
{
	struct user *u = arg;
	u->load_req = NULL;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("user %s: load failed: %s", u->name,
			  res ? PQresultErrorMessage(res) : errmsg);
		u->missing = true;
	} else if (PQntuples(res) == 0) {
		u->missing = true;
	} else {
		u->home_node = atoi(PQgetvalue(res, 0, 0));
		u->roster_ver = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		if (!PQgetisnull(res, 0, 12))
			u->last_logout = (time_t)strtoll(PQgetvalue(res, 0, 12), NULL, 10);
		if (!PQgetisnull(res, 0, 13))
			u->last_status = strdup(PQgetvalue(res, 0, 13));
		u->offline_known_empty = PQgetvalue(res, 0, 14)[0] == 'f';
		if (roster_load_rows(u, res, 2) < 0)
			u->missing = true;
	}
	/* Hold across the callbacks: they may take and drop references of their own. */
	if (u->missing) {
		strmap_del(server.users, u->name);
		run_waiters(u, NULL, res);
	} else {
		u->loaded = true;
		run_waiters(u, u, res);
	}
	user_release(u); /* the load's own reference */
}

static const char load_sql[] =
	"SELECT u.home_node, u.roster_ver, r.contact, r.name, r.subscription, r.ask_out,"
	" r.pending_in, r.preapproved, r.visible, array_to_string(r.groups, E'\\n'), r.ver,"
	" r.pending_in_stanza, floor(extract(epoch from l.logout_at))::bigint, l.status,"
	" EXISTS (SELECT 1 FROM offline_messages o WHERE o.username = u.username),"
	" encode(u.sha1_salt, 'hex'), u.sha1_iter, encode(u.sha1_stored, 'hex'),"
	" encode(u.sha1_server, 'hex'), encode(u.sha256_salt, 'hex'), u.sha256_iter,"
	" encode(u.sha256_stored, 'hex'), encode(u.sha256_server, 'hex')"
	" FROM users u LEFT JOIN roster_items r ON r.username = u.username"
	" LEFT JOIN last_activity l ON l.username = u.username WHERE u.username = $1";

static void waiter_run(struct user_waiter *w, struct user *u)
{
	if (w->row_cb)
		w->row_cb(w->arg, u, NULL);
	else
		w->cb(w->arg, u);
}

static void user_wait(const char *username, struct user_waiter *proto)
{
	struct user *u = strmap_get(server.users, username);
	if (u && u->loaded) {
		user_hold(u);
		waiter_run(proto, u);
		user_release(u);
		return;
	}
	struct user_waiter *w = calloc(1, sizeof *w);
	if (!w) {
		waiter_run(proto, NULL);
		return;
	}
	*w = *proto;
	if (u) { /* loading: queue behind the load, in order */
		struct user_waiter **p = &u->waiters;
		while (*p)
			p = &(*p)->next;
		*p = w;
		return;
	}
	u = calloc(1, sizeof *u);
	if (!u || strlen(username) > JID_PART_MAX) {
		free(u);
		free(w);
		waiter_run(proto, NULL);
		return;
	}
	u->name = strdup(username);
	if (u->name && asprintf(&u->bare, "%s@%s", username, server.cfg.domain) < 0)
		u->bare = NULL;
	u->roster = strmap_new();
	u->im_lock = strmap_new();
	u->refs = 1;
	u->waiters = w;
	if (!u->name || !u->bare || !u->roster || !u->im_lock ||
	    strmap_put(server.users, u->name, u) < 0) {
		u->waiters = NULL;
		free(w);
		user_free(u);
		waiter_run(proto, NULL);
		return;
	}
	const char *params[1] = {u->name};
	u->load_req = pg_query(server.db, load_sql, 1, params, user_loaded, u);
	if (!u->load_req)
		user_loaded(u, NULL, "out of memory");
}

void user_with(const char *username, user_cb cb, void *arg)
{
	struct user_waiter w = {.cb = cb, .arg = arg};
	user_wait(username, &w);
}

void user_with_row(const char *username, user_row_cb cb, void *arg)
{
	struct user_waiter w = {.row_cb = cb, .arg = arg};
	user_wait(username, &w);
}

void user_cancel(const char *username, void *arg)
{
	struct user *u = strmap_get(server.users, username);
	if (!u)
		return;
	for (struct user_waiter **p = &u->waiters; *p;) {
		if ((*p)->arg == arg) {
			struct user_waiter *dead = *p;
			*p = dead->next;
			free(dead);
		} else {
			p = &(*p)->next;
		}
	}
}

struct resource *session_bind(struct conn *c, struct user *u, const char *want,
			      const char **condition)
{
	char name[JID_PART_MAX + 1];
	if (want && *want) {
		if (!jid_resource_valid(want)) {
			*condition = "bad-request";
			return NULL;
		}
		snprintf(name, sizeof name, "%s", want);
		struct resource *old = user_find_resource(u, name);
		if (old && old->conn) /* RFC 6120 §7.7.2.2: the newer session wins */
			conn_stream_error(old->conn, "conflict", "replaced by a new session");
	} else {
		random_id(name, 17);
	}
	long max = server.cfg.max_sessions_per_user;
	if (max > 0 && u->nresources >= max) {
		*condition = "resource-constraint";
		return NULL;
	}
	struct resource *r = calloc(1, sizeof *r);
	if (!r) {
		*condition = "internal-server-error";
		return NULL;
	}
	r->name = strdup(name);
	if (!r->name || asprintf(&r->full, "%s/%s", u->bare, name) < 0) {
		free(r->name);
		free(r);
		*condition = "internal-server-error";
		return NULL;
	}
	r->conn = c;
	r->user = u;
	r->presence_tokens = (double)server.cfg.presence_change_rate;
	r->next = u->resources;
	u->resources = r;
	u->nresources++;
	user_hold(u);
	server.nsessions++;
	log_debug("session %s bound from %s", r->full, conn_ip(c));
	return r;
}

void session_unbind(struct resource *r)
{
	struct user *u = r->user;
	presence_resource_gone(r);
	message_resource_gone(r);
	for (struct resource **p = &u->resources; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			break;
		}
	}
	u->nresources--;
	server.nsessions--;
	if (u->nresources == 0)
		last_store(u);
	xml_free(r->presence);
	xml_free(r->presence_pending);
	if (r->directed)
		strmap_free(r->directed);
	log_debug("session %s ended", r->full);
	free(r->name);
	free(r->full);
	free(r);
	user_release(u);
}

struct resource *session_find(const struct jid *j)
{
	if (!domain_is_local(j->domain) || !j->local[0] || !j->resource[0])
		return NULL;
	struct user *u = user_find_loaded(j->local);
	return u ? user_find_resource(u, j->resource) : NULL;
}

long session_count_home(int node)
{
	long n = 0;
	const char *k;
	void *v;
	for (size_t it = 0; strmap_next(server.users, &it, &k, &v);) {
		struct user *u = v;
		if (u->loaded && u->home_node == node)
			n += u->nresources;
	}
	return n;
}

/* ---- ordered write-through ---- */

struct user_write {
	char *sql;
	int n;
	char **params;
	pg_cb cb;
	void *arg;
	struct user_write *next;
};

static void user_write_next(struct user *u);

static void user_write_free(struct user_write *w)
{
	for (int i = 0; i < w->n; i++)
		free(w->params[i]);
	free(w->params);
	free(w->sql);
	free(w);
}

static void user_write_done(void *arg, PGresult *res, const char *errmsg)
{
	struct user *u = arg;
	struct user_write *w = u->writes;
	if (w->cb)
		w->cb(w->arg, res, errmsg);
	else if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
		log_warnx("user %s: write failed: %s", u->name,
			  res ? PQresultErrorMessage(res) : errmsg);
	u->writes = w->next;
	if (!u->writes)
		u->writes_tail = NULL;
	user_write_free(w);
	user_write_next(u);
	user_release(u);
}

static void user_write_next(struct user *u)
{
	struct user_write *w = u->writes;
	if (!w)
		return;
	if (!pg_query(server.db, w->sql, w->n, (const char *const *)w->params, user_write_done,
		      u))
		user_write_done(u, NULL, "out of memory");
}

void user_write(struct user *u, const char *sql, int nparams, const char *const *params)
{
	user_query(u, sql, nparams, params, NULL, NULL);
}

void user_query(struct user *u, const char *sql, int nparams, const char *const *params,
		pg_cb cb, void *arg)
{
	struct user_write *w = calloc(1, sizeof *w);
	if (!w)
		goto oom;
	w->cb = cb;
	w->arg = arg;
	w->sql = strdup(sql);
	w->params = calloc((size_t)nparams + 1, sizeof *w->params);
	if (!w->sql || !w->params)
		goto oom;
	w->n = nparams;
	for (int i = 0; i < nparams; i++) {
		if (params[i] && !(w->params[i] = strdup(params[i])))
			goto oom;
	}
	user_hold(u);
	bool idle = u->writes == NULL;
	if (u->writes_tail)
		u->writes_tail->next = w;
	else
		u->writes = w;
	u->writes_tail = w;
	if (idle)
		user_write_next(u);
	return;
oom:
	log_warnx("user %s: out of memory, a write was lost", u->name);
	if (w)
		user_write_free(w);
	if (cb)
		cb(arg, NULL, "out of memory");
}
