/* Asynchronous PostgreSQL pool (see lib/pg.h).
 *
 * Each connection is connected with PQconnectStart/PQconnectPoll driven by libevent, then put
 * in non-blocking pipeline mode: up to PG_CONN_MAX_INFLIGHT queries are sent back to back,
 * each followed by its own Sync so it is an implicit transaction of its own and a failing
 * query cannot abort the next ones.  Per query the results arrive as
 *     result(s), NULL, PGRES_PIPELINE_SYNC
 * and the callback runs at the NULL; the request keeps its slot until its Sync is read.
 *
 * Each connection prepares a query text the first time it runs it (up to PG_MAX_PREPARED
 * texts per connection) and executes the named statement afterwards: the Parse travels in
 * the same pipeline segment as the first execution, so it costs no round trip, and later
 * executions skip parsing and planning, which were about 40% of the database's work per
 * login.  Per query the results are then
 *     [prepare result, NULL,] result(s), NULL, PGRES_PIPELINE_SYNC
 *
 * Requests wait in FIFO order and go to the least-loaded connection that is up.  With
 * a write limit set (pg_pool_set_write_conns), statements that write (INSERT, UPDATE,
 * DELETE, MERGE, WITH) go to at most that many connections at once, and the others (reads)
 * only to a connection with no write in flight: a write to a replicated table may wait for
 * the capture lock until another one commits (docs/replication-protocol.md), and a query
 * pipelined behind it waits with it, so a login's reads never queue behind writes.  Reads
 * and writes then wait in a queue each, dispatched oldest first while their lane has room:
 * thousands of writes waiting for the capture lock are not walked past at every dispatch.
 * New requests are dispatched from a deferred event, never from inside pg_query(), so a
 * callback never runs before pg_query() has returned its handle.
 *
 * Session statements (pg_pool_on_connect: SET, and the LISTEN of pg_pool_listen) go first
 * on each connection as it comes up, ahead of any queued query; a pool that listens hands
 * every notification to its callback as it reads it.
 *
 * Re-entrancy: a callback may call pg_query() and pg_req_cancel() on any request (including
 * its own, which is then a no-op).  A callback must NOT call pg_pool_free().  A request handle
 * is valid until its callback has started or it was cancelled.
 *
 * Limitation of libpq: a host name is resolved with a blocking getaddrinfo() inside
 * PQconnectStart/PQconnectPoll; production should use a unix socket or hostaddr=. */
#include "lib/clock.h"
#include "lib/pg.h"

#include "lib/log.h"
#include "lib/strmap.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#define PG_CONN_MAX_INFLIGHT 32
#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 5000
/* libpq ignores connect_timeout with PQconnectPoll: the caller must bound the attempt. */
#define PG_CONNECT_TIMEOUT_MS 10000
#define PG_DEFAULT_QUEUE_TIMEOUT_MS 5000
#define PG_MAX_PARAMS 65535
#define PG_ERRLEN 256
#define PG_MAX_PREPARED 128
#define PG_MAX_SETUP 4

enum req_state {
	REQ_QUEUED,   /* in pool->queue[q] */
	REQ_SENT,     /* in conn->inflight, waiting for its result */
	REQ_ANSWERED, /* in conn->inflight, callback done, waiting for its Sync */
	REQ_DONE,     /* out of every list, callback running or about to */
};

struct pg_req {
	TAILQ_ENTRY(pg_req) entry;
	struct pg_pool *pool;
	enum req_state state;
	pg_cb cb; /* NULL once cancelled or called */
	void *arg;
	PGresult *res; /* first result of the query, until delivered */
	int preparing;	/* its statement's Parse went first: one result and a NULL of its own */
	long prep_id;	/* that statement's number */
	int64_t deadline_ms;
	int lane; /* LANE_READ or LANE_WRITE */
	int q;    /* its queue while queued: its lane with lanes on, else 0 */
	uint64_t seq; /* order of arrival in the pool's queues */
	int unprepared; /* run as sent, never prepared (the pool's own LISTEN) */
	int nparams;
	const char *sql;
	const char **params; /* points into the same allocation */
};

TAILQ_HEAD(req_list, pg_req);

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_UP };
enum { LANE_READ, LANE_WRITE };

