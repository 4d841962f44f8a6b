/* The replication session object, shared by the files that drive it (not for srmd: use
 * replication.h).  repl.c: lifecycle and session; repl_handshake.c: HELLO and full resync
 * (producer); repl_ship.c: shipping the outbox; repl_receive.c: the apply queue;
 * repl_frames.c: frames in; repl_housekeeping.c: acked position and trimming;
 * repl_status.c: positions and lag. */
#ifndef DUET_REPL_SESSION_H
#define DUET_REPL_SESSION_H

#include "replication/repl_internal.h"

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#define REPL_INFLIGHT_MAX 64

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

static inline uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* ---- repl.c ---- */

struct op *repl_op_new(struct repl *r, uint32_t gen);
void repl_timer_in(struct event *ev, int ms);

/* ---- repl_handshake.c ---- */

int repl_send_hello(struct repl *r);
/* The peer's HELLO: decide incremental or full resync. */
void repl_hello_act(struct repl *r);
void repl_resync_pump(struct repl *r);

/* ---- repl_ship.c ---- */

void repl_ship_stop(struct repl *r);
/* The link refused a frame: resend from the acknowledged position a little later. */
void repl_ship_rewind(struct repl *r);
void repl_ship_pump(struct repl *r);
int repl_window_open(const struct repl *r);
void repl_infl_push(struct repl *r, int snap, uint64_t key, size_t bytes);
/* Forget in-flight batches (or chunks) up to value. */
void repl_infl_ack(struct repl *r, int snap, uint64_t value);
/* Run the pumps again from the event loop. */
void repl_kick(struct repl *r);

/* ---- repl_receive.c ---- */

void repl_rx_item_free(struct rx_item *it);
void repl_rxq_clear(struct repl *r);
/* Ask the peer to ship again from our durable position (now, or after retry_ms). */
void repl_rx_restart(struct repl *r, int later);
/* Queue a received frame for applying (takes it); -1 if the queue overflows. */
int repl_rx_enqueue(struct repl *r, struct rx_item *it);

/* ---- repl_housekeeping.c ---- */

/* Persist the acked position, trim the outbox (the tick timer's callback). */
void repl_housekeeping_tick(evutil_socket_t fd, short what, void *arg);

#endif
