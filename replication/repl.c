/* The replication session with the peer (docs/replication-protocol.md §4): one object is
 * both the shipper of our outbox and the receiver of the peer's.
 *
 * Shipper: after the peer's HELLO, either incremental from its applied position or a full
 * resync, then batches read from the outbox in id order, at most window_batches /
 * window_bytes unacknowledged.  Receiver: frames are queued and applied one at a time, each in
 * one transaction; an ACK follows each commit.  Anything unexpected (lost batch, database
 * error, bad frame) makes the receiver send HELLO again, which restarts the peer's shipping
 * from our durable position.  Async callbacks of an older session or shipping generation are
 * recognised by a generation number and ignored. */
#include "replication/repl_internal.h"

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/pg.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#define REPL_INFLIGHT_MAX 64
#define REPL_RXQ_MAX 64
#define REPL_RXQ_MAX_BYTES (24u << 20)
#define REPL_TICK_MS 100
#define REPL_TRIM_EVERY_TICKS 10
/* A merge is no larger than a full batch: the apply holds the capture lock (local writers
 * wait) no longer than before. */
#define REPL_MERGE_MAX_CHANGES 2000
#define REPL_MERGE_MAX_BYTES ((size_t)REPL_FRAME_MAX)

struct inflight {
	int snap;      /* a snapshot chunk (key = chunk number) or a batch (key = last id) */
	uint64_t key;
	size_t bytes;
};

struct rx_item {
	TAILQ_ENTRY(rx_item) entry;
	uint16_t subtype;
	struct repl_batch *batch; /* BATCH */
	struct repl_mark mark;    /* RESYNC_BEGIN / RESYNC_END */
	size_t bytes;
	/* A merge of consecutive batches (rx_merge): batch->changes point into these. */
	struct repl_batch **parts;
	int nparts;
};
TAILQ_HEAD(rx_queue, rx_item);

/* An async query of ours: which object and which generation it belongs to. */
struct op {
	struct repl *r;
	uint32_t gen;
	struct rx_item *item;
	uint64_t value; /* acked position being stored */
};

struct repl {
	struct event_base *base;
	struct pg_pool *pool;
	struct repl_config cfg;
	repl_send_fn send;
	void *send_arg;

	int up;
	uint32_t session; /* +1 at every peer_up / peer_down */
	uint8_t version;  /* negotiated */

	/* local state from the database */
	int loaded;
	struct repl_local local;
	struct repl_q *load_req;
	struct op *load_op;

	/* the peer's HELLO of this session */
	int peer_hello_ok;
	int peer_hello_pending; /* arrived before our state was loaded */
	struct repl_hello peer_hello;

	/* shipper */
	enum repl_phase ship;
	uint32_t ship_gen;
	uint64_t head, sent, acked, acked_stored;
	struct inflight infl[REPL_INFLIGHT_MAX];
	int ninfl;
	size_t infl_bytes;
	struct pg_req *fetch_req;
	struct op *fetch_op;
	struct repl_snap *snap;
	int snap_reading;
	uint64_t snap_seq, snap_pos, snap_seen_hlc;
	struct repl_q *snap_head_req;
	struct op *snap_head_op;

	/* receiver */
	uint64_t applied, peer_epoch, peer_head;
	int receiving_resync;
	int awaiting_restart;
	struct rx_queue rxq;
	int rxq_len;
	size_t rxq_bytes;
	struct repl_q *apply_req;
	struct op *apply_op;
	int64_t behind_since_ms;

	/* housekeeping */
	int ticks;
	uint64_t trimmed_at;
	struct repl_q *store_req, *trim_req;
	struct op *store_op, *trim_op;

	struct event *ev_poll, *ev_kick, *ev_retry, *ev_tick;
	struct repl_status st; /* counters */
};

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

static struct op *op_new(struct repl *r, uint32_t gen)
{
	struct op *o = calloc(1, sizeof *o);
	if (o) {
		o->r = r;
		o->gen = gen;
	}
	return o;
}

