/* Full resync, producer side (docs/replication-protocol.md §6): every opted-in table in
 * primary-key order, then every tombstone, as snapshot chunks (BATCH frames with
 * REPL_BATCH_SNAPSHOT).  Keyset pagination: each read starts after the last key sent, so a
 * chunk cut short by the size limit simply continues there. */
#include "replication/repl_internal.h"

#include "lib/log.h"
#include "lib/pg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum snap_phase { SNAP_TABLES, SNAP_ROWS, SNAP_TOMBSTONES, SNAP_DONE };

struct repl_snap {
	struct pg_pool *pool;
	uint32_t origin;
	uint64_t epoch;
	int max_rows;
	size_t max_bytes;
	repl_snap_emit_fn emit;
	repl_snap_done_fn done;
	void *arg;

	enum snap_phase phase;
	char (*tables)[REPL_MAX_TBL + 1];
	int ntables, cur;
	char *after_pk;                      /* last key sent (jsonb text), NULL at the start */
	char after_tbl[REPL_MAX_TBL + 1];    /* tombstones: table of that key */
	uint64_t seq, head, rows;
	struct pg_req *req;
};

struct repl_snap *repl_snap_new(struct pg_pool *pool, uint32_t origin, uint64_t epoch,
				int max_rows, size_t max_bytes, repl_snap_emit_fn emit,
				repl_snap_done_fn done, void *arg)
{
	struct repl_snap *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->pool = pool;
	s->origin = origin;
	s->epoch = epoch;
	s->max_rows = max_rows > 0 ? max_rows : 2000;
	s->max_bytes = max_bytes;
	s->emit = emit;
	s->done = done;
	s->arg = arg;
	s->phase = SNAP_TABLES;
	return s;
}

void repl_snap_free(struct repl_snap *s)
{
	if (!s)
		return;
	if (s->req)
		pg_req_cancel(s->req);
	free(s->tables);
	free(s->after_pk);
	free(s);
}

static void snap_read(struct repl_snap *s);

static void snap_fail(struct repl_snap *s, const char *what, const char *why)
{
	log_warnx("replication: full resync stopped (%s): %s", what, why ? why : "");
	s->phase = SNAP_DONE;
	s->done(s->arg, 0, s->rows);
}

static int set_after(struct repl_snap *s, const char *pk, size_t len)
{
	char *n = malloc(len + 1);
	if (!n)
		return -1;
	memcpy(n, pk, len);
	n[len] = '\0';
	free(s->after_pk);
	s->after_pk = n;
	return 0;
}

static int is_table(const struct repl_snap *s, const char *t)
{
	for (int i = 0; i < s->ntables; i++)
		if (strcmp(s->tables[i], t) == 0)
			return 1;
	return 0;
}

static void on_tables(void *arg, PGresult *res, const char *errmsg)
{
	struct repl_snap *s = arg;
	s->req = NULL;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 1) {
		snap_fail(s, "tables", res ? PQresultErrorMessage(res) : errmsg);
		return;
	}
	int n = PQntuples(res);
	s->tables = calloc(n > 0 ? (size_t)n : 1, sizeof *s->tables);
	if (!s->tables) {
		snap_fail(s, "tables", "out of memory");
		return;
	}
	for (int i = 0; i < n; i++)
		snprintf(s->tables[i], sizeof s->tables[i], "%s", PQgetvalue(res, i, 0));
	s->ntables = n;
	s->cur = 0;
	s->phase = n > 0 ? SNAP_ROWS : SNAP_TOMBSTONES;
	snap_read(s);
}

