/* Tests for lib/pg.c against a real PostgreSQL (tests/run starts one and sets
 * DUET_TEST_CONNINFO; without it the tests fail rather than pass vacuously). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <libpq-fe.h>

#include "lib/log.h"
#include "lib/pg.h"
#include "lib/schema.h"

static const char *conninfo;

/* ---- helpers ---- */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) { *(int *)arg = 1; }

/* Run the loop until pred(arg) holds or ms elapse; returns pred's final value. */
static int run_until(struct event_base *base, int (*pred)(void *), void *arg, int ms)
{
	int expired = 0;
	struct event *t = event_new(base, -1, 0, on_deadline, &expired);
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	assert_non_null(t);
	event_add(t, &tv);
	while (!pred(arg) && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return pred(arg);
}

static int pred_connected(void *arg) { return pg_pool_connected(arg) > 0; }

static int pred_idle(void *arg)
{
	struct pg_pool *pool = arg;
	return pg_pool_queued(pool) == 0 && pg_pool_in_flight(pool) == 0;
}

struct counter {
	int want;
	int got;
};
static int pred_counter(void *arg)
{
	struct counter *c = arg;
	return c->got >= c->want;
}

/* One request's expectation and what its callback saw. */
struct call {
	int n;		   /* the value sent as $1 */
	int calls;	   /* how many times the callback ran */
	int order;	   /* global completion order */
	int ok;		   /* result matched */
	ExecStatusType st; /* status, or -1 if res was NULL */
	char sqlstate[6];
	char value[64];
	char err[256];
	struct counter *done;
	int *seq;
};

static void on_call(void *arg, PGresult *res, const char *errmsg)
{
	struct call *c = arg;
	c->calls++;
	c->order = (*c->seq)++;
	c->st = res ? PQresultStatus(res) : (ExecStatusType)-1;
	if (!res)
		snprintf(c->err, sizeof c->err, "%s", errmsg ? errmsg : "");
	if (res && c->st == PGRES_FATAL_ERROR) {
		const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		snprintf(c->sqlstate, sizeof c->sqlstate, "%s", s ? s : "");
	}
	if (res && c->st == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) >= 1)
		snprintf(c->value, sizeof c->value, "%s",
			 PQgetisnull(res, 0, 0) ? "<null>" : PQgetvalue(res, 0, 0));
	c->done->got++;
}

/* Queue sql with $1 = i; c records how it went. */
static void queue_int(struct pg_pool *pool, const char *sql, int i, struct call *c,
		      struct counter *done, int *seq)
{
	char n[16];
	snprintf(n, sizeof n, "%d", i);
	const char *params[1] = {n};
	c->n = i;
	c->done = done;
	c->seq = seq;
	assert_non_null(pg_query(pool, sql, 1, params, on_call, c));
}

static void on_never(void *arg, PGresult *res, const char *errmsg)
{
	(*(int *)arg)++;
}

static void notice_quiet(void *arg, const char *message) {}

static PGconn *blocking_connect(const char *info)
{
	PGconn *conn = PQconnectdb(info);
	if (PQstatus(conn) != CONNECTION_OK)
		fail_msg("connect %s: %s", info, PQerrorMessage(conn));
	PQsetNoticeProcessor(conn, notice_quiet, NULL);
	return conn;
}