static void timer_in(struct event *ev, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_add(ev, &tv);
}

void repl_config_defaults(struct repl_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->poll_ms = 5;
	cfg->batch_max_changes = 2000;
	cfg->batch_max_bytes = 512u << 10;
	cfg->window_batches = 8;
	cfg->window_bytes = 4u << 20;
	cfg->max_keep = 5000000;
	cfg->retry_ms = 1000;
}

/* ---- sending ---- */

static int send_hello(struct repl *r)
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

/* ---- shipper ---- */

static void ship_stop(struct repl *r)
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

static int window_open(const struct repl *r)
{
	return r->ninfl < r->cfg.window_batches && r->ninfl < REPL_INFLIGHT_MAX &&
	       r->infl_bytes < r->cfg.window_bytes;
}

static void infl_push(struct repl *r, int snap, uint64_t key, size_t bytes)
{
	r->infl[r->ninfl].snap = snap;
	r->infl[r->ninfl].key = key;
	r->infl[r->ninfl].bytes = bytes;
	r->ninfl++;
	r->infl_bytes += bytes;
}

static void infl_ack(struct repl *r, int snap, uint64_t value)
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

static void kick(struct repl *r) { event_active(r->ev_kick, EV_TIMEOUT, 0); }

/* The link refused a frame (no connection, or the peer does not read): forget what is in
 * flight, start again from the acknowledged position a little later. */
static void ship_rewind(struct repl *r)
{
	log_debug("replication: peer link refused a frame; resending from %" PRIu64, r->acked);
	enum repl_phase keep = r->ship;
	ship_stop(r);
	r->ship = keep == REPL_RESYNC ? REPL_HANDSHAKE : keep;
	r->sent = r->acked;
	if (r->ship == REPL_INCREMENTAL) {
		timer_in(r->ev_poll, r->cfg.retry_ms / 5 + 1);
	} else {
		event_del(r->ev_retry);
		timer_in(r->ev_retry, r->cfg.retry_ms); /* on_retry acts on the HELLO again */
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
		timer_in(r->ev_poll, r->cfg.retry_ms);
		return;
	}
	int n = PQntuples(res);
	if (n == 0) {
		timer_in(r->ev_poll, r->cfg.poll_ms);
		return;
	}
	struct repl_change last;
	if (repl_outbox_row(res, n - 1, &last) == 0)
		r->head = max_u64(r->head, last.id);
	r->head = max_u64(r->head, repl_outbox_head(res));
	struct repl_builder b;
	if (repl_builder_init(&b, 0, r->cfg.node_id, r->local.epoch, r->sent, r->head,
			      r->cfg.batch_max_bytes) != REPL_WIRE_OK) {
		timer_in(r->ev_poll, r->cfg.retry_ms);
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
		timer_in(r->ev_poll, r->cfg.retry_ms);
		return;
	}
	if (r->send(r->send_arg, REPL_SUBTYPE_BATCH, b.buf, len) < 0) {
		repl_builder_release(&b);
		ship_rewind(r);
		return;
	}
	infl_push(r, 0, b.last_id, len);
	r->sent = b.last_id;
	r->st.batches_sent++;
	r->st.changes_sent += b.count;
	repl_builder_release(&b);
	kick(r); /* read on at once: there may be more */
}

static void ship_pump(struct repl *r)
{
	if (!r->up || r->ship != REPL_INCREMENTAL || r->fetch_req || !window_open(r))
		return;
	struct op *o = op_new(r, r->ship_gen);
	if (!o)
		return;
	r->fetch_op = o;
	r->fetch_req = repl_outbox_fetch(r->pool, r->sent, r->cfg.batch_max_changes, on_fetched, o);
	if (!r->fetch_req) {
		free(o);
		r->fetch_op = NULL;
		timer_in(r->ev_poll, r->cfg.retry_ms);
	}
}

