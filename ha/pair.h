/* srmd's side of the pair: the HA state machine (ha/ha_fsm.h) wired to the peer link
 * (heartbeat/peer_link.h), the engine and database supervisors, operator commands and
 * libevent timers.  Events are queued and applied one at a time; the actions each returns
 * are executed in the order given (persist first).  docs/state-machine.md "Wiring". */
#ifndef DUET_PAIR_H
#define DUET_PAIR_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ha/ha_fsm.h"
#include "ha/ha_wire.h"

struct srm;
struct pair;
struct repl;
struct pg_pool;
struct catchup_status;
struct peer_link_stats;

/* What we know of the peer for `srmctl status`. */
struct pair_peer_view {
	int link_up;             /* the peer link's detector says up */
	int known;               /* a state frame arrived since the link came up */
	struct ha_wire_state st; /* the last one (kept after a loss, for display) */
	int ever;                /* st holds something */
	int64_t last_rx_ms;      /* monotonic ms of the last state frame */
	char down_reason[32];    /* how the link went down last ("timeout", "goodbye", ...) */
	uint64_t rtt_us;         /* smoothed round-trip time */
};

/* Build the state machine (restoring run_dir/ha.state) and the peer link.  NULL on error. */
struct pair *pair_new(struct srm *srm, char *err, size_t errlen);
/* First actions: start the engine, arm the Initializing timer, report services. */
void pair_start(struct pair *p);
void pair_free(struct pair *p);

/* The engine or database supervisor changed: feed service-up/down, start-failed. */
void pair_services_changed(struct pair *p);

/* An operator command (HA_EV_OP_*); HA_OK, HA_EREFUSED or HA_EINVAL.  why gets a sentence
 * for the operator when refused. */
int pair_operator(struct pair *p, enum ha_event_type type, int target, char *why, size_t len);

/* Clean stop: goodbye to the peer (it reports Peer Reboot), then done(arg) once flushed. */
void pair_goodbye(struct pair *p, void (*done)(void *arg), void *arg);

/* APP frame to the peer; 0 or -1 (no session, queue full). */
int pair_send_app(struct pair *p, uint16_t subtype, const void *payload, size_t len);
int pair_peer_reachable(const struct pair *p);
int pair_peer_node(const struct pair *p);

const struct ha_fsm *pair_fsm(const struct pair *p);
/* srm->cfg's [ha] relogin limits changed at runtime (srmctl profile apply): planned moves
 * spread over the new upper limit from now on; throttling reads srm->cfg directly. */
void pair_relogin_changed(struct pair *p);
time_t pair_since(const struct pair *p);
void pair_local_wire(const struct pair *p, struct ha_wire_state *out);
void pair_peer_view(const struct pair *p, struct pair_peer_view *out);
/* The peer link's counters: heartbeat round trips, frames, ups and downs (/metrics). */
void pair_link_stats(const struct pair *p, struct peer_link_stats *out);
/* Alarms currently raised, as a mask of 1 << enum ha_alarm. */
unsigned pair_alarms(const struct pair *p);
/* Replication with the peer (never NULL on a pair), its database pool, and the catch-up
 * wait of Taking Back / start-up (ha/catchup.h). */
struct repl *pair_repl(const struct pair *p);
struct pg_pool *pair_repl_pool(const struct pair *p);
void pair_catchup_status(const struct pair *p, struct catchup_status *st);
/* The address clients of a home node served by the peer are sent to. */
const char *pair_peer_client_address(const struct pair *p);

#endif
