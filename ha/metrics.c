/* /metrics (see metrics.h): gather the engine's counters and the outgoing replication lag,
 * then write every family with its HELP and TYPE. */
#include "ha/metrics.h"

#include "ha/db_health.h"
#include "ha/engine_child.h"
#include "ha/ha_fsm.h"
#include "ha/notify.h"
#include "ha/pair.h"
#include "ha/srm.h"
#include "heartbeat/peer_link.h"
#include "replication/replication.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX_KV 64
#define METRICS_HOMES 2 /* home nodes of a group */

struct engine_kv {
	char key[32];
	double value;
};

struct metrics_op {
	struct srm *srm;
	metrics_done_fn done;
	void *arg;
	struct engine_child_req *ereq;
	struct repl_q *lag_req;
	struct engine_kv kv[METRICS_MAX_KV];
	int nkv;
	int engine_answered;
	struct repl_lag lag;
	int lag_known;
};

/* ---- the engine's "stats k=v ..." ---- */

static void stats_parse(struct metrics_op *op, const char *reply)
{
	if (!reply || strncmp(reply, "stats ", 6) != 0)
		return;
	op->engine_answered = 1;
	for (const char *p = reply + 6; *p && op->nkv < METRICS_MAX_KV;) {
		size_t n = strcspn(p, " ");
		const char *eq = memchr(p, '=', n);
		if (eq && (size_t)(eq - p) < sizeof op->kv[0].key && eq > p) {
			char val[32], *end;
			size_t vl = n - (size_t)(eq + 1 - p);
			if (vl > 0 && vl < sizeof val) {
				memcpy(val, eq + 1, vl);
				val[vl] = '\0';
				double v = strtod(val, &end);
				if (*end == '\0' && v >= 0) {
					struct engine_kv *e = &op->kv[op->nkv++];
					memcpy(e->key, p, (size_t)(eq - p));
					e->key[eq - p] = '\0';
					e->value = v;
				}
			}
		}
		p += n;
		while (*p == ' ')
			p++;
	}
}

/* -1 when the engine did not report it. */
static double kv_get(const struct metrics_op *op, const char *key)
{
	for (int i = 0; i < op->nkv; i++)
		if (strcmp(op->kv[i].key, key) == 0)
			return op->kv[i].value;
	return -1;
}

/* ---- writing ---- */

static void family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped (format 0.0.4). */
static void label_value(struct evbuffer *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(b, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, s, 1);
	}
}

/* name value (no labels) */
static void sample(struct evbuffer *b, const char *name, double v)
{
	evbuffer_add_printf(b, "%s %.15g\n", name, v);
}

/* name{key="value"} v */
static void sample_l(struct evbuffer *b, const char *name, const char *key, const char *value,
		     double v)
{
	evbuffer_add_printf(b, "%s{%s=\"", name, key);
	label_value(b, value);
	evbuffer_add_printf(b, "\"} %.15g\n", v);
}

/* name{key1="v1",key2="v2"} v */
static void sample_l2(struct evbuffer *b, const char *name, const char *k1, const char *v1,
		      const char *k2, const char *v2, double v)
{
	evbuffer_add_printf(b, "%s{%s=\"", name, k1);
	label_value(b, v1);
	evbuffer_add_printf(b, "\",%s=\"", k2);
	label_value(b, v2);
	evbuffer_add_printf(b, "\"} %.15g\n", v);
}

static void node_label(char *buf, size_t len, int id)
{
	snprintf(buf, len, "%d", id);
}

/* duet_ha_state / duet_ha_reason for one node: 1 for its current name, 0 for the others. */
static void state_samples(struct evbuffer *b, int id, const char *state)
{
	char node[16];
	node_label(node, sizeof node, id);
	for (int s = 0; s < HA_ST_COUNT; s++)
		sample_l2(b, "duet_ha_state", "node", node, "state", ha_state_names[s],
			  strcmp(state, ha_state_names[s]) == 0);
}

static void reason_samples(struct evbuffer *b, int id, const char *reason)
{
	char node[16];
	node_label(node, sizeof node, id);
	for (int r = 0; r < HA_RS_COUNT; r++)
		sample_l2(b, "duet_ha_reason", "node", node, "reason", ha_reason_names[r],
			  strcmp(reason, ha_reason_names[r]) == 0);
}

