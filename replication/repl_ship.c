/* Shipper: batches read from the outbox in id order, at most window_batches / window_bytes
 * unacknowledged.  Async callbacks of an older shipping generation are recognised by a
 * generation number and ignored. */
#include "replication/repl_session.h"

#include "lib/log.h"
#include "lib/pg.h"

#include <inttypes.h>
#include <stdlib.h>

void repl_ship_stop(struct repl *r)
{
	r->ship_gen++;
	if (r->fetch_req)
		pg_req_cancel(r->fetch_req);
	free(r->fetch_op);
	r->fetch_req = NULL;
	r->fetch_op = NULL;
	repl_q_cancel(r->snap_head_req);
	free(r->snap_head_op);
	r->snap_head_req = NULL;
	r->snap_head_op = NULL;
	repl_snap_free(r->snap);
	r->snap = NULL;
	r->snap_reading = 0;
	r->ninfl = 0;
	r->infl_bytes = 0;
	event_del(r->ev_poll);
}

int repl_window_open(const struct repl *r)
{
	return r->ninfl < r->cfg.window_batches && r->ninfl < REPL_INFLIGHT_MAX &&
	       r->infl_bytes < r->cfg.window_bytes;
}

void repl_infl_push(struct repl *r, int snap, uint64_t key, size_t bytes)
{
	r->infl[r->ninfl].snap = snap;
	r->infl[r->ninfl].key = key;
	r->infl[r->ninfl].bytes = bytes;
	r->ninfl++;
	r->infl_bytes += bytes;
}

void repl_infl_ack(struct repl *r, int snap, uint64_t value)
{
	int j = 0;
	for (int i = 0; i < r->ninfl; i++) {
		if (r->infl[i].snap == snap && r->infl[i].key <= value)
			r->infl_bytes -= r->infl[i].bytes;
		else
			r->infl[j++] = r->infl[i];
	}
	r->ninfl = j;
}

void repl_kick(struct repl *r) { event_active(r->ev_kick, EV_TIMEOUT, 0); }

/* The link refused a frame (no connection, or the peer does not read): forget what is in
 * flight, start again from the acknowledged position a little later. */
void repl_ship_rewind(struct repl *r)
{
	log_debug("replication: peer link refused a frame; resending from %" PRIu64, r->acked);
	enum repl_phase keep = r->ship;
	repl_ship_stop(r);
	r->ship = keep == REPL_RESYNC ? REPL_HANDSHAKE : keep;
	r->sent = r->acked;
	if (r->ship == REPL_INCREMENTAL) {
		repl_timer_in(r->ev_poll, r->cfg.retry_ms / 5 + 1);
	} else {
		event_del(r->ev_retry);
		repl_timer_in(r->ev_retry, r->cfg.retry_ms); /* on_retry acts on the HELLO again */
	}
}

static void on_fetched(void *arg, PGresult *res, const char *errmsg)
{
	struct op *o = arg;
	struct repl *r = o->r;
	if (o->gen != r->ship_gen) { /* cannot happen: cancelled with its generation */
		free(o);
		return;
	}
	r->fetch_req = NULL;
	r->fetch_op = NULL;
	free(o);
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("replication: reading the outbox: %s",
			  res ? PQresultErrorMessage(res) : errmsg);
		repl_timer_in(r->ev_poll, r->cfg.retry_ms);
		return;
	}
	int n = PQntuples(res);
	if (n == 0) {
		repl_timer_in(r->ev_poll, r->cfg.poll_ms);
		return;
	}
	struct repl_change last;
	if (repl_outbox_row(res, n - 1, &last) == 0)
		r->head = max_u64(r->head, last.id);
	r->head = max_u64(r->head, repl_outbox_head(res));
	struct repl_builder b;
	if (repl_builder_init(&b, 0, r->cfg.node_id, r->local.epoch, r->sent, r->head,
			      r->cfg.batch_max_bytes) != REPL_WIRE_OK) {
		repl_timer_in(r->ev_poll, r->cfg.retry_ms);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct repl_change c;
		int rc = repl_outbox_row(res, i, &c) < 0 ? REPL_WIRE_FIELD : REPL_WIRE_OK;
		/* Rows captured before repl_node_set() carry origin 0: they are ours. */
		if (rc == REPL_WIRE_OK && c.origin == 0)
			c.origin = r->cfg.node_id;
		if (rc == REPL_WIRE_OK)
			rc = repl_builder_add(&b, &c);
		if (rc == REPL_WIRE_SPACE && b.count > 0)
			break;
		if (rc != REPL_WIRE_OK) {
			/* Never skip a change: stop here, loudly, and retry later. */
			log_warnx("replication: outbox row %s cannot be shipped (%s); shipping is"
				  " stuck until it is fixed",
				  PQgetvalue(res, i, 0), repl_wire_strerror(rc));
			break;
		}
	}
	size_t len = repl_builder_finish(&b);
	if (len == 0) {
		repl_builder_release(&b);
		repl_timer_in(r->ev_poll, r->cfg.retry_ms);
		return;
	}
	if (r->send(r->send_arg, REPL_SUBTYPE_BATCH, b.buf, len) < 0) {
		repl_builder_release(&b);
		repl_ship_rewind(r);
		return;
	}
	repl_infl_push(r, 0, b.last_id, len);
	r->sent = b.last_id;
	r->st.batches_sent++;
	r->st.changes_sent += b.count;
	repl_builder_release(&b);
	repl_kick(r); /* read on at once: there may be more */
}

void repl_ship_pump(struct repl *r)
{
	if (!r->up || r->ship != REPL_INCREMENTAL || r->fetch_req || !repl_window_open(r))
		return;
	struct op *o = repl_op_new(r, r->ship_gen);
	if (!o)
		return;
	r->fetch_op = o;
	r->fetch_req = repl_outbox_fetch(r->pool, r->sent, r->cfg.batch_max_changes, on_fetched, o);
	if (!r->fetch_req) {
		free(o);
		r->fetch_op = NULL;
		repl_timer_in(r->ev_poll, r->cfg.retry_ms);
	}
}
