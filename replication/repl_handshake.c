/* The handshake of a replication session (docs/replication-protocol.md §4): our HELLO, the
 * decision on the peer's HELLO (incremental or full), and the full resync as producer. */
#include "replication/repl_session.h"

#include "lib/log.h"

#include <inttypes.h>
#include <stdlib.h>

int repl_send_hello(struct repl *r)
{
	struct repl_hello h = {
		.version_min = REPL_VERSION_MIN,
		.version_max = REPL_VERSION_MAX,
		.node_id = r->cfg.node_id,
		.schema_version = r->local.schema_version,
		.epoch = r->local.epoch,
		.head = max_u64(r->head, r->local.head),
		.peer_epoch = r->peer_epoch,
		.applied = r->applied,
	};
	uint8_t buf[REPL_HELLO_SIZE];
	if (!r->up || !r->loaded || repl_hello_encode(&h, buf) != REPL_WIRE_OK)
		return -1;
	log_debug("replication: hello to node %" PRIu32 ": applied %" PRIu64 " of epoch %" PRIu64,
		  r->cfg.peer_id, r->applied, r->peer_epoch);
	return r->send(r->send_arg, REPL_SUBTYPE_HELLO, buf, sizeof buf);
}

/* ---- full resync, producer side ---- */

static int on_snap_chunk(void *arg, const uint8_t *payload, size_t len, uint64_t rows)
{
	struct repl *r = arg;
	r->snap_reading = 0;
	if (r->send(r->send_arg, REPL_SUBTYPE_BATCH, payload, len) < 0)
		return -1;
	repl_infl_push(r, 1, r->snap_seq, len);
	r->st.changes_sent += rows;
	repl_kick(r);
	return 0;
}

static void start_resync(struct repl *r);

static void on_snap_done(void *arg, int ok, uint64_t rows)
{
	struct repl *r = arg;
	r->snap_reading = 0;
	if (!ok) {
		if (!r->up)
			return;
		/* Stopped by a database error or a refused frame: start over later. */
		log_warnx("replication: full resync to node %" PRIu32 " failed; retrying",
			  r->cfg.peer_id);
		repl_ship_stop(r);
		r->ship = REPL_HANDSHAKE;
		event_del(r->ev_retry);
		repl_timer_in(r->ev_retry, r->cfg.retry_ms);
		return;
	}
	struct repl_mark m = {
		.version = r->version,
		.origin = r->cfg.node_id,
		.epoch = r->local.epoch,
		.position = r->snap_pos,
		.rows = rows,
		.seen_hlc = r->snap_seen_hlc,
	};
	uint8_t buf[REPL_MARK_SIZE];
	if (repl_mark_encode(&m, buf) != REPL_WIRE_OK ||
	    r->send(r->send_arg, REPL_SUBTYPE_RESYNC_END, buf, sizeof buf) < 0) {
		repl_ship_rewind(r);
		return;
	}
	log_info("replication: full resync to node %" PRIu32 " sent: %" PRIu64
		 " rows, position %" PRIu64,
		 r->cfg.peer_id, rows, r->snap_pos);
	r->st.resyncs_sent++;
	/* The snapshot object stays until repl_ship_stop(); shipping goes on incrementally. */
	r->ship = REPL_INCREMENTAL;
	r->sent = r->snap_pos;
	repl_kick(r);
}

void repl_resync_pump(struct repl *r)
{
	if (!r->up || r->ship != REPL_RESYNC || !r->snap || r->snap_reading || !repl_window_open(r))
		return;
	r->snap_reading = 1;
	repl_snap_next(r->snap, ++r->snap_seq, r->head);
}