struct pg_conn {
	struct pg_pool *pool;
	int id;
	enum conn_state state;
	PGconn *pq;
	int fd;
	struct event *ev_connect; /* one-shot, re-created per PQconnectPoll step */
	struct event *ev_read;	  /* persistent while up */
	struct event *ev_write;	  /* added while PQflush has data left */
	struct event *ev_retry;	  /* reconnect timer */
	int writing;
	int backoff_ms;
	int down_logged; /* log a failing attempt once, not at every retry */
	struct req_list inflight;
	int n_inflight;
	int n_writes; /* of them, statements that write */
	/* Query text -> statement number while up; negative until its Parse succeeded (the
	 * same text sent meanwhile runs unnamed, so a failing Parse fails only itself). */
	struct strmap *prepared;
	long n_prepared;	 /* statement numbers given out on this session */
	char err[PG_ERRLEN];
};

struct pg_pool {
	struct event_base *base;
	char *conninfo;
	int nconns;
	struct pg_conn *conns;
	/* Waiting requests, FIFO: one queue, or with lanes one per lane (the reads' and the
	 * writes'), so that dispatching reads never walks past thousands of waiting writes. */
	struct req_list queue[2];
	uint64_t next_seq;
	int n_queued;
	int n_inflight;
	int n_connected;
	int queue_timeout_ms;
	int write_conns; /* at most this many connections carry writes at once; 0: no lanes */
	/* Session statements (SET, LISTEN) sent first on each connection as it comes up. */
	char *setup[PG_MAX_SETUP];
	int n_setup;
	pg_notify_cb notify_cb;
	void *notify_arg;
	struct event *ev_kick;	  /* deferred dispatch */
	struct event *ev_timeout; /* earliest queue deadline */
	int kick_pending;
};

static void conn_start(struct pg_conn *c);
static void conn_fail(struct pg_conn *c, const char *why);
static void pool_dispatch(struct pg_pool *pool);

/* libpq messages end with a newline; keep one line, bounded. */
static void err_copy(char *dst, size_t len, const char *msg)
{
	snprintf(dst, len, "%s", msg && *msg ? msg : "unknown error");
	size_t n = strlen(dst);
	while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == '\r' || dst[n - 1] == ' '))
		dst[--n] = '\0';
	for (char *p = dst; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
}

/* Run the callback of a request at most once; the caller owns req and res afterwards. */
static void req_deliver(struct pg_req *req, PGresult *res, const char *errmsg)
{
	pg_cb cb = req->cb;
	req->cb = NULL;
	if (cb)
		cb(req->arg, res, errmsg);
}

static void req_free(struct pg_req *req)
{
	PQclear(req->res);
	free(req);
}

/* ---- queue timeout ---- */

/* The oldest of two queue heads (NULL for an empty queue), which expires first too. */
static struct pg_req *older(struct pg_req *a, struct pg_req *b)
{
	return !a ? b : !b ? a : b->seq < a->seq ? b : a;
}

static struct pg_req *pool_first_deadline(struct pg_pool *pool)
{
	return older(TAILQ_FIRST(&pool->queue[0]), TAILQ_FIRST(&pool->queue[1]));
}

static void queue_remove(struct pg_pool *pool, struct pg_req *req)
{
	TAILQ_REMOVE(&pool->queue[req->q], req, entry);
	pool->n_queued--;
}

static void pool_arm_timeout(struct pg_pool *pool)
{
	struct pg_req *head = pool_first_deadline(pool);
	if (!head) {
		event_del(pool->ev_timeout);
		return;
	}
	struct timeval tv = clock_tv_ms(head->deadline_ms - clock_mono_ms());
	event_add(pool->ev_timeout, &tv);
}

static void pool_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pg_pool *pool = arg;
	int64_t now = clock_mono_ms();
	const char *why = pool->n_connected ? PG_ERR_OVERLOADED : PG_ERR_UNAVAILABLE;
	struct pg_req *req;

	/* Pop the head each time: a callback may cancel (free) other queued requests. */
	while ((req = pool_first_deadline(pool)) && req->deadline_ms <= now) {
		queue_remove(pool, req);
		req->state = REQ_DONE;
		req_deliver(req, NULL, why);
		req_free(req);
	}
	pool_arm_timeout(pool);
}

static void pool_kick(struct pg_pool *pool)
{
	if (pool->kick_pending)
		return;
	pool->kick_pending = 1;
	event_active(pool->ev_kick, EV_TIMEOUT, 0);
}

static void pool_on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct pg_pool *pool = arg;
	pool->kick_pending = 0;
	pool_dispatch(pool);
}

/* ---- connection I/O ---- */

