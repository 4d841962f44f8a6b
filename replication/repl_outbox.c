/* Async reads of the outbox and of the replication state; acked position; trimming; lag;
 * and the blocking start-up call that names the node. */
#include "replication/repl_internal.h"

#include "lib/pg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t repl_pg_u64(const PGresult *res, int row, int col, int *ok)
{
	if (PQgetisnull(res, row, col)) {
		*ok = 0;
		return 0;
	}
	const char *s = PQgetvalue(res, row, col);
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0) {
		*ok = 0;
		return 0;
	}
	return (uint64_t)v;
}

static int tuples_ok(PGresult *res, int cols)
{
	return res && PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == cols;
}

static const char *res_error(PGresult *res, const char *errmsg)
{
	if (!res)
		return errmsg ? errmsg : "query not run";
	const char *m = PQresultErrorMessage(res);
	return m && *m ? m : "unexpected result";
}

/* ---- wrapped queries ---- */

struct repl_q *repl_q_new(void *arg)
{
	struct repl_q *q = calloc(1, sizeof *q);
	if (q)
		q->arg = arg;
	return q;
}

struct repl_q *repl_q_start(struct repl_q *q, struct pg_pool *pool, const char *sql, int n,
			    const char *const *params, void (*on)(void *, PGresult *, const char *))
{
	if (!q)
		return NULL;
	q->req = pg_query(pool, sql, n, params, on, q);
	if (!q->req) {
		free(q);
		return NULL;
	}
	return q;
}

void repl_q_cancel(struct repl_q *q)
{
	if (!q)
		return;
	pg_req_cancel(q->req);
	free(q);
}

/* ---- local state ---- */

static void on_local(void *arg, PGresult *res, const char *errmsg)
{
	struct repl_q *q = arg;
	struct repl_local st;
	int ok = 1;
	memset(&st, 0, sizeof st);
	if (!tuples_ok(res, 9) || PQntuples(res) != 1) {
		q->cb.local(q->arg, NULL, res_error(res, errmsg));
		free(q);
		return;
	}
	st.node_id = (uint32_t)repl_pg_u64(res, 0, 0, &ok);
	st.epoch = repl_pg_u64(res, 0, 1, &ok);
	st.head = repl_pg_u64(res, 0, 2, &ok);
	st.trimmed_upto = repl_pg_u64(res, 0, 3, &ok);
	st.schema_version = (uint32_t)repl_pg_u64(res, 0, 4, &ok);
	st.peer_epoch = repl_pg_u64(res, 0, 5, &ok);
	st.applied = repl_pg_u64(res, 0, 6, &ok);
	st.acked = repl_pg_u64(res, 0, 7, &ok);
	st.applied_hlc = repl_pg_u64(res, 0, 8, &ok);
	if (!ok || st.epoch == 0)
		q->cb.local(q->arg, NULL, "repl_local_state: malformed row");
	else
		q->cb.local(q->arg, &st, NULL);
	free(q);
}

struct repl_q *repl_local_load(struct pg_pool *pool, uint32_t peer, repl_local_cb cb, void *arg)
{
	struct repl_q *q = repl_q_new(arg);
	if (!q)
		return NULL;
	q->cb.local = cb;
	char p[16];
	snprintf(p, sizeof p, "%" PRIu32, peer);
	const char *params[1] = {p};
	return repl_q_start(q, pool,
			    "SELECT node_id, epoch, head, trimmed_upto, schema_version,"
			    " peer_epoch, applied_id, acked_id, applied_hlc"
			    " FROM repl_local_state($1::int)",
			    1, params, on_local);
}

/* ---- outbox reads ---- */

struct pg_req *repl_outbox_fetch(struct pg_pool *pool, uint64_t after, int limit,
				 repl_rows_cb cb, void *arg)
{
	char a[24], l[16];
	snprintf(a, sizeof a, "%" PRIu64, after);
	snprintf(l, sizeof l, "%d", limit);
	const char *params[2] = {a, l};
	/* The 10th column, the outbox's largest id, keeps the head we announce in heartbeats
	 * (the catch-up target of a peer taking its users back) current while a backlog is
	 * still being read in batches. */
	return pg_query(pool,
			"SELECT id, hlc, prev_hlc, origin, prev_origin, op, tbl, pk::text,"
			" data::text, (SELECT max(id) FROM repl_outbox) FROM repl_outbox"
			" WHERE id > $1::bigint ORDER BY id LIMIT $2::int",
			2, params, cb, arg);
}

uint64_t repl_outbox_head(const PGresult *res)
{
	int ok = 1;
	if (PQnfields(res) != 10 || PQntuples(res) < 1)
		return 0;
	uint64_t h = repl_pg_u64(res, 0, 9, &ok);
	return ok ? h : 0;
}

