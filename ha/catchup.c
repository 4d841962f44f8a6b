/* Catch-up wait on replication (see catchup.h). */
#include "ha/catchup.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "replication/replication.h"

enum { CATCHUP_NONE = 0, CATCHUP_DONE = 1, CATCHUP_GAVE_UP = 2 };

struct catchup {
	struct repl *repl;
	struct event *ev;
	catchup_done_fn done;
	void *arg;
	int64_t max_ms;
	int waiting;
	int target_known;
	uint64_t target;
	int64_t began_ms;
	uint64_t waits;
	int last_result;
	int64_t last_ms;
	uint64_t last_target;
};

static void poll_arm(struct catchup *c)
{
	struct timeval tv = {0, CATCHUP_POLL_MS * 1000};
	evtimer_add(c->ev, &tv);
}

static void wait_end(struct catchup *c, int result)
{
	c->waiting = 0;
	c->last_result = result;
	c->last_ms = clock_mono_ms() - c->began_ms;
	c->last_target = c->target;
	evtimer_del(c->ev);
}

static void catchup_on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct catchup *c = arg;
	if (!c->waiting)
		return;
	struct repl_status st;
	repl_status_get(c->repl, &st);
	if (c->target_known && repl_caught_up(c->repl, c->target)) {
		wait_end(c, CATCHUP_DONE);
		log_info("catchup: replication from the peer caught up: applied %" PRIu64
			 " >= %" PRIu64 " after %" PRId64 " ms",
			 st.applied, c->target, c->last_ms);
		c->done(c->arg);
		return;
	}
	if (clock_mono_ms() - c->began_ms >= c->max_ms) {
		wait_end(c, CATCHUP_GAVE_UP);
		log_warnx("catchup: replication did not catch up within %" PRId64
			  " ms (applied %" PRIu64 ", target %s%" PRIu64 ", %s)",
			  c->max_ms, st.applied, c->target_known ? "" : "unknown, peer head ",
			  c->target_known ? c->target : st.peer_head,
			  st.peer_hello ? (st.receiving_resync ? "full resync running"
							       : "session up")
					: "no replication session");
		return;
	}
	poll_arm(c);
}

struct catchup *catchup_new(struct event_base *base, struct repl *repl, int64_t max_ms,
			    catchup_done_fn done, void *arg)
{
	if (!repl || !done)
		return NULL;
	struct catchup *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->repl = repl;
	c->done = done;
	c->arg = arg;
	c->max_ms = max_ms > 0 ? max_ms : 60000;
	c->ev = evtimer_new(base, catchup_on_poll, c);
	if (!c->ev) {
		free(c);
		return NULL;
	}
	return c;
}

void catchup_free(struct catchup *c)
{
	if (!c)
		return;
	event_free(c->ev);
	free(c);
}

int catchup_wait(struct catchup *c)
{
	struct repl_status st;
	repl_status_get(c->repl, &st);
	c->waiting = 1;
	c->target_known = 0;
	/* What batches already announced is a floor; the next heartbeat raises it. */
	c->target = st.peer_head;
	c->began_ms = clock_mono_ms();
	c->waits++;
	log_info("catchup: waiting for replication from the peer (applied %" PRIu64
		 ", peer head so far %" PRIu64 ")",
		 st.applied, st.peer_head);
	poll_arm(c);
	return 0;
}

void catchup_cancel(struct catchup *c)
{
	if (!c->waiting)
		return;
	wait_end(c, CATCHUP_GAVE_UP);
	log_info("catchup: wait abandoned after %" PRId64 " ms", c->last_ms);
}

int catchup_waiting(const struct catchup *c) { return c->waiting; }

void catchup_on_peer_positions(struct catchup *c, const uint64_t pos[4])
{
	/* epoch 0: the peer has no outbox to announce (yet); wait for a heartbeat that does. */
	if (!c->waiting || c->target_known || pos[3] == 0)
		return;
	c->target_known = 1;
	if (pos[0] > c->target)
		c->target = pos[0];
	log_info("catchup: target %" PRIu64 " (the peer's head after the wait began)", c->target);
}

void catchup_status_get(const struct catchup *c, struct catchup_status *st)
{
	struct repl_status rs;
	repl_status_get(c->repl, &rs);
	st->waiting = c->waiting;
	st->target_known = c->target_known;
	st->target = c->target;
	st->applied = rs.applied;
	st->waited_ms = c->waiting ? clock_mono_ms() - c->began_ms : 0;
	st->waits = c->waits;
	st->last_result = c->last_result;
	st->last_ms = c->last_ms;
	st->last_target = c->last_target;
}
