/* srmctl status: this node's state and reason, its critical services (engine, database) and
 * the engine's counters (asked with `stats` when the engine is connected). */
#include "ha/db_health.h"
#include "ha/engine_child.h"
#include "ha/srm.h"

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

static void status_render_json(struct ctl_conn *c, struct srm *srm,
			       const struct engine_counters *k)
{
	const struct node_status *ns = &srm->status;
	struct engine_child *ec = srm->engine;
	char since[32];
	time_iso(ns->since, since, sizeof since);
	ctl_body_printf(c, "{\"node_id\":%ld,\"node_name\":", srm->cfg.node_id);
	ctl_body_json_string(c, srm->cfg.node_name);
	ctl_body_printf(c, ",\"domain\":");
	ctl_body_json_string(c, srm->cfg.domain);
	ctl_body_printf(c, ",\"state\":");
	ctl_body_json_string(c, ns->state);
	ctl_body_printf(c, ",\"reason\":");
	ctl_body_json_string(c, ns->reason);
	ctl_body_printf(c, ",\"since\":\"%s\",\"since_unix\":%lld", since, (long long)ns->since);
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
	ctl_body_printf(c, ",\"stopping\":%s}\n", srm->stopping ? "true" : "false");
}

static void status_render_text(struct ctl_conn *c, struct srm *srm,
			       const struct engine_counters *k)
{
	const struct node_status *ns = &srm->status;
	struct engine_child *ec = srm->engine;
	char since[32];
	time_iso(ns->since, since, sizeof since);
	ctl_body_printf(c, "node:      %ld (%s)\n", srm->cfg.node_id, srm->cfg.node_name);
	ctl_body_printf(c, "domain:    %s\n", srm->cfg.domain);
	ctl_body_printf(c, "state:     %s\n", ns->state);
	ctl_body_printf(c, "reason:    %s\n", ns->reason);
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
	{"status", "", 0, 0, 1, cmd_status},
	{NULL, NULL, 0, 0, 0, NULL},
};
