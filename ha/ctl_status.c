/* srmctl status: this node's state and reason, its critical services (engine, database) and
 * the engine's counters (asked with `stats` when the engine is connected); on a pair also
 * both nodes as the state machine and the peer's last state frame describe them. */
#include "ha/db_health.h"
#include "ha/engine_child.h"
#include "ha/pair.h"
#include "ha/srm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct status_op {
	struct ctl_conn *c;
	struct engine_child_req *ereq;
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

static void time_iso(time_t t, char *buf, size_t len)
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
	time_iso((time_t)w->since_unix, since, sizeof since);
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

static void pair_render_text(struct ctl_conn *c, struct srm *srm)
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
}

static void node_render_json(struct ctl_conn *c, int id, int self, const struct ha_wire_state *w,
			     int known)
{
	char since[32];
	time_iso((time_t)w->since_unix, since, sizeof since);
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

static void pair_render_json(struct ctl_conn *c, struct srm *srm)
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
	ctl_body_printf(c, "]}");
}

static void status_render_json(struct ctl_conn *c, struct srm *srm,
			       const struct engine_counters *k)
{
	struct engine_child *ec = srm->engine;
	const char *state, *reason;
	time_t since_t;
	local_state(srm, &state, &reason, &since_t);
	char since[32];
	time_iso(since_t, since, sizeof since);
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
	if (srm->pair)
		pair_render_json(c, srm);
	ctl_body_printf(c, "}\n");
}

static void status_render_text(struct ctl_conn *c, struct srm *srm,
			       const struct engine_counters *k)
{
	struct engine_child *ec = srm->engine;
	const char *state, *reason;
	time_t since_t;
	local_state(srm, &state, &reason, &since_t);
	char since[32];
	time_iso(since_t, since, sizeof since);
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
	if (srm->stopping)
		ctl_body_printf(c, "stopping:  yes\n");
	if (srm->pair)
		pair_render_text(c, srm);
}

static void status_finish(struct ctl_conn *c, const char *stats_reply)
{
	struct srm *srm = ctl_conn_ctx(c);
	struct engine_counters k;
	counters_parse(stats_reply, &k);
	if (ctl_conn_json(c))
		status_render_json(c, srm, &k);
	else
		status_render_text(c, srm, &k);
	ctl_reply_ok(c);
}

static void on_stats_reply(void *arg, const char *reply)
{
	struct status_op *op = arg;
	struct ctl_conn *c = op->c;
	free(op);
	status_finish(c, reply);
}

static void status_cancel(void *arg)
{
	struct status_op *op = arg;
	engine_child_req_cancel(op->ereq);
	free(op);
}

static void cmd_status(struct ctl_conn *c, int argc, char **argv)
{
	struct srm *srm = ctl_conn_ctx(c);
	/* Only a ready engine is asked: one still starting may not read its socket yet. */
	struct status_op *op = NULL;
	if (engine_child_state(srm->engine) == ENGINE_READY)
		op = calloc(1, sizeof *op);
	if (op) {
		op->c = c;
		op->ereq = engine_child_request(srm->engine, "stats", on_stats_reply, op);
		if (op->ereq) {
			ctl_conn_set_cancel(c, status_cancel, op);
			return;
		}
		free(op);
	}
	/* No engine to ask: everything else is known here. */
	status_finish(c, NULL);
}

const struct ctl_command ctl_status_commands[] = {
	{"status", "", 0, 0, 1, 0, cmd_status},
	{NULL, NULL, 0, 0, 0, 0, NULL},
};