static int blocking_int(PGconn *conn, const char *sql)
{
	PGresult *r = PQexec(conn, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	int v = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static void blocking_exec(PGconn *conn, const char *sql)
{
	PGresult *r = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

static int group_setup(void **state)
{
	conninfo = getenv("DUET_TEST_CONNINFO");
	if (!conninfo || !*conninfo) {
		fprintf(stderr, "DUET_TEST_CONNINFO is not set: run through tests/run\n");
		return -1;
	}
	return 0;
}

/* ---- tests ---- */

/* Thousands of parameterised queries over several pipelined connections: every callback runs
 * exactly once with its own row; on each connection callbacks come in submission order. */
static void test_many_concurrent(void **state)
{
	enum { N = 3000 };
	struct event_base *base = event_base_new();
	struct pg_pool *pool = pg_pool_new(base, conninfo, 4);
	assert_non_null(pool);
	assert_true(run_until(base, pred_connected, pool, 5000));

	struct call *calls = calloc(N, sizeof *calls);
	struct counter done = {N, 0};
	int seq = 0, max_inflight = 0;
	assert_non_null(calls);
	int64_t t0 = mono_ms();
	for (int i = 0; i < N; i++) {
		char n[16], s[32];
		snprintf(n, sizeof n, "%d", i);
		snprintf(s, sizeof s, "v%d'\"\\x", i); /* quoting must not matter */
		const char *params[2] = {n, s};
		calls[i].n = i;
		calls[i].done = &done;
		calls[i].seq = &seq;
		assert_non_null(pg_query(pool, "SELECT ($1::int * 2)::text || ':' || $2::text", 2,
					 params, on_call, &calls[i]));
	}
	assert_int_equal(pg_pool_queued(pool), N);
	int expired = 0;
	struct event *deadline = event_new(base, -1, 0, on_deadline, &expired);
	struct timeval limit = {30, 0};
	assert_non_null(deadline);
	event_add(deadline, &limit);
	while (done.got < N && !expired) {
		event_base_loop(base, EVLOOP_ONCE);
		if (pg_pool_in_flight(pool) > max_inflight)
			max_inflight = pg_pool_in_flight(pool);
	}
	event_free(deadline);
	int64_t dt = mono_ms() - t0;
	assert_int_equal(done.got, N);
	for (int i = 0; i < N; i++) {
		char want[64];
		snprintf(want, sizeof want, "%d:v%d'\"\\x", 2 * i, i);
		assert_int_equal(calls[i].calls, 1);
		assert_int_equal(calls[i].st, PGRES_TUPLES_OK);
		assert_string_equal(calls[i].value, want);
	}
	/* Pipelining really happened, within the per-connection cap. */
	assert_true(max_inflight > 4);
	assert_true(max_inflight <= 4 * 32);
	assert_true(pred_idle(pool));
	fprintf(stderr, "test_pg: %d queries in %lld ms (%.0f/s), max in flight %d\n", N,
		(long long)dt, dt > 0 ? N * 1000.0 / (double)dt : 0.0, max_inflight);
	free(calls);
	pg_pool_free(pool);
	event_base_free(base);
}

/* With one connection the callbacks run in submission order. */
static void test_order_one_conn(void **state)
{
	enum { N = 200 };
	struct event_base *base = event_base_new();
	struct pg_pool *pool = pg_pool_new(base, conninfo, 1);
	struct call calls[N];
	struct counter done = {N, 0};
	int seq = 0;
	memset(calls, 0, sizeof calls);
	for (int i = 0; i < N; i++)
		queue_int(pool, "SELECT $1::int", i, &calls[i], &done, &seq);
	assert_true(run_until(base, pred_counter, &done, 10000));
	for (int i = 0; i < N; i++) {
		char want[16];
		snprintf(want, sizeof want, "%d", i);
		assert_int_equal(calls[i].order, i);
		assert_string_equal(calls[i].value, want);
	}
	pg_pool_free(pool);
	event_base_free(base);
}

/* A failing query in the middle of a pipeline does not disturb its neighbours. */
static void test_failure_isolated(void **state)
{
	struct event_base *base = event_base_new();
	struct pg_pool *pool = pg_pool_new(base, conninfo, 1);
	const char *sqls[] = {
		"SELECT 'a'",
		"SELECT 1/0",
		"SELECT 'c'",
		"SELEC syntax error",
		"SELECT 'e'",
		"INSERT INTO no_such_table VALUES (1)",
		"SELECT 'g'",
	};
	enum { N = sizeof sqls / sizeof sqls[0] };
	struct call calls[N];
	struct counter done = {N, 0};
	int seq = 0;
	memset(calls, 0, sizeof calls);
	assert_true(run_until(base, pred_connected, pool, 5000));
	for (int i = 0; i < N; i++) {
		calls[i].done = &done;
		calls[i].seq = &seq;
		assert_non_null(pg_query(pool, sqls[i], 0, NULL, on_call, &calls[i]));
	}
	assert_true(run_until(base, pred_counter, &done, 5000));
	assert_int_equal(calls[0].st, PGRES_TUPLES_OK);
	assert_string_equal(calls[0].value, "a");
	assert_int_equal(calls[1].st, PGRES_FATAL_ERROR);
	assert_string_equal(calls[1].sqlstate, "22012");
	assert_int_equal(calls[2].st, PGRES_TUPLES_OK);
	assert_string_equal(calls[2].value, "c");
	assert_int_equal(calls[3].st, PGRES_FATAL_ERROR);
	assert_string_equal(calls[3].sqlstate, "42601");
	assert_int_equal(calls[4].st, PGRES_TUPLES_OK);
	assert_string_equal(calls[4].value, "e");
	assert_int_equal(calls[5].st, PGRES_FATAL_ERROR);
	assert_string_equal(calls[5].sqlstate, "42P01");
	assert_int_equal(calls[6].st, PGRES_TUPLES_OK);
	assert_string_equal(calls[6].value, "g");
	for (int i = 0; i < N; i++)
		assert_int_equal(calls[i].order, i);
	assert_int_equal(pg_pool_connected(pool), 1);
	pg_pool_free(pool);
	event_base_free(base);
}

/* A query text runs as a named statement of its connection after its first run: results
 * are unchanged, the session holds one statement per text, a text whose Parse fails is not
 * remembered (each run reports the real error, not a missing statement), and texts past
 * the per-connection limit still run, unnamed. */
static void test_prepared(void **state)
{
	enum { N = 20, DISTINCT = 140 };
	struct event_base *base = event_base_new();
	struct pg_pool *pool = pg_pool_new(base, conninfo, 1);
	static struct call calls[N], bad[2], after, named, unnamed_bad, total, many[DISTINCT];
	struct counter done = {N + 3, 0};
	int seq = 0;
	memset(calls, 0, sizeof calls);
	for (int i = 0; i < N; i++)
		queue_int(pool, "SELECT $1::int + 1", i, &calls[i], &done, &seq);
	for (int i = 0; i < 2; i++) {
		bad[i] = (struct call){.done = &done, .seq = &seq};
		assert_non_null(pg_query(pool, "SELEC 1", 0, NULL, on_call, &bad[i]));
	}
	after = (struct call){.done = &done, .seq = &seq};
	assert_non_null(pg_query(pool, "SELECT 'after'", 0, NULL, on_call, &after));
	assert_true(run_until(base, pred_counter, &done, 10000));
	for (int i = 0; i < N; i++) {
		char want[16];
		snprintf(want, sizeof want, "%d", i + 1);
		assert_string_equal(calls[i].value, want);
		assert_int_equal(calls[i].order, i);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(bad[i].st, PGRES_FATAL_ERROR);
		assert_string_equal(bad[i].sqlstate, "42601");
	}
	assert_string_equal(after.value, "after");

	struct counter done2 = {2, 0};
	named = (struct call){.done = &done2, .seq = &seq};
	unnamed_bad = (struct call){.done = &done2, .seq = &seq};
	assert_non_null(pg_query(pool,
				 "SELECT count(*) FROM pg_prepared_statements"
				 " WHERE statement = 'SELECT $1::int + 1'",
				 0, NULL, on_call, &named));
	assert_non_null(pg_query(pool,
				 "SELECT count(*) FROM pg_prepared_statements"
				 " WHERE statement = 'SELEC 1'",
				 0, NULL, on_call, &unnamed_bad));
	assert_true(run_until(base, pred_counter, &done2, 5000));
	assert_string_equal(named.value, "1");
	assert_string_equal(unnamed_bad.value, "0");

	struct counter done3 = {DISTINCT + 1, 0};
	for (int i = 0; i < DISTINCT; i++) {
		char sql[32];
		snprintf(sql, sizeof sql, "SELECT %d", i);
		many[i] = (struct call){.done = &done3, .seq = &seq};
		assert_non_null(pg_query(pool, sql, 0, NULL, on_call, &many[i]));
	}
	total = (struct call){.done = &done3, .seq = &seq};
	assert_non_null(pg_query(pool, "SELECT count(*) < 140 FROM pg_prepared_statements", 0,
				 NULL, on_call, &total));
	assert_true(run_until(base, pred_counter, &done3, 10000));
	for (int i = 0; i < DISTINCT; i++) {
		char want[16];
		snprintf(want, sizeof want, "%d", i);
		assert_string_equal(many[i].value, want);
	}
	assert_string_equal(total.value, "t"); /* bounded per connection */
	pg_pool_free(pool);
	event_base_free(base);
}

/* SQL NULL parameters reach the server as NULL. */
static void test_null_params(void **state)
{
	struct event_base *base = event_base_new();
	struct pg_pool *pool = pg_pool_new(base, conninfo, 1);
	struct call a = {0}, b = {0};
	struct counter done = {2, 0};
	int seq = 0;
	a.done = b.done = &done;
	a.seq = b.seq = &seq;
	const char *p1[2] = {NULL, "x"};
	assert_non_null(pg_query(pool, "SELECT ($1::text IS NULL)::text || $2::text", 2, p1,
				 on_call, &a));
	const char *p2[1] = {NULL};
	assert_non_null(pg_query(pool, "SELECT $1::text", 1, p2, on_call, &b));
	assert_true(run_until(base, pred_counter, &done, 5000));
	assert_string_equal(a.value, "truex");
	assert_string_equal(b.value, "<null>");
	pg_pool_free(pool);
	event_base_free(base);
}

/* Cancelled requests never see their callback, queued or in flight; the slot of an in-flight
 * one is kept until its result is read. */
static void test_cancel(void **state)
{
	struct event_base *base = event_base_new();
	struct pg_pool *pool = pg_pool_new(base, conninfo, 1);
	int never = 0, seq = 0;
	struct call a = {0}, c = {0}, d = {0};
	struct counter done = {2, 0};
	a.done = c.done = d.done = &done;
	a.seq = c.seq = d.seq = &seq;

	/* Queued: nothing has been dispatched before the loop runs. */
	assert_non_null(pg_query(pool, "SELECT 'a'", 0, NULL, on_call, &a));
	struct pg_req *b = pg_query(pool, "SELECT 'b'", 0, NULL, on_never, &never);
	assert_non_null(pg_query(pool, "SELECT 'c'", 0, NULL, on_call, &c));
	assert_int_equal(pg_pool_queued(pool), 3);
	pg_req_cancel(b);
	assert_int_equal(pg_pool_queued(pool), 2);
	assert_true(run_until(base, pred_counter, &done, 5000));
	assert_string_equal(a.value, "a");
	assert_string_equal(c.value, "c");

	/* In flight: a slow query is on the wire when cancelled. */
	struct pg_req *slow = pg_query(pool, "SELECT pg_sleep(0.3)", 0, NULL, on_never, &never);
	assert_non_null(slow);
	int64_t t0 = mono_ms();
	while (pg_pool_in_flight(pool) == 0 && mono_ms() - t0 < 2000)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(pg_pool_in_flight(pool), 1);
	pg_req_cancel(slow);
	assert_int_equal(pg_pool_in_flight(pool), 1); /* slot kept */
	done.want = 3;
	assert_non_null(pg_query(pool, "SELECT 'd'", 0, NULL, on_call, &d));
	assert_true(run_until(base, pred_counter, &done, 5000));
	assert_string_equal(d.value, "d");
	assert_true(run_until(base, pred_idle, pool, 2000));
	assert_int_equal(never, 0);
	pg_req_cancel(NULL);
	pg_pool_free(pool);
	event_base_free(base);
}

/* A callback may cancel a later request and queue a new one. */
struct reentry {
	struct pg_pool *pool;
	struct pg_req *victim;
	int *never;
	struct call *next;
	int calls;
};

static void on_reenter(void *arg, PGresult *res, const char *errmsg)
{
	struct reentry *r = arg;
	r->calls++;
	pg_req_cancel(r->victim);
	assert_non_null(pg_query(r->pool, "SELECT 'next'", 0, NULL, on_call, r->next));
}

static void test_callback_reentry(void **state)
{
	struct event_base *base = event_base_new();
	struct pg_pool *pool = pg_pool_new(base, conninfo, 2);
	int never = 0, seq = 0;
	struct call next = {0};
	struct counter done = {1, 0};
	next.done = &done;
	next.seq = &seq;
	struct reentry r = {pool, NULL, &never, &next, 0};
	assert_non_null(pg_query(pool, "SELECT 1", 0, NULL, on_reenter, &r));
	r.victim = pg_query(pool, "SELECT pg_sleep(0.05)", 0, NULL, on_never, &never);
	assert_true(run_until(base, pred_counter, &done, 5000));
	assert_true(run_until(base, pred_idle, pool, 2000));
	assert_int_equal(r.calls, 1);
	assert_string_equal(next.value, "next");
	assert_int_equal(never, 0);
	pg_pool_free(pool);
	event_base_free(base);
}

/* Freeing the pool with work pending drops the callbacks and leaks nothing (ASan). */
static void test_free_pending(void **state)
{
	struct event_base *base = event_base_new();
	struct pg_pool *pool = pg_pool_new(base, conninfo, 2);
	int never = 0;
	assert_true(run_until(base, pred_connected, pool, 5000));
	for (int i = 0; i < 100; i++)
		assert_non_null(pg_query(pool, "SELECT pg_sleep(0.01)", 0, NULL, on_never, &never));
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_true(pg_pool_in_flight(pool) + pg_pool_queued(pool) > 0);
	pg_pool_free(pool);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(never, 0);
	event_base_free(base);
}

/* Every slot busy: a request that cannot be sent within the queue timeout fails, the busy
 * ones complete.  Bad arguments are refused up front. */
static void test_overloaded(void **state)
{
	enum { BUSY = 32 };
	struct event_base *base = event_base_new();
	struct pg_pool *pool = pg_pool_new(base, conninfo, 1);
	struct call busy[BUSY], late = {0};
	struct counter done = {BUSY + 1, 0};
	int seq = 0;
	memset(busy, 0, sizeof busy);
	assert_null(pg_pool_new(base, conninfo, 0));
	assert_null(pg_query(pool, "SELECT 1", -1, NULL, on_never, NULL));
	assert_null(pg_query(pool, "SELECT $1", 1, NULL, on_never, NULL));
	assert_true(run_until(base, pred_connected, pool, 5000));
	pg_pool_set_queue_timeout(pool, 150);
	for (int i = 0; i < BUSY; i++) {
		busy[i].done = &done;
		busy[i].seq = &seq;
		/* One connection runs them in order: the first holds every slot behind it. */
		assert_non_null(pg_query(pool, i ? "SELECT 'x'" : "SELECT pg_sleep(0.6)", 0, NULL,
					 on_call, &busy[i]));
	}
	late.done = &done;
	late.seq = &seq;
	assert_non_null(pg_query(pool, "SELECT 'late'", 0, NULL, on_call, &late));
	assert_true(run_until(base, pred_counter, &done, 5000));
	assert_int_equal(late.st, (ExecStatusType)-1);
	assert_string_equal(late.err, "database overloaded");
	assert_true(pg_err_never_sent(late.err));
	assert_false(pg_err_never_sent("database connection lost: x"));
	assert_int_equal(late.order, 0);
	for (int i = 0; i < BUSY; i++)
		assert_int_equal(busy[i].st, PGRES_TUPLES_OK);
	pg_pool_free(pool);
	event_base_free(base);
}

/* With a write connection, reads never wait behind writes that wait for a lock: two
 * connections, the table locked against writes, forty INSERTs queued (more than one
 * connection's pipeline takes: the rest wait in the pool), then a SELECT.  One lane
 * (write_conns 0) puts the SELECT behind INSERTs; two lanes answer it while the INSERTs
 * wait, and the INSERTs still run in their order once the lock goes. */
static int pred_both_connected(void *arg) { return pg_pool_connected(arg) == 2; }

static int lanes_read_answered(int write_conns)
{
	enum { W = 40 };
	struct event_base *base = event_base_new();
	struct pg_pool *pool = pg_pool_new(base, conninfo, 2);
	PGconn *locker = blocking_connect(conninfo);
	blocking_exec(locker, "CREATE TABLE IF NOT EXISTS lane_t (n int)");
	blocking_exec(locker, "TRUNCATE lane_t");
	pg_pool_set_write_conns(pool, write_conns);
	assert_true(run_until(base, pred_both_connected, pool, 5000));
	blocking_exec(locker, "BEGIN");
	blocking_exec(locker, "LOCK TABLE lane_t IN EXCLUSIVE MODE"); /* SELECTs still pass */
	struct call w[W], r = {0};
	struct counter writes = {W, 0}, reads = {1, 0};
	int seq = 0;
	memset(w, 0, sizeof w);
	for (int i = 0; i < W; i++)
		queue_int(pool, "INSERT INTO lane_t VALUES ($1::int)", i, &w[i], &writes, &seq);
	r.done = &reads;
	r.seq = &seq;
	assert_non_null(pg_query(pool, " select 'read'", 0, NULL, on_call, &r));
	int answered = run_until(base, pred_counter, &reads, 1500);
	assert_int_equal(writes.got, 0);
	blocking_exec(locker, "COMMIT");
	assert_true(run_until(base, pred_counter, &writes, 5000));
	assert_true(run_until(base, pred_counter, &reads, 5000));
	assert_string_equal(r.value, "read");
	for (int i = 0; i < W; i++)
		assert_int_equal(w[i].st, PGRES_COMMAND_OK);
	if (write_conns)
		for (int i = 1; i < W; i++) /* one write connection: in their order */
			assert_true(w[i].order > w[i - 1].order);
	assert_int_equal(blocking_int(locker, "SELECT count(*) FROM lane_t"), W);
	blocking_exec(locker, "DROP TABLE lane_t");
	PQfinish(locker);
	pg_pool_free(pool);
	event_base_free(base);
	return answered;
}

/* Lanes set while requests wait (before any connection is up): each runs once, the
 * writes in their order. */
static void lanes_set_while_queued(void)
{
	enum { N = 7 };
	struct event_base *base = event_base_new();
	struct pg_pool *pool = pg_pool_new(base, conninfo, 2);
	PGconn *admin = blocking_connect(conninfo);
	blocking_exec(admin, "CREATE TABLE IF NOT EXISTS lane_q (n int)");
	blocking_exec(admin, "TRUNCATE lane_q");
	struct call c[N];
	struct counter done = {N, 0};
	int seq = 0;
	memset(c, 0, sizeof c);
	for (int i = 0; i < N; i++)
		queue_int(pool, i == 3 ? "SELECT $1::int" : "INSERT INTO lane_q VALUES ($1::int)", i,
			  &c[i], &done, &seq);
	assert_int_equal(pg_pool_queued(pool), N);
	pg_pool_set_write_conns(pool, 1);
	assert_true(run_until(base, pred_counter, &done, 5000));
	for (int i = 0; i < N; i++)
		assert_int_equal(c[i].calls, 1);
	assert_string_equal(c[3].value, "3");
	for (int i = 1; i < N; i++)
		if (i != 3 && i - 1 != 3)
			assert_true(c[i].order > c[i - 1].order);
	assert_true(c[4].order > c[2].order);
	assert_int_equal(blocking_int(admin, "SELECT count(*) FROM lane_q"), N - 1);
	blocking_exec(admin, "DROP TABLE lane_q");
	PQfinish(admin);
	pg_pool_free(pool);
	event_base_free(base);
}

static void test_write_lane(void **state)
{
	assert_false(lanes_read_answered(0));
	assert_true(lanes_read_answered(1));
	lanes_set_while_queued();
}

/* Unreachable server: requests fail with NULL within the queue timeout. */
static void check_unreachable(const char *info)
{
	enum { N = 5 };
	struct event_base *base = event_base_new();
	struct pg_pool *pool = pg_pool_new(base, info, 2);
	struct call calls[N];
	struct counter done = {N, 0};
	int seq = 0;
	memset(calls, 0, sizeof calls);
	assert_non_null(pool);
	pg_pool_set_queue_timeout(pool, 300);
	int64_t t0 = mono_ms();
	for (int i = 0; i < N; i++) {
		calls[i].done = &done;
		calls[i].seq = &seq;
		assert_non_null(pg_query(pool, "SELECT 1", 0, NULL, on_call, &calls[i]));
	}
	assert_true(run_until(base, pred_counter, &done, 3000));
	int64_t dt = mono_ms() - t0;
	assert_true(dt >= 250);
	assert_true(dt < 1500);
	for (int i = 0; i < N; i++) {
		assert_int_equal(calls[i].calls, 1);
		assert_int_equal(calls[i].st, (ExecStatusType)-1);
		assert_string_equal(calls[i].err, "database unavailable");
		assert_int_equal(calls[i].order, i);
	}
	assert_int_equal(pg_pool_connected(pool), 0);
	assert_int_equal(pg_pool_queued(pool), 0);
	/* The pool keeps retrying; a bit of loop time with backoff must stay harmless. */
	struct counter none = {1, 0};
	run_until(base, pred_counter, &none, 400);
	pg_pool_free(pool);
	event_base_free(base);
}

static void test_unreachable(void **state)
{
	check_unreachable("host=127.0.0.1 port=1 user=duet dbname=duet");
	check_unreachable("host=/nonexistent/duet-socket-dir user=duet dbname=duet");
}

struct pid_probe {
	int pid; /* -1 while waiting, 0 on failure */
	int null_res;
	char err[256];
};

static void on_pid(void *arg, PGresult *res, const char *errmsg)
{
	struct pid_probe *p = arg;
	p->null_res = res == NULL;
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK)
		p->pid = atoi(PQgetvalue(res, 0, 0));
	else {
		p->pid = 0;
		snprintf(p->err, sizeof p->err, "%s", res ? PQresultErrorMessage(res) : errmsg);
	}
}

static int pred_pid(void *arg) { return ((struct pid_probe *)arg)->pid >= 0; }

static int pool_backend_pid(struct event_base *base, struct pg_pool *pool)
{
	struct pid_probe p = {-1, 0, ""};
	assert_non_null(pg_query(pool, "SELECT pg_backend_pid()", 0, NULL, on_pid, &p));
	assert_true(run_until(base, pred_pid, &p, 5000));
	return p.pid;
}

/* The server kills the connection: the in-flight query fails with NULL, the pool reconnects
 * and later queries run on a new backend. */
static void test_reconnect(void **state)
{
	struct event_base *base = event_base_new();
	struct pg_pool *pool = pg_pool_new(base, conninfo, 1);
	PGconn *admin = blocking_connect(conninfo);
	assert_true(run_until(base, pred_connected, pool, 5000));
	int pid = pool_backend_pid(base, pool);
	assert_true(pid > 0);

	struct pid_probe slow = {-1, 0, ""};
	assert_non_null(pg_query(pool, "SELECT pg_sleep(30)", 0, NULL, on_pid, &slow));
	int64_t t0 = mono_ms();
	/* Wait until the backend is really executing it. */
	char sql[128];
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND state = 'active'", pid);
	while (blocking_int(admin, sql) == 0 && mono_ms() - t0 < 5000)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)::int", pid);
	assert_int_equal(blocking_int(admin, sql), 1);

	assert_true(run_until(base, pred_pid, &slow, 5000));
	assert_int_equal(slow.pid, 0);
	assert_true(slow.null_res);
	assert_true(strlen(slow.err) > 0);
	assert_true(mono_ms() - t0 < 10000);

	/* Back within the first backoff steps; the new backend is another process. */
	assert_true(run_until(base, pred_connected, pool, 5000));
	int pid2 = pool_backend_pid(base, pool);
	assert_true(pid2 > 0);
	assert_int_not_equal(pid2, pid);

	/* Killed while idle: noticed on the socket, then reconnected. */
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)::int", pid2);
	assert_int_equal(blocking_int(admin, sql), 1);
	int pid3 = 0;
	t0 = mono_ms();
	while (pid3 <= 0 && mono_ms() - t0 < 5000) /* one attempt may land on the dying link */
		pid3 = pool_backend_pid(base, pool);
	assert_true(pid3 > 0);
	assert_int_not_equal(pid3, pid2);
	PQfinish(admin);
	pg_pool_free(pool);
	event_base_free(base);
}

