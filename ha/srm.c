/* Wiring of srmd's single-node core (see srm.h). */
#include "ha/srm.h"

#include "ha/db_health.h"
#include "ha/outbox_trim.h"
#include "ha/engine_child.h"
#include "ha/http_admin.h"
#include "ha/notify.h"
#include "ha/pair.h"
#include "ha/prov.h"
#include "ha/sd_notify.h"
#include "ha/ctl_profile.h"
#include "ha/ctl_bulk.h"
#include "lib/log.h"
#include "lib/pg.h"
#include "lib/schema.h"
#include "replication/replication.h"

#include <errno.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SRM_POOL_CONNS 3 /* health checks, operator commands, the pair's counters */

int srm_db_prepare(const struct duet_config *cfg, int timeout_s, char *err, size_t errlen)
{
	time_t deadline = time(NULL) + timeout_s;
	PGconn *conn = NULL;
	for (int attempt = 1;; attempt++) {
		conn = PQconnectdb(cfg->db_conninfo);
		if (PQstatus(conn) == CONNECTION_OK)
			break;
		char msg[512];
		snprintf(msg, sizeof msg, "%s", PQerrorMessage(conn));
		msg[strcspn(msg, "\r\n")] = '\0';
		PQfinish(conn);
		if (time(NULL) >= deadline) {
			snprintf(err, errlen, "database unreachable after %d s: %s", timeout_s, msg);
			return -1;
		}
		log_warnx("database: connection attempt %d failed: %s; retrying", attempt, msg);
		sleep(1);
	}
	int before = schema_current_version(conn, err, errlen);
	int rc = before < 0 ? -1 : schema_migrate(conn, err, errlen);
	if (rc == 0 && before != schema_latest_version())
		log_info("database: schema migrated from version %d to %d", before,
			 schema_latest_version());
	else if (rc == 0)
		log_info("database: schema at version %d", before);
	/* On a pair the capture triggers stamp every change with this node's id: set it before
	 * the engine writes anything (docs/replication-protocol.md §1). */
	if (rc == 0 && srm_is_pair(cfg)) {
		if (cfg->node_id < 1 || cfg->node_id > 2) {
			snprintf(err, errlen, "node id %ld: a pair has nodes 1 and 2", cfg->node_id);
			rc = -1;
		} else if (repl_node_set(conn, (uint32_t)cfg->node_id, err, errlen) < 0) {
			rc = -1;
		} else {
			log_info("database: replication node id %ld", cfg->node_id);
		}
	}
	PQfinish(conn);
	return rc;
}

int srm_is_pair(const struct duet_config *cfg)
{
	return cfg->peer_address[0] || cfg->peer_listen[0];
}

