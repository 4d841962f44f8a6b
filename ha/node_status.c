#include "ha/node_status.h"

#include "lib/log.h"

#include <string.h>

void node_status_init(struct node_status *ns, time_t now)
{
	ns->state = NODE_STATE_INITIALIZING;
	ns->reason = NODE_REASON_INITIALIZATION;
	ns->since = now;
	ns->ever_ready = 0;
}

int node_status_update(struct node_status *ns, const struct node_inputs *in, time_t now)
{
	const char *state, *reason;
	if (in->engine_ready)
		ns->ever_ready = 1;
	if (in->engine_fault) {
		/* The engine refuses to run with this configuration: only an operator can help. */
		state = NODE_STATE_FAILED_MODE;
		reason = NODE_REASON_START_FAILED;
	} else if (!ns->ever_ready) {
		state = NODE_STATE_INITIALIZING;
		reason = NODE_REASON_INITIALIZATION;
	} else if (!in->database_up) {
		/* Checked first: a database outage also takes the engine's health down. */
		state = NODE_STATE_FAILED_MODE;
		reason = NODE_REASON_DATABASE_FAILURE;
	} else if (!in->engine_ready) {
		state = NODE_STATE_FAILED_MODE;
		reason = NODE_REASON_CRITICAL_SERVICE_DOWN;
	} else {
		state = NODE_STATE_NORMAL;
		reason = NODE_REASON_NORMAL;
	}
	if (strcmp(state, ns->state) == 0 && strcmp(reason, ns->reason) == 0)
		return 0;
	log_info("state: %s (%s) -> %s (%s)", ns->state, ns->reason, state, reason);
	ns->state = state;
	ns->reason = reason;
	ns->since = now;
	return 1;
}
