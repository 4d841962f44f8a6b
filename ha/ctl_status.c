/* srmctl status: this node's state and reason, its critical services (engine, database) and
 * the engine's counters (asked with `stats` when the engine is connected); on a pair also
 * both nodes as the state machine and the peer's last state frame describe them, and
 * replication: lag in both directions (the outgoing one from the database) and the catch-up
 * wait.  srmctl digest: the per-table hash of the replicated data. */
#include "ha/catchup.h"
#include "ha/ctl_profile.h"
#include "ha/ctl_status.h"
#include "ha/db_health.h"
#include "ha/engine_child.h"
#include "ha/pair.h"
#include "ha/srm.h"
#include "replication/replication.h"

#include <inttypes.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum status_view { VIEW_FULL, VIEW_BRIEF, VIEW_REPLICATION };

struct status_op {
	struct ctl_conn *c;
	enum status_view view;
	struct engine_child_req *ereq;
	struct repl_q *lag_req;
	char *stats;             /* the engine's reply, NULL if none */
	struct repl_lag lag;     /* shipper-side lag from the database */
	int lag_known;
};

struct engine_counters {
	int known;
	long sessions;
	long users;
};

/* "stats k=v k=v ...": pick the counters status shows; anything malformed is ignored. */
static void counters_parse(const char *reply, struct engine_counters *out)
{
	memset(out, 0, sizeof *out);
	if (!reply || strncmp(reply, "stats", 5) != 0 || (reply[5] != ' ' && reply[5] != '\0'))
		return;
	out->known = 1;
	out->sessions = out->users = -1;
	for (const char *p = reply + 5; *p;) {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		long *dst = NULL;
		if (n > 9 && strncmp(p, "sessions=", 9) == 0)
			dst = &out->sessions;
		else if (n > 6 && strncmp(p, "users=", 6) == 0)
			dst = &out->users;
		if (dst) {
			const char *v = strchr(p, '=') + 1;
			char *end;
			long x = strtol(v, &end, 10);
			if (end == p + n && x >= 0)
				*dst = x;
		}
		p += n;
	}
}

/* This node's state, reason and since: the state machine's on a pair. */
static void local_state(const struct srm *srm, const char **state, const char **reason,
			time_t *since)
{
	if (srm->pair) {
		const struct ha_fsm *f = pair_fsm(srm->pair);
		*state = ha_state_name(f->state);
		*reason = ha_reason_name(f->reason);
		*since = pair_since(srm->pair);
		return;
	}
	*state = srm->status.state;
	*reason = srm->status.reason;
	*since = srm->status.since;
}

void ctl_time_iso(time_t t, char *buf, size_t len)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void json_long_or_null(struct ctl_conn *c, const char *key, int known, long v)
{
	if (known && v >= 0)
		ctl_body_printf(c, ",\"%s\":%ld", key, v);
	else
		ctl_body_printf(c, ",\"%s\":null", key);
}

/* ---- the pair ---- */

static const char *serve_text(uint8_t serve)
{
	static const char *const names[] = {"none", "1", "2", "1,2"};
	return names[serve & HA_HOMES_ALL];
}

static void count_text(char *buf, size_t len, uint32_t v)
{
	if (v == UINT32_MAX)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%u", v);
}

static void node_render_text(struct ctl_conn *c, int id, const char *role,
			     const struct ha_wire_state *w, int known)
{
	char since[32], s1[16], s2[16];
	ctl_time_iso((time_t)w->since_unix, since, sizeof since);
	count_text(s1, sizeof s1, w->sessions[0]);
	count_text(s2, sizeof s2, w->sessions[1]);
	ctl_body_printf(c, "node %d (%s)%s\n", id, role, known ? "" : ": last known state");
	ctl_body_printf(c, "  state:     %s\n", ha_state_name(w->info.state));
	ctl_body_printf(c, "  reason:    %s\n", ha_reason_name(w->info.reason));
	ctl_body_printf(c, "  since:     %s\n", since);
	ctl_body_printf(c, "  serves:    home nodes %s\n", serve_text(w->info.serve));
	ctl_body_printf(c, "  services:  %s (engine %s, database %s)\n",
			w->info.services_ok ? "ok" : "failed", w->engine_up ? "up" : "down",
			w->db_up ? "up" : "down");
	ctl_body_printf(c, "  sessions:  home node 1: %s, home node 2: %s\n", s1, s2);
}

/* ---- replication ---- */