/* ---- full resync, producer side ---- */

static int on_snap_chunk(void *arg, const uint8_t *payload, size_t len, uint64_t rows)
{
	struct repl *r = arg;
	r->snap_reading = 0;
	if (r->send(r->send_arg, REPL_SUBTYPE_BATCH, payload, len) < 0)
		return -1;
	infl_push(r, 1, r->snap_seq, len);
	r->st.changes_sent += rows;
	kick(r);
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
		ship_stop(r);
		r->ship = REPL_HANDSHAKE;
		event_del(r->ev_retry);
		timer_in(r->ev_retry, r->cfg.retry_ms);
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
		ship_rewind(r);
		return;
	}
	log_info("replication: full resync to node %" PRIu32 " sent: %" PRIu64
		 " rows, position %" PRIu64,
		 r->cfg.peer_id, rows, r->snap_pos);
	r->st.resyncs_sent++;
	/* The snapshot object stays until ship_stop(); shipping goes on incrementally. */
	r->ship = REPL_INCREMENTAL;
	r->sent = r->snap_pos;
	kick(r);
}

static void resync_pump(struct repl *r)
{
	if (!r->up || r->ship != REPL_RESYNC || !r->snap || r->snap_reading || !window_open(r))
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
		timer_in(r->ev_retry, r->cfg.retry_ms);
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
		ship_rewind(r);
		return;
	}
	r->snap = repl_snap_new(r->pool, r->cfg.node_id, r->local.epoch, r->cfg.batch_max_changes,
				r->cfg.batch_max_bytes, on_snap_chunk, on_snap_done, r);
	if (!r->snap) {
		ship_rewind(r);
		return;
	}
	r->snap_seq = 0;
	resync_pump(r);
}

static void start_resync(struct repl *r)
{
	ship_stop(r);
	r->ship = REPL_RESYNC;
	log_info("replication: full resync to node %" PRIu32 " starts (it has %" PRIu64
		 " of epoch %" PRIu64 "; we keep %" PRIu64 "..%" PRIu64 " of epoch %" PRIu64 ")",
		 r->cfg.peer_id, r->peer_hello.applied, r->peer_hello.peer_epoch,
		 r->local.trimmed_upto + 1, r->head, r->local.epoch);
	struct op *o = op_new(r, r->ship_gen);
	if (!o)
		return;
	r->snap_head_op = o;
	r->snap_head_req = repl_local_load(r->pool, r->cfg.peer_id, on_snap_head, o);
	if (!r->snap_head_req) {
		free(o);
		r->snap_head_op = NULL;
		r->ship = REPL_HANDSHAKE;
		timer_in(r->ev_retry, r->cfg.retry_ms);
	}
}

/* The peer's HELLO: it tells where it stands in our outbox; decide incremental or full. */
static void hello_act(struct repl *r)
{
	const struct repl_hello *h = &r->peer_hello;
	uint8_t v = h->version_max < REPL_VERSION_MAX ? h->version_max : REPL_VERSION_MAX;
	if (v < h->version_min || v < REPL_VERSION_MIN) {
		log_warnx("replication: node %" PRIu32 " speaks versions %u-%u, we %u-%u: off",
			  h->node_id, h->version_min, h->version_max, REPL_VERSION_MIN,
			  REPL_VERSION_MAX);
		ship_stop(r);
		r->ship = REPL_STOPPED;
		return;
	}
	if (h->schema_version != r->local.schema_version) {
		log_warnx("replication: node %" PRIu32 " has schema version %" PRIu32
			  ", we %" PRIu32 ": off until both run the same version",
			  h->node_id, h->schema_version, r->local.schema_version);
		ship_stop(r);
		r->ship = REPL_STOPPED;
		return;
	}
	r->version = v;
	r->peer_head = max_u64(r->peer_epoch == h->epoch ? r->peer_head : 0, h->head);
	ship_stop(r);
	uint64_t head = max_u64(r->head, r->local.head);
	if (h->peer_epoch == r->local.epoch && h->applied >= r->local.trimmed_upto &&
	    h->applied <= head) {
		r->ship = REPL_INCREMENTAL;
		r->sent = h->applied;
		r->acked = max_u64(r->acked, h->applied);
		log_debug("replication: shipping to node %" PRIu32 " from %" PRIu64, h->node_id,
			  h->applied);
		ship_pump(r);
	} else {
		if (h->peer_epoch == r->local.epoch && h->applied > head)
			log_warnx("replication: node %" PRIu32 " claims %" PRIu64
				  " of our outbox, which ends at %" PRIu64
				  " (database restored?): full resync",
				  h->node_id, h->applied, head);
		start_resync(r);
	}
}

