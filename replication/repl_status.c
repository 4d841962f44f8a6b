/* Where a replication session stands: positions for heartbeats, status and lag, catch-up. */
#include "replication/repl_session.h"

#include "lib/clock.h"

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
