/* srmctl status --brief: both nodes on one screen, as crm_mon -1 or pcs status show a
 * cluster: one aligned row per node (state, reason, since, what it serves, its critical
 * services, its sessions), then the peer link, HA mode, alarms and replication lag in one
 * line each.  --json gives the same facts as one object. */
#include "ha/ctl_status.h"

#include "ha/db_health.h"
#include "ha/engine_child.h"
#include "ha/pair.h"
#include "ha/srm.h"
#include "replication/replication.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { COL_NODE, COL_NAME, COL_STATE, COL_REASON, COL_SINCE, COL_SERVES, COL_SERVICES,
       COL_SESSIONS, NCOLS };
#define CELL 96

static const char *const col_names[NCOLS] = {"NODE", "NAME", "STATE", "REASON",
					     "SINCE", "SERVES", "SERVICES", "SESSIONS"};

struct brief_row {
	char cell[NCOLS][CELL];
};

struct brief_node {
	int id, self, known, ever;
	const char *name;
	const char *state, *reason;
	time_t since;
	uint8_t serve;
	int services_ok, engine_up, db_up;
	long sessions; /* -1 unknown */
};

static const char *serve_list(uint8_t serve)
{
	static const char *const names[] = {"none", "1", "2", "1,2"};
	return names[serve & HA_HOMES_ALL];
}

static long wire_sessions(const struct ha_wire_state *w)
{
	if (w->sessions[0] == UINT32_MAX && w->sessions[1] == UINT32_MAX)
		return -1;
	long n = 0;
	for (int h = 0; h < 2; h++)
		if (w->sessions[h] != UINT32_MAX)
			n += (long)w->sessions[h];
	return n;
}

static void node_from_wire(struct brief_node *n, int id, int self, const char *name,
			   const struct ha_wire_state *w, int known)
{
	memset(n, 0, sizeof *n);
	n->id = id;
	n->self = self;
	n->known = known;
	n->ever = 1;
	n->name = name;
	n->state = ha_state_name(w->info.state);
	n->reason = ha_reason_name(w->info.reason);
	n->since = (time_t)w->since_unix;
	n->serve = w->info.serve;
	n->services_ok = w->info.services_ok;
	n->engine_up = w->engine_up;
	n->db_up = w->db_up;
	n->sessions = wire_sessions(w);
}

/* The nodes to show: both of a pair (the peer as last heard of), or the single node. */
static int nodes_collect(struct srm *srm, long single_sessions, struct brief_node nodes[2])
{
	if (!srm->pair) {
		struct brief_node *n = &nodes[0];
		memset(n, 0, sizeof *n);
		n->id = (int)srm->cfg.node_id;
		n->self = n->known = n->ever = 1;
		n->name = srm->cfg.node_name;
		n->state = srm->status.state;
		n->reason = srm->status.reason;
		n->since = srm->status.since;
		n->serve = HA_HOME_BIT(srm->cfg.node_id == 2 ? 2 : 1);
		n->engine_up = engine_child_state(srm->engine) == ENGINE_READY;
		n->db_up = db_health_up(srm->db);
		n->services_ok = n->engine_up && n->db_up;
		n->sessions = single_sessions;
		return 1;
	}
	struct ha_wire_state self;
	struct pair_peer_view peer;
	pair_local_wire(srm->pair, &self);
	pair_peer_view(srm->pair, &peer);
	int me = pair_fsm(srm->pair)->cfg.node_id;
	const char *peer_name = srm->cfg.peer_node_name[0] ? srm->cfg.peer_node_name : "-";
	for (int id = 1; id <= 2; id++) {
		struct brief_node *n = &nodes[id - 1];
		if (id == me) {
			node_from_wire(n, id, 1, srm->cfg.node_name, &self, 1);
		} else if (peer.ever) {
			node_from_wire(n, id, 0, peer_name, &peer.st, peer.known);
		} else {
			memset(n, 0, sizeof *n);
			n->id = id;
			n->name = peer_name;
			n->sessions = -1;
		}
	}
	return 2;
}

static void services_text(const struct brief_node *n, char *buf, size_t len)
{
	if (n->services_ok && n->engine_up && n->db_up)
		snprintf(buf, len, "ok");
	else if (!n->engine_up && !n->db_up)
		snprintf(buf, len, "engine and database down");
	else if (!n->engine_up)
		snprintf(buf, len, "engine down");
	else if (!n->db_up)
		snprintf(buf, len, "database down");
	else
		snprintf(buf, len, "failed"); /* down past the delay, now back: not yet cleared */
}