static void render_state(struct metrics_op *op, struct evbuffer *b)
{
	struct srm *srm = op->srm;
	int me = (int)srm->cfg.node_id;
	const char *state, *reason;
	double since;
	struct pair_peer_view peer;
	memset(&peer, 0, sizeof peer);
	if (srm->pair) {
		const struct ha_fsm *f = pair_fsm(srm->pair);
		state = ha_state_name(f->state);
		reason = ha_reason_name(f->reason);
		since = (double)pair_since(srm->pair);
		pair_peer_view(srm->pair, &peer);
	} else {
		state = srm->status.state;
		reason = srm->status.reason;
		since = (double)srm->status.since;
	}
	char node[16];
	node_label(node, sizeof node, me);
	family(b, "duet_node_info", "gauge", "This node: id, name and XMPP domain (always 1).");
	evbuffer_add_printf(b, "duet_node_info{node=\"%d\",name=\"", me);
	label_value(b, srm->cfg.node_name);
	evbuffer_add_printf(b, "\",domain=\"");
	label_value(b, srm->cfg.domain);
	evbuffer_add_printf(b, "\",pair=\"%s\"} 1\n", srm->pair ? "true" : "false");

	family(b, "duet_ha_state", "gauge",
	       "HA state of a node as this node sees it: 1 for the current state.");
	state_samples(b, me, state);
	if (srm->pair && peer.known)
		state_samples(b, pair_peer_node(srm->pair), ha_state_name(peer.st.info.state));
	family(b, "duet_ha_reason", "gauge",
	       "Reason of a node's HA state as this node sees it: 1 for the current reason.");
	reason_samples(b, me, reason);
	if (srm->pair && peer.known)
		reason_samples(b, pair_peer_node(srm->pair), ha_reason_name(peer.st.info.reason));
	family(b, "duet_ha_state_since_seconds", "gauge",
	       "Unix time of this node's last state or reason change.");
	sample_l(b, "duet_ha_state_since_seconds", "node", node, since);

	struct notify_counters nc;
	memset(&nc, 0, sizeof nc);
	if (srm->notify)
		notify_counters_get(srm->notify, &nc);
	family(b, "duet_ha_transitions_total", "counter",
	       "Changes of this node's HA state or reason since srmd started.");
	sample(b, "duet_ha_transitions_total", (double)nc.transitions);
	family(b, "duet_notify_runs_total", "counter",
	       "Runs of the [ha] notify script by result.");
	sample_l(b, "duet_notify_runs_total", "result", "ok", (double)nc.runs_ok);
	sample_l(b, "duet_notify_runs_total", "result", "failed", (double)nc.runs_failed);
	sample_l(b, "duet_notify_runs_total", "result", "timeout", (double)nc.runs_timeout);
	sample_l(b, "duet_notify_runs_total", "result", "dropped", (double)nc.runs_dropped);
}

static void render_services(struct metrics_op *op, struct evbuffer *b)
{
	struct srm *srm = op->srm;
	struct engine_child *ec = srm->engine;
	family(b, "duet_critical_service_up", "gauge",
	       "Critical services of this node: 1 when up.");
	/* What the state machine is told (pair.c, srm_status_refresh): a ready engine whose
	 * health is ok, not answered yet, or only missing its database is up. */
	const char *health = engine_child_health(ec);
	int db_down_engine = strcmp(health, "db-down") == 0;
	int engine_up = engine_child_state(ec) == ENGINE_READY &&
			(strcmp(health, "ok") == 0 || strcmp(health, "-") == 0 || db_down_engine);
	sample_l(b, "duet_critical_service_up", "service", "engine", engine_up);
	sample_l(b, "duet_critical_service_up", "service", "database",
		 db_health_up(srm->db) && !db_down_engine);
	family(b, "duet_critical_service_restarts_total", "counter",
	       "Restarts of a critical service by srmd (the engine; the database is not "
	       "srmd's child).");
	sample_l(b, "duet_critical_service_restarts_total", "service", "engine",
		 (double)engine_child_restarts(ec));
}

