/* Receiver: frames are queued and applied one at a time, each in one transaction; an ACK
 * follows each commit.  Anything unexpected (lost batch, database error, bad frame) makes the
 * receiver send HELLO again, which restarts the peer's shipping from our durable position. */
#include "replication/repl_session.h"

#include "lib/log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define REPL_RXQ_MAX 64
#define REPL_RXQ_MAX_BYTES (24u << 20)
/* A merge is no larger than a full batch: the apply holds the capture lock (local writers
 * wait) no longer than before. */
#define REPL_MERGE_MAX_CHANGES 2000
#define REPL_MERGE_MAX_BYTES ((size_t)REPL_FRAME_MAX)

static void send_ack(struct repl *r, int snap, uint64_t epoch, uint64_t value)
{
	struct repl_ack a = {
		.version = r->version ? r->version : REPL_VERSION_MAX,
		.flags = snap ? REPL_ACK_SNAPSHOT : 0,
		.node_id = r->cfg.node_id,
		.epoch = epoch,
		.value = value,
	};
	uint8_t buf[REPL_ACK_SIZE];
	if (r->up && repl_ack_encode(&a, buf) == REPL_WIRE_OK)
		r->send(r->send_arg, REPL_SUBTYPE_ACK, buf, sizeof buf);
}

void repl_rx_item_free(struct rx_item *it)
{
	if (!it)
		return;
	repl_batch_free(it->batch);
	for (int i = 0; i < it->nparts; i++)
		repl_batch_free(it->parts[i]);
	free(it->parts);
	free(it);
}

/* Consecutive incremental batches waiting behind `first` (already off the queue) become one
 * apply transaction.  A repl_apply() call costs a few milliseconds whatever its size, so
 * under a steady stream of small batches the queue would otherwise fill up to the shipper's
 * window and each change would wait for several calls (docs/replication-protocol.md §8).
 * The merge follows first's position and ends at the last part's: repl_apply() checks it
 * like one batch, and one ACK of its last id covers every part.  Out of memory: no merge. */
static struct rx_item *rx_merge(struct repl *r, struct rx_item *first)
{
	const struct repl_batch *fb = first->batch;
	uint32_t count = fb->count;
	size_t bytes = first->bytes;
	uint64_t last = fb->last;
	int n = 1;
	for (struct rx_item *x = TAILQ_FIRST(&r->rxq); x; x = TAILQ_NEXT(x, entry)) {
		const struct repl_batch *b = x->batch;
		if (x->subtype != REPL_SUBTYPE_BATCH || (b->flags & REPL_BATCH_SNAPSHOT) ||
		    b->epoch != fb->epoch || b->after != last ||
		    count + b->count > REPL_MERGE_MAX_CHANGES ||
		    bytes + x->bytes > REPL_MERGE_MAX_BYTES)
			break;
		count += b->count;
		bytes += x->bytes;
		last = b->last;
		n++;
	}
	if (n == 1)
		return first;
	struct rx_item *m = calloc(1, sizeof *m);
	struct repl_batch *mb = calloc(1, sizeof *mb);
	struct repl_change *ch = calloc(count, sizeof *ch);
	struct repl_batch **parts = calloc((size_t)n, sizeof *parts);
	if (!m || !mb || !ch || !parts) {
		free(m);
		free(mb);
		free(ch);
		free(parts);
		return first;
	}
	*mb = *fb;
	mb->copy = NULL;
	mb->changes = ch;
	mb->count = count;
	mb->last = last;
	mb->size = bytes;
	uint32_t k = 0;
	for (int i = 0; i < n; i++) {
		struct rx_item *x = first;
		if (i > 0) {
			x = TAILQ_FIRST(&r->rxq);
			TAILQ_REMOVE(&r->rxq, x, entry);
			r->rxq_len--;
			r->rxq_bytes -= x->bytes;
		}
		memcpy(ch + k, x->batch->changes, x->batch->count * sizeof *ch);
		k += x->batch->count;
		mb->head = max_u64(mb->head, x->batch->head);
		parts[i] = x->batch;
		x->batch = NULL;
		repl_rx_item_free(x);
	}
	m->subtype = REPL_SUBTYPE_BATCH;
	m->batch = mb;
	m->bytes = bytes;
	m->parts = parts;
	m->nparts = n;
	return m;
}

void repl_rxq_clear(struct repl *r)
{
	struct rx_item *it;
	while ((it = TAILQ_FIRST(&r->rxq))) {
		TAILQ_REMOVE(&r->rxq, it, entry);
		repl_rx_item_free(it);
	}
	r->rxq_len = 0;
	r->rxq_bytes = 0;
}

/* Ask the peer to ship again from our durable position (now, or after retry_ms). */
void repl_rx_restart(struct repl *r, int later)
{
	repl_rxq_clear(r);
	r->awaiting_restart = 1;
	r->st.restarts++;
	if (later) {
		event_del(r->ev_retry);
		repl_timer_in(r->ev_retry, r->cfg.retry_ms);
	} else {
		repl_send_hello(r);
	}
}

static void rx_pump(struct repl *r);

static void log_conflicts(struct repl *r, const struct repl_apply_result *res)
{
	if (res->conflicts == 0)
		return;
	r->st.conflicts += res->conflicts;
	log_warnx("replication: %" PRIu64 " conflict(s) with node %" PRIu32
		  " resolved by last writer wins (see replication_conflicts): %.2000s",
		  res->conflicts, r->cfg.peer_id, res->conflict_list);
}