const char *ctl_repl_phase_name(int phase)
{
	switch ((enum repl_phase)phase) {
	case REPL_OFF:
		return "off";
	case REPL_HANDSHAKE:
		return "handshake";
	case REPL_INCREMENTAL:
		return "incremental";
	case REPL_RESYNC:
		return "full-resync";
	case REPL_STOPPED:
		return "stopped";
	}
	return "?";
}

static const char *catchup_result_name(int r)
{
	return r == 1 ? "caught-up" : r == 2 ? "gave-up" : "none";
}

/* Outgoing lag: entries from the session when the database did not answer. */
static void lag_out_of(const struct repl_status *rs, const struct repl_lag *lag, int lag_known,
		       uint64_t *entries, int64_t *ms)
{
	*entries = lag_known ? lag->entries : rs->lag_out;
	*ms = lag_known ? lag->oldest_ms : -1;
}

static void repl_render_text(struct ctl_conn *c, struct srm *srm, const struct status_op *op)
{
	struct repl_status rs;
	struct catchup_status cs;
	repl_status_get(pair_repl(srm->pair), &rs);
	pair_catchup_status(srm->pair, &cs);
	uint64_t out_n;
	int64_t out_ms;
	lag_out_of(&rs, &op->lag, op->lag_known, &out_n, &out_ms);
	ctl_body_printf(c, "replication: %s%s%s\n", ctl_repl_phase_name(rs.ship),
			rs.receiving_resync ? ", receiving a full resync" : "",
			rs.peer_hello ? "" : ", no peer session");
	ctl_body_printf(c, "  lag in:    %" PRIu64 " entries, %.1f s (applied %" PRIu64
			" of the peer's %" PRIu64 ")\n",
			rs.lag_in, (double)rs.lag_in_ms / 1000.0, rs.applied, rs.peer_head);
	if (out_ms >= 0)
		ctl_body_printf(c, "  lag out:   %" PRIu64 " entries, %.1f s (head %" PRIu64
				", acked %" PRIu64 ")\n",
				out_n, (double)out_ms / 1000.0, rs.head, rs.acked);
	else
		ctl_body_printf(c, "  lag out:   %" PRIu64 " entries, - s (head %" PRIu64
				", acked %" PRIu64 ")\n",
				out_n, rs.head, rs.acked);
	ctl_body_printf(c, "  applied:   %" PRIu64 " changes in %" PRIu64 " batches, %" PRIu64
			" conflicts, %" PRIu64 " resyncs in, %" PRIu64 " out\n",
			rs.changes_applied, rs.batches_applied, rs.conflicts, rs.resyncs_received,
			rs.resyncs_sent);
	if (cs.waiting && cs.target_known)
		ctl_body_printf(c, "  catch-up:  waiting %.1f s for applied >= %" PRIu64
				" (now %" PRIu64 ")\n",
				(double)cs.waited_ms / 1000.0, cs.target, cs.applied);
	else if (cs.waiting)
		ctl_body_printf(c, "  catch-up:  waiting %.1f s for the peer's head (now %" PRIu64
				")\n",
				(double)cs.waited_ms / 1000.0, cs.applied);
	else if (cs.last_result)
		ctl_body_printf(c, "  catch-up:  not waiting (last: %s after %" PRId64
				" ms, target %" PRIu64 ", %" PRIu64 " waits)\n",
				catchup_result_name(cs.last_result), cs.last_ms, cs.last_target,
				cs.waits);
	else
		ctl_body_printf(c, "  catch-up:  not waiting\n");
}