static void conn_events_free(struct pg_conn *c)
{
	if (c->ev_connect) {
		event_free(c->ev_connect);
		c->ev_connect = NULL;
	}
	if (c->ev_read) {
		event_free(c->ev_read);
		c->ev_read = NULL;
	}
	if (c->ev_write) {
		event_free(c->ev_write);
		c->ev_write = NULL;
	}
	c->writing = 0;
	c->fd = -1;
}

/* Push buffered output; watch EV_WRITE while libpq still has some.  -1: connection failed. */
static int conn_flush(struct pg_conn *c)
{
	int r = PQflush(c->pq);
	if (r < 0) {
		conn_fail(c, PQerrorMessage(c->pq));
		return -1;
	}
	if (r == 1 && !c->writing) {
		event_add(c->ev_write, NULL);
		c->writing = 1;
	} else if (r == 0 && c->writing) {
		event_del(c->ev_write);
		c->writing = 0;
	}
	return 0;
}

/* Send one request; -1 when the connection is broken (req untouched), 1 when the request
 * itself was refused (conn still fine, req still queued), 0 when sent. */
static int conn_send(struct pg_conn *c, struct pg_req *req)
{
	char name[32];
	long id = c->prepared && !req->unprepared
			  ? (long)(intptr_t)strmap_get(c->prepared, req->sql) : 0;
	if (!id && c->prepared && !req->unprepared && c->n_prepared < PG_MAX_PREPARED) {
		snprintf(name, sizeof name, "duet_%ld", c->n_prepared + 1);
		if (!PQsendPrepare(c->pq, name, req->sql, req->nparams, NULL))
			return PQstatus(c->pq) == CONNECTION_OK ? 1 : -1;
		id = ++c->n_prepared;
		req->preparing = 1;
		req->prep_id = id;
		/* Not remembered (out of memory): the next run prepares it again, renamed. */
		strmap_put(c->prepared, req->sql, (void *)(intptr_t)-id);
	}
	int sent;
	if (id > 0 || req->preparing) {
		if (id < 0)
			id = -id;
		snprintf(name, sizeof name, "duet_%ld", id);
		sent = PQsendQueryPrepared(c->pq, name, req->nparams, req->params, NULL, NULL, 0);
	} else {
		sent = PQsendQueryParams(c->pq, req->sql, req->nparams, NULL, req->params, NULL,
					 NULL, 0);
	}
	if (!sent) /* refused by libpq; after a Parse went out the session is out of step */
		return !req->preparing && PQstatus(c->pq) == CONNECTION_OK ? 1 : -1;
	if (!PQpipelineSync(c->pq))
		return -1;
	return 0;
}

static int result_is_fatal(const PGresult *res)
{
	if (PQresultStatus(res) != PGRES_FATAL_ERROR)
		return 0;
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	return sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0);
}

/* Read every complete result; runs callbacks.  0, or -1 if the connection failed. */
static int conn_read_results(struct pg_conn *c)
{
	struct pg_pool *pool = c->pool;
	int last_null = 0;

	while (!TAILQ_EMPTY(&c->inflight) && !PQisBusy(c->pq)) {
		PGresult *res = PQgetResult(c->pq);
		struct pg_req *req = TAILQ_FIRST(&c->inflight);
		if (PQstatus(c->pq) == CONNECTION_BAD) {
			PQclear(res);
			conn_fail(c, PQerrorMessage(c->pq));
			return -1;
		}
		if (!res && req->preparing == 1) {
			req->preparing = 2; /* the Parse's results are over; the query's come */
			last_null = 1;
			continue;
		}
		if (!res) {
			/* End of the head query's results. */
			if (last_null) {
				/* libpq has no command left while we still wait for one: our
				 * bookkeeping and the connection disagree; start over. */
				conn_fail(c, "pipeline out of step");
				return -1;
			}
			last_null = 1;
			if (req->state == REQ_SENT) {
				PGresult *r = req->res;
				req->res = NULL;
				req->state = REQ_ANSWERED;
				req_deliver(req, r, r ? NULL : "no result");
				PQclear(r);
			}
			continue;
		}
		last_null = 0;
		if (result_is_fatal(res)) {
			/* The server ends the session after a FATAL error (terminated backend,
			 * shutdown): fail now rather than send more work to a dying link. */
			char why[PG_ERRLEN];
			err_copy(why, sizeof why, PQresultErrorMessage(res));
			PQclear(res);
			conn_fail(c, why);
			return -1;
		}
		if (req->preparing == 1) {
			/* The Parse's own result: kept only as the error to report (the execution
			 * then comes back PIPELINE_ABORTED), and the text is not prepared. */
			if (PQresultStatus(res) != PGRES_COMMAND_OK && !req->res) {
				req->res = res;
				if (c->prepared)
					strmap_del(c->prepared, req->sql);
			} else {
				if (c->prepared && PQresultStatus(res) == PGRES_COMMAND_OK)
					strmap_put(c->prepared, req->sql,
						   (void *)(intptr_t)req->prep_id);
				PQclear(res);
			}
			continue;
		}
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			TAILQ_REMOVE(&c->inflight, req, entry);
			c->n_inflight--;
			c->n_writes -= req->lane == LANE_WRITE;
			pool->n_inflight--;
			req->state = REQ_DONE;
			/* A Sync without a preceding end-of-results: deliver what we have. */
			PGresult *r = req->res;
			req->res = NULL;
			req_deliver(req, r, r ? NULL : "no result");
			PQclear(r);
			req_free(req);
			continue;
		}
		if (req->state == REQ_SENT && !req->res)
			req->res = res;
		else
			PQclear(res); /* extra results of one statement are not expected; drop */
	}
	return 0;
}