static void on_rx_applied(void *arg, const struct repl_apply_result *res)
{
	struct op *o = arg;
	struct repl *r = o->r;
	struct rx_item *it = o->item;
	int current = o->gen == r->session;
	r->apply_req = NULL;
	r->apply_op = NULL;
	free(o);
	struct repl_batch *b = it->batch;
	int snap = it->subtype == REPL_SUBTYPE_BATCH && (b->flags & REPL_BATCH_SNAPSHOT);
	if (res->ok) {
		if (it->subtype == REPL_SUBTYPE_RESYNC_END) {
			r->applied = res->position;
			r->peer_epoch = it->mark.epoch;
			r->receiving_resync = 0;
			r->st.resyncs_received++;
			log_info("replication: full resync from node %" PRIu32 " complete:"
				 " position %" PRIu64 ", %" PRIu64 " stale local rows removed",
				 r->cfg.peer_id, res->position, res->applied);
			send_ack(r, 0, it->mark.epoch, res->position);
		} else if (snap) {
			if (!res->duplicate) {
				r->st.changes_applied += res->applied;
				log_conflicts(r, res);
			}
			send_ack(r, 1, b->epoch, res->position);
		} else {
			if (!res->duplicate) {
				r->applied = max_u64(r->applied, res->position);
				r->st.batches_applied += it->nparts ? (uint64_t)it->nparts : 1;
				r->st.changes_applied += res->applied;
				log_conflicts(r, res);
			}
			send_ack(r, 0, b->epoch, max_u64(r->applied, res->position));
		}
		repl_rx_item_free(it);
		if (r->applied >= r->peer_head)
			r->behind_since_ms = 0;
		rx_pump(r);
		return;
	}
	repl_rx_item_free(it);
	if (!current) { /* the session changed meanwhile: the new HELLO already restarts */
		rx_pump(r);
		return;
	}
	if (res->gap || res->epoch_wrong) {
		log_debug("replication: %s; asking node %" PRIu32 " to resend from %" PRIu64,
			  res->errmsg, r->cfg.peer_id, r->applied);
		repl_rx_restart(r, 0);
	} else {
		r->st.apply_errors++;
		log_warnx("replication: applying from node %" PRIu32 ": %s", r->cfg.peer_id,
			  res->errmsg ? res->errmsg : "error");
		repl_rx_restart(r, 1);
	}
}

static void on_rx_begun(void *arg, int ok, const char *errmsg)
{
	struct op *o = arg;
	struct repl *r = o->r;
	struct rx_item *it = o->item;
	int current = o->gen == r->session;
	r->apply_req = NULL;
	r->apply_op = NULL;
	free(o);
	if (ok) {
		r->receiving_resync = 1;
		log_info("replication: full resync from node %" PRIu32 " starts (position %" PRIu64
			 ")",
			 r->cfg.peer_id, it->mark.position);
	}
	repl_rx_item_free(it);
	if (!ok && current) {
		r->st.apply_errors++;
		log_warnx("replication: starting a full resync: %s", errmsg ? errmsg : "error");
		repl_rx_restart(r, 1);
	}
	rx_pump(r);
}

static void rx_pump(struct repl *r)
{
	while (!r->apply_req && !TAILQ_EMPTY(&r->rxq)) {
		struct rx_item *it = TAILQ_FIRST(&r->rxq);
		TAILQ_REMOVE(&r->rxq, it, entry);
		r->rxq_len--;
		r->rxq_bytes -= it->bytes;
		struct repl_batch *b = it->batch;
		int snap = b && (b->flags & REPL_BATCH_SNAPSHOT);
		/* After asking for a restart, batches still in the pipe that do not follow our
		 * position are dropped quietly; the restart's first batch follows it. */
		if (b && !snap && r->awaiting_restart && b->after > r->applied) {
			repl_rx_item_free(it);
			continue;
		}
		if ((snap || it->subtype == REPL_SUBTYPE_RESYNC_END) && !r->receiving_resync) {
			repl_rx_item_free(it); /* a leftover of an abandoned resync */
			continue;
		}
		if (b && !snap)
			r->awaiting_restart = 0;
		struct op *o = repl_op_new(r, r->session);
		if (!o) {
			repl_rx_item_free(it);
			repl_rx_restart(r, 1);
			return;
		}
		o->item = it;
		r->apply_op = o;
		if (it->subtype == REPL_SUBTYPE_RESYNC_BEGIN) {
			r->awaiting_restart = 0;
			r->receiving_resync = 0;
			r->apply_req = repl_resync_begin_query(r->pool, r->cfg.peer_id,
								it->mark.epoch, on_rx_begun, o);
		} else if (it->subtype == REPL_SUBTYPE_RESYNC_END) {
			r->apply_req = repl_resync_finish_query(r->pool, r->cfg.peer_id, &it->mark,
								 on_rx_applied, o);
		} else {
			if (!snap)
				o->item = it = rx_merge(r, it);
			r->apply_req = repl_apply_batch(r->pool, r->cfg.peer_id, it->batch,
							on_rx_applied, o);
		}
		if (!r->apply_req) {
			free(o);
			r->apply_op = NULL;
			repl_rx_item_free(it);
			repl_rx_restart(r, 1);
			return;
		}
	}
}

int repl_rx_enqueue(struct repl *r, struct rx_item *it)
{
	if (r->rxq_len >= REPL_RXQ_MAX || r->rxq_bytes + it->bytes > REPL_RXQ_MAX_BYTES) {
		/* The shipper's window keeps us far below this: the peer does not play by the
		 * rules.  Drop and restart from our position. */
		log_warnx("replication: node %" PRIu32 " sends more than the window allows",
			  r->cfg.peer_id);
		repl_rx_item_free(it);
		repl_rx_restart(r, 1);
		return -1;
	}
	TAILQ_INSERT_TAIL(&r->rxq, it, entry);
	r->rxq_len++;
	r->rxq_bytes += it->bytes;
	rx_pump(r);
	return 0;
}
