/* Last activity (XEP-0012): the time and status of a user's last logout, written to the
 * database in batches.  A logout only notes the user in a pending set; every
 * LAST_FLUSH_MS (or at LAST_BATCH_MAX users) one statement upserts them all.  One
 * transaction per batch instead of one per logout: at a thousand logouts a second the
 * per-statement costs (round trip, parse, plan, commit and its WAL flush) were most of the
 * database's work per login.
 *
 * A pending user stays held in memory until its row is written, so a login meanwhile
 * finds the fresh logout time there and never reads the older row.  The values are read
 * from the user when the batch is built: logging out twice within one window writes the
 * later time once.  What a crash loses is at most one window of logout times. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "engine/engine.h"
#include "lib/log.h"
#include "lib/pg.h"
#include "lib/strmap.h"

#define LAST_FLUSH_MS 100
#define LAST_BATCH_MAX 1000

static struct strmap *pending; /* username -> struct user, held */
static size_t npending;
static struct event *flush_ev;

struct last_batch {
	size_t n;
	struct user *users[];
};

/* Rows of users deleted meanwhile are skipped (the key references users). */
static const char upsert_sql[] =
	"INSERT INTO last_activity (username, logout_at, status)"
	" SELECT x.u, to_timestamp(x.t), x.s FROM unnest($1::text[], $2::bigint[], $3::text[])"
	" AS x(u, t, s) WHERE EXISTS (SELECT 1 FROM users WHERE users.username = x.u)"
	" ON CONFLICT (username) DO UPDATE SET logout_at = EXCLUDED.logout_at,"
	" status = EXCLUDED.status";

/* One element of a PostgreSQL array literal: quoted, with " and \ escaped. */
static void array_elem(struct evbuffer *b, const char *s, bool first)
{
	evbuffer_add(b, first ? "\"" : ",\"", first ? 1 : 2);
	for (const char *p = s; *p;) {
		size_t run = strcspn(p, "\"\\");
		evbuffer_add(b, p, run);
		p += run;
		if (*p) {
			char esc[2] = {'\\', *p++};
			evbuffer_add(b, esc, 2);
		}
	}
	evbuffer_add(b, "\"", 1);
}

static void batch_done(void *arg, PGresult *res, const char *errmsg)
{
	struct last_batch *b = arg;
	if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
		log_warnx("last activity: %zu logout times not written: %s", b->n,
			  res ? PQresultErrorMessage(res) : errmsg);
	for (size_t i = 0; i < b->n; i++)
		user_release(b->users[i]);
	free(b);
}

static char *take_string(struct evbuffer *b)
{
	size_t len = evbuffer_get_length(b);
	char *s = malloc(len + 1);
	if (s) {
		evbuffer_remove(b, s, len);
		s[len] = '\0';
	}
	return s;
}

void last_activity_flush(void)
{
	if (npending == 0)
		return;
	struct last_batch *b = malloc(sizeof *b + npending * sizeof b->users[0]);
	struct evbuffer *names = evbuffer_new(), *times = evbuffer_new(),
			*statuses = evbuffer_new();
	char *p[3] = {NULL, NULL, NULL};
	if (!b || !names || !times || !statuses)
		goto oom;
	b->n = 0;
	const char *k;
	void *v;
	for (size_t it = 0; strmap_next(pending, &it, &k, &v);) {
		struct user *u = v;
		bool first = b->n == 0;
		b->users[b->n++] = u;
		array_elem(names, u->name, first);
		evbuffer_add_printf(times, "%s%lld", first ? "" : ",", (long long)u->last_logout);
		array_elem(statuses, u->last_status ? u->last_status : "", first);
		strmap_del(pending, k);
	}
	npending = 0;
	evbuffer_prepend(names, "{", 1);
	evbuffer_prepend(times, "{", 1);
	evbuffer_prepend(statuses, "{", 1);
	evbuffer_add(names, "}", 1);
	evbuffer_add(times, "}", 1);
	evbuffer_add(statuses, "}", 1);
	p[0] = take_string(names);
	p[1] = take_string(times);
	p[2] = take_string(statuses);
	if (!p[0] || !p[1] || !p[2] ||
	    !pg_query(server.db, upsert_sql, 3, (const char *const *)p, batch_done, b)) {
		batch_done(b, NULL, "out of memory");
		b = NULL;
	}
	goto out;
oom:
	/* Nothing was taken out of the set: the next flush tries again. */
	free(b);
	log_warnx("last activity: out of memory, batch postponed");
out:
	for (int i = 0; i < 3; i++)
		free(p[i]);
	if (names)
		evbuffer_free(names);
	if (times)
		evbuffer_free(times);
	if (statuses)
		evbuffer_free(statuses);
}

static void on_flush(evutil_socket_t fd, short what, void *arg) { last_activity_flush(); }

void last_store(struct user *u)
{
	u->last_logout = time(NULL);
	if (!pending && !(pending = strmap_new()))
		goto oom;
	if (!flush_ev && !(flush_ev = evtimer_new(server.base, on_flush, NULL)))
		goto oom;
	struct user *old = strmap_get(pending, u->name);
	if (old != u) {
		if (strmap_put(pending, u->name, u) < 0)
			goto oom;
		user_hold(u);
		if (old) /* an account reloaded meanwhile: its newest copy is written */
			user_release(old);
		else
			npending++;
	}
	if (npending >= LAST_BATCH_MAX) {
		event_del(flush_ev);
		last_activity_flush();
	} else if (!evtimer_pending(flush_ev, NULL)) {
		struct timeval tv = {0, LAST_FLUSH_MS * 1000};
		evtimer_add(flush_ev, &tv);
	}
	return;
oom:
	log_warnx("user %s: out of memory, logout time not stored", u->name);
}
