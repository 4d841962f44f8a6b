/* The node's HA status as the operator sees it: state and reason with the manual's names
 * (inventory-part2 §17.2), and since when.  Single-node rules for now; the pair state machine
 * will own these fields later.  Pure code: no I/O besides one log line per change. */
#ifndef DUET_NODE_STATUS_H
#define DUET_NODE_STATUS_H

#include <time.h>

#define NODE_STATE_INITIALIZING "Initializing"
#define NODE_STATE_NORMAL "Normal"
#define NODE_STATE_FAILED_MODE "Running in Failed Mode"

#define NODE_REASON_INITIALIZATION "Initialization"
#define NODE_REASON_NORMAL "Normal"
#define NODE_REASON_CRITICAL_SERVICE_DOWN "Critical Service Down"
#define NODE_REASON_DATABASE_FAILURE "Database Failure"
#define NODE_REASON_START_FAILED "Start of Critical Services Failed"

struct node_status {
	const char *state;  /* one of NODE_STATE_* (static strings) */
	const char *reason; /* one of NODE_REASON_* */
	time_t since;       /* wall-clock time of the last change */
	int ever_ready;     /* the engine has said ready at least once */
};

/* What the supervisors observe now. */
struct node_inputs {
	int engine_ready;   /* running, said ready, health not failing */
	int engine_fault;   /* exited with the configuration-fault code: will not restart */
	int database_up;    /* srmd's own check and the engine's view agree it is reachable */
};

void node_status_init(struct node_status *ns, time_t now);
/* Recompute from inputs; returns 1 (and logs "state: A (r) -> B (r)") when it changed. */
int node_status_update(struct node_status *ns, const struct node_inputs *in, time_t now);

#endif