static void repl_render_json(struct ctl_conn *c, struct srm *srm, const struct status_op *op)
{
	struct repl_status rs;
	struct catchup_status cs;
	repl_status_get(pair_repl(srm->pair), &rs);
	pair_catchup_status(srm->pair, &cs);
	uint64_t out_n;
	int64_t out_ms;
	lag_out_of(&rs, &op->lag, op->lag_known, &out_n, &out_ms);
	ctl_body_printf(c, ",\"replication\":{\"ship\":\"%s\",\"receiving_resync\":%s,"
			"\"peer_hello\":%s,\"epoch\":%" PRIu64 ",\"head\":%" PRIu64
			",\"sent\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"peer_epoch\":%" PRIu64
			",\"peer_head\":%" PRIu64 ",\"applied\":%" PRIu64,
			ctl_repl_phase_name(rs.ship), rs.receiving_resync ? "true" : "false",
			rs.peer_hello ? "true" : "false", rs.epoch, rs.head, rs.sent, rs.acked,
			rs.peer_epoch, rs.peer_head, rs.applied);
	ctl_body_printf(c, ",\"lag_in\":{\"entries\":%" PRIu64 ",\"seconds\":%.3f}",
			rs.lag_in, (double)rs.lag_in_ms / 1000.0);
	ctl_body_printf(c, ",\"lag_out\":{\"entries\":%" PRIu64 ",\"seconds\":", out_n);
	if (out_ms >= 0)
		ctl_body_printf(c, "%.3f}", (double)out_ms / 1000.0);
	else
		ctl_body_printf(c, "null}");
	ctl_body_printf(c, ",\"batches_sent\":%" PRIu64 ",\"changes_sent\":%" PRIu64
			",\"batches_applied\":%" PRIu64 ",\"changes_applied\":%" PRIu64
			",\"conflicts\":%" PRIu64 ",\"resyncs_sent\":%" PRIu64
			",\"resyncs_received\":%" PRIu64 ",\"restarts\":%" PRIu64
			",\"apply_errors\":%" PRIu64,
			rs.batches_sent, rs.changes_sent, rs.batches_applied, rs.changes_applied,
			rs.conflicts, rs.resyncs_sent, rs.resyncs_received, rs.restarts,
			rs.apply_errors);
	ctl_body_printf(c, ",\"catchup\":{\"waiting\":%s,\"waited_ms\":%" PRId64
			",\"target\":",
			cs.waiting ? "true" : "false", cs.waited_ms);
	if (cs.waiting && cs.target_known)
		ctl_body_printf(c, "%" PRIu64, cs.target);
	else
		ctl_body_printf(c, "null");
	ctl_body_printf(c, ",\"applied\":%" PRIu64 ",\"waits\":%" PRIu64
			",\"last_result\":\"%s\",\"last_ms\":%" PRId64 ",\"last_target\":%" PRIu64
			"}}",
			cs.applied, cs.waits, catchup_result_name(cs.last_result), cs.last_ms,
			cs.last_target);
}

static void pair_render_text(struct ctl_conn *c, struct srm *srm, const struct status_op *op)
{
	struct pair *p = srm->pair;
	const struct ha_fsm *f = pair_fsm(p);
	struct ha_wire_state self;
	struct pair_peer_view peer;
	pair_local_wire(p, &self);
	pair_peer_view(p, &peer);
	if (peer.link_up)
		ctl_body_printf(c, "peer link: up, rtt %.1f ms\n", (double)peer.rtt_us / 1000.0);
	else
		ctl_body_printf(c, "peer link: down%s%s\n", peer.down_reason[0] ? " since " : "",
				peer.down_reason);
	ctl_body_printf(c, "ha:        %s%s\n", f->ha_disabled ? "disabled" : "enabled",
			f->manual_failover ? ", manual failover mode" : "");
	unsigned alarms = pair_alarms(p);
	ctl_body_printf(c, "alarms:    %s", alarms ? "" : "none");
	for (int a = 0, first = 1; a < HA_ALARM_COUNT; a++)
		if (alarms & (1u << a)) {
			ctl_body_printf(c, "%s%s", first ? "" : ", ", ha_alarm_names[a]);
			first = 0;
		}
	ctl_body_printf(c, "\n");
	ctl_body_printf(c, "accounts:  home node 1: %u, home node 2: %u, unassigned: %u\n",
			self.accounts[1], self.accounts[2], self.accounts[0]);
	int me = f->cfg.node_id;
	for (int id = 1; id <= 2; id++) {
		if (id == me)
			node_render_text(c, id, "this node", &self, 1);
		else if (peer.ever)
			node_render_text(c, id, "peer", &peer.st, peer.known);
		else
			ctl_body_printf(c, "node %d (peer): never seen\n", id);
	}
	repl_render_text(c, srm, op);
}