struct heard {
	int n;
	char channel[64];
	char payload[64];
};

static void on_heard(void *arg, const char *channel, const char *payload)
{
	struct heard *h = arg;
	h->n++;
	snprintf(h->channel, sizeof h->channel, "%s", channel);
	snprintf(h->payload, sizeof h->payload, "%s", payload);
}

static int pred_heard(void *arg) { return ((struct heard *)arg)->n > 0; }

/* NOTIFY payload on channel until the pool hears it (its LISTEN may still be on its way
 * after a reconnect); true once heard within ms. */
static int notify_until_heard(struct event_base *base, PGconn *admin, const char *payload,
			      struct heard *h, int ms)
{
	char sql[128];
	snprintf(sql, sizeof sql, "NOTIFY duet_test_chan, '%s'", payload);
	h->n = 0;
	int64_t t0 = mono_ms();
	while (!h->n && mono_ms() - t0 < ms) {
		blocking_exec(admin, sql);
		run_until(base, pred_heard, h, 100);
	}
	return h->n > 0 && !strcmp(h->payload, payload) && !strcmp(h->channel, "duet_test_chan");
}

struct text_probe {
	int done;
	char value[64];
};

static void on_text(void *arg, PGresult *res, const char *errmsg)
{
	struct text_probe *t = arg;
	t->done = 1;
	snprintf(t->value, sizeof t->value, "%s",
		 res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
			 ? PQgetvalue(res, 0, 0) : "<error>");
}

