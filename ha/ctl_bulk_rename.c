/* srmctl contacts rename: the manual's bulk rename of contact IDs (inventory-part2 §14.3;
 * docs/bulk-tools.md).  The request body is the CSV "<Contact ID>, <New Contact ID>" (full
 * JIDs, an optional header row); every contact list holding the old ID gets the new one,
 * keeping the item's nickname, groups and subscription state.  A list that already holds
 * the new ID keeps that item and gains the old one's groups.  Rows apply one after another,
 * each in one statement (one transaction), so a file renaming a -> b then b -> c ends with
 * c.  As the manual's tool, this renames contact-list entries only, never an account: an old
 * ID that is a local account is reported, and its account stays (accounts are renamed by
 * moving them, users export/import).  Contact lists of users this node does not serve are
 * left to their serving node (reported per row). */
#include "ha/ctl_bulk.h"

#include "ha/srm.h"
#include "lib/json_out.h"
#include "lib/log.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SKIPS_LISTED_MAX 100000

struct rename {
	struct ctl_conn *c;
	struct srm *srm;
	struct pg_req *req;
	long line_no, cur_row;
	char old_jid[BULK_JID_BUF], new_jid[BULK_JID_BUF];
	long renamed, lists, skipped, errors, not_processed, reloads;
	struct evbuffer *out; /* per-row lines, after the summary */
	long listed;
	int ended, failed, gone;
	char served[32], domain[CFG_NAME];
	char failure[400];
};

static void rename_free(struct rename *rn)
{
	if (rn->req)
		pg_req_cancel(rn->req);
	if (rn->out)
		evbuffer_free(rn->out);
	free(rn);
	bulk_job_end();
}

static void rename_cancel(void *arg)
{
	rename_free(arg);
}

static void rename_skip(struct rename *rn, long row, const char *detail)
{
	rn->skipped++;
	if (rn->listed >= SKIPS_LISTED_MAX)
		return;
	if (ctl_conn_json(rn->c)) {
		evbuffer_add_printf(rn->out, "%s{\"row\":%ld,\"reason\":\"invalid-format\","
					     "\"message\":\"Invalid format\",\"detail\":",
				    rn->listed ? "," : "", row);
		json_out_string(rn->out, detail);
		evbuffer_add(rn->out, "}", 1);
	} else {
		evbuffer_add_printf(rn->out, "row %ld: Invalid format (%s)\n", row, detail);
	}
	rn->listed++;
}

static void rename_finish(struct rename *rn)
{
	struct ctl_conn *c = rn->c;
	if (rn->gone) {
		ctl_reply_error(c, "usage", "the client went away before the end of the file");
		rename_free(rn);
		return;
	}
	log_info("bulk: contacts rename: %ld rows renamed in %ld contact lists, %ld skipped, "
		 "%ld errors, %ld not processed",
		 rn->renamed, rn->lists, rn->skipped, rn->errors, rn->not_processed);
	if (ctl_conn_json(c))
		ctl_body_printf(c,
				"{\"applied\":%ld,\"contact_lists\":%ld,\"skipped\":%ld,"
				"\"errors\":%ld,\"not_processed\":%ld,\"engine_reloads\":%ld,"
				"\"rows\":[",
				rn->renamed, rn->lists, rn->skipped, rn->errors, rn->not_processed,
				rn->reloads);
	else
		ctl_body_printf(c,
				"rows applied: %ld (contact lists changed: %ld)\nskipped: %ld\n"
				"errors: %ld\nnot processed: %ld\n",
				rn->renamed, rn->lists, rn->skipped, rn->errors, rn->not_processed);
	size_t n = evbuffer_get_length(rn->out);
	if (n)
		ctl_body_printf(c, "%.*s", (int)n, (char *)evbuffer_pullup(rn->out, -1));
	if (ctl_conn_json(c))
		ctl_body_printf(c, "]}\n");
	if (rn->failed) {
		char msg[500];
		snprintf(msg, sizeof msg, "%s", rn->failure);
		rename_free(rn);
		ctl_reply_error(c, "database", "rename ended early: %s", msg);
		return;
	}
	rename_free(rn);
	ctl_reply_ok(c);
}