int repl_outbox_row(const PGresult *res, int i, struct repl_change *c)
{
	int ok = 1;
	memset(c, 0, sizeof *c);
	if (PQnfields(res) < 9 || i < 0 || i >= PQntuples(res))
		return -1;
	c->id = repl_pg_u64(res, i, 0, &ok);
	c->hlc = repl_pg_u64(res, i, 1, &ok);
	c->prev_hlc = repl_pg_u64(res, i, 2, &ok);
	c->origin = (uint32_t)repl_pg_u64(res, i, 3, &ok);
	c->prev_origin = (uint32_t)repl_pg_u64(res, i, 4, &ok);
	const char *op = PQgetvalue(res, i, 5);
	c->op = op[0] && !op[1] ? op[0] : '?';
	c->tbl = PQgetvalue(res, i, 6);
	c->tbl_len = (size_t)PQgetlength(res, i, 6);
	c->pk = PQgetvalue(res, i, 7);
	c->pk_len = (size_t)PQgetlength(res, i, 7);
	if (!PQgetisnull(res, i, 8)) {
		c->data = PQgetvalue(res, i, 8);
		c->data_len = (size_t)PQgetlength(res, i, 8);
	} else {
		c->data = "";
	}
	return ok ? 0 : -1;
}

/* ---- acked position and trimming ---- */

static void on_done(void *arg, PGresult *res, const char *errmsg)
{
	struct repl_q *q = arg;
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	q->cb.done(q->arg, ok, ok ? NULL : res_error(res, errmsg));
	free(q);
}

static struct repl_q *query_done(struct pg_pool *pool, const char *sql, int n,
				 const char *const *params, repl_done_cb cb, void *arg)
{
	struct repl_q *q = repl_q_new(arg);
	if (!q)
		return NULL;
	q->cb.done = cb;
	return repl_q_start(q, pool, sql, n, params, on_done);
}

struct repl_q *repl_acked_store(struct pg_pool *pool, uint32_t peer, uint64_t acked,
				repl_done_cb cb, void *arg)
{
	char p[16], a[24];
	snprintf(p, sizeof p, "%" PRIu32, peer);
	snprintf(a, sizeof a, "%" PRIu64, acked);
	const char *params[2] = {p, a};
	return query_done(pool,
			  "INSERT INTO repl_state (peer, acked_id) VALUES ($1::int, $2::bigint)"
			  " ON CONFLICT (peer) DO UPDATE SET acked_id ="
			  " greatest(repl_state.acked_id, EXCLUDED.acked_id)",
			  2, params, cb, arg);
}

struct repl_q *repl_trim(struct pg_pool *pool, uint64_t acked, int64_t max_keep,
			 repl_done_cb cb, void *arg)
{
	char a[24], k[24];
	snprintf(a, sizeof a, "%" PRIu64, acked);
	snprintf(k, sizeof k, "%" PRId64, max_keep);
	const char *params[2] = {a, k};
	return query_done(pool, "SELECT repl_trim($1::bigint, $2::bigint)", 2, params, cb, arg);
}

/* ---- lag ---- */

static void on_lag(void *arg, PGresult *res, const char *errmsg)
{
	struct repl_q *q = arg;
	struct repl_lag lag;
	int ok = 1;
	if (!tuples_ok(res, 4) || PQntuples(res) != 1) {
		q->cb.lag(q->arg, NULL, res_error(res, errmsg));
		free(q);
		return;
	}
	lag.head = repl_pg_u64(res, 0, 0, &ok);
	lag.acked = repl_pg_u64(res, 0, 1, &ok);
	lag.entries = repl_pg_u64(res, 0, 2, &ok);
	lag.oldest_ms = (int64_t)repl_pg_u64(res, 0, 3, &ok);
	if (!ok)
		q->cb.lag(q->arg, NULL, "repl_lag: malformed row");
	else
		q->cb.lag(q->arg, &lag, NULL);
	free(q);
}

struct repl_q *repl_lag_query(struct pg_pool *pool, uint32_t peer_id, repl_lag_cb cb, void *arg)
{
	struct repl_q *q = repl_q_new(arg);
	if (!q)
		return NULL;
	q->cb.lag = cb;
	char p[16];
	snprintf(p, sizeof p, "%" PRIu32, peer_id);
	const char *params[1] = {p};
	/* A clock step back could make the age negative: report 0 then. */
	return repl_q_start(q, pool,
			    "SELECT head, acked, entries, greatest(oldest_ms, 0)"
			    " FROM repl_lag($1::int)",
			    1, params, on_lag);
}

/* ---- start-up ---- */

int repl_node_set(PGconn *conn, uint32_t node_id, char *err, size_t errlen)
{
	char n[16];
	snprintf(n, sizeof n, "%" PRIu32, node_id);
	const char *params[1] = {n};
	PGresult *r = PQexecParams(conn, "SELECT repl_node_set($1::int)", 1, NULL, params, NULL,
				   NULL, 0);
	int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}