static void row_fill(struct brief_row *r, const struct brief_node *n)
{
	snprintf(r->cell[COL_NODE], CELL, "%d%s", n->id, n->self ? " *" : "");
	snprintf(r->cell[COL_NAME], CELL, "%s", n->name);
	if (!n->ever) {
		snprintf(r->cell[COL_STATE], CELL, "(never seen)");
		for (int col = COL_REASON; col < NCOLS; col++)
			snprintf(r->cell[col], CELL, "-");
		return;
	}
	snprintf(r->cell[COL_STATE], CELL, "%s%s", n->state, n->known ? "" : " (last known)");
	snprintf(r->cell[COL_REASON], CELL, "%s", n->reason);
	ctl_time_iso(n->since, r->cell[COL_SINCE], CELL);
	snprintf(r->cell[COL_SERVES], CELL, "%s", serve_list(n->serve));
	services_text(n, r->cell[COL_SERVICES], CELL);
	if (n->sessions >= 0)
		snprintf(r->cell[COL_SESSIONS], CELL, "%ld", n->sessions);
	else
		snprintf(r->cell[COL_SESSIONS], CELL, "-");
}

static void table_print(struct ctl_conn *c, const struct brief_row *rows, int nrows)
{
	int width[NCOLS];
	for (int col = 0; col < NCOLS; col++) {
		width[col] = (int)strlen(col_names[col]);
		for (int i = 0; i < nrows; i++) {
			int w = (int)strlen(rows[i].cell[col]);
			if (w > width[col])
				width[col] = w;
		}
	}
	for (int i = -1; i < nrows; i++) {
		for (int col = 0; col < NCOLS - 1; col++)
			ctl_body_printf(c, "%-*s  ", width[col],
					i < 0 ? col_names[col] : rows[i].cell[col]);
		ctl_body_printf(c, "%s\n", i < 0 ? col_names[NCOLS - 1] : rows[i].cell[NCOLS - 1]);
	}
}

static void alarms_text(struct ctl_conn *c, unsigned alarms, int json)
{
	int first = 1;
	for (int a = 0; a < HA_ALARM_COUNT; a++)
		if (alarms & (1u << a)) {
			if (json)
				ctl_body_printf(c, "%s\"%s\"", first ? "" : ",", ha_alarm_names[a]);
			else
				ctl_body_printf(c, "%s%s", first ? "" : ", ", ha_alarm_names[a]);
			first = 0;
		}
	if (first && !json)
		ctl_body_printf(c, "none");
}

/* Outgoing lag from the database when known, else the session's count. */
static void lag_out(const struct repl_status *rs, const struct repl_lag *lag, uint64_t *n,
		    int64_t *ms)
{
	*n = lag ? lag->entries : rs->lag_out;
	*ms = lag ? lag->oldest_ms : -1;
}

static void render_text(struct ctl_conn *c, struct srm *srm, const struct brief_node *nodes,
			int nnodes, const struct repl_lag *lag)
{
	struct brief_row rows[2];
	for (int i = 0; i < nnodes; i++)
		row_fill(&rows[i], &nodes[i]);
	table_print(c, rows, nnodes);
	if (!srm->pair)
		return;
	const struct ha_fsm *f = pair_fsm(srm->pair);
	struct pair_peer_view peer;
	pair_peer_view(srm->pair, &peer);
	if (peer.link_up)
		ctl_body_printf(c, "peer link:   up, rtt %.1f ms\n", (double)peer.rtt_us / 1000.0);
	else
		ctl_body_printf(c, "peer link:   down%s%s\n", peer.down_reason[0] ? " since " : "",
				peer.down_reason);
	ctl_body_printf(c, "ha:          %s%s\n", f->ha_disabled ? "disabled (maintenance)"
							     : "enabled",
			f->manual_failover ? ", manual failover mode" : "");
	ctl_body_printf(c, "alarms:      ");
	alarms_text(c, pair_alarms(srm->pair), 0);
	ctl_body_printf(c, "\n");
	struct repl_status rs;
	repl_status_get(pair_repl(srm->pair), &rs);
	uint64_t out_n;
	int64_t out_ms;
	lag_out(&rs, lag, &out_n, &out_ms);
	ctl_body_printf(c, "replication: %s; lag in %" PRIu64 " (%.1f s), out %" PRIu64,
			ctl_repl_phase_name(rs.ship), rs.lag_in, (double)rs.lag_in_ms / 1000.0,
			out_n);
	if (out_ms >= 0)
		ctl_body_printf(c, " (%.1f s)\n", (double)out_ms / 1000.0);
	else
		ctl_body_printf(c, "\n");
}