static void on_rename_row(void *arg, PGresult *res, const char *errmsg)
{
	struct rename *rn = arg;
	rn->req = NULL;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		bulk_db_error(res, errmsg, rn->failure, sizeof rn->failure);
		log_warnx("bulk: contacts rename: row %ld failed: %s", rn->cur_row, rn->failure);
		rn->errors++;
		rn->failed = 1;
	} else {
		char *users = PQgetvalue(res, 0, 0);
		int old_local = PQgetvalue(res, 0, 1)[0] == 't';
		long elsewhere = atol(PQgetvalue(res, 0, 2));
		long k = 0;
		for (char *u = users; *u;) {
			char *nl = strchr(u, '\n');
			if (nl)
				*nl = '\0';
			k++;
			if (bulk_engine_reload(rn->srm, u) == 0)
				rn->reloads++;
			if (!nl)
				break;
			u = nl + 1;
		}
		rn->renamed++;
		rn->lists += k;
		if (rn->listed < SKIPS_LISTED_MAX) {
			if (ctl_conn_json(rn->c)) {
				evbuffer_add_printf(rn->out, "%s{\"row\":%ld,\"old\":",
						    rn->listed ? "," : "", rn->cur_row);
				json_out_string(rn->out, rn->old_jid);
				evbuffer_add_printf(rn->out, ",\"new\":");
				json_out_string(rn->out, rn->new_jid);
				evbuffer_add_printf(rn->out,
						    ",\"contact_lists\":%ld,\"old_is_local_account\":%s,"
						    "\"lists_left_to_peer\":%ld}",
						    k, old_local ? "true" : "false", elsewhere);
			} else {
				evbuffer_add_printf(rn->out, "row %ld: %s -> %s: %ld contact lists",
						    rn->cur_row, rn->old_jid, rn->new_jid, k);
				if (old_local)
					evbuffer_add_printf(rn->out, "; %s is a local account: "
								     "the account is not renamed",
							    rn->old_jid);
				if (elsewhere)
					evbuffer_add_printf(rn->out,
							    "; %ld lists of users this node does not "
							    "serve (unassigned, or served by the peer) "
							    "left as they are",
							    elsewhere);
				evbuffer_add(rn->out, "\n", 1);
			}
			rn->listed++;
		}
	}
	if (rn->ended || rn->gone) {
		rename_finish(rn);
		return;
	}
	ctl_conn_body_pause(rn->c, 0);
}

static void rename_row(struct rename *rn)
{
	/* The old ID's localpart when it is of this domain: is it a local account? */
	char local[BULK_JID_BUF];
	const char *at = strrchr(rn->old_jid, '@');
	int ours = at && strcmp(at + 1, rn->domain) == 0;
	snprintf(local, sizeof local, "%.*s", at ? (int)(at - rn->old_jid) : 0, rn->old_jid);
	const char *params[5] = {rn->old_jid, rn->new_jid, rn->served, rn->domain,
				 ours ? local : NULL};
	rn->req = pg_query(
		rn->srm->pool,
		"WITH src AS (SELECT r.* FROM roster_items r JOIN users u ON u.username = r.username"
		"   WHERE r.contact = $1 AND u.home_node = ANY ($3::int[])"
		"     AND u.username || '@' || $4 <> $2),"
		" dst AS (SELECT d.* FROM roster_items d JOIN src s ON s.username = d.username"
		"   WHERE d.contact = $2),"
		" del AS (DELETE FROM roster_items r USING src s WHERE r.username = s.username"
		"   AND r.contact = $1 RETURNING 1),"
		" ins AS (INSERT INTO roster_items (username, contact, name, subscription, ask_out,"
		"   pending_in, pending_in_stanza, preapproved, visible, groups, ver)"
		"   SELECT s.username, $2, coalesce(d.name, s.name),"
		"     coalesce(d.subscription, s.subscription), coalesce(d.ask_out, s.ask_out),"
		"     coalesce(d.pending_in, s.pending_in),"
		"     coalesce(d.pending_in_stanza, s.pending_in_stanza),"
		"     coalesce(d.preapproved, s.preapproved), coalesce(d.visible, false) OR s.visible,"
		"     ARRAY(SELECT g FROM (SELECT g, min(o) AS o FROM unnest(coalesce(d.groups, '{}')"
		"       || s.groups) WITH ORDINALITY AS x(g, o) GROUP BY g) y ORDER BY o),"
		"     u.roster_ver + 1"
		"   FROM src s JOIN users u ON u.username = s.username"
		"   LEFT JOIN dst d ON d.username = s.username"
		"   ON CONFLICT (username, contact) DO UPDATE SET name = EXCLUDED.name,"
		"     groups = EXCLUDED.groups, visible = EXCLUDED.visible, ver = EXCLUDED.ver"
		"   RETURNING 1),"
		" bump AS (UPDATE users u SET roster_ver = u.roster_ver + 1"
		"   WHERE u.username IN (SELECT username FROM src) RETURNING 1)"
		" SELECT coalesce((SELECT string_agg(username, E'\\n' ORDER BY username) FROM src), ''),"
		"   EXISTS (SELECT 1 FROM users WHERE username = $5),"
		"   (SELECT count(*) FROM roster_items r JOIN users u ON u.username = r.username"
		"     WHERE r.contact = $1 AND NOT (u.home_node = ANY ($3::int[])))",
		5, params, on_rename_row, rn);
	if (!rn->req) {
		on_rename_row(rn, NULL, "out of memory");
		return;
	}
	ctl_conn_body_pause(rn->c, 1);
}