static int pred_text(void *arg) { return ((struct text_probe *)arg)->done; }

static const char *pool_setting(struct event_base *base, struct pg_pool *pool,
				struct text_probe *t)
{
	*t = (struct text_probe){0};
	assert_non_null(pg_query(pool, "SELECT current_setting('application_name')", 0, NULL,
				 on_text, t));
	assert_true(run_until(base, pred_text, t, 5000));
	return t->value;
}

/* pg_pool_on_connect and pg_pool_listen: bad channel names refused; the session statement
 * is in force and notifications reach the callback, again after the connection was killed;
 * a failing statement leaves the pool working. */
static void test_listen(void **state)
{
	struct event_base *base = event_base_new();
	struct pg_pool *pool = pg_pool_new(base, conninfo, 1);
	PGconn *admin = blocking_connect(conninfo);
	struct heard h = {0};
	struct text_probe t;
	assert_int_equal(pg_pool_on_connect(pool, "SET application_name = 'duet_listen_test'"), 0);
	assert_int_equal(pg_pool_on_connect(pool, "SET no_such_setting_at_all = 1"), 0);
	assert_int_equal(pg_pool_on_connect(pool, ""), -1);
	static const char *const bad[] = {"", "Upper", "1abc", "a;b", "a b", "a-b",
		"a234567890123456789012345678901234567890123456789012345678901234"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(pg_pool_listen(pool, bad[i], on_heard, &h), -1);
	assert_int_equal(pg_pool_listen(pool, NULL, on_heard, &h), -1);
	assert_int_equal(pg_pool_listen(pool, "duet_test_chan", NULL, &h), -1);

	assert_int_equal(pg_pool_listen(pool, "duet_test_chan", on_heard, &h), 0);
	assert_int_equal(pg_pool_listen(pool, "duet_test_chan", on_heard, &h), -1);
	assert_true(notify_until_heard(base, admin, "first", &h, 5000));
	assert_string_equal(pool_setting(base, pool, &t), "duet_listen_test");
	blocking_exec(admin, "NOTIFY duet_test_other, 'x'"); /* not listened to */
	h.n = 0;
	assert_false(run_until(base, pred_heard, &h, 300));

	int pid = pool_backend_pid(base, pool);
	assert_true(pid > 0);
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)::int", pid);
	assert_int_equal(blocking_int(admin, sql), 1);
	assert_true(notify_until_heard(base, admin, "after-reconnect", &h, 8000));
	assert_string_equal(pool_setting(base, pool, &t), "duet_listen_test");
	int pid2 = pool_backend_pid(base, pool);
	assert_true(pid2 > 0);
	assert_int_not_equal(pid2, pid);
	PQfinish(admin);
	pg_pool_free(pool);
	event_base_free(base);
}

