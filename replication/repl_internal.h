/* Pieces shared inside replication/ (not for srmd: use replication.h). */
#ifndef DUET_REPL_INTERNAL_H
#define DUET_REPL_INTERNAL_H

#include "replication/replication.h"

#include <libpq-fe.h>
#include <stdint.h>

struct pg_pool;
struct pg_req;
struct repl_apply_result;

/* Text of a non-negative bigint result field; 0 when NULL or malformed (*ok = 0 then). */
uint64_t repl_pg_u64(const PGresult *res, int row, int col, int *ok);

struct repl_local;
typedef void (*repl_local_cb)(void *arg, const struct repl_local *st, const char *errmsg);
typedef void (*repl_done_cb)(void *arg, int ok, const char *errmsg);
typedef void (*repl_apply_cb)(void *arg, const struct repl_apply_result *res);

/* A wrapped query: the pg request plus the context its result is parsed with.  The pg
 * callback receives q, calls the user's callback, then frees q. */
struct repl_q {
	struct pg_req *req;
	union {
		repl_local_cb local;
		repl_done_cb done;
		repl_apply_cb apply;
		repl_lag_cb lag;
		repl_digest_cb digest;
	} cb;
	void *arg;
	int finish;        /* repl_apply.c: the result of repl_resync_finish() */
	uint64_t position;
};
/* calloc'd q, or NULL. */
struct repl_q *repl_q_new(void *arg);
/* Queue the query with q as its argument; on failure frees q and returns NULL. */
struct repl_q *repl_q_start(struct repl_q *q, struct pg_pool *pool, const char *sql, int n,
			    const char *const *params, void (*on)(void *, PGresult *, const char *));

/* ---- repl_outbox.c ---- */

/* What a HELLO needs, and where we stand with one peer (repl_local_state()). */
struct repl_local {
	uint32_t node_id;
	uint32_t schema_version;
	uint64_t epoch, head, trimmed_upto;
	uint64_t peer_epoch, applied, acked, applied_hlc;
};
struct repl_q *repl_local_load(struct pg_pool *pool, uint32_t peer, repl_local_cb cb, void *arg);

/* Outbox rows after `after`, in id order, at most limit.  The callback gets the result (NULL
 * on error) and reads rows with repl_outbox_row(). */
typedef void (*repl_rows_cb)(void *arg, PGresult *res, const char *errmsg);
struct pg_req *repl_outbox_fetch(struct pg_pool *pool, uint64_t after, int limit,
				 repl_rows_cb cb, void *arg);
/* Row i of a fetch result as a change (pointers into res).  0, or -1 if malformed. */
int repl_outbox_row(const PGresult *res, int i, struct repl_change *c);
/* The outbox's largest id as the fetch saw it (0 if unknown). */
uint64_t repl_outbox_head(const PGresult *res);

/* Persist acked_id for peer (never lowers it). */
struct repl_q *repl_acked_store(struct pg_pool *pool, uint32_t peer, uint64_t acked,
				repl_done_cb cb, void *arg);
struct repl_q *repl_trim(struct pg_pool *pool, uint64_t acked, int64_t max_keep,
			 repl_done_cb cb, void *arg);

/* ---- repl_apply.c ---- */

struct repl_apply_result {
	int ok;           /* committed (or a harmless duplicate) */
	int duplicate;    /* nothing to do: already applied */
	int gap;          /* DU002: a batch/chunk is missing: restart from our position */
	int epoch_wrong;  /* DU001/DU003: not following that epoch / no resync running */
	uint64_t position;
	uint64_t applied, skipped, conflicts;
	const char *conflict_list; /* JSON text, valid during the callback */
	const char *errmsg;
};
/* Apply a decoded batch (incremental or snapshot chunk) from peer in one transaction. */
struct repl_q *repl_apply_batch(struct pg_pool *pool, uint32_t peer, const struct repl_batch *b,
				repl_apply_cb cb, void *arg);
struct repl_q *repl_resync_begin_query(struct pg_pool *pool, uint32_t peer, uint64_t epoch,
				       repl_done_cb cb, void *arg);
/* Ends a full resync (m = RESYNC_END): sweep, adopt the position. */
struct repl_q *repl_resync_finish_query(struct pg_pool *pool, uint32_t peer,
					const struct repl_mark *m, repl_apply_cb cb, void *arg);

/* ---- repl_resync.c: the snapshot producer ---- */

struct repl_snap;
/* Reads one chunk per repl_snap_next() call and hands it to emit(), which returns 0, or -1 to
 * stop the producer (done(ok = 0) follows).  When nothing is left, done(ok = 1, total rows). */
typedef int (*repl_snap_emit_fn)(void *arg, const uint8_t *payload, size_t len, uint64_t rows);
typedef void (*repl_snap_done_fn)(void *arg, int ok, uint64_t rows);
struct repl_snap *repl_snap_new(struct pg_pool *pool, uint32_t origin, uint64_t epoch,
				int max_rows, size_t max_bytes, repl_snap_emit_fn emit,
				repl_snap_done_fn done, void *arg);
/* Read and emit the next chunk (chunk number seq). */
void repl_snap_next(struct repl_snap *s, uint64_t seq, uint64_t head);
void repl_snap_free(struct repl_snap *s);

#endif