static void rename_line(struct rename *rn, const char *line, size_t len)
{
	long row = rn->line_no;
	if (rn->failed) {
		rn->not_processed++;
		return;
	}
	if (len == 0 || (len == 1 && line[0] == '\r'))
		return;
	struct bulk_csv_fields f;
	const char *why;
	if (bulk_csv_split(line, len, &f, &why) < 0) {
		rename_skip(rn, row, why);
		return;
	}
	if (row == 1 && bulk_csv_is_header(&f, "Contact ID"))
		return;
	if (f.n != 2) {
		char d[64];
		snprintf(d, sizeof d, "%d columns, 2 expected", f.n);
		rename_skip(rn, row, d);
		return;
	}
	if (!bulk_jid_parse(f.f[0], rn->old_jid, sizeof rn->old_jid)) {
		rename_skip(rn, row, "Contact ID is not a valid user@domain");
		return;
	}
	if (!bulk_jid_parse(f.f[1], rn->new_jid, sizeof rn->new_jid)) {
		rename_skip(rn, row, "New Contact ID is not a valid user@domain");
		return;
	}
	if (strcmp(rn->old_jid, rn->new_jid) == 0) {
		rename_skip(rn, row, "the new ID is the old one");
		return;
	}
	rn->cur_row = row;
	rename_row(rn);
}

static void on_rename_body(void *arg, enum ctl_body_event ev, const char *line, size_t len)
{
	struct rename *rn = arg;
	switch (ev) {
	case CTL_BODY_LINE:
		rn->line_no++;
		rename_line(rn, line, len);
		return;
	case CTL_BODY_TOO_LONG:
		rn->line_no++;
		if (rn->failed)
			rn->not_processed++;
		else
			rename_skip(rn, rn->line_no, "line longer than 4096 bytes");
		return;
	case CTL_BODY_GONE:
		rn->gone = 1;
		break;
	case CTL_BODY_END:
		rn->ended = 1;
		break;
	}
	if (!rn->req)
		rename_finish(rn);
}

void ctl_bulk_contacts_rename(struct ctl_conn *c, int argc, char **argv)
{
	if (bulk_job_begin(c) < 0)
		return;
	struct srm *srm = ctl_conn_ctx(c);
	struct rename *rn = calloc(1, sizeof *rn);
	if (!rn || !(rn->out = evbuffer_new())) {
		free(rn);
		bulk_job_end();
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	rn->c = c;
	rn->srm = srm;
	bulk_domain(srm, rn->domain, sizeof rn->domain);
	bulk_served_nodes(srm, rn->served, sizeof rn->served);
	ctl_conn_set_cancel(c, rename_cancel, rn);
	ctl_conn_read_body(c, BULK_CSV_MAX_LINE, on_rename_body, rn);
}
