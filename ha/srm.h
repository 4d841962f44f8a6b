/* srmd's core: the pieces srmd.c's main() wires together on one event loop, and the context
 * the control commands see.  On a single node (no [peer]) node_status holds the state; on a
 * pair, pair (ha/pair.h: the state machine and the peer link) owns it. */
#ifndef DUET_SRM_H
#define DUET_SRM_H

#include <limits.h>
#include <time.h>

#include "ha/ctl_server.h"
#include "ha/history.h"
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
struct notify;
struct http_admin;

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
	struct bulk_check *bulk_check; /* periodic duplicate / invalid user ID check */
	struct notify *notify;     /* transition log lines and [ha] notify scripts */
	struct http_admin *http;   /* [http]: JSON API, status page, /metrics; NULL when off */
	struct history history;    /* recent transitions (srmctl history) */
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
/* The node's state or reason changed (pair.c, or the single node's status): the structured
 * log line and the notify script (ha/notify.h). */
void srm_transition(struct srm *srm, const char *from, const char *from_reason,
		    const char *to, const char *reason);

/* Command tables (ctl_users.c, ctl_status.c). */
extern const struct ctl_command ctl_user_commands[];
extern const struct ctl_command ctl_status_commands[];
extern const struct ctl_command ctl_ha_commands[];
extern const struct ctl_command ctl_history_commands[];

#endif
