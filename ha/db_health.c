#include "ha/db_health.h"

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/pg.h"

#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DB_HUNG_INTERVALS 3

struct db_health {
	struct pg_pool *pool;
	long interval_ms;
	db_health_change_cb cb;
	void *arg;
	struct event *ev_tick;
	struct pg_req *req;  /* outstanding check */
	int64_t sent_ms;
	int up;
	char error[256];
};

static void dh_set(struct db_health *dh, int up, const char *why)
{
	char clean[sizeof dh->error];
	snprintf(clean, sizeof clean, "%s", up ? "" : why);
	/* libpq messages end in a newline and may span lines: keep the first line. */
	clean[strcspn(clean, "\r\n")] = '\0';
	if (up == dh->up && strcmp(clean, dh->error) == 0)
		return;
	if (up != dh->up) {
		if (up)
			log_info("database: reachable again");
		else
			log_warnx("database: down: %s", clean);
	}
	dh->up = up;
	snprintf(dh->error, sizeof dh->error, "%s", clean);
	if (dh->cb)
		dh->cb(dh->arg);
}

static void dh_on_result(void *arg, PGresult *res, const char *errmsg)
{
	struct db_health *dh = arg;
	dh->req = NULL;
	if (!res)
		dh_set(dh, 0, errmsg && *errmsg ? errmsg : "query failed");
	else if (PQresultStatus(res) != PGRES_TUPLES_OK)
		dh_set(dh, 0, PQresultErrorMessage(res));
	else
		dh_set(dh, 1, "");
}

static void dh_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct db_health *dh = arg;
	if (dh->req) {
		/* Keep waiting for it (a second query would only queue behind a stuck one). */
		long waited = (long)(clock_mono_ms() - dh->sent_ms);
		if (dh->up && waited > DB_HUNG_INTERVALS * dh->interval_ms) {
			char why[96];
			snprintf(why, sizeof why, "no answer to SELECT 1 for %ld ms", waited);
			dh_set(dh, 0, why);
		}
		return;
	}
	dh->sent_ms = clock_mono_ms();
	dh->req = pg_query(dh->pool, "SELECT 1", 0, NULL, dh_on_result, dh);
	if (!dh->req)
		dh_set(dh, 0, "out of memory");
}

struct db_health *db_health_new(struct event_base *base, struct pg_pool *pool,
				long interval_ms, db_health_change_cb cb, void *arg)
{
	struct db_health *dh = calloc(1, sizeof *dh);
	if (!dh)
		return NULL;
	dh->pool = pool;
	dh->interval_ms = interval_ms > 0 ? interval_ms : 500;
	dh->cb = cb;
	dh->arg = arg;
	dh->up = 1; /* srmd only gets here after connecting and migrating */
	dh->ev_tick = event_new(base, -1, EV_PERSIST, dh_on_tick, dh);
	if (!dh->ev_tick) {
		free(dh);
		return NULL;
	}
	struct timeval tv = {dh->interval_ms / 1000, (dh->interval_ms % 1000) * 1000};
	event_add(dh->ev_tick, &tv);
	return dh;
}

void db_health_free(struct db_health *dh)
{
	if (!dh)
		return;
	if (dh->req)
		pg_req_cancel(dh->req);
	event_free(dh->ev_tick);
	free(dh);
}

int db_health_up(const struct db_health *dh) { return dh->up; }
const char *db_health_error(const struct db_health *dh) { return dh->error; }