static void conn_drain_notifies(struct pg_conn *c)
{
	struct pg_pool *pool = c->pool;
	PGnotify *n;
	while ((n = PQnotifies(c->pq)) != NULL) {
		if (pool->notify_cb)
			pool->notify_cb(pool->notify_arg, n->relname, n->extra);
		PQfreemem(n);
	}
}

static void conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct pg_conn *c = arg;
	struct pg_pool *pool = c->pool;

	if (!PQconsumeInput(c->pq)) {
		conn_fail(c, PQerrorMessage(c->pq));
		return;
	}
	conn_drain_notifies(c);
	if (conn_read_results(c) < 0)
		return;
	if (PQstatus(c->pq) == CONNECTION_BAD) {
		conn_fail(c, PQerrorMessage(c->pq));
		return;
	}
	/* libpq may need input before it can flush more (see PQflush documentation). */
	if (c->writing && conn_flush(c) < 0)
		return;
	if (pool->n_queued)
		pool_dispatch(pool);
}

static void conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct pg_conn *c = arg;
	conn_flush(c);
}

static void conn_notice(void *arg, const char *message)
{
	struct pg_conn *c = arg;
	char line[PG_ERRLEN];
	err_copy(line, sizeof line, message);
	log_debug("pg: connection %d: %s", c->id, line);
}

/* ---- connection life cycle ---- */

static void conn_schedule_retry(struct pg_conn *c)
{
	struct timeval tv = clock_tv_ms(c->backoff_ms);
	event_add(c->ev_retry, &tv);
	c->backoff_ms = c->backoff_ms * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS
							       : c->backoff_ms * 2;
}

/* Tear the connection down, fail its in-flight requests, schedule a reconnect. */
static void conn_fail(struct pg_conn *c, const char *why)
{
	struct pg_pool *pool = c->pool;
	struct req_list failed = TAILQ_HEAD_INITIALIZER(failed);

	err_copy(c->err, sizeof c->err, why);
	if (c->state == CONN_UP) {
		pool->n_connected--;
		log_warnx("pg: connection %d down: %s", c->id, c->err);
		c->down_logged = 1;
	} else if (!c->down_logged) {
		log_warnx("pg: connection %d cannot connect: %s (retrying)", c->id, c->err);
		c->down_logged = 1;
	} else {
		log_debug("pg: connection %d attempt failed: %s", c->id, c->err);
	}
	conn_events_free(c);
	PQfinish(c->pq);
	c->pq = NULL;
	c->state = CONN_DOWN;
	if (c->prepared) /* statements live as long as their session */
		strmap_free(c->prepared);
	c->prepared = NULL;

	TAILQ_CONCAT(&failed, &c->inflight, entry);
	pool->n_inflight -= c->n_inflight;
	c->n_inflight = 0;
	c->n_writes = 0;
	conn_schedule_retry(c);

	/* Callbacks may cancel requests still in `failed` (they only lose their callback) or
	 * queue new ones (dispatched later from the kick event). */
	struct pg_req *req;
	char msg[PG_ERRLEN + 32];
	snprintf(msg, sizeof msg, "database connection lost: %s", c->err);
	while ((req = TAILQ_FIRST(&failed))) {
		TAILQ_REMOVE(&failed, req, entry);
		req->state = REQ_DONE;
		req_deliver(req, NULL, msg);
		req_free(req);
	}
	if (pool->n_queued)
		pool_kick(pool);
}

