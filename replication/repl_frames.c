/* Replication frames in from the peer link: decoded, checked against the session, handed on. */
#include "replication/repl_session.h"

#include "lib/log.h"
#include "lib/clock.h"

#include <inttypes.h>
#include <stdlib.h>

static int bad_frame(struct repl *r, const char *what, int rc)
{
	log_warnx("replication: invalid %s from node %" PRIu32 ": %s", what, r->cfg.peer_id,
		  repl_wire_strerror(rc));
	if (r->peer_hello_ok)
		repl_rx_restart(r, 1);
	return -1;
}

static int on_hello(struct repl *r, const uint8_t *p, size_t len)
{
	struct repl_hello h;
	int rc = repl_hello_decode(p, len, &h);
	if (rc != REPL_WIRE_OK)
		return bad_frame(r, "HELLO", rc);
	if (h.node_id != r->cfg.peer_id) {
		log_warnx("replication: HELLO from node %" PRIu32 ", expected %" PRIu32, h.node_id,
			  r->cfg.peer_id);
		return -1;
	}
	r->peer_hello = h;
	r->peer_hello_ok = 1;
	if (!r->loaded) {
		r->peer_hello_pending = 1;
		return 0;
	}
	repl_hello_act(r);
	return 0;
}

static int on_batch(struct repl *r, const uint8_t *p, size_t len)
{
	struct repl_batch *b;
	int rc = repl_batch_decode(p, len, &b);
	if (rc != REPL_WIRE_OK)
		return bad_frame(r, "BATCH", rc);
	if (!r->peer_hello_ok || b->origin != r->cfg.peer_id || b->epoch != r->peer_hello.epoch) {
		log_warnx("replication: BATCH from node %" PRIu32 " epoch %" PRIu64
			  " does not match the session",
			  b->origin, b->epoch);
		repl_batch_free(b);
		if (r->peer_hello_ok)
			repl_rx_restart(r, 1);
		return -1;
	}
	r->peer_head = max_u64(r->peer_head, max_u64(b->head, b->last));
	if (r->peer_head > r->applied && !r->behind_since_ms)
		r->behind_since_ms = clock_mono_ms();
	struct rx_item *it = calloc(1, sizeof *it);
	if (!it) {
		repl_batch_free(b);
		repl_rx_restart(r, 1);
		return -1;
	}
	it->subtype = REPL_SUBTYPE_BATCH;
	it->batch = b;
	it->bytes = b->size;
	return repl_rx_enqueue(r, it);
}

static int on_mark(struct repl *r, uint16_t subtype, const uint8_t *p, size_t len)
{
	struct repl_mark m;
	int rc = repl_mark_decode(p, len, &m);
	if (rc != REPL_WIRE_OK)
		return bad_frame(r, "RESYNC mark", rc);
	if (!r->peer_hello_ok || m.origin != r->cfg.peer_id || m.epoch != r->peer_hello.epoch ||
	    (subtype == REPL_SUBTYPE_RESYNC_BEGIN && m.rows != 0)) {
		log_warnx("replication: RESYNC mark from node %" PRIu32 " does not match the session",
			  m.origin);
		return -1;
	}
	if (subtype == REPL_SUBTYPE_RESYNC_BEGIN)
		repl_rxq_clear(r); /* whatever was queued is superseded by the snapshot */
	struct rx_item *it = calloc(1, sizeof *it);
	if (!it) {
		repl_rx_restart(r, 1);
		return -1;
	}
	it->subtype = subtype;
	it->mark = m;
	it->bytes = sizeof *it;
	return repl_rx_enqueue(r, it);
}

static int on_ack(struct repl *r, const uint8_t *p, size_t len)
{
	struct repl_ack a;
	int rc = repl_ack_decode(p, len, &a);
	if (rc != REPL_WIRE_OK)
		return bad_frame(r, "ACK", rc);
	if (a.node_id != r->cfg.peer_id || !r->loaded || a.epoch != r->local.epoch) {
		log_debug("replication: ACK for epoch %" PRIu64 " ignored", a.epoch);
		return 0;
	}
	if (a.flags & REPL_ACK_SNAPSHOT) {
		repl_infl_ack(r, 1, a.value);
	} else {
		/* Not beyond what exists (sent may be lower after a rewind). */
		uint64_t top = max_u64(max_u64(r->sent, r->snap_pos), max_u64(r->head, r->local.head));
		if (a.value > top) {
			log_warnx("replication: node %" PRIu32 " acknowledges %" PRIu64
				  ", beyond our outbox (%" PRIu64 ")",
				  a.node_id, a.value, top);
			return -1;
		}
		r->acked = max_u64(r->acked, a.value);
		repl_infl_ack(r, 0, a.value);
	}
	repl_kick(r);
	return 0;
}

int repl_on_app(struct repl *r, uint16_t subtype, const uint8_t *payload, size_t len)
{
	if (!r->up)
		return 0;
	switch (subtype) {
	case REPL_SUBTYPE_HELLO:
		return on_hello(r, payload, len);
	case REPL_SUBTYPE_BATCH:
		return on_batch(r, payload, len);
	case REPL_SUBTYPE_ACK:
		return on_ack(r, payload, len);
	case REPL_SUBTYPE_RESYNC_BEGIN:
	case REPL_SUBTYPE_RESYNC_END:
		return on_mark(r, subtype, payload, len);
	}
	log_warnx("replication: unknown subtype %u from node %" PRIu32, subtype, r->cfg.peer_id);
	return -1;
}