void srm_status_refresh(struct srm *srm)
{
	/* Stopping the engine on request is not a failure: keep the last state. */
	if (srm->stopping)
		return;
	const char *health = engine_child_health(srm->engine);
	enum engine_child_state st = engine_child_state(srm->engine);
	struct node_inputs in = {
		/* "-": said ready, first health answer still to come. */
		.engine_ready = st == ENGINE_READY &&
				(strcmp(health, "ok") == 0 || strcmp(health, "-") == 0 ||
				 strcmp(health, "db-down") == 0),
		.engine_fault = st == ENGINE_FAULT,
		.database_up = db_health_up(srm->db) && strcmp(health, "db-down") != 0,
	};
	const char *from = srm->status.state, *from_reason = srm->status.reason;
	if (node_status_update(&srm->status, &in, time(NULL)))
		srm_transition(srm, from, from_reason, srm->status.state, srm->status.reason);
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void srm_transition(struct srm *srm, const char *from, const char *from_reason,
		    const char *to, const char *reason)
{
	if (srm->notify)
		notify_transition(srm->notify, from, from_reason, to, reason);
	history_add(&srm->history, wall_ms(), from, from_reason, to, reason);
	sd_notify_status(srm->cfg.node_id, to, reason);
}

/* The first history entry: the start, in the state the node starts in. */
static void history_start(struct srm *srm)
{
	const char *state = srm->status.state, *reason = srm->status.reason;
	if (srm->pair) {
		state = ha_state_name(pair_fsm(srm->pair)->state);
		reason = ha_reason_name(pair_fsm(srm->pair)->reason);
	}
	history_add(&srm->history, wall_ms(), "", "", state, reason);
	sd_notify_status(srm->cfg.node_id, state, reason);
}

static void on_engine_change(void *arg)
{
	struct srm *srm = arg;
	if (!srm->db)
		return;
	if (srm->pair)
		pair_services_changed(srm->pair);
	else
		srm_status_refresh(srm);
}

static void on_db_change(void *arg)
{
	struct srm *srm = arg;
	if (srm->pair)
		pair_services_changed(srm->pair);
	else
		srm_status_refresh(srm);
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	struct srm *srm = arg;
	engine_child_reap(srm->engine);
	notify_reap(srm->notify);
}

static void on_engine_stopped(void *arg)
{
	struct srm *srm = arg;
	log_info("srmd: engine stopped, exiting");
	event_base_loopbreak(srm->base);
}

/* Pair: the engine stopped or the goodbye was flushed; exit when both are done. */
static void on_stop_part(void *arg)
{
	struct srm *srm = arg;
	if (--srm->stop_pending > 0)
		return;
	log_info("srmd: engine stopped and peer told, exiting");
	event_base_loopbreak(srm->base);
}

static void on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct srm *srm = arg;
	if (srm->stopping) {
		log_info("srmd: signal %d: already stopping", (int)sig);
		return;
	}
	srm->stopping = 1;
	sd_notify_send("STOPPING=1");
	if (!srm->pair) {
		log_info("srmd: signal %d: stopping the engine", (int)sig);
		engine_child_stop(srm->engine, on_engine_stopped, srm);
		return;
	}
	/* The goodbye first: the peer takes this node's users at once (Peer Reboot) instead
	 * of waiting for a Peer Down. */
	log_info("srmd: signal %d: goodbye to the peer, stopping the engine", (int)sig);
	srm->stop_pending = 2;
	pair_goodbye(srm->pair, on_stop_part, srm);
	engine_child_stop(srm->engine, on_stop_part, srm);
}

/* Default engine: the presenced next to our own executable. */
static int engine_program_default(char *out, size_t len, char *err, size_t errlen)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n < 0) {
		snprintf(err, errlen, "readlink /proc/self/exe: %s", strerror(errno));
		return -1;
	}
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	if ((size_t)snprintf(out, len, "%s/presenced", slash ? self : ".") >= len) {
		snprintf(err, errlen, "engine path too long");
		return -1;
	}
	return 0;
}