static struct pg_req *req_new(struct pg_pool *pool, const char *sql, int nparams,
			      const char *const *params, pg_cb cb, void *arg);

/* A request just sent on c: in flight there until its Sync is read. */
static void conn_track(struct pg_conn *c, struct pg_req *req)
{
	req->state = REQ_SENT;
	TAILQ_INSERT_TAIL(&c->inflight, req, entry);
	c->n_inflight++;
	c->n_writes += req->lane == LANE_WRITE;
	c->pool->n_inflight++;
}

/* A session statement's result: a failure leaves the link up (a broken link fails the
 * connection, which says so itself), without that setting until it reconnects. */
static void setup_done(void *arg, PGresult *res, const char *errmsg)
{
	struct pg_req *req = arg;
	if (!res || PQresultStatus(res) == PGRES_COMMAND_OK)
		return;
	char why[PG_ERRLEN];
	err_copy(why, sizeof why, PQresultErrorMessage(res));
	log_warnx("pg: %s failed: %s", req->sql, why);
}

/* Send one session statement on a connection that is up.  -1: the connection failed. */
static int conn_setup_one(struct pg_conn *c, const char *sql)
{
	struct pg_pool *pool = c->pool;
	struct pg_req *req = req_new(pool, sql, 0, NULL, setup_done, NULL);
	if (!req) {
		conn_fail(c, "out of memory");
		return -1;
	}
	req->arg = req; /* setup_done names the statement */
	req->unprepared = 1;
	if (conn_send(c, req) != 0) {
		req_free(req);
		conn_fail(c, PQerrorMessage(c->pq));
		return -1;
	}
	conn_track(c, req);
	return conn_flush(c);
}

static void conn_up(struct pg_conn *c)
{
	struct pg_pool *pool = c->pool;

	if (PQsetnonblocking(c->pq, 1) != 0 || !PQenterPipelineMode(c->pq)) {
		conn_fail(c, PQerrorMessage(c->pq));
		return;
	}
	conn_events_free(c);
	c->fd = PQsocket(c->pq);
	c->ev_read = event_new(pool->base, c->fd, EV_READ | EV_PERSIST, conn_on_read, c);
	c->ev_write = event_new(pool->base, c->fd, EV_WRITE | EV_PERSIST, conn_on_write, c);
	if (!c->ev_read || !c->ev_write || event_add(c->ev_read, NULL) < 0) {
		conn_fail(c, "out of memory");
		return;
	}
	PQsetNoticeProcessor(c->pq, conn_notice, c);
	c->prepared = strmap_new(); /* NULL (out of memory): unnamed statements only */
	c->n_prepared = 0;
	c->state = CONN_UP;
	c->backoff_ms = PG_BACKOFF_MIN_MS;
	c->down_logged = 0;
	pool->n_connected++;
	log_info("pg: connection %d up (backend pid %d)", c->id, PQbackendPID(c->pq));
	for (int i = 0; i < pool->n_setup; i++)
		if (conn_setup_one(c, pool->setup[i]) < 0)
			return;
	if (pool->n_queued)
		pool_dispatch(pool);
}

static void conn_on_connect(evutil_socket_t fd, short what, void *arg);

/* Wait for the direction PQconnectPoll asked for; the socket may change between steps
 * (next address of a host, SSL retry), so the event is re-created each time. */
static void conn_wait(struct pg_conn *c, short dir)
{
	int fd = PQsocket(c->pq);
	if (fd < 0) {
		conn_fail(c, PQerrorMessage(c->pq));
		return;
	}
	if (c->ev_connect)
		event_free(c->ev_connect);
	c->fd = fd;
	c->ev_connect = event_new(c->pool->base, fd, dir, conn_on_connect, c);
	struct timeval tv = clock_tv_ms(PG_CONNECT_TIMEOUT_MS);
	if (!c->ev_connect || event_add(c->ev_connect, &tv) < 0)
		conn_fail(c, "out of memory");
}