static void node_render_json(struct ctl_conn *c, int id, int self, const struct ha_wire_state *w,
			     int known)
{
	char since[32];
	ctl_time_iso((time_t)w->since_unix, since, sizeof since);
	ctl_body_printf(c, "{\"node_id\":%d,\"self\":%s,\"known\":%s,\"state\":", id,
			self ? "true" : "false", known ? "true" : "false");
	ctl_body_json_string(c, ha_state_name(w->info.state));
	ctl_body_printf(c, ",\"reason\":");
	ctl_body_json_string(c, ha_reason_name(w->info.reason));
	ctl_body_printf(c, ",\"since\":\"%s\",\"since_unix\":%llu,\"serve\":[", since,
			(unsigned long long)w->since_unix);
	for (int h = 1, first = 1; h <= 2; h++)
		if (w->info.serve & HA_HOME_BIT(h)) {
			ctl_body_printf(c, "%s%d", first ? "" : ",", h);
			first = 0;
		}
	ctl_body_printf(c, "],\"critical_services\":{\"ok\":%s,\"engine\":%s,\"database\":%s}",
			w->info.services_ok ? "true" : "false", w->engine_up ? "true" : "false",
			w->db_up ? "true" : "false");
	ctl_body_printf(c, ",\"manual_failover\":%s,\"sessions\":{",
			w->info.manual_failover ? "true" : "false");
	for (int h = 1; h <= 2; h++) {
		if (w->sessions[h - 1] == UINT32_MAX)
			ctl_body_printf(c, "%s\"%d\":null", h > 1 ? "," : "", h);
		else
			ctl_body_printf(c, "%s\"%d\":%u", h > 1 ? "," : "", h, w->sessions[h - 1]);
	}
	ctl_body_printf(c, "}}");
}

static void pair_render_json(struct ctl_conn *c, struct srm *srm, const struct status_op *op)
{
	struct pair *p = srm->pair;
	const struct ha_fsm *f = pair_fsm(p);
	struct ha_wire_state self;
	struct pair_peer_view peer;
	pair_local_wire(p, &self);
	pair_peer_view(p, &peer);
	ctl_body_printf(c, ",\"pair\":{\"peer_link\":{\"up\":%s,\"down_reason\":",
			peer.link_up ? "true" : "false");
	ctl_body_json_string(c, peer.down_reason);
	ctl_body_printf(c, ",\"rtt_us\":%llu},\"ha_enabled\":%s,\"manual_failover\":%s",
			(unsigned long long)peer.rtt_us, f->ha_disabled ? "false" : "true",
			f->manual_failover ? "true" : "false");
	ctl_body_printf(c, ",\"peer_client_address\":");
	ctl_body_json_string(c, pair_peer_client_address(p));
	ctl_body_printf(c, ",\"alarms\":[");
	unsigned alarms = pair_alarms(p);
	for (int a = 0, first = 1; a < HA_ALARM_COUNT; a++)
		if (alarms & (1u << a)) {
			ctl_body_printf(c, "%s\"%s\"", first ? "" : ",", ha_alarm_names[a]);
			first = 0;
		}
	ctl_body_printf(c, "],\"accounts\":{\"unassigned\":%u,\"1\":%u,\"2\":%u},\"nodes\":[",
			self.accounts[0], self.accounts[1], self.accounts[2]);
	int me = f->cfg.node_id;
	for (int id = 1; id <= 2; id++) {
		if (id > 1)
			ctl_body_printf(c, ",");
		if (id == me)
			node_render_json(c, id, 1, &self, 1);
		else if (peer.ever)
			node_render_json(c, id, 0, &peer.st, peer.known);
		else
			ctl_body_printf(c, "{\"node_id\":%d,\"self\":false,\"known\":false,"
					"\"state\":null,\"reason\":null}", id);
	}
	ctl_body_printf(c, "]");
	repl_render_json(c, srm, op);
	ctl_body_printf(c, "}");
}

