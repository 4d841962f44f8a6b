/* The answer to the state machine's HA_ACT_CATCHUP_WAIT: "tell me when replication from the
 * peer has everything the peer had written when the wait began" (Taking Back, and the
 * start-up gate of Initializing; docs/state-machine.md "Catch-up").
 *
 * The target is the peer's outbox head as announced in the first peer-link heartbeat that
 * arrives after the wait began (heartbeats and the peer's transition messages share one
 * ordered connection, so that head includes everything the peer wrote before it acked),
 * raised to the head already known from batches.  The wait polls repl_caught_up() every
 * CATCHUP_POLL_MS and reports done(arg) once it holds; it gives up silently after max_ms
 * (the state machine's own catch-up timer decides what that means). */
#ifndef DUET_CATCHUP_H
#define DUET_CATCHUP_H

#include <stdint.h>

struct event_base;
struct catchup;
struct repl;

#define CATCHUP_POLL_MS 50

typedef void (*catchup_done_fn)(void *arg);

struct catchup_status {
	int waiting;          /* a wait is running */
	int target_known;     /* the peer's head arrived since it began */
	uint64_t target;      /* applied position needed (valid when target_known) */
	uint64_t applied;     /* where replication is now */
	int64_t waited_ms;    /* of the running wait */
	uint64_t waits;       /* waits begun since start */
	int last_result;      /* of the last finished wait: 0 none, 1 caught up, 2 gave up */
	int64_t last_ms;      /* its duration */
	uint64_t last_target; /* its target */
};

/* repl may not be NULL. */
struct catchup *catchup_new(struct event_base *base, struct repl *repl, int64_t max_ms,
			    catchup_done_fn done, void *arg);
void catchup_free(struct catchup *c);
/* Start waiting (again: a running wait restarts with a new target); done(arg) runs once
 * caught up, never from inside this call.  0 or -1. */
int catchup_wait(struct catchup *c);
/* Stop waiting: done will not run for the current wait. */
void catchup_cancel(struct catchup *c);
int catchup_waiting(const struct catchup *c);
/* A peer-link heartbeat's repl_pos ([0] the peer's head, [3] its epoch). */
void catchup_on_peer_positions(struct catchup *c, const uint64_t pos[4]);
void catchup_status_get(const struct catchup *c, struct catchup_status *st);

#endif