int srm_start(struct srm *srm, struct event_base *base, const char *config_path, char *err,
	      size_t errlen)
{
	srm->base = base;
	srm->started = time(NULL);
	node_status_init(&srm->status, srm->started);
	history_init(&srm->history);
	/* The engine's cwd is ours, but an absolute path survives a later chdir in either. */
	if (!realpath(config_path, srm->config_path)) {
		snprintf(err, errlen, "%s: %s", config_path, strerror(errno));
		return -1;
	}
	if (srm->cfg.engine_program[0])
		snprintf(srm->engine_program, sizeof srm->engine_program, "%s",
			 srm->cfg.engine_program);
	else if (engine_program_default(srm->engine_program, sizeof srm->engine_program, err,
					errlen) < 0)
		return -1;

	srm->pool = pg_pool_new(base, srm->cfg.db_conninfo, SRM_POOL_CONNS);
	if (!srm->pool) {
		snprintf(err, errlen, "cannot create the database pool");
		return -1;
	}
	long interval = srm->cfg.engine_health_interval_ms;
	pg_pool_set_queue_timeout(srm->pool, (int)(3 * interval > 1000 ? 3 * interval : 1000));

	char errbuf[256];
	srm->ctl = ctl_server_new(base, srm->cfg.control_socket, srm, errbuf, sizeof errbuf);
	if (!srm->ctl) {
		snprintf(err, errlen, "control socket: %s", errbuf);
		return -1;
	}
	ctl_server_add_commands(srm->ctl, ctl_user_commands);
	ctl_server_add_commands(srm->ctl, ctl_status_commands);
	ctl_server_add_commands(srm->ctl, ctl_ha_commands);
	ctl_server_add_commands(srm->ctl, ctl_profile_commands);
	ctl_server_add_commands(srm->ctl, ctl_history_commands);
	ctl_server_add_commands(srm->ctl, ctl_bulk_commands);
	srm->notify = notify_new(base, srm->cfg.ha_notify, srm->cfg.ha_notify_timeout_ms,
				 srm->cfg.node_id);
	if (!srm->notify) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (http_admin_start(srm, err, errlen) < 0)
		return -1;

	srm->ev_sigchld = evsignal_new(base, SIGCHLD, on_sigchld, srm);
	srm->ev_sigterm = evsignal_new(base, SIGTERM, on_sigterm, srm);
	srm->ev_sigint = evsignal_new(base, SIGINT, on_sigterm, srm);
	if (!srm->ev_sigchld || !srm->ev_sigterm || !srm->ev_sigint ||
	    evsignal_add(srm->ev_sigchld, NULL) < 0 || evsignal_add(srm->ev_sigterm, NULL) < 0 ||
	    evsignal_add(srm->ev_sigint, NULL) < 0) {
		snprintf(err, errlen, "cannot install signal handlers");
		return -1;
	}

	srm->engine = engine_child_new(base, srm->engine_program, srm->config_path, interval,
				       on_engine_change, srm);
	if (!srm->engine) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	srm->db = db_health_new(base, srm->pool, interval, on_db_change, srm);
	srm->bulk_check = bulk_check_new(srm);
	if (!srm->db || !srm->bulk_check) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	log_info("srmd: node %ld (%s), domain %s, engine %s", srm->cfg.node_id,
		 srm->cfg.node_name, srm->cfg.domain, srm->engine_program);
	if (srm_is_pair(&srm->cfg)) {
		/* The state machine decides what the engine serves, and starts it. */
		srm->prov = prov_new(srm);
		srm->profile = profile_sync_new(srm);
		if (!srm->prov || !srm->profile) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		srm->pair = pair_new(srm, err, errlen);
		if (!srm->pair)
			return -1;
		history_start(srm);
		pair_start(srm->pair);
		return 0;
	}
	srm->trim = outbox_trim_new(base, srm->pool, srm->cfg.outbox_trim_interval_ms);
	if (!srm->trim) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	char serve[32];
	snprintf(serve, sizeof serve, "%ld", srm->cfg.node_id);
	engine_child_set_serve(srm->engine, serve);
	history_start(srm);
	engine_child_start(srm->engine);
	srm_status_refresh(srm);
	return 0;
}

void srm_free(struct srm *srm)
{
	/* Commands first: they hold requests on the engine and the pool; the HTTP admin's run
	 * through the control server. */
	http_admin_free(srm->http);
	srm->http = NULL;
	ctl_server_free(srm->ctl);
	srm->ctl = NULL;
	bulk_check_free(srm->bulk_check); /* after the commands that wait on it */
	srm->bulk_check = NULL;
	prov_free(srm->prov);
	srm->prov = NULL;
	profile_sync_free(srm->profile);
	srm->profile = NULL;
	outbox_trim_free(srm->trim);
	srm->trim = NULL;
	pair_free(srm->pair);
	srm->pair = NULL;
	db_health_free(srm->db);
	srm->db = NULL;
	engine_child_free(srm->engine);
	srm->engine = NULL;
	pg_pool_free(srm->pool);
	srm->pool = NULL;
	notify_free(srm->notify);
	srm->notify = NULL;
	if (srm->ev_sigchld)
		event_free(srm->ev_sigchld);
	if (srm->ev_sigterm)
		event_free(srm->ev_sigterm);
	if (srm->ev_sigint)
		event_free(srm->ev_sigint);
	srm->ev_sigchld = srm->ev_sigterm = srm->ev_sigint = NULL;
}
