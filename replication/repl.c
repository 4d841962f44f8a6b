/* The replication session with the peer (docs/replication-protocol.md §4): one object is
 * both the shipper of our outbox and the receiver of the peer's.  This file holds its
 * lifecycle and the session (state loaded from the database, peer up/down, timers); the
 * handshake, shipping, receiving, frames in, housekeeping and status are in the repl_*.c
 * files named in repl_session.h.  Async callbacks of an older session or shipping generation
 * are recognised by a generation number and ignored. */
#include "replication/repl_session.h"

#include "lib/log.h"
#include "lib/pg.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define REPL_TICK_MS 100

struct op *repl_op_new(struct repl *r, uint32_t gen)
{
	struct op *o = calloc(1, sizeof *o);
	if (o) {
		o->r = r;
		o->gen = gen;
	}
	return o;
}

void repl_timer_in(struct event *ev, int ms)
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
		repl_timer_in(r->ev_retry, r->cfg.retry_ms);
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
	if (repl_send_hello(r) < 0)
		log_debug("replication: HELLO not sent (no link)");
	if (r->peer_hello_pending) {
		r->peer_hello_pending = 0;
		repl_hello_act(r);
	}
}

static void load_state(struct repl *r)
{
	repl_q_cancel(r->load_req);
	free(r->load_op);
	r->load_req = NULL;
	r->load_op = repl_op_new(r, r->session);
	if (!r->load_op)
		return;
	r->load_req = repl_local_load(r->pool, r->cfg.peer_id, on_loaded, r->load_op);
	if (!r->load_req) {
		free(r->load_op);
		r->load_op = NULL;
		repl_timer_in(r->ev_retry, r->cfg.retry_ms);
	}
}

void repl_peer_up(struct repl *r)
{
	r->up = 1;
	r->session++;
	repl_ship_stop(r);
	r->ship = REPL_HANDSHAKE;
	r->peer_hello_ok = 0;
	r->peer_hello_pending = 0;
	r->awaiting_restart = 0;
	repl_rxq_clear(r);
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
	repl_ship_stop(r);
	r->ship = REPL_OFF;
	r->peer_hello_ok = 0;
	r->peer_hello_pending = 0;
	repl_rxq_clear(r);
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
		repl_send_hello(r);
	if (r->ship == REPL_HANDSHAKE && r->peer_hello_ok)
		repl_hello_act(r);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct repl *r = arg;
	repl_ship_pump(r);
	repl_resync_pump(r);
}

static void on_poll(evutil_socket_t fd, short what, void *arg) { repl_ship_pump(arg); }

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
	r->ev_tick = event_new(base, -1, EV_PERSIST, repl_housekeeping_tick, r);
	if (!r->ev_poll || !r->ev_kick || !r->ev_retry || !r->ev_tick) {
		repl_free(r);
		return NULL;
	}
	repl_timer_in(r->ev_tick, REPL_TICK_MS);
	load_state(r); /* for trimming even before the peer shows up */
	return r;
}

static void cancel_op(struct repl_q **req, struct op **op)
{
	repl_q_cancel(*req);
	*req = NULL;
	if (*op) {
		repl_rx_item_free((*op)->item);
		free(*op);
	}
	*op = NULL;
}

void repl_free(struct repl *r)
{
	if (!r)
		return;
	repl_ship_stop(r);
	repl_rxq_clear(r);
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