static void status_render_json(struct ctl_conn *c, struct srm *srm,
			       const struct engine_counters *k, const struct status_op *op)
{
	struct engine_child *ec = srm->engine;
	const char *state, *reason;
	time_t since_t;
	local_state(srm, &state, &reason, &since_t);
	char since[32];
	ctl_time_iso(since_t, since, sizeof since);
	ctl_body_printf(c, "{\"node_id\":%ld,\"node_name\":", srm->cfg.node_id);
	ctl_body_json_string(c, srm->cfg.node_name);
	ctl_body_printf(c, ",\"domain\":");
	ctl_body_json_string(c, srm->cfg.domain);
	ctl_body_printf(c, ",\"state\":");
	ctl_body_json_string(c, state);
	ctl_body_printf(c, ",\"reason\":");
	ctl_body_json_string(c, reason);
	ctl_body_printf(c, ",\"since\":\"%s\",\"since_unix\":%lld", since, (long long)since_t);
	ctl_body_printf(c, ",\"engine\":{\"state\":\"%s\",\"pid\":%ld,\"health\":",
			engine_child_state_name(engine_child_state(ec)), (long)engine_child_pid(ec));
	ctl_body_json_string(c, engine_child_health(ec));
	ctl_body_printf(c, ",\"restarts\":%u,\"last_exit\":", engine_child_restarts(ec));
	ctl_body_json_string(c, engine_child_last_exit(ec));
	ctl_body_printf(c, ",\"program\":");
	ctl_body_json_string(c, srm->engine_program);
	ctl_body_printf(c, "},\"database\":{\"up\":%s,\"error\":",
			db_health_up(srm->db) ? "true" : "false");
	ctl_body_json_string(c, db_health_error(srm->db));
	ctl_body_printf(c, "}");
	json_long_or_null(c, "sessions", k->known, k->sessions);
	json_long_or_null(c, "users", k->known, k->users);
	ctl_body_printf(c, ",\"stopping\":%s", srm->stopping ? "true" : "false");
	profile_status_json(c, srm);
	if (srm->pair)
		pair_render_json(c, srm, op);
	ctl_body_printf(c, "}\n");
}

static void status_render_text(struct ctl_conn *c, struct srm *srm,
			       const struct engine_counters *k, const struct status_op *op)
{
	struct engine_child *ec = srm->engine;
	const char *state, *reason;
	time_t since_t;
	local_state(srm, &state, &reason, &since_t);
	char since[32];
	ctl_time_iso(since_t, since, sizeof since);
	ctl_body_printf(c, "node:      %ld (%s)\n", srm->cfg.node_id, srm->cfg.node_name);
	ctl_body_printf(c, "domain:    %s\n", srm->cfg.domain);
	ctl_body_printf(c, "state:     %s\n", state);
	ctl_body_printf(c, "reason:    %s\n", reason);
	ctl_body_printf(c, "since:     %s\n", since);
	ctl_body_printf(c, "engine:    %s, pid %ld, health %s\n",
			engine_child_state_name(engine_child_state(ec)), (long)engine_child_pid(ec),
			engine_child_health(ec));
	const char *last = engine_child_last_exit(ec);
	ctl_body_printf(c, "restarts:  %u%s%s%s\n", engine_child_restarts(ec),
			*last ? " (last exit: " : "", last, *last ? ")" : "");
	if (db_health_up(srm->db))
		ctl_body_printf(c, "database:  up\n");
	else
		ctl_body_printf(c, "database:  down (%s)\n", db_health_error(srm->db));
	if (k->known && k->sessions >= 0)
		ctl_body_printf(c, "sessions:  %ld\n", k->sessions);
	else
		ctl_body_printf(c, "sessions:  -\n");
	if (k->known && k->users >= 0)
		ctl_body_printf(c, "users:     %ld\n", k->users);
	else
		ctl_body_printf(c, "users:     -\n");
	profile_status_text(c, srm);
	if (srm->stopping)
		ctl_body_printf(c, "stopping:  yes\n");
	if (srm->pair)
		pair_render_text(c, srm, op);
}

/* srmctl replication: the replication part of the status alone. */
static void replication_render(struct ctl_conn *c, struct srm *srm, const struct status_op *op)
{
	if (!ctl_conn_json(c)) {
		repl_render_text(c, srm, op);
		return;
	}
	ctl_body_printf(c, "{\"node_id\":%ld,\"peer_node_id\":%d", srm->cfg.node_id,
			pair_peer_node(srm->pair));
	repl_render_json(c, srm, op);
	ctl_body_printf(c, "}\n");
}

static void status_finish(struct status_op *op)
{
	struct ctl_conn *c = op->c;
	struct srm *srm = ctl_conn_ctx(c);
	struct engine_counters k;
	counters_parse(op->stats, &k);
	if (op->view == VIEW_BRIEF)
		ctl_status_brief_render(c, srm, k.known ? k.sessions : -1,
					op->lag_known ? &op->lag : NULL);
	else if (op->view == VIEW_REPLICATION)
		replication_render(c, srm, op);
	else if (ctl_conn_json(c))
		status_render_json(c, srm, &k, op);
	else
		status_render_text(c, srm, &k, op);
	free(op->stats);
	free(op);
	ctl_reply_ok(c);
}

static void on_lag(void *arg, const struct repl_lag *lag, const char *errmsg)
{
	struct status_op *op = arg;
	op->lag_req = NULL;
	if (lag) {
		op->lag = *lag;
		op->lag_known = 1;
	}
	status_finish(op);
}

