/* `roster-reload <bare-jid>` from srmd (docs/engine-protocol.md): a bulk tool (srmctl
 * contacts import / rename, docs/bulk-tools.md) changed this user's roster in the database
 * behind the engine's back.  A user held in memory re-reads its roster, queued behind its
 * own pending writes so it sees them, adopts the database's items and pushes each change to
 * the resources that asked for the roster, under a roster version above both the memory's
 * and the database's.  A user not in memory needs nothing: it is loaded from the database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "lib/log.h"
#include "lib/pg.h"
#include "lib/strmap.h"

/* Columns from 1 as roster_load_rows() reads them (session.c's load query). */
static const char reload_sql[] =
	"SELECT u.roster_ver, r.contact, r.name, r.subscription, r.ask_out, r.pending_in,"
	" r.preapproved, r.visible, array_to_string(r.groups, E'\\n'), r.ver,"
	" r.pending_in_stanza"
	" FROM users u LEFT JOIN roster_items r ON r.username = u.username"
	" WHERE u.username = $1";

static bool str_same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool groups_same(char **a, char **b)
{
	size_t i = 0;
	for (; a && b && a[i] && b[i]; i++)
		if (strcmp(a[i], b[i]))
			return false;
	return !(a && a[i]) && !(b && b[i]);
}

static bool item_same(const struct roster_item *a, const struct roster_item *b)
{
	return str_same(a->name, b->name) && groups_same(a->groups, b->groups) &&
	       a->st.sub == b->st.sub && a->st.ask_out == b->st.ask_out &&
	       a->st.pending_in == b->st.pending_in && a->st.preapproved == b->st.preapproved &&
	       a->st.visible == b->st.visible && str_same(a->pending_in_stanza, b->pending_in_stanza);
}

/* Take b's contents into a (a keeps its identity: other code may hold it). */
static void item_adopt(struct roster_item *a, struct roster_item *b)
{
	char *name = a->name, **groups = a->groups, *pis = a->pending_in_stanza;
	a->name = b->name;
	a->groups = b->groups;
	a->pending_in_stanza = b->pending_in_stanza;
	a->st = b->st;
	b->name = name;
	b->groups = groups;
	b->pending_in_stanza = pis;
}

static void on_reload_rows(void *arg, PGresult *res, const char *errmsg)
{
	struct user *u = arg; /* held by user_query until this returns */
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("user %s: roster reload failed: %s", u->name,
			  res ? PQresultErrorMessage(res) : errmsg);
		return;
	}
	if (PQntuples(res) == 0)
		return; /* the account is gone; a kick ends its sessions */
	struct user fresh;
	memset(&fresh, 0, sizeof fresh);
	fresh.name = u->name;
	if (!(fresh.roster = strmap_new()) || roster_load_rows(&fresh, res, 1) < 0) {
		log_warnx("user %s: roster reload: out of memory", u->name);
		goto out;
	}
	int64_t db_ver = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	/* Count first: every push must carry the final version. */
	size_t changes = 0;
	const char *k;
	void *v;
	for (size_t i = 0; strmap_next(u->roster, &i, &k, &v);) {
		struct roster_item *now = strmap_get(fresh.roster, k);
		changes += !now || !item_same(v, now);
	}
	for (size_t i = 0; strmap_next(fresh.roster, &i, &k, &v);)
		changes += !strmap_get(u->roster, k);
	if (changes == 0)
		goto out;
	u->roster_ver = (u->roster_ver > db_ver ? u->roster_ver : db_ver) + 1;
	/* Gone from the database (a renamed contact's old JID). */
	for (size_t i = 0; strmap_next(u->roster, &i, &k, &v);) {
		if (strmap_get(fresh.roster, k))
			continue;
		struct roster_item *gone = strmap_del(u->roster, k);
		if (gone->st.visible)
			roster_push(u, gone, true);
		roster_item_free(gone);
	}
	/* New or changed. */
	for (size_t i = 0; strmap_next(fresh.roster, &i, &k, &v);) {
		struct roster_item *it = v, *old = strmap_get(u->roster, k);
		bool was_visible = old && old->st.visible;
		if (old && item_same(old, it))
			continue;
		if (old) {
			item_adopt(old, it);
			it = old;
		} else {
			if (strmap_put(u->roster, it->contact, it) < 0) {
				log_warnx("user %s: roster reload: out of memory", u->name);
				continue;
			}
			strmap_put(fresh.roster, k, NULL); /* now owned by u->roster */
		}
		it->ver = u->roster_ver;
		if (it->st.visible)
			roster_push(u, it, false);
		else if (was_visible)
			roster_push(u, it, true);
	}
	char ver[24];
	snprintf(ver, sizeof ver, "%lld", (long long)u->roster_ver);
	const char *params[2] = {u->name, ver};
	user_write(u, "UPDATE users SET roster_ver = greatest(roster_ver, $2::bigint) WHERE username = $1",
		   2, params);
	log_info("user %s: roster reloaded (%zu changes, version %s)", u->name, changes, ver);
out:
	if (fresh.roster) {
		for (size_t i = 0; strmap_next(fresh.roster, &i, &k, &v);)
			roster_item_free(v);
		strmap_free(fresh.roster);
	}
}

int roster_reload(const char *bare)
{
	struct jid j;
	if (jid_parse(bare, &j) < 0 || !j.local[0] || !domain_is_local(j.domain))
		return -1;
	struct user *u = user_find_loaded(j.local);
	if (!u)
		return 0;
	const char *params[1] = {u->name};
	user_query(u, reload_sql, 1, params, on_reload_rows, u);
	return 1;
}