/* ---- receiver ---- */

static void rx_item_free(struct rx_item *it)
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
		rx_item_free(x);
	}
	m->subtype = REPL_SUBTYPE_BATCH;
	m->batch = mb;
	m->bytes = bytes;
	m->parts = parts;
	m->nparts = n;
	return m;
}

static void rxq_clear(struct repl *r)
{
	struct rx_item *it;
	while ((it = TAILQ_FIRST(&r->rxq))) {
		TAILQ_REMOVE(&r->rxq, it, entry);
		rx_item_free(it);
	}
	r->rxq_len = 0;
	r->rxq_bytes = 0;
}

/* Ask the peer to ship again from our durable position (now, or after retry_ms). */
static void rx_restart(struct repl *r, int later)
{
	rxq_clear(r);
	r->awaiting_restart = 1;
	r->st.restarts++;
	if (later) {
		event_del(r->ev_retry);
		timer_in(r->ev_retry, r->cfg.retry_ms);
	} else {
		send_hello(r);
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
		rx_item_free(it);
		if (r->applied >= r->peer_head)
			r->behind_since_ms = 0;
		rx_pump(r);
		return;
	}
	rx_item_free(it);
	if (!current) { /* the session changed meanwhile: the new HELLO already restarts */
		rx_pump(r);
		return;
	}
	if (res->gap || res->epoch_wrong) {
		log_debug("replication: %s; asking node %" PRIu32 " to resend from %" PRIu64,
			  res->errmsg, r->cfg.peer_id, r->applied);
		rx_restart(r, 0);
	} else {
		r->st.apply_errors++;
		log_warnx("replication: applying from node %" PRIu32 ": %s", r->cfg.peer_id,
			  res->errmsg ? res->errmsg : "error");
		rx_restart(r, 1);
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
	rx_item_free(it);
	if (!ok && current) {
		r->st.apply_errors++;
		log_warnx("replication: starting a full resync: %s", errmsg ? errmsg : "error");
		rx_restart(r, 1);
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
			rx_item_free(it);
			continue;
		}
		if ((snap || it->subtype == REPL_SUBTYPE_RESYNC_END) && !r->receiving_resync) {
			rx_item_free(it); /* a leftover of an abandoned resync */
			continue;
		}
		if (b && !snap)
			r->awaiting_restart = 0;
		struct op *o = op_new(r, r->session);
		if (!o) {
			rx_item_free(it);
			rx_restart(r, 1);
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
			rx_item_free(it);
			rx_restart(r, 1);
			return;
		}
	}
}

static int rx_enqueue(struct repl *r, struct rx_item *it)
{
	if (r->rxq_len >= REPL_RXQ_MAX || r->rxq_bytes + it->bytes > REPL_RXQ_MAX_BYTES) {
		/* The shipper's window keeps us far below this: the peer does not play by the
		 * rules.  Drop and restart from our position. */
		log_warnx("replication: node %" PRIu32 " sends more than the window allows",
			  r->cfg.peer_id);
		rx_item_free(it);
		rx_restart(r, 1);
		return -1;
	}
	TAILQ_INSERT_TAIL(&r->rxq, it, entry);
	r->rxq_len++;
	r->rxq_bytes += it->bytes;
	rx_pump(r);
	return 0;
}