/* Second step on a pair: the outgoing lag from the database, then the answer. */
static void status_lag_or_finish(struct status_op *op)
{
	struct srm *srm = ctl_conn_ctx(op->c);
	if (srm->pair && !srm->stopping)
		op->lag_req = repl_lag_query(pair_repl_pool(srm->pair),
					     (uint32_t)pair_peer_node(srm->pair), on_lag, op);
	if (!op->lag_req)
		status_finish(op);
}

static void on_stats_reply(void *arg, const char *reply)
{
	struct status_op *op = arg;
	op->ereq = NULL;
	op->stats = reply ? strdup(reply) : NULL;
	status_lag_or_finish(op);
}

static void status_cancel(void *arg)
{
	struct status_op *op = arg;
	if (op->ereq)
		engine_child_req_cancel(op->ereq);
	if (op->lag_req)
		repl_q_cancel(op->lag_req);
	free(op->stats);
	free(op);
}

static void status_begin(struct ctl_conn *c, enum status_view view)
{
	struct srm *srm = ctl_conn_ctx(c);
	if (view == VIEW_REPLICATION && !srm->pair) {
		ctl_reply_error(c, "no-peer", "this node has no peer: nothing is replicated");
		return;
	}
	struct status_op *op = calloc(1, sizeof *op);
	if (!op) {
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	op->c = c;
	op->view = view;
	ctl_conn_set_cancel(c, status_cancel, op);
	/* Only a ready engine is asked: one still starting may not read its socket yet.  On a
	 * pair the brief view takes the sessions from the counters the pair keeps. */
	int ask = view == VIEW_FULL || (view == VIEW_BRIEF && !srm->pair);
	if (ask && engine_child_state(srm->engine) == ENGINE_READY)
		op->ereq = engine_child_request(srm->engine, "stats", on_stats_reply, op);
	if (!op->ereq)
		status_lag_or_finish(op); /* no engine to ask */
}

static void cmd_status(struct ctl_conn *c, int argc, char **argv)
{
	status_begin(c, VIEW_FULL);
}

static void cmd_status_brief(struct ctl_conn *c, int argc, char **argv)
{
	status_begin(c, VIEW_BRIEF);
}

static void cmd_replication(struct ctl_conn *c, int argc, char **argv)
{
	status_begin(c, VIEW_REPLICATION);
}

/* ---- digest ---- */

struct digest_op {
	struct ctl_conn *c;
	struct repl_q *q;
};

static void on_digest(void *arg, const struct repl_digest_entry *e, int n, const char *errmsg)
{
	struct digest_op *op = arg;
	struct ctl_conn *c = op->c;
	free(op);
	if (n < 0) {
		ctl_reply_error(c, "database", "%s", errmsg ? errmsg : "digest query failed");
		return;
	}
	int json = ctl_conn_json(c);
	int len = repl_digest_format(NULL, 0, e, n, json);
	char *buf = len >= 0 ? malloc((size_t)len + 1) : NULL;
	if (!buf) {
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	repl_digest_format(buf, (size_t)len + 1, e, n, json);
	ctl_body_printf(c, "%s", buf);
	free(buf);
	ctl_reply_ok(c);
}

static void digest_cancel(void *arg)
{
	struct digest_op *op = arg;
	repl_q_cancel(op->q);
	free(op);
}

static void cmd_digest(struct ctl_conn *c, int argc, char **argv)
{
	struct srm *srm = ctl_conn_ctx(c);
	struct digest_op *op = calloc(1, sizeof *op);
	if (!op) {
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	op->c = c;
	/* On a pair replication's pool: a long digest does not delay health checks. */
	struct pg_pool *pool = srm->pair ? pair_repl_pool(srm->pair) : srm->pool;
	op->q = repl_digest_query(pool, on_digest, op);
	if (!op->q) {
		free(op);
		ctl_reply_error(c, "database", "cannot queue the digest query");
		return;
	}
	ctl_conn_set_cancel(c, digest_cancel, op);
}

const struct ctl_command ctl_status_commands[] = {
	{"status", "", 0, 0, 1, 0, cmd_status},
	{"status brief", "", 0, 0, 1, 0, cmd_status_brief},
	{"replication", "", 0, 0, 1, 0, cmd_replication},
	{"digest", "", 0, 0, 1, 0, cmd_digest},
	{NULL, NULL, 0, 0, 0, 0, NULL},
};
