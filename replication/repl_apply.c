/* Applying a decoded batch or snapshot chunk: one call of the plpgsql function repl_apply()
 * (lib/schema.c migration 2), which runs in one transaction with session_replication_role =
 * replica and stores the position in it.  The changes travel as PostgreSQL array literals,
 * one array per field, so that every pk and row is parsed by jsonb_in on its own: a hostile
 * peer cannot change the structure of the call, only fail it. */
#include "replication/repl_internal.h"

#include "lib/pg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct abuf {
	char *p;
	size_t len, cap;
	int failed;
};

static void ab_reserve(struct abuf *b, size_t more)
{
	if (b->failed || b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *n = realloc(b->p, cap);
	if (!n) {
		b->failed = 1;
		return;
	}
	b->p = n;
	b->cap = cap;
}

static void ab_put(struct abuf *b, const char *s, size_t n)
{
	ab_reserve(b, n);
	if (b->failed)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void ab_u64(struct abuf *b, uint64_t v)
{
	char t[24];
	int n = snprintf(t, sizeof t, "%" PRIu64, v);
	ab_put(b, t, (size_t)n);
}

/* One quoted array element: backslash before '"' and '\'. */
static void ab_quoted(struct abuf *b, const char *s, size_t n)
{
	ab_reserve(b, 2 * n + 2);
	if (b->failed)
		return;
	char *o = b->p + b->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			*o++ = '\\';
		*o++ = s[i];
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
	b->p[b->len] = '\0';
}

enum field { F_ID, F_HLC, F_PREV_HLC, F_ORIGIN, F_PREV_ORIGIN, F_OP, F_TBL, F_PK, F_DATA, NF };

static void ab_field(struct abuf *b, const struct repl_change *c, enum field f)
{
	switch (f) {
	case F_ID:
		ab_u64(b, c->id);
		break;
	case F_HLC:
		ab_u64(b, c->hlc);
		break;
	case F_PREV_HLC:
		ab_u64(b, c->prev_hlc);
		break;
	case F_ORIGIN:
		ab_u64(b, c->origin);
		break;
	case F_PREV_ORIGIN:
		ab_u64(b, c->prev_origin);
		break;
	case F_OP:
		ab_quoted(b, &c->op, 1);
		break;
	case F_TBL:
		ab_quoted(b, c->tbl, c->tbl_len); /* quoted: a table named "null" is not NULL */
		break;
	case F_PK:
		ab_quoted(b, c->pk, c->pk_len);
		break;
	case F_DATA:
		if (c->op == 'D')
			ab_put(b, "NULL", 4);
		else
			ab_quoted(b, c->data, c->data_len);
		break;
	case NF:
		break;
	}
}

static void on_applied(void *arg, PGresult *res, const char *errmsg)
{
	struct repl_q *c = arg;
	struct repl_apply_result r;
	memset(&r, 0, sizeof r);
	r.conflict_list = "[]";
	if (!res) {
		r.errmsg = errmsg ? errmsg : "query not run";
	} else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		r.errmsg = PQresultErrorMessage(res);
		if (st && strcmp(st, "DU002") == 0)
			r.gap = 1;
		else if (st && (strcmp(st, "DU001") == 0 || strcmp(st, "DU003") == 0))
			r.epoch_wrong = 1;
	} else if (c->finish) {
		int ok = 1;
		if (PQntuples(res) == 1 && PQnfields(res) == 1) {
			r.applied = repl_pg_u64(res, 0, 0, &ok);
			r.position = c->position;
			r.ok = ok;
		}
		if (!r.ok)
			r.errmsg = "repl_resync_finish: unexpected result";
	} else if (PQntuples(res) == 1 && PQnfields(res) == 6) {
		int ok = 1;
		r.duplicate = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
		r.position = repl_pg_u64(res, 0, 3, &ok);
		if (!r.duplicate) {
			r.applied = repl_pg_u64(res, 0, 0, &ok);
			r.skipped = repl_pg_u64(res, 0, 1, &ok);
			r.conflicts = repl_pg_u64(res, 0, 2, &ok);
			r.conflict_list = PQgetvalue(res, 0, 5);
		}
		r.ok = ok;
		if (!ok)
			r.errmsg = "repl_apply: malformed result";
	} else {
		r.errmsg = "repl_apply: unexpected result shape";
	}
	c->cb.apply(c->arg, &r);
	free(c);
}

struct repl_q *repl_apply_batch(struct pg_pool *pool, uint32_t peer, const struct repl_batch *b,
				repl_apply_cb cb, void *arg)
{
	struct abuf arr[NF];
	memset(arr, 0, sizeof arr);
	int failed = 0;
	for (int f = 0; f < NF; f++) {
		ab_put(&arr[f], "{", 1);
		for (uint32_t i = 0; i < b->count; i++) {
			if (i)
				ab_put(&arr[f], ",", 1);
			ab_field(&arr[f], &b->changes[i], (enum field)f);
		}
		ab_put(&arr[f], "}", 1);
		failed |= arr[f].failed;
	}
	struct repl_q *req = NULL;
	struct repl_q *c = failed ? NULL : repl_q_new(arg);
	if (c) {
		char peer_s[16], epoch[24], flags[8], after[24], last[24];
		snprintf(peer_s, sizeof peer_s, "%" PRIu32, peer);
		snprintf(epoch, sizeof epoch, "%" PRIu64, b->epoch);
		snprintf(flags, sizeof flags, "%d", b->flags & REPL_BATCH_SNAPSHOT);
		snprintf(after, sizeof after, "%" PRIu64, b->after);
		snprintf(last, sizeof last, "%" PRIu64, b->last);
		const char *params[5 + NF] = {peer_s, epoch, flags, after, last};
		for (int f = 0; f < NF; f++)
			params[5 + f] = arr[f].p;
		c->cb.apply = cb;
		req = repl_q_start(c, pool,
			       "SELECT r->>'applied', r->>'skipped', r->>'conflicts', r->>'position',"
			       " coalesce((r->>'duplicate')::boolean, false),"
			       " coalesce(r->'conflict_list', '[]')::text"
			       " FROM repl_apply($1::int, $2::bigint, $3::int, $4::bigint, $5::bigint,"
			       " $6::bigint[], $7::bigint[], $8::bigint[], $9::int[], $10::int[],"
			       " $11::text[], $12::text[], $13::jsonb[], $14::jsonb[]) r",
			       5 + NF, params, on_applied);
	}
	for (int f = 0; f < NF; f++)
		free(arr[f].p);
	return req;
}

struct repl_q *repl_resync_finish_query(struct pg_pool *pool, uint32_t peer,
					const struct repl_mark *m, repl_apply_cb cb, void *arg)
{
	struct repl_q *c = repl_q_new(arg);
	if (!c)
		return NULL;
	c->cb.apply = cb;
	c->finish = 1;
	c->position = m->position;
	char p[16], e[24], pos[24], rows[24], a[24];
	snprintf(p, sizeof p, "%" PRIu32, peer);
	snprintf(e, sizeof e, "%" PRIu64, m->epoch);
	snprintf(pos, sizeof pos, "%" PRIu64, m->position);
	snprintf(rows, sizeof rows, "%" PRIu64, m->rows);
	snprintf(a, sizeof a, "%" PRIu64, m->seen_hlc);
	const char *params[5] = {p, e, pos, rows, a};
	return repl_q_start(c, pool,
			    "SELECT repl_resync_finish($1::int, $2::bigint, $3::bigint, $4::bigint,"
			    " $5::bigint)",
			    5, params, on_applied);
}

static void on_begun(void *arg, PGresult *res, const char *errmsg)
{
	struct repl_q *c = arg;
	int ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
	c->cb.done(c->arg, ok, ok ? NULL : res ? PQresultErrorMessage(res) : errmsg);
	free(c);
}

struct repl_q *repl_resync_begin_query(struct pg_pool *pool, uint32_t peer, uint64_t epoch,
				       repl_done_cb cb, void *arg)
{
	struct repl_q *c = repl_q_new(arg);
	if (!c)
		return NULL;
	c->cb.done = cb;
	char p[16], e[24];
	snprintf(p, sizeof p, "%" PRIu32, peer);
	snprintf(e, sizeof e, "%" PRIu64, epoch);
	const char *params[2] = {p, e};
	return repl_q_start(c, pool, "SELECT repl_resync_begin($1::int, $2::bigint)", 2, params,
			    on_begun);
}