static void node_json(struct ctl_conn *c, const struct brief_node *n)
{
	ctl_body_printf(c, "{\"node_id\":%d,\"self\":%s,\"known\":%s,\"name\":", n->id,
			n->self ? "true" : "false", n->known ? "true" : "false");
	ctl_body_json_string(c, n->name);
	if (!n->ever) {
		ctl_body_printf(c, ",\"state\":null,\"reason\":null}");
		return;
	}
	char since[32];
	ctl_time_iso(n->since, since, sizeof since);
	ctl_body_printf(c, ",\"state\":");
	ctl_body_json_string(c, n->state);
	ctl_body_printf(c, ",\"reason\":");
	ctl_body_json_string(c, n->reason);
	ctl_body_printf(c, ",\"since\":\"%s\",\"serve\":[", since);
	for (int h = 1, first = 1; h <= 2; h++)
		if (n->serve & HA_HOME_BIT(h)) {
			ctl_body_printf(c, "%s%d", first ? "" : ",", h);
			first = 0;
		}
	ctl_body_printf(c, "],\"services_ok\":%s,\"engine_up\":%s,\"database_up\":%s,"
			"\"sessions\":",
			n->services_ok ? "true" : "false", n->engine_up ? "true" : "false",
			n->db_up ? "true" : "false");
	if (n->sessions >= 0)
		ctl_body_printf(c, "%ld}", n->sessions);
	else
		ctl_body_printf(c, "null}");
}

static void render_json(struct ctl_conn *c, struct srm *srm, const struct brief_node *nodes,
			int nnodes, const struct repl_lag *lag)
{
	ctl_body_printf(c, "{\"node_id\":%ld,\"domain\":", srm->cfg.node_id);
	ctl_body_json_string(c, srm->cfg.domain);
	ctl_body_printf(c, ",\"pair\":%s,\"nodes\":[", srm->pair ? "true" : "false");
	for (int i = 0; i < nnodes; i++) {
		if (i)
			ctl_body_printf(c, ",");
		node_json(c, &nodes[i]);
	}
	ctl_body_printf(c, "]");
	if (!srm->pair) {
		ctl_body_printf(c, "}\n");
		return;
	}
	const struct ha_fsm *f = pair_fsm(srm->pair);
	struct pair_peer_view peer;
	pair_peer_view(srm->pair, &peer);
	ctl_body_printf(c, ",\"peer_link\":{\"up\":%s,\"rtt_us\":%llu},\"ha_enabled\":%s,"
			"\"manual_failover\":%s,\"alarms\":[",
			peer.link_up ? "true" : "false", (unsigned long long)peer.rtt_us,
			f->ha_disabled ? "false" : "true", f->manual_failover ? "true" : "false");
	alarms_text(c, pair_alarms(srm->pair), 1);
	struct repl_status rs;
	repl_status_get(pair_repl(srm->pair), &rs);
	uint64_t out_n;
	int64_t out_ms;
	lag_out(&rs, lag, &out_n, &out_ms);
	ctl_body_printf(c, "],\"replication\":{\"ship\":\"%s\",\"lag_in\":{\"entries\":%" PRIu64
			",\"seconds\":%.3f},\"lag_out\":{\"entries\":%" PRIu64 ",\"seconds\":",
			ctl_repl_phase_name(rs.ship), rs.lag_in, (double)rs.lag_in_ms / 1000.0,
			out_n);
	if (out_ms >= 0)
		ctl_body_printf(c, "%.3f}}}\n", (double)out_ms / 1000.0);
	else
		ctl_body_printf(c, "null}}}\n");
}

void ctl_status_brief_render(struct ctl_conn *c, struct srm *srm, long sessions,
			     const struct repl_lag *lag)
{
	struct brief_node nodes[2];
	int n = nodes_collect(srm, sessions, nodes);
	if (ctl_conn_json(c))
		render_json(c, srm, nodes, n, lag);
	else
		render_text(c, srm, nodes, n, lag);
}
