/* What srmd does on every change of the node's HA state or reason: one structured log line
 * (key=value, for journald and log search) and, when [ha] notify names a script, that script
 * run with the old state, the new state and the reason, as keepalived's notify does.
 *
 * Scripts run asynchronously, one at a time in transition order (a queue of at most
 * NOTIFY_QUEUE; past that the oldest waiting run is dropped and logged), in their own process
 * group with stdin on /dev/null and srmd's stdout/stderr; one still running after
 * [ha] notify_timeout gets SIGTERM, and SIGKILL a second later.  The caller forwards SIGCHLD
 * to notify_reap().  docs/http-admin.md "Notify hooks". */
#ifndef DUET_NOTIFY_H
#define DUET_NOTIFY_H

#include <stdint.h>

struct event_base;
struct notify;

#define NOTIFY_QUEUE 32

struct notify_counters {
	uint64_t transitions; /* state or reason changes since srmd started */
	uint64_t runs_ok;     /* script exited 0 */
	uint64_t runs_failed; /* could not start, exited non-zero or killed by a signal */
	uint64_t runs_timeout; /* killed after the timeout */
	uint64_t runs_dropped; /* never run: the queue was full */
};

/* script may be "" (log lines only).  NULL when out of memory. */
struct notify *notify_new(struct event_base *base, const char *script, long timeout_ms,
			  long node_id);
/* A script still running is left to finish on its own (it is not killed); waiting runs are
 * dropped. */
void notify_free(struct notify *n);

/* The node went from (from, from_reason) to (to, reason): log, count, queue the script. */
void notify_transition(struct notify *n, const char *from, const char *from_reason,
		       const char *to, const char *reason);
/* Collect a finished script (call on SIGCHLD; harmless otherwise). */
void notify_reap(struct notify *n);
void notify_counters_get(const struct notify *n, struct notify_counters *out);

#endif
