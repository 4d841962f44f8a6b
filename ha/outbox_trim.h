/* A node without a peer still captures every change into repl_outbox (the triggers cannot
 * know whether a peer will ever come), and nobody acknowledges it: trim it here.  A peer
 * added later starts from a full resync, which needs nothing from the outbox. */
#ifndef DUET_OUTBOX_TRIM_H
#define DUET_OUTBOX_TRIM_H

struct event_base;
struct pg_pool;
struct outbox_trim;

struct outbox_trim *outbox_trim_new(struct event_base *base, struct pg_pool *pool,
				    long interval_ms);
void outbox_trim_free(struct outbox_trim *t);

#endif