static void render_engine(struct metrics_op *op, struct evbuffer *b)
{
	family(b, "duet_engine_stats_ok", "gauge",
	       "1 when the engine answered `stats` for this scrape (the engine families below "
	       "are absent otherwise).");
	sample(b, "duet_engine_stats_ok", op->engine_answered);
	if (!op->engine_answered)
		return;
	char key[32], home[16];
	family(b, "duet_sessions", "gauge", "Client sessions on this node by the user's home node.");
	for (int h = 1; h <= METRICS_HOMES; h++) {
		snprintf(key, sizeof key, "sessions_node%d", h);
		snprintf(home, sizeof home, "%d", h);
		double v = kv_get(op, key);
		sample_l(b, "duet_sessions", "home_node", home, v < 0 ? 0 : v);
	}
	family(b, "duet_logins_total", "counter",
	       "Completed logins (resource bound) on this node by the user's home node, since "
	       "the engine started.");
	for (int h = 1; h <= METRICS_HOMES; h++) {
		snprintf(key, sizeof key, "logins_node%d", h);
		snprintf(home, sizeof home, "%d", h);
		double v = kv_get(op, key);
		sample_l(b, "duet_logins_total", "home_node", home, v < 0 ? 0 : v);
	}
	static const struct {
		const char *key, *name, *type, *help;
	} plain[] = {
		{"login_failures", "duet_login_failures_total", "counter",
		 "Failed authentications since the engine started."},
		{"logins_throttled", "duet_logins_throttled_total", "counter",
		 "Logins refused by the login throttle (resource-constraint)."},
		{"logins_queued", "duet_logins_queued_total", "counter",
		 "Logins that waited in the login queue for their turn."},
		{"login_queue", "duet_login_queue_length", "gauge",
		 "Logins waiting in the login queue now."},
		{"login_rate", "duet_login_rate_limit", "gauge",
		 "The login throttle: logins per second admitted, 0 = unlimited."},
		{"connections", "duet_connections", "gauge", "Open client connections."},
		{"users", "duet_users_loaded", "gauge", "Users held in the engine's memory."},
		{"messages", "duet_messages_total", "counter", "Messages routed."},
		{"offline_stored", "duet_offline_stored_total", "counter",
		 "Messages stored for offline users."},
		{"route_up", "duet_route_link_up", "gauge", "The engines' route link is up."},
	};
	for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
		double v = kv_get(op, plain[i].key);
		if (v < 0)
			continue;
		family(b, plain[i].name, plain[i].type, plain[i].help);
		sample(b, plain[i].name, v);
	}
	double rss = kv_get(op, "rss_kb");
	if (rss >= 0) {
		family(b, "duet_engine_resident_memory_bytes", "gauge",
		       "Resident memory of the engine process.");
		sample(b, "duet_engine_resident_memory_bytes", rss * 1024.0);
	}
}

static void render_pair(struct metrics_op *op, struct evbuffer *b)
{
	struct pair *p = op->srm->pair;
	const struct ha_fsm *f = pair_fsm(p);
	family(b, "duet_ha_enabled", "gauge", "1 unless HA is disabled (srmctl ha disable).");
	sample(b, "duet_ha_enabled", !f->ha_disabled);
	family(b, "duet_ha_manual_failover", "gauge", "1 in manual-failover mode.");
	sample(b, "duet_ha_manual_failover", f->manual_failover);
	family(b, "duet_ha_serving", "gauge", "1 when this node's engine serves the home node.");
	char home[16];
	for (int h = 1; h <= METRICS_HOMES; h++) {
		snprintf(home, sizeof home, "%d", h);
		sample_l(b, "duet_ha_serving", "home_node", home, (f->serve & HA_HOME_BIT(h)) != 0);
	}
	family(b, "duet_ha_alarm", "gauge", "Alarms: 1 while raised.");
	unsigned alarms = pair_alarms(p);
	for (int a = 0; a < HA_ALARM_COUNT; a++)
		sample_l(b, "duet_ha_alarm", "alarm", ha_alarm_names[a], (alarms >> a) & 1u);
	struct ha_wire_state self;
	pair_local_wire(p, &self);
	family(b, "duet_accounts", "gauge", "User accounts by home node (0 = unassigned).");
	for (int h = 0; h <= 2; h++) {
		snprintf(home, sizeof home, "%d", h);
		sample_l(b, "duet_accounts", "home_node", home, self.accounts[h]);
	}

	struct peer_link_stats ls;
	pair_link_stats(p, &ls);
	family(b, "duet_peer_link_up", "gauge", "The peer link's detector says the peer is up.");
	sample(b, "duet_peer_link_up", ls.up);
	family(b, "duet_peer_heartbeat_rtt_seconds", "gauge",
	       "Heartbeat round trip to the peer: smoothed (RFC 6298), last, min and max.");
	if (ls.rtt_samples) {
		sample_l(b, "duet_peer_heartbeat_rtt_seconds", "stat", "smoothed",
			 ls.rtt_srtt_us / 1e6);
		sample_l(b, "duet_peer_heartbeat_rtt_seconds", "stat", "last", ls.rtt_last_us / 1e6);
		sample_l(b, "duet_peer_heartbeat_rtt_seconds", "stat", "min", ls.rtt_min_us / 1e6);
		sample_l(b, "duet_peer_heartbeat_rtt_seconds", "stat", "max", ls.rtt_max_us / 1e6);
	}
	family(b, "duet_peer_heartbeat_rtt_samples_total", "counter",
	       "Heartbeat round trips measured.");
	sample(b, "duet_peer_heartbeat_rtt_samples_total", (double)ls.rtt_samples);
	family(b, "duet_peer_heartbeats_total", "counter", "Heartbeats by direction.");
	sample_l(b, "duet_peer_heartbeats_total", "direction", "received",
		 (double)ls.heartbeats_rx);
	sample_l(b, "duet_peer_heartbeats_total", "direction", "sent", (double)ls.heartbeats_tx);
	family(b, "duet_peer_heartbeat_gaps_total", "counter",
	       "Heartbeats missing from the peer's sequence.");
	sample(b, "duet_peer_heartbeat_gaps_total", (double)ls.heartbeat_gaps);
	family(b, "duet_peer_link_downs_total", "counter", "Times the peer was declared down.");
	sample(b, "duet_peer_link_downs_total", (double)ls.downs);

	struct repl_status rs;
	repl_status_get(pair_repl(p), &rs);
	family(b, "duet_replication_lag_entries", "gauge",
	       "Replication changes not yet applied: in = the peer's we have not applied, out = "
	       "ours the peer has not acknowledged.");
	sample_l(b, "duet_replication_lag_entries", "direction", "in", (double)rs.lag_in);
	sample_l(b, "duet_replication_lag_entries", "direction", "out",
		 (double)(op->lag_known ? op->lag.entries : rs.lag_out));
	family(b, "duet_replication_lag_seconds", "gauge",
	       "Age of the oldest change not yet applied (in) or acknowledged (out).");
	sample_l(b, "duet_replication_lag_seconds", "direction", "in", rs.lag_in_ms / 1000.0);
	if (op->lag_known)
		sample_l(b, "duet_replication_lag_seconds", "direction", "out",
			 op->lag.oldest_ms / 1000.0);
	family(b, "duet_replication_changes_total", "counter", "Changes shipped and applied.");
	sample_l(b, "duet_replication_changes_total", "direction", "sent",
		 (double)rs.changes_sent);
	sample_l(b, "duet_replication_changes_total", "direction", "applied",
		 (double)rs.changes_applied);
	family(b, "duet_replication_conflicts_total", "counter",
	       "Changes resolved by the conflict rule (after a split brain).");
	sample(b, "duet_replication_conflicts_total", (double)rs.conflicts);
	family(b, "duet_replication_resyncs_total", "counter", "Full resyncs by direction.");
	sample_l(b, "duet_replication_resyncs_total", "direction", "sent", (double)rs.resyncs_sent);
	sample_l(b, "duet_replication_resyncs_total", "direction", "received",
		 (double)rs.resyncs_received);
	family(b, "duet_replication_apply_errors_total", "counter", "Batches that failed to apply.");
	sample(b, "duet_replication_apply_errors_total", (double)rs.apply_errors);
}