static void conn_on_connect(evutil_socket_t fd, short what, void *arg)
{
	struct pg_conn *c = arg;

	if (what & EV_TIMEOUT) {
		conn_fail(c, "connection attempt timed out");
		return;
	}
	switch (PQconnectPoll(c->pq)) {
	case PGRES_POLLING_READING:
		conn_wait(c, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		conn_wait(c, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		conn_up(c);
		break;
	default:
		conn_fail(c, PQerrorMessage(c->pq));
		break;
	}
}

static void conn_start(struct pg_conn *c)
{
	c->pq = PQconnectStart(c->pool->conninfo);
	if (!c->pq) {
		conn_fail(c, "out of memory");
		return;
	}
	c->state = CONN_CONNECTING;
	if (PQstatus(c->pq) == CONNECTION_BAD) {
		conn_fail(c, PQerrorMessage(c->pq));
		return;
	}
	/* Documented start state: behave as if PQconnectPoll had returned POLLING_WRITING. */
	conn_wait(c, EV_WRITE);
}

static void conn_on_retry(evutil_socket_t fd, short what, void *arg)
{
	conn_start(arg);
}

/* ---- dispatch ---- */

/* The least-loaded connection that is up, has room, and that the request's lane may use:
 * a read one with no write in flight; a write one that carries writes already, or any while
 * fewer than write_conns do.  Without lanes, or when the lane has no connection up at all (a
 * read connection reconnecting must not stop the reads), any. */
static struct pg_conn *pool_pick_conn(struct pg_pool *pool, int lane)
{
	struct pg_conn *best = NULL, *any = NULL;
	int writers = 0;
	for (int i = 0; i < pool->nconns; i++)
		writers += pool->conns[i].state == CONN_UP && pool->conns[i].n_writes > 0;
	int lanes = pool->write_conns > 0 && pool->write_conns < pool->nconns;
	int lane_up = 0;
	for (int i = 0; i < pool->nconns; i++) {
		struct pg_conn *c = &pool->conns[i];
		if (c->state != CONN_UP)
			continue;
		int fits = !lanes || (lane == LANE_READ ? c->n_writes == 0
						       : c->n_writes > 0 || writers < pool->write_conns);
		lane_up |= fits;
		if (c->n_inflight >= PG_CONN_MAX_INFLIGHT)
			continue;
		if (!any || c->n_inflight < any->n_inflight)
			any = c;
		if (fits && (!best || c->n_inflight < best->n_inflight))
			best = c;
	}
	return best ? best : lane_up ? NULL : any;
}

static void pool_dispatch(struct pg_pool *pool)
{
	struct pg_req *req;
	struct pg_conn *c;
	int head_changed = 0, full[2] = {0, 0};

	/* Oldest first across the queues, until each queue's head finds no connection.  The
	 * heads are read again each time: callbacks (of a failed connection, of a refused
	 * request) may have cancelled queued requests. */
	while ((req = older(full[0] ? NULL : TAILQ_FIRST(&pool->queue[0]),
			    full[1] ? NULL : TAILQ_FIRST(&pool->queue[1])))) {
		if (!(c = pool_pick_conn(pool, req->lane))) {
			full[req->q] = 1;
			continue;
		}
		int r = conn_send(c, req);
		if (r < 0) { /* req is still queued: another connection takes it */
			conn_fail(c, PQerrorMessage(c->pq));
			continue;
		}
		queue_remove(pool, req);
		head_changed = 1;
		if (r > 0) {
			/* Refused by libpq itself (e.g. bad parameters): not retriable. */
			char msg[PG_ERRLEN];
			err_copy(msg, sizeof msg, PQerrorMessage(c->pq));
			req->state = REQ_DONE;
			req_deliver(req, NULL, msg);
			req_free(req);
			continue;
		}
		conn_track(c, req);
	}
	for (int i = 0; i < pool->nconns; i++) {
		c = &pool->conns[i];
		if (c->state == CONN_UP && c->n_inflight > 0)
			conn_flush(c);
	}
	if (head_changed)
		pool_arm_timeout(pool);
}

/* ---- public API ---- */

struct pg_pool *pg_pool_new(struct event_base *base, const char *conninfo, int nconns)
{
	if (!base || !conninfo || nconns < 1 || nconns > 1000) {
		errno = EINVAL;
		return NULL;
	}
	struct pg_pool *pool = calloc(1, sizeof *pool);
	if (!pool)
		return NULL;
	pool->base = base;
	pool->nconns = nconns;
	pool->queue_timeout_ms = PG_DEFAULT_QUEUE_TIMEOUT_MS;
	TAILQ_INIT(&pool->queue[0]);
	TAILQ_INIT(&pool->queue[1]);
	pool->conninfo = strdup(conninfo);
	pool->conns = calloc((size_t)nconns, sizeof *pool->conns);
	pool->ev_kick = event_new(base, -1, 0, pool_on_kick, pool);
	pool->ev_timeout = event_new(base, -1, 0, pool_on_timeout, pool);
	if (!pool->conninfo || !pool->conns || !pool->ev_kick || !pool->ev_timeout)
		goto fail;
	for (int i = 0; i < nconns; i++) {
		struct pg_conn *c = &pool->conns[i];
		c->pool = pool;
		c->id = i;
		c->fd = -1;
		c->backoff_ms = PG_BACKOFF_MIN_MS;
		TAILQ_INIT(&c->inflight);
		c->ev_retry = event_new(base, -1, 0, conn_on_retry, c);
		if (!c->ev_retry)
			goto fail;
	}
	for (int i = 0; i < nconns; i++)
		conn_start(&pool->conns[i]);
	return pool;
fail:
	pg_pool_free(pool);
	errno = ENOMEM;
	return NULL;
}

/* Pending requests are dropped without their callbacks: the pool's owner is going away. */
void pg_pool_free(struct pg_pool *pool)
{
	if (!pool)
		return;
	struct pg_req *req;
	for (int q = 0; q < 2; q++)
		while ((req = TAILQ_FIRST(&pool->queue[q]))) {
			TAILQ_REMOVE(&pool->queue[q], req, entry);
			req_free(req);
		}
	for (int i = 0; pool->conns && i < pool->nconns; i++) {
		struct pg_conn *c = &pool->conns[i];
		while ((req = TAILQ_FIRST(&c->inflight))) {
			TAILQ_REMOVE(&c->inflight, req, entry);
			req_free(req);
		}
		conn_events_free(c);
		if (c->ev_retry)
			event_free(c->ev_retry);
		if (c->prepared)
			strmap_free(c->prepared);
		PQfinish(c->pq);
	}
	if (pool->ev_kick)
		event_free(pool->ev_kick);
	if (pool->ev_timeout)
		event_free(pool->ev_timeout);
	free(pool->conns);
	free(pool->conninfo);
	for (int i = 0; i < pool->n_setup; i++)
		free(pool->setup[i]);
	free(pool);
}

/* Its first keyword says whether a statement writes (a WITH is taken for a writing one). */
static int sql_writes(const char *sql)
{
	static const char *const verbs[] = {"INSERT", "UPDATE", "DELETE", "MERGE", "WITH"};
	while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r' || *sql == '(')
		sql++;
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
		size_t n = strlen(verbs[i]);
		if (!strncasecmp(sql, verbs[i], n) && (sql[n] == ' ' || sql[n] == '\t' ||
							sql[n] == '\n' || sql[n] == '\r'))
			return 1;
	}
	return 0;
}

bool pg_err_never_sent(const char *errmsg)
{
	return errmsg && (!strcmp(errmsg, PG_ERR_OVERLOADED) || !strcmp(errmsg, PG_ERR_UNAVAILABLE));
}

void pg_pool_set_write_conns(struct pg_pool *pool, int n)
{
	pool->write_conns = n > 0 && n < pool->nconns ? n : 0;
	/* Requests already queued go to the queues of the new setting, in their order. */
	struct req_list all = TAILQ_HEAD_INITIALIZER(all);
	struct pg_req *req;
	while ((req = pool_first_deadline(pool))) {
		TAILQ_REMOVE(&pool->queue[req->q], req, entry);
		TAILQ_INSERT_TAIL(&all, req, entry);
	}
	while ((req = TAILQ_FIRST(&all))) {
		TAILQ_REMOVE(&all, req, entry);
		req->q = pool->write_conns ? req->lane : 0;
		TAILQ_INSERT_TAIL(&pool->queue[req->q], req, entry);
	}
	pool_kick(pool);
}

/* A request with its own copy of the query and parameters, not queued anywhere yet. */
static struct pg_req *req_new(struct pg_pool *pool, const char *sql, int nparams,
			      const char *const *params, pg_cb cb, void *arg)
{
	/* One allocation: the request, the parameter pointers, then the strings. */
	size_t size = sizeof(struct pg_req) + (size_t)nparams * sizeof(char *);
	size_t sql_len = strlen(sql) + 1;
	size_t total = size + sql_len;
	for (int i = 0; i < nparams; i++) {
		size_t n = params[i] ? strlen(params[i]) + 1 : 0;
		if (total > SIZE_MAX - n) {
			errno = ENOMEM;
			return NULL;
		}
		total += n;
	}
	struct pg_req *req = malloc(total);
	if (!req)
		return NULL;
	memset(req, 0, sizeof *req);
	req->pool = pool;
	req->cb = cb;
	req->arg = arg;
	req->nparams = nparams;
	req->params = (const char **)(void *)(req + 1);
	char *p = (char *)req + size;
	memcpy(p, sql, sql_len);
	req->sql = p;
	p += sql_len;
	for (int i = 0; i < nparams; i++) {
		if (!params[i]) {
			req->params[i] = NULL;
			continue;
		}
		size_t n = strlen(params[i]) + 1;
		memcpy(p, params[i], n);
		req->params[i] = p;
		p += n;
	}
	req->lane = sql_writes(sql) ? LANE_WRITE : LANE_READ;
	return req;
}

struct pg_req *pg_query(struct pg_pool *pool, const char *sql, int nparams,
			const char *const *params, pg_cb cb, void *arg)
{
	if (!pool || !sql || nparams < 0 || nparams > PG_MAX_PARAMS || (nparams && !params)) {
		errno = EINVAL;
		return NULL;
	}
	struct pg_req *req = req_new(pool, sql, nparams, params, cb, arg);
	if (!req)
		return NULL;
	req->state = REQ_QUEUED;
	req->deadline_ms = clock_mono_ms() + pool->queue_timeout_ms;
	int was_empty = pool->n_queued == 0;
	req->q = pool->write_conns ? req->lane : 0;
	req->seq = pool->next_seq++;
	TAILQ_INSERT_TAIL(&pool->queue[req->q], req, entry);
	pool->n_queued++;
	if (was_empty)
		pool_arm_timeout(pool);
	pool_kick(pool);
	return req;
}

void pg_req_cancel(struct pg_req *req)
{
	if (!req)
		return;
	req->cb = NULL;
	if (req->state == REQ_QUEUED) {
		struct pg_pool *pool = req->pool;
		int was_head = pool_first_deadline(pool) == req;
		queue_remove(pool, req);
		req_free(req);
		if (was_head)
			pool_arm_timeout(pool);
	}
	/* In flight: the slot stays until its results are read, then the request is freed. */
}

int pg_pool_connected(const struct pg_pool *pool) { return pool->n_connected; }
int pg_pool_queued(const struct pg_pool *pool) { return pool->n_queued; }
int pg_pool_in_flight(const struct pg_pool *pool) { return pool->n_inflight; }

void pg_pool_set_queue_timeout(struct pg_pool *pool, int ms)
{
	if (ms < 0)
		ms = 0;
	/* Deadlines of already queued requests move too, keeping the queue ordered. */
	int delta = ms - pool->queue_timeout_ms;
	pool->queue_timeout_ms = ms;
	struct pg_req *req;
	for (int q = 0; q < 2; q++)
		for (req = TAILQ_FIRST(&pool->queue[q]); req; req = TAILQ_NEXT(req, entry))
			req->deadline_ms += delta;
	pool_arm_timeout(pool);
}

int pg_pool_on_connect(struct pg_pool *pool, const char *sql)
{
	if (!pool || !sql || !*sql) {
		errno = EINVAL;
		return -1;
	}
	if (pool->n_setup == PG_MAX_SETUP) {
		errno = ENOSPC;
		return -1;
	}
	char *copy = strdup(sql);
	if (!copy) {
		errno = ENOMEM;
		return -1;
	}
	pool->setup[pool->n_setup++] = copy;
	for (int i = 0; i < pool->nconns; i++)
		if (pool->conns[i].state == CONN_UP)
			conn_setup_one(&pool->conns[i], copy);
	return 0;
}

int pg_pool_listen(struct pg_pool *pool, const char *channel, pg_notify_cb cb, void *arg)
{
	size_t n = channel ? strlen(channel) : 0;
	int ok = pool && cb && n >= 1 && n <= 63 && !(channel[0] >= '0' && channel[0] <= '9');
	for (size_t i = 0; ok && i < n; i++)
		ok = (channel[i] >= 'a' && channel[i] <= 'z') || channel[i] == '_' ||
		     (channel[i] >= '0' && channel[i] <= '9');
	if (!ok) {
		errno = EINVAL;
		return -1;
	}
	if (pool->notify_cb) {
		errno = EBUSY;
		return -1;
	}
	char sql[80];
	snprintf(sql, sizeof sql, "LISTEN %s", channel);
	if (pg_pool_on_connect(pool, sql) < 0)
		return -1;
	pool->notify_cb = cb;
	pool->notify_arg = arg;
	return 0;
}
