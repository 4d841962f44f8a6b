/* The node database as a critical service: `SELECT 1` through the pool every interval.
 * Down when a check fails, or when one has gone unanswered for three intervals. */
#ifndef DUET_DB_HEALTH_H
#define DUET_DB_HEALTH_H

struct event_base;
struct pg_pool;
struct db_health;

typedef void (*db_health_change_cb)(void *arg);

struct db_health *db_health_new(struct event_base *base, struct pg_pool *pool,
				long interval_ms, db_health_change_cb cb, void *arg);
/* Cancels the outstanding check: call before freeing the pool. */
void db_health_free(struct db_health *dh);

int db_health_up(const struct db_health *dh);
/* Why it is down ("" when up). */
const char *db_health_error(const struct db_health *dh);

#endif