/* ---- frames in ---- */

static int bad_frame(struct repl *r, const char *what, int rc)
{
	log_warnx("replication: invalid %s from node %" PRIu32 ": %s", what, r->cfg.peer_id,
		  repl_wire_strerror(rc));
	if (r->peer_hello_ok)
		rx_restart(r, 1);
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
	hello_act(r);
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
			rx_restart(r, 1);
		return -1;
	}
	r->peer_head = max_u64(r->peer_head, max_u64(b->head, b->last));
	if (r->peer_head > r->applied && !r->behind_since_ms)
		r->behind_since_ms = clock_mono_ms();
	struct rx_item *it = calloc(1, sizeof *it);
	if (!it) {
		repl_batch_free(b);
		rx_restart(r, 1);
		return -1;
	}
	it->subtype = REPL_SUBTYPE_BATCH;
	it->batch = b;
	it->bytes = b->size;
	return rx_enqueue(r, it);
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
		rxq_clear(r); /* whatever was queued is superseded by the snapshot */
	struct rx_item *it = calloc(1, sizeof *it);
	if (!it) {
		rx_restart(r, 1);
		return -1;
	}
	it->subtype = subtype;
	it->mark = m;
	it->bytes = sizeof *it;
	return rx_enqueue(r, it);
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
		infl_ack(r, 1, a.value);
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
		infl_ack(r, 0, a.value);
	}
	kick(r);
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

/* ---- session ---- */

static void on_loaded(void *arg, const struct repl_local *st, const char *errmsg)
{
	struct op *o = arg;
	struct repl *r = o->r;
	r->load_req = NULL;
	r->load_op = NULL;
	free(o);
	if (!st) {
		log_warnx("replication: reading the replication state: %s", errmsg);
		timer_in(r->ev_retry, r->cfg.retry_ms);
		return;
	}
	if (st->node_id != r->cfg.node_id)
		log_warnx("replication: the database says node %" PRIu32 ", we are %" PRIu32
			  " (call repl_node_set at start-up)",
			  st->node_id, r->cfg.node_id);
	r->local = *st;
	r->loaded = 1;
	r->head = max_u64(r->head, st->head);
	r->acked = max_u64(r->acked, st->acked);
	r->acked_stored = max_u64(r->acked_stored, st->acked);
	/* In memory we may be ahead of this read (an apply committed meanwhile). */
	if (!r->apply_req && !r->receiving_resync) {
		r->applied = st->applied;
		r->peer_epoch = st->peer_epoch;
	} else if (st->peer_epoch == r->peer_epoch) {
		r->applied = max_u64(r->applied, st->applied);
	}
	if (send_hello(r) < 0)
		log_debug("replication: HELLO not sent (no link)");
	if (r->peer_hello_pending) {
		r->peer_hello_pending = 0;
		hello_act(r);
	}
}

static void load_state(struct repl *r)
{
	repl_q_cancel(r->load_req);
	free(r->load_op);
	r->load_req = NULL;
	r->load_op = op_new(r, r->session);
	if (!r->load_op)
		return;
	r->load_req = repl_local_load(r->pool, r->cfg.peer_id, on_loaded, r->load_op);
	if (!r->load_req) {
		free(r->load_op);
		r->load_op = NULL;
		timer_in(r->ev_retry, r->cfg.retry_ms);
	}
}

void repl_peer_up(struct repl *r)
{
	r->up = 1;
	r->session++;
	ship_stop(r);
	r->ship = REPL_HANDSHAKE;
	r->peer_hello_ok = 0;
	r->peer_hello_pending = 0;
	r->awaiting_restart = 0;
	rxq_clear(r);
	if (!r->apply_req)
		r->receiving_resync = 0;
	event_del(r->ev_retry);
	r->loaded = 0;
	load_state(r);
}

