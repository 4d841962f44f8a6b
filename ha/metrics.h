/* Prometheus metrics of the node (text exposition format 0.0.4; the list is in
 * docs/http-admin.md): state and reason as labelled gauges, transitions, the peer link's
 * heartbeat round trip, sessions and logins per home node and the login throttle (asked from
 * the engine with `stats`), replication lag (the outgoing side from the database), critical
 * services and their restarts, notify runs. */
#ifndef DUET_METRICS_H
#define DUET_METRICS_H

struct evbuffer;
struct metrics_op;
struct srm;

/* text is the whole exposition, valid only during the call; the op is freed after it. */
typedef void (*metrics_done_fn)(void *arg, struct evbuffer *text);

/* Two steps so that the caller holds the handle before done can run: new, then start
 * (which may call done before it returns).  NULL when out of memory. */
struct metrics_op *metrics_op_new(struct srm *srm, metrics_done_fn done, void *arg);
void metrics_op_start(struct metrics_op *op);
/* done will not be called; op is freed.  Only before done ran. */
void metrics_cancel(struct metrics_op *op);

#endif
