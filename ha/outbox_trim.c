#include "ha/outbox_trim.h"

#include <stdlib.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/pg.h"

struct outbox_trim {
	struct pg_pool *pool;
	struct event *timer;
	struct pg_req *req;
};

static void trimmed(void *arg, PGresult *res, const char *errmsg)
{
	struct outbox_trim *t = arg;
	t->req = NULL;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
		log_warnx("outbox trim: %s", res ? PQresultErrorMessage(res) : errmsg);
	else if (atol(PQgetvalue(res, 0, 0)) > 0)
		log_debug("outbox trim: %s rows", PQgetvalue(res, 0, 0));
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct outbox_trim *t = arg;
	if (t->req)
		return; /* the last one is still running */
	/* repl_trim(acked, keep): nothing is acknowledged and nothing needs keeping. */
	t->req = pg_query(t->pool, "SELECT repl_trim(0, 0)", 0, NULL, trimmed, t);
}

struct outbox_trim *outbox_trim_new(struct event_base *base, struct pg_pool *pool,
				    long interval_ms)
{
	struct outbox_trim *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->pool = pool;
	t->timer = event_new(base, -1, EV_PERSIST, on_timer, t);
	struct timeval tv = {interval_ms / 1000, (interval_ms % 1000) * 1000};
	if (!t->timer || event_add(t->timer, &tv) < 0) {
		outbox_trim_free(t);
		return NULL;
	}
	return t;
}

void outbox_trim_free(struct outbox_trim *t)
{
	if (!t)
		return;
	if (t->req)
		pg_req_cancel(t->req);
	if (t->timer)
		event_free(t->timer);
	free(t);
}