void repl_peer_down(struct repl *r)
{
	r->up = 0;
	r->session++;
	ship_stop(r);
	r->ship = REPL_OFF;
	r->peer_hello_ok = 0;
	r->peer_hello_pending = 0;
	rxq_clear(r);
	event_del(r->ev_retry);
}

/* Retry timer: load the state again if that failed, or re-send HELLO (restart request), or
 * restart a failed resync (by acting on the peer's HELLO again). */
static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct repl *r = arg;
	if (!r->up)
		return;
	if (!r->loaded) {
		load_state(r);
		return;
	}
	if (r->awaiting_restart)
		send_hello(r);
	if (r->ship == REPL_HANDSHAKE && r->peer_hello_ok)
		hello_act(r);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct repl *r = arg;
	ship_pump(r);
	resync_pump(r);
}

static void on_poll(evutil_socket_t fd, short what, void *arg) { ship_pump(arg); }

static void on_stored(void *arg, int ok, const char *errmsg)
{
	struct op *o = arg;
	struct repl *r = o->r;
	r->store_req = NULL;
	r->store_op = NULL;
	if (ok)
		r->acked_stored = max_u64(r->acked_stored, o->value);
	else
		log_warnx("replication: storing the acknowledged position: %s", errmsg);
	free(o);
}

static void on_trimmed(void *arg, int ok, const char *errmsg)
{
	struct op *o = arg;
	struct repl *r = o->r;
	r->trim_req = NULL;
	r->trim_op = NULL;
	free(o);
	if (!ok)
		log_warnx("replication: trimming the outbox: %s", errmsg);
}

/* Housekeeping: persist the acked position (at most every tick), trim the outbox. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct repl *r = arg;
	r->ticks++;
	if (r->loaded && r->acked > r->acked_stored && !r->store_req) {
		struct op *o = op_new(r, 0);
		if (o) {
			o->value = r->acked;
			r->store_op = o;
			r->store_req = repl_acked_store(r->pool, r->cfg.peer_id, r->acked, on_stored,
							o);
			if (!r->store_req) {
				free(o);
				r->store_op = NULL;
			}
		}
	}
	if (r->loaded && r->ticks % REPL_TRIM_EVERY_TICKS == 0 && !r->trim_req &&
	    (r->acked > r->trimmed_at || r->ticks % (REPL_TRIM_EVERY_TICKS * 60) == 0)) {
		struct op *o = op_new(r, 0);
		if (o) {
			r->trim_op = o;
			r->trim_req = repl_trim(r->pool, r->acked, r->cfg.max_keep, on_trimmed, o);
			if (!r->trim_req) {
				free(o);
				r->trim_op = NULL;
			} else {
				r->trimmed_at = r->acked;
			}
		}
	}
}

struct repl *repl_new(struct event_base *base, struct pg_pool *pool,
		      const struct repl_config *cfg, repl_send_fn send, void *send_arg)
{
	if (cfg->node_id == 0 || cfg->peer_id == 0 || cfg->node_id == cfg->peer_id || !send)
		return NULL;
	struct repl *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->base = base;
	r->pool = pool;
	r->cfg = *cfg;
	struct repl_config def;
	repl_config_defaults(&def);
	if (r->cfg.poll_ms <= 0)
		r->cfg.poll_ms = def.poll_ms;
	if (r->cfg.batch_max_changes <= 0 || r->cfg.batch_max_changes > REPL_MAX_CHANGES)
		r->cfg.batch_max_changes = def.batch_max_changes;
	if (r->cfg.batch_max_bytes == 0 || r->cfg.batch_max_bytes > REPL_FRAME_MAX)
		r->cfg.batch_max_bytes = def.batch_max_bytes;
	if (r->cfg.window_batches <= 0 || r->cfg.window_batches > REPL_INFLIGHT_MAX)
		r->cfg.window_batches = def.window_batches;
	if (r->cfg.window_bytes == 0)
		r->cfg.window_bytes = def.window_bytes;
	if (r->cfg.max_keep <= 0)
		r->cfg.max_keep = def.max_keep;
	if (r->cfg.retry_ms <= 0)
		r->cfg.retry_ms = def.retry_ms;
	r->send = send;
	r->send_arg = send_arg;
	TAILQ_INIT(&r->rxq);
	r->ev_poll = evtimer_new(base, on_poll, r);
	r->ev_kick = evtimer_new(base, on_kick, r);
	r->ev_retry = evtimer_new(base, on_retry, r);
	r->ev_tick = event_new(base, -1, EV_PERSIST, on_tick, r);
	if (!r->ev_poll || !r->ev_kick || !r->ev_retry || !r->ev_tick) {
		repl_free(r);
		return NULL;
	}
	timer_in(r->ev_tick, REPL_TICK_MS);
	load_state(r); /* for trimming even before the peer shows up */
	return r;
}