/* Rows (or tombstones) read: cut one chunk from them and emit it, or move on when empty. */
static void on_rows(void *arg, PGresult *res, const char *errmsg)
{
	struct repl_snap *s = arg;
	s->req = NULL;
	int tomb = s->phase == SNAP_TOMBSTONES;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 4) {
		snap_fail(s, "rows", res ? PQresultErrorMessage(res) : errmsg);
		return;
	}
	int n = PQntuples(res);
	if (n == 0) {
		free(s->after_pk);
		s->after_pk = NULL;
		if (!tomb && ++s->cur < s->ntables) {
			snap_read(s);
		} else if (!tomb) {
			s->phase = SNAP_TOMBSTONES;
			snap_read(s);
		} else {
			s->phase = SNAP_DONE;
			s->done(s->arg, 1, s->rows);
		}
		return;
	}
	struct repl_builder b;
	if (repl_builder_init(&b, REPL_BATCH_SNAPSHOT, s->origin, s->epoch, s->seq, s->head,
			      s->max_bytes) != REPL_WIRE_OK) {
		snap_fail(s, "chunk", "out of memory");
		return;
	}
	int i, bad = 0;
	for (i = 0; i < n; i++) {
		struct repl_change c;
		int ok = 1;
		memset(&c, 0, sizeof c);
		c.op = tomb ? 'D' : 'U';
		c.tbl = tomb ? PQgetvalue(res, i, 0) : s->tables[s->cur];
		c.tbl_len = strlen(c.tbl);
		c.pk = PQgetvalue(res, i, tomb ? 1 : 0);
		c.pk_len = (size_t)PQgetlength(res, i, tomb ? 1 : 0);
		c.data = tomb ? "" : PQgetvalue(res, i, 1);
		c.data_len = tomb ? 0 : (size_t)PQgetlength(res, i, 1);
		c.hlc = repl_pg_u64(res, i, 2, &ok);
		c.origin = (uint32_t)repl_pg_u64(res, i, 3, &ok);
		if (!ok) {
			bad = 1;
			break;
		}
		/* A tombstone of a table that is no longer replicated is not sent. */
		int rc = tomb && !is_table(s, c.tbl) ? REPL_WIRE_OK : repl_builder_add(&b, &c);
		if (rc == REPL_WIRE_SPACE && b.count > 0)
			break;
		if (rc != REPL_WIRE_OK) {
			bad = 1;
			break;
		}
	}
	if (bad) {
		repl_builder_release(&b);
		snap_fail(s, "row", "a row cannot be encoded (too large or malformed)");
		return;
	}
	/* i rows consumed: continue after the last one. */
	int last = i - 1;
	if (set_after(s, PQgetvalue(res, last, tomb ? 1 : 0),
		      (size_t)PQgetlength(res, last, tomb ? 1 : 0)) < 0) {
		repl_builder_release(&b);
		snap_fail(s, "chunk", "out of memory");
		return;
	}
	if (tomb)
		snprintf(s->after_tbl, sizeof s->after_tbl, "%s", PQgetvalue(res, last, 0));
	size_t len = repl_builder_finish(&b);
	if (len == 0) {
		/* Only skipped tombstones: read on. */
		repl_builder_release(&b);
		snap_read(s);
		return;
	}
	s->rows += b.count;
	int rc = s->emit(s->arg, b.buf, len, b.count);
	repl_builder_release(&b);
	if (rc < 0) {
		s->phase = SNAP_DONE;
		s->done(s->arg, 0, s->rows);
	}
}

static void snap_read(struct repl_snap *s)
{
	char lim[16];
	snprintf(lim, sizeof lim, "%d", s->max_rows);
	switch (s->phase) {
	case SNAP_TABLES:
		s->req = pg_query(s->pool, "SELECT tbl FROM repl_tables ORDER BY tbl", 0, NULL,
				  on_tables, s);
		break;
	case SNAP_ROWS: {
		const char *params[3] = {s->tables[s->cur], s->after_pk, lim};
		s->req = pg_query(s->pool,
				  "SELECT pk::text, data::text, hlc, origin"
				  " FROM repl_snapshot_rows($1::text, $2::jsonb, $3::int)",
				  3, params, on_rows, s);
		break;
	}
	case SNAP_TOMBSTONES: {
		const char *params[3] = {s->after_pk ? s->after_tbl : NULL, s->after_pk, lim};
		s->req = pg_query(s->pool,
				  "SELECT tbl, pk::text, hlc, origin"
				  " FROM repl_snapshot_tombstones($1::text, $2::jsonb, $3::int)",
				  3, params, on_rows, s);
		break;
	}
	case SNAP_DONE:
		return;
	}
	if (!s->req) {
		s->phase = SNAP_DONE;
		s->done(s->arg, 0, s->rows);
	}
}

void repl_snap_next(struct repl_snap *s, uint64_t seq, uint64_t head)
{
	if (s->phase == SNAP_DONE || s->req)
		return;
	s->seq = seq;
	s->head = head;
	snap_read(s);
}
