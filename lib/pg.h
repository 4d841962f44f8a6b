/* Asynchronous PostgreSQL access on libevent: a small pool of libpq connections, each fed
 * queries with PQsendQueryParams and read when its socket is readable, so the event loop
 * never blocks.  Queries wait in one FIFO queue; a broken connection is reconnected with
 * backoff; queued requests that cannot be run within the queue timeout fail with res NULL. */
#ifndef DUET_PG_H
#define DUET_PG_H

#include <stdbool.h>

#include <libpq-fe.h>

struct event_base;
struct pg_pool;
struct pg_req;

/* res is NULL when the query could not run (errmsg says why); otherwise the caller inspects
 * PQresultStatus(res).  res is freed by the pool after the callback returns. */
#define PG_ERR_OVERLOADED "database overloaded"   /* waited the queue timeout, never sent */
#define PG_ERR_UNAVAILABLE "database unavailable" /* no connection up, never sent */
/* The query failed without reaching the server (so a write may be tried again). */
bool pg_err_never_sent(const char *errmsg);
typedef void (*pg_cb)(void *arg, PGresult *res, const char *errmsg);

struct pg_pool *pg_pool_new(struct event_base *base, const char *conninfo, int nconns);
void pg_pool_free(struct pg_pool *pool);

/* Queue a single-statement query with text parameters (copied; NULL element = SQL NULL).
 * Returns a handle, or NULL on allocation failure (cb is then not called). */
struct pg_req *pg_query(struct pg_pool *pool, const char *sql, int nparams,
			const char *const *params, pg_cb cb, void *arg);
/* The callback of req will not be called (use when its owner goes away). */
void pg_req_cancel(struct pg_req *req);

/* Number of connections currently up, queries waiting, queries in flight. */
int pg_pool_connected(const struct pg_pool *pool);
int pg_pool_queued(const struct pg_pool *pool);
int pg_pool_in_flight(const struct pg_pool *pool);
/* Let statements that write use at most n connections at once, and the others only
 * connections with no write in flight (0, the default: one lane).  Reads then never wait in
 * a pipeline behind a write that waits for a lock (the replication capture lock serializes
 * writes until their commit). */
void pg_pool_set_write_conns(struct pg_pool *pool, int n);
/* How long a request may wait for a connection before failing (default 5000 ms). */
void pg_pool_set_queue_timeout(struct pg_pool *pool, int ms);

/* A session statement (SET ...) each connection sends first whenever it comes up (again
 * after every reconnect), ahead of any query; at most 4.  A connection already up sends it
 * at once.  A statement that fails is logged; the connection stays up without it.  Returns
 * 0, or -1 (errno EINVAL, ENOSPC, ENOMEM). */
int pg_pool_on_connect(struct pg_pool *pool, const char *sql);

/* Notifications (LISTEN/NOTIFY).  Each connection of the pool sends LISTEN channel as a
 * session statement (above), and every notification any of them receives goes to cb.  A
 * notification sent while no connection listens is lost, so the owner must not depend on
 * each one: use a pool of its own (one connection) so that LISTEN never waits behind
 * queries.  channel: a lower-case SQL identifier
 * ([a-z_][a-z0-9_]*, at most 63 bytes).  Returns 0, or -1 (errno as pg_pool_on_connect, or
 * EBUSY when the pool listens already). */
typedef void (*pg_notify_cb)(void *arg, const char *channel, const char *payload);
int pg_pool_listen(struct pg_pool *pool, const char *channel, pg_notify_cb cb, void *arg);

#endif