/* Migrations on a fresh database, twice: the second run is a no-op. */
static void test_schema_migrate(void **state)
{
	PGconn *admin = blocking_connect(conninfo);
	char db[64], sql[160], info[512], err[512] = "";
	snprintf(db, sizeof db, "duet_schema_test_%d", (int)getpid());
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", db);
	blocking_exec(admin, sql);
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
	blocking_exec(admin, sql);

	snprintf(info, sizeof info, "%s dbname=%s", conninfo, db); /* the last dbname wins */
	PGconn *conn = blocking_connect(info);
	assert_string_equal(PQdb(conn), db);
	assert_int_equal(schema_current_version(conn, err, sizeof err), 0);
	assert_true(schema_latest_version() >= 1);
	if (schema_migrate(conn, err, sizeof err) != 0)
		fail_msg("first migrate: %s", err);
	assert_int_equal(schema_current_version(conn, err, sizeof err), schema_latest_version());
	if (schema_migrate(conn, err, sizeof err) != 0)
		fail_msg("second migrate: %s", err);
	assert_int_equal(schema_current_version(conn, err, sizeof err), schema_latest_version());
	assert_int_equal(blocking_int(conn, "SELECT count(*) FROM schema_version"),
			 schema_latest_version());
	assert_int_equal(blocking_int(conn, "SELECT count(*) FROM users"), 0);
	PQfinish(conn);

	snprintf(sql, sizeof sql, "DROP DATABASE %s", db);
	blocking_exec(admin, sql);
	PQfinish(admin);
}

int main(void)
{
	log_init("test_pg", LOG_LVL_INFO);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_concurrent),
		cmocka_unit_test(test_order_one_conn),
		cmocka_unit_test(test_failure_isolated),
		cmocka_unit_test(test_null_params),
		cmocka_unit_test(test_prepared),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_callback_reentry),
		cmocka_unit_test(test_free_pending),
		cmocka_unit_test(test_overloaded),
		cmocka_unit_test(test_write_lane),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_reconnect),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_schema_migrate),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