static void on_snap_head(void *arg, const struct repl_local *st, const char *errmsg)
{
	struct op *o = arg;
	struct repl *r = o->r;
	r->snap_head_req = NULL;
	r->snap_head_op = NULL;
	free(o);
	if (!st) {
		log_warnx("replication: full resync: %s", errmsg);
		r->ship = REPL_HANDSHAKE;
		repl_timer_in(r->ev_retry, r->cfg.retry_ms);
		return;
	}
	/* Everything up to this id is committed and visible (ids follow commit order). */
	r->snap_pos = st->head;
	/* The peer's changes we applied before reading are all in the snapshot. */
	r->snap_seen_hlc = st->applied_hlc;
	r->head = max_u64(r->head, st->head);
	struct repl_mark m = {
		.version = r->version,
		.origin = r->cfg.node_id,
		.epoch = r->local.epoch,
		.position = r->snap_pos,
		.seen_hlc = r->snap_seen_hlc,
	};
	uint8_t buf[REPL_MARK_SIZE];
	if (repl_mark_encode(&m, buf) != REPL_WIRE_OK ||
	    r->send(r->send_arg, REPL_SUBTYPE_RESYNC_BEGIN, buf, sizeof buf) < 0) {
		repl_ship_rewind(r);
		return;
	}
	r->snap = repl_snap_new(r->pool, r->cfg.node_id, r->local.epoch, r->cfg.batch_max_changes,
				r->cfg.batch_max_bytes, on_snap_chunk, on_snap_done, r);
	if (!r->snap) {
		repl_ship_rewind(r);
		return;
	}
	r->snap_seq = 0;
	repl_resync_pump(r);
}

static void start_resync(struct repl *r)
{
	repl_ship_stop(r);
	r->ship = REPL_RESYNC;
	log_info("replication: full resync to node %" PRIu32 " starts (it has %" PRIu64
		 " of epoch %" PRIu64 "; we keep %" PRIu64 "..%" PRIu64 " of epoch %" PRIu64 ")",
		 r->cfg.peer_id, r->peer_hello.applied, r->peer_hello.peer_epoch,
		 r->local.trimmed_upto + 1, r->head, r->local.epoch);
	struct op *o = repl_op_new(r, r->ship_gen);
	if (!o)
		return;
	r->snap_head_op = o;
	r->snap_head_req = repl_local_load(r->pool, r->cfg.peer_id, on_snap_head, o);
	if (!r->snap_head_req) {
		free(o);
		r->snap_head_op = NULL;
		r->ship = REPL_HANDSHAKE;
		repl_timer_in(r->ev_retry, r->cfg.retry_ms);
	}
}

/* The peer's HELLO: it tells where it stands in our outbox; decide incremental or full. */
void repl_hello_act(struct repl *r)
{
	const struct repl_hello *h = &r->peer_hello;
	uint8_t v = h->version_max < REPL_VERSION_MAX ? h->version_max : REPL_VERSION_MAX;
	if (v < h->version_min || v < REPL_VERSION_MIN) {
		log_warnx("replication: node %" PRIu32 " speaks versions %u-%u, we %u-%u: off",
			  h->node_id, h->version_min, h->version_max, REPL_VERSION_MIN,
			  REPL_VERSION_MAX);
		repl_ship_stop(r);
		r->ship = REPL_STOPPED;
		return;
	}
	if (h->schema_version != r->local.schema_version) {
		log_warnx("replication: node %" PRIu32 " has schema version %" PRIu32
			  ", we %" PRIu32 ": off until both run the same version",
			  h->node_id, h->schema_version, r->local.schema_version);
		repl_ship_stop(r);
		r->ship = REPL_STOPPED;
		return;
	}
	r->version = v;
	r->peer_head = max_u64(r->peer_epoch == h->epoch ? r->peer_head : 0, h->head);
	repl_ship_stop(r);
	uint64_t head = max_u64(r->head, r->local.head);
	if (h->peer_epoch == r->local.epoch && h->applied >= r->local.trimmed_upto &&
	    h->applied <= head) {
		r->ship = REPL_INCREMENTAL;
		r->sent = h->applied;
		r->acked = max_u64(r->acked, h->applied);
		log_debug("replication: shipping to node %" PRIu32 " from %" PRIu64, h->node_id,
			  h->applied);
		repl_ship_pump(r);
	} else {
		if (h->peer_epoch == r->local.epoch && h->applied > head)
			log_warnx("replication: node %" PRIu32 " claims %" PRIu64
				  " of our outbox, which ends at %" PRIu64
				  " (database restored?): full resync",
				  h->node_id, h->applied, head);
		start_resync(r);
	}
}
