/* srmd's core: the pieces srmd.c's main() wires together on one event loop, and the context
 * the control commands see.  On a single node (no [peer]) node_status holds the state; on a
 * pair, pair (ha/pair.h: the state machine and the peer link) owns it. */
#ifndef DUET_SRM_H
#define DUET_SRM_H

#include <limits.h>
#include <time.h>

#include "ha/ctl_server.h"
#include "ha/node_status.h"
#include "lib/config.h"

struct event;
struct event_base;
struct pg_pool;
struct engine_child;
struct db_health;
struct pair;
struct prov;
struct profile_sync;

struct srm {
	struct event_base *base;
	struct duet_config cfg;
	char config_path[PATH_MAX];
	char engine_program[PATH_MAX];
	struct pg_pool *pool;
	struct engine_child *engine;
	struct db_health *db;
	struct ctl_server *ctl;
	struct node_status status; /* single node only */
	struct pair *pair;         /* NULL on a single node */
	struct prov *prov;         /* provisioning forwarded to the peer (pair only) */
	struct profile_sync *profile; /* re-login limits agreed with the peer (pair only) */
	struct outbox_trim *trim;  /* single node: nobody acknowledges the outbox */
	int stop_pending;          /* pair: parts still stopping (engine, goodbye) */
	struct event *ev_sigchld, *ev_sigterm, *ev_sigint;
	time_t started;
	int stopping;
	int exit_code;
};

/* Start-up, blocking: connect (retrying up to timeout_s) and apply schema migrations. */
int srm_db_prepare(const struct duet_config *cfg, int timeout_s, char *err, size_t errlen);
/* Build everything and start the engine.  0 or -1 with err set. */
int srm_start(struct srm *srm, struct event_base *base, const char *config_path, char *err,
	      size_t errlen);
/* After the loop has ended: free everything (kills an engine that is somehow still up). */
void srm_free(struct srm *srm);
/* Whether a peer is configured ([peer] peer_address or listen). */
int srm_is_pair(const struct duet_config *cfg);
/* Recompute node_status from the engine and database supervisors. */
void srm_status_refresh(struct srm *srm);

/* Command tables (ctl_users.c, ctl_status.c). */
extern const struct ctl_command ctl_user_commands[];
extern const struct ctl_command ctl_status_commands[];
extern const struct ctl_command ctl_ha_commands[];

#endif