static void metrics_finish(struct metrics_op *op)
{
	struct evbuffer *b = evbuffer_new();
	if (b) {
		render_state(op, b);
		render_services(op, b);
		render_engine(op, b);
		if (op->srm->pair)
			render_pair(op, b);
	}
	op->done(op->arg, b);
	if (b)
		evbuffer_free(b);
	free(op);
}

static void on_lag(void *arg, const struct repl_lag *lag, const char *errmsg)
{
	struct metrics_op *op = arg;
	op->lag_req = NULL;
	if (lag) {
		op->lag = *lag;
		op->lag_known = 1;
	}
	metrics_finish(op);
}

static void lag_or_finish(struct metrics_op *op)
{
	struct srm *srm = op->srm;
	if (srm->pair && !srm->stopping)
		op->lag_req = repl_lag_query(pair_repl_pool(srm->pair),
					     (uint32_t)pair_peer_node(srm->pair), on_lag, op);
	if (!op->lag_req)
		metrics_finish(op);
}

static void on_stats(void *arg, const char *reply)
{
	struct metrics_op *op = arg;
	op->ereq = NULL;
	stats_parse(op, reply);
	lag_or_finish(op);
}

struct metrics_op *metrics_op_new(struct srm *srm, metrics_done_fn done, void *arg)
{
	struct metrics_op *op = calloc(1, sizeof *op);
	if (!op)
		return NULL;
	op->srm = srm;
	op->done = done;
	op->arg = arg;
	return op;
}

void metrics_op_start(struct metrics_op *op)
{
	if (engine_child_state(op->srm->engine) == ENGINE_READY)
		op->ereq = engine_child_request(op->srm->engine, "stats", on_stats, op);
	if (!op->ereq)
		lag_or_finish(op);
}

void metrics_cancel(struct metrics_op *op)
{
	if (op->ereq)
		engine_child_req_cancel(op->ereq);
	if (op->lag_req)
		repl_q_cancel(op->lag_req);
	free(op);
}