static void cancel_op(struct repl_q **req, struct op **op)
{
	repl_q_cancel(*req);
	*req = NULL;
	if (*op) {
		rx_item_free((*op)->item);
		free(*op);
	}
	*op = NULL;
}

void repl_free(struct repl *r)
{
	if (!r)
		return;
	ship_stop(r);
	rxq_clear(r);
	cancel_op(&r->load_req, &r->load_op);
	cancel_op(&r->apply_req, &r->apply_op);
	cancel_op(&r->store_req, &r->store_op);
	cancel_op(&r->trim_req, &r->trim_op);
	if (r->ev_poll)
		event_free(r->ev_poll);
	if (r->ev_kick)
		event_free(r->ev_kick);
	if (r->ev_retry)
		event_free(r->ev_retry);
	if (r->ev_tick)
		event_free(r->ev_tick);
	free(r);
}

/* ---- status ---- */

void repl_positions(const struct repl *r, uint64_t pos[4])
{
	pos[0] = max_u64(r->head, r->local.head);
	pos[1] = r->applied;
	pos[2] = r->acked;
	pos[3] = r->local.epoch;
}

void repl_on_peer_positions(struct repl *r, const uint64_t pos[4])
{
	if (r->peer_hello_ok && pos[3] == r->peer_hello.epoch) {
		r->peer_head = max_u64(r->peer_head, pos[0]);
		if (r->peer_head > r->applied && !r->behind_since_ms)
			r->behind_since_ms = clock_mono_ms();
	}
}

void repl_status_get(const struct repl *r, struct repl_status *st)
{
	*st = r->st;
	st->ship = r->ship;
	st->receiving_resync = r->receiving_resync;
	st->peer_hello = r->peer_hello_ok;
	st->epoch = r->local.epoch;
	st->head = max_u64(r->head, r->local.head);
	st->sent = r->sent;
	st->acked = r->acked;
	st->peer_epoch = r->peer_epoch;
	st->peer_head = r->peer_head;
	st->applied = r->applied;
	st->lag_out = st->head > r->acked ? st->head - r->acked : 0;
	st->lag_in = r->peer_head > r->applied ? r->peer_head - r->applied : 0;
	st->lag_in_ms = 0;
	if (st->lag_in) {
		const struct rx_item *it = TAILQ_FIRST(&r->rxq);
		if (it && it->batch && it->batch->count && it->batch->changes[0].hlc)
			st->lag_in_ms = clock_wall_ms() - (int64_t)(it->batch->changes[0].hlc >> 16);
		else if (r->behind_since_ms)
			st->lag_in_ms = clock_mono_ms() - r->behind_since_ms;
		if (st->lag_in_ms < 0)
			st->lag_in_ms = 0;
	}
}

int repl_caught_up(const struct repl *r, uint64_t target)
{
	if (!r->peer_hello_ok || r->receiving_resync || r->peer_epoch != r->peer_hello.epoch)
		return 0;
	return r->applied >= (target ? target : r->peer_head);
}
