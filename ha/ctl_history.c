/* srmctl history [N]: the node's last state transitions (ha/history.h), oldest first, as an
 * aligned table or --json.  Answers at once from memory. */
#include "ha/srm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void time_text(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char sec[32];
	strftime(sec, sizeof sec, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", sec, (int)(ms % 1000));
}

/* "State (Reason)", or "-" for the start entry's empty old state. */
static void pair_text(const char *state, const char *reason, char *buf, size_t len)
{
	if (!*state)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%s (%s)", state, reason);
}

static void render_text(struct ctl_conn *c, const struct history *h, unsigned first)
{
	/* Column widths from what is shown: state names run from 4 to 46 bytes. */
	int wfrom = 4;
	char buf[2 * HISTORY_TEXT + 4];
	for (unsigned i = first; i < h->count; i++) {
		const struct history_entry *e = history_get(h, i);
		pair_text(e->old_state, e->old_reason, buf, sizeof buf);
		int n = (int)strlen(buf);
		if (n > wfrom)
			wfrom = n;
	}
	ctl_body_printf(c, "%-24s  %-*s  %s\n", "TIME (UTC)", wfrom, "FROM", "TO");
	for (unsigned i = first; i < h->count; i++) {
		const struct history_entry *e = history_get(h, i);
		char when[40], from[sizeof buf], to[sizeof buf];
		time_text(e->time_ms, when, sizeof when);
		pair_text(e->old_state, e->old_reason, from, sizeof from);
		pair_text(e->new_state, e->new_reason, to, sizeof to);
		ctl_body_printf(c, "%-24s  %-*s  %s%s\n", when, wfrom, from, to,
				*e->old_state ? "" : "  (srmd started)");
	}
	if (h->total > h->count && first == 0)
		ctl_body_printf(c, "(%" PRIu64 " older transitions not kept)\n",
				h->total - h->count);
}

static void render_json(struct ctl_conn *c, const struct srm *srm, const struct history *h,
			unsigned first)
{
	ctl_body_printf(c, "{\"node_id\":%ld,\"capacity\":%d,\"total\":%" PRIu64
			",\"transitions\":[",
			srm->cfg.node_id, HISTORY_MAX, h->total);
	for (unsigned i = first; i < h->count; i++) {
		const struct history_entry *e = history_get(h, i);
		char when[40];
		time_text(e->time_ms, when, sizeof when);
		ctl_body_printf(c, "%s{\"time\":\"%s\",\"time_unix_ms\":%" PRId64 ",\"from\":",
				i > first ? "," : "", when, e->time_ms);
		if (*e->old_state) {
			ctl_body_json_string(c, e->old_state);
			ctl_body_printf(c, ",\"from_reason\":");
			ctl_body_json_string(c, e->old_reason);
		} else {
			ctl_body_printf(c, "null,\"from_reason\":null");
		}
		ctl_body_printf(c, ",\"to\":");
		ctl_body_json_string(c, e->new_state);
		ctl_body_printf(c, ",\"reason\":");
		ctl_body_json_string(c, e->new_reason);
		ctl_body_printf(c, "}");
	}
	ctl_body_printf(c, "]}\n");
}

static void cmd_history(struct ctl_conn *c, int argc, char **argv)
{
	struct srm *srm = ctl_conn_ctx(c);
	const struct history *h = &srm->history;
	unsigned want = h->count;
	if (argc == 1) {
		char *end;
		long n = strtol(argv[0], &end, 10);
		if (!*argv[0] || *end || n < 1 || n > 1000000) {
			ctl_reply_error(c, "usage", "N must be a positive number");
			return;
		}
		if ((unsigned)n < want)
			want = (unsigned)n;
	}
	unsigned first = h->count - want;
	if (ctl_conn_json(c))
		render_json(c, srm, h, first);
	else
		render_text(c, h, first);
	ctl_reply_ok(c);
}

const struct ctl_command ctl_history_commands[] = {
	{"history", "[N]", 0, 1, 1, 0, cmd_history},
	{NULL, NULL, 0, 0, 0, 0, NULL},
};
