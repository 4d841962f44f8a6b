/* The answer to the state machine's HA_ACT_CATCHUP_WAIT: "tell me when replication from the
 * peer has caught up with the peer's current position".
 *
 * PLACEHOLDER until replication/ lands (docs/state-machine.md "Wiring"): replication does not
 * exist yet, so there is nothing to wait for and catchup_wait() reports caught-up at once
 * (on the next loop turn, never from inside the call).  Replication replaces catchup.c with
 * one that compares the applied position with the peer's heartbeat position. */
#ifndef DUET_CATCHUP_H
#define DUET_CATCHUP_H

struct event_base;
struct catchup;

typedef void (*catchup_done_fn)(void *arg);

struct catchup *catchup_new(struct event_base *base, catchup_done_fn done, void *arg);
void catchup_free(struct catchup *c);
/* Start waiting (again); done(arg) runs once caught up.  0 or -1. */
int catchup_wait(struct catchup *c);
/* Stop waiting: done will not run for the current wait. */
void catchup_cancel(struct catchup *c);

#endif
