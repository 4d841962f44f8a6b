/* srmctl users export / import / assign: moving users to another group (inventory-part2
 * §15; docs/bulk-tools.md "Moving users").  The file is JSON lines: a header
 *   {"format":"duet-users","version":1,"domain":"example.com","exported_at":"..."}
 * then one object per user (account with its SCRAM keys, roster, vCard, last activity,
 * offline messages), built and read by PostgreSQL's own JSON functions, so srmd parses no
 * JSON itself and every malformed record is refused by the database, atomically.
 *
 * Export answers a page of EXPORT_PAGE users per request ("more CURSOR" or "done" first).
 * Import applies each record in one statement (one transaction): a new account is created
 * (unassigned unless a home node is given), an account with the same SCRAM keys is brought
 * to the file's state (a re-import changes nothing), and an account with the same user ID
 * but other keys is a different person: skipped as a duplicate user ID.  Assign sets the
 * home node of every user a file names; its users table change replicates to the peer. */
#include "ha/ctl_bulk.h"

#include "ha/ha_wire.h"
#include "ha/srm.h"
#include "lib/json_out.h"
#include "lib/log.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define EXPORT_PAGE 50
#define RECORD_MAX (8u << 20) /* bytes in one user's line: a roster plus vCard and offline */
#define LISTED_MAX 100000
#define FORMAT_PREFIX "{\"format\":\"duet-users\",\"version\":1,\"domain\":"

/* ---- export ---- */

struct uexport {
	struct ctl_conn *c;
	struct pg_req *req;
	int first;
	char domain[CFG_NAME];
};

static void uexport_cancel(void *arg)
{
	struct uexport *ex = arg;
	pg_req_cancel(ex->req);
	free(ex);
}

static void on_uexport_page(void *arg, PGresult *res, const char *errmsg)
{
	struct uexport *ex = arg;
	struct ctl_conn *c = ex->c;
	ex->req = NULL;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		char why[400];
		bulk_db_error(res, errmsg, why, sizeof why);
		free(ex);
		ctl_reply_error(c, "database", "%s", why);
		return;
	}
	int n = PQntuples(res);
	if (n == EXPORT_PAGE) {
		const char *last = PQgetvalue(res, n - 1, 0);
		char hex[2 * (HA_PROV_USER_MAX + 1) + 1];
		bulk_hex_encode(last, strlen(last), hex, sizeof hex);
		ctl_body_printf(c, "more %s\n", hex);
	} else {
		ctl_body_printf(c, "done\n");
	}
	if (ex->first) {
		char when[32];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
		ctl_body_printf(c, FORMAT_PREFIX);
		ctl_body_json_string(c, ex->domain);
		ctl_body_printf(c, ",\"exported_at\":\"%s\"}\n", when);
	}
	for (int i = 0; i < n; i++)
		ctl_body_printf(c, "%s\n", PQgetvalue(res, i, 1));
	free(ex);
	ctl_reply_ok(c);
}

void ctl_bulk_users_export(struct ctl_conn *c, int argc, char **argv)
{
	struct srm *srm = ctl_conn_ctx(c);
	struct uexport *ex = calloc(1, sizeof *ex);
	if (!ex) {
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	ex->c = c;
	bulk_domain(srm, ex->domain, sizeof ex->domain);
	/* all, unassigned, 1, 2, or one user */
	const char *kind = "user";
	char value[HA_PROV_USER_MAX + 1];
	const char *sel = argv[0];
	if (!strcmp(sel, "all")) {
		kind = "all";
		snprintf(value, sizeof value, "0");
	} else if (!strcmp(sel, "unassigned") || !strcmp(sel, "none") || !strcmp(sel, "1") ||
		   !strcmp(sel, "2")) {
		kind = "node";
		snprintf(value, sizeof value, "%s", sel[0] == '1' || sel[0] == '2' ? sel : "0");
	} else {
		const char *at = strrchr(sel, '@');
		size_t len = at ? (size_t)(at - sel) : strlen(sel);
		if ((at && strcasecmp(at + 1, ex->domain) != 0) || len == 0 ||
		    len >= sizeof value) {
			free(ex);
			ctl_reply_error(c, "usage",
					"SELECTION is all, unassigned, 1, 2 or a user of this domain");
			return;
		}
		memcpy(value, sel, len);
		value[len] = '\0';
		for (char *p = value; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	}
	char after[HA_PROV_USER_MAX + 2];
	ex->first = strcmp(argv[1], "-") == 0;
	if (!ex->first && bulk_hex_decode(argv[1], after, sizeof after) < 0) {
		free(ex);
		ctl_reply_error(c, "usage", "bad CURSOR");
		return;
	}
	char limit[16];
	snprintf(limit, sizeof limit, "%d", EXPORT_PAGE);
	const char *params[4] = {kind, value, ex->first ? NULL : after, limit};
#define TS(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
	ex->req = pg_query(
		srm->pool,
		"SELECT u.username, json_build_object("
		" 'user', u.username, 'home_node', u.home_node, 'roster_ver', u.roster_ver,"
		" 'created_at', " TS("u.created_at") ","
		" 'sha1', json_build_object('salt', encode(u.sha1_salt, 'hex'), 'iter', u.sha1_iter,"
		"   'stored', encode(u.sha1_stored, 'hex'), 'server', encode(u.sha1_server, 'hex')),"
		" 'sha256', json_build_object('salt', encode(u.sha256_salt, 'hex'),"
		"   'iter', u.sha256_iter, 'stored', encode(u.sha256_stored, 'hex'),"
		"   'server', encode(u.sha256_server, 'hex')),"
		" 'roster', coalesce((SELECT json_agg(json_build_object('contact', r.contact,"
		"   'name', r.name, 'subscription', r.subscription, 'ask_out', r.ask_out,"
		"   'pending_in', r.pending_in, 'pending_in_stanza', r.pending_in_stanza,"
		"   'preapproved', r.preapproved, 'visible', r.visible, 'groups', r.groups)"
		"   ORDER BY r.contact COLLATE \"C\") FROM roster_items r"
		"   WHERE r.username = u.username), '[]'::json),"
		" 'vcard', (SELECT v.vcard FROM vcards v WHERE v.username = u.username),"
		" 'last_activity', (SELECT json_build_object('logout_at', " TS("l.logout_at") ","
		"   'status', l.status) FROM last_activity l WHERE l.username = u.username),"
		" 'offline', coalesce((SELECT json_agg(json_build_object('stanza', o.stanza,"
		"   'created_at', " TS("o.created_at") ") ORDER BY o.id)"
		"   FROM offline_messages o WHERE o.username = u.username), '[]'::json))::text"
		" FROM users u WHERE ($1 = 'all' OR ($1 = 'node' AND u.home_node::text = $2)"
		"   OR ($1 = 'user' AND u.username = $2))"
		" AND ($3::text IS NULL OR u.username > $3::text)"
		" ORDER BY u.username LIMIT $4::int", /* the primary key's order */
		4, params, on_uexport_page, ex);
#undef TS
	if (!ex->req) {
		free(ex);
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	ctl_conn_set_cancel(c, uexport_cancel, ex);
}

/* ---- import and assign: one record (line) at a time ---- */

enum ujob_kind { UJOB_IMPORT, UJOB_ASSIGN };

struct ujob {
	enum ujob_kind kind;
	struct ctl_conn *c;
	struct srm *srm;
	struct pg_req *req;
	long line_no, cur_line;
	char *record;      /* the line being applied */
	char user[HA_PROV_USER_MAX + 1];
	char home[8];      /* "" = keep (import without NODE) */
	int header_seen;
	long done, created, skipped, errors, not_processed, not_found;
	struct evbuffer *out;
	long listed;
	int ended, failed, gone;
	const char *fail_code; /* the error code of a job that ended early */
	char domain[CFG_NAME];
	char failure[400];
};

static void ujob_free(struct ujob *j)
{
	if (j->req)
		pg_req_cancel(j->req);
	if (j->out)
		evbuffer_free(j->out);
	free(j->record);
	free(j);
	bulk_job_end();
}

static void ujob_cancel(void *arg)
{
	ujob_free(arg);
}

/* One result line: what happened to the record on line `line`. */
static void ujob_note(struct ujob *j, long line, const char *user, const char *result,
		      const char *detail)
{
	if (j->listed >= LISTED_MAX)
		return;
	if (ctl_conn_json(j->c)) {
		evbuffer_add_printf(j->out, "%s{\"line\":%ld,\"user\":", j->listed ? "," : "", line);
		json_out_string(j->out, user);
		evbuffer_add_printf(j->out, ",\"result\":\"%s\",\"detail\":", result);
		json_out_string(j->out, detail);
		evbuffer_add(j->out, "}", 1);
	} else {
		if (*detail)
			evbuffer_add_printf(j->out, "line %ld: %s: %s (%s)\n", line,
					    *user ? user : "-", result, detail);
		else
			evbuffer_add_printf(j->out, "line %ld: %s: %s\n", line, *user ? user : "-",
					    result);
	}
	j->listed++;
}

static void ujob_finish(struct ujob *j)
{
	struct ctl_conn *c = j->c;
	if (j->gone) {
		ctl_reply_error(c, "usage", "the client went away before the end of the file");
		ujob_free(j);
		return;
	}
	const char *what = j->kind == UJOB_IMPORT ? "imported" : "assigned";
	log_info("bulk: users %s: %ld %s (%ld new), %ld skipped, %ld not found, %ld errors, "
		 "%ld not processed",
		 j->kind == UJOB_IMPORT ? "import" : "assign", j->done, what, j->created,
		 j->skipped, j->not_found, j->errors, j->not_processed);
	if (ctl_conn_json(c))
		ctl_body_printf(c,
				"{\"%s\":%ld,\"created\":%ld,\"skipped\":%ld,\"not_found\":%ld,"
				"\"errors\":%ld,\"not_processed\":%ld,\"records\":[",
				what, j->done, j->created, j->skipped, j->not_found, j->errors,
				j->not_processed);
	else if (j->kind == UJOB_IMPORT)
		ctl_body_printf(c,
				"imported: %ld (new accounts: %ld)\nskipped: %ld\nerrors: %ld\n"
				"not processed: %ld\n",
				j->done, j->created, j->skipped, j->errors, j->not_processed);
	else
		ctl_body_printf(c,
				"assigned: %ld\nnot found: %ld\nskipped: %ld\nerrors: %ld\n"
				"not processed: %ld\n",
				j->done, j->not_found, j->skipped, j->errors, j->not_processed);
	size_t n = evbuffer_get_length(j->out);
	if (n)
		ctl_body_printf(c, "%.*s", (int)n, (char *)evbuffer_pullup(j->out, -1));
	if (ctl_conn_json(c))
		ctl_body_printf(c, "]}\n");
	if (j->failed) {
		char msg[500];
		snprintf(msg, sizeof msg, "%s", j->failure);
		const char *code = j->fail_code ? j->fail_code : "database";
		ujob_free(j);
		ctl_reply_error(c, code, "ended early: %s", msg);
		return;
	}
	ujob_free(j);
	ctl_reply_ok(c);
}

/* The database could not run the statement at all (connection, resources, shutdown):
 * the job stops there. */
static int db_fatal(PGresult *res)
{
	if (!res)
		return 1;
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	return !st || !strncmp(st, "08", 2) || !strncmp(st, "53", 2) || !strncmp(st, "57", 2) ||
	       !strncmp(st, "58", 2) || !strncmp(st, "XX", 2);
}

static void ujob_next(struct ujob *j)
{
	free(j->record);
	j->record = NULL;
	if (j->ended || j->gone) {
		ujob_finish(j);
		return;
	}
	ctl_conn_body_pause(j->c, 0);
}

/* A statement failed: per record, or the end of the job. */
static void ujob_failed(struct ujob *j, PGresult *res, const char *errmsg)
{
	char why[400];
	bulk_db_error(res, errmsg, why, sizeof why);
	if (db_fatal(res)) {
		snprintf(j->failure, sizeof j->failure, "%s", why);
		log_warnx("bulk: users: line %ld: %s", j->cur_line, why);
		j->errors++;
		j->failed = 1;
	} else {
		j->skipped++;
		char detail[450];
		snprintf(detail, sizeof detail, "Invalid format: %s", why);
		ujob_note(j, j->cur_line, j->user, "skipped", detail);
	}
	ujob_next(j);
}

static void on_import_written(void *arg, PGresult *res, const char *errmsg)
{
	struct ujob *j = arg;
	j->req = NULL;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		ujob_failed(j, res, errmsg);
		return;
	}
	if (atol(PQgetvalue(res, 0, 0)) == 0) {
		j->skipped++;
		ujob_note(j, j->cur_line, j->user, "skipped",
			  "duplicate user ID: a different account (other credentials) has this user "
			  "ID here");
		ujob_next(j);
		return;
	}
	int created = PQgetvalue(res, 0, 1)[0] == 't';
	j->done++;
	j->created += created;
	char detail[160], home[24];
	const char *h = PQgetvalue(res, 0, 2);
	snprintf(home, sizeof home, strcmp(h, "0") ? "home node %s" : "unassigned", h);
	snprintf(detail, sizeof detail, "%s account, %s, %s contacts, %s offline messages added",
		 created ? "new" : "existing", home, PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4));
	ujob_note(j, j->cur_line, j->user, "imported", detail);
	bulk_engine_reload(j->srm, j->user);
	ujob_next(j);
}

static void import_write(struct ujob *j)
{
	const char *params[3] = {j->record, j->user, j->home[0] ? j->home : NULL};
	j->req = pg_query(
		j->srm->pool,
		"WITH j AS (SELECT $1::jsonb AS r),"
		" a AS (SELECT decode(r#>>'{sha1,salt}', 'hex') AS s1salt,"
		"   (r#>>'{sha1,iter}')::int AS s1iter, decode(r#>>'{sha1,stored}', 'hex') AS s1stored,"
		"   decode(r#>>'{sha1,server}', 'hex') AS s1server,"
		"   decode(r#>>'{sha256,salt}', 'hex') AS s2salt, (r#>>'{sha256,iter}')::int AS s2iter,"
		"   decode(r#>>'{sha256,stored}', 'hex') AS s2stored,"
		"   decode(r#>>'{sha256,server}', 'hex') AS s2server,"
		"   coalesce((r->>'roster_ver')::bigint, 0) AS rver FROM j),"
		" cur AS (SELECT u.sha256_salt, u.sha256_stored FROM users u WHERE u.username = $2),"
		" go AS (SELECT a.* FROM a WHERE NOT EXISTS (SELECT 1 FROM cur) OR EXISTS (SELECT 1"
		"   FROM cur WHERE cur.sha256_salt = a.s2salt AND cur.sha256_stored = a.s2stored)),"
		" usr AS (INSERT INTO users (username, home_node, sha1_salt, sha1_iter, sha1_stored,"
		"   sha1_server, sha256_salt, sha256_iter, sha256_stored, sha256_server, roster_ver)"
		"   SELECT $2, coalesce($3::int, 0), s1salt, s1iter, s1stored, s1server, s2salt,"
		"     s2iter, s2stored, s2server, rver FROM go"
		"   ON CONFLICT (username) DO UPDATE SET"
		"     home_node = coalesce($3::int, users.home_node), sha1_salt = EXCLUDED.sha1_salt,"
		"     sha1_iter = EXCLUDED.sha1_iter, sha1_stored = EXCLUDED.sha1_stored,"
		"     sha1_server = EXCLUDED.sha1_server, sha256_iter = EXCLUDED.sha256_iter,"
		"     sha256_server = EXCLUDED.sha256_server,"
		"     roster_ver = greatest(users.roster_ver, EXCLUDED.roster_ver)"
		"   RETURNING (xmax = 0) AS created, home_node),"
		" ros AS (SELECT x->>'contact' AS contact, x->>'name' AS name,"
		"   x->>'subscription' AS subscription, (x->>'ask_out')::boolean AS ask_out,"
		"   (x->>'pending_in')::boolean AS pending_in, x->>'pending_in_stanza' AS pis,"
		"   (x->>'preapproved')::boolean AS preapproved, (x->>'visible')::boolean AS visible,"
		"   ARRAY(SELECT jsonb_array_elements_text(x->'groups')) AS groups"
		"   FROM j, jsonb_array_elements(coalesce(j.r->'roster', '[]')) x"
		"   WHERE EXISTS (SELECT 1 FROM go)),"
		" rdel AS (DELETE FROM roster_items d WHERE d.username = $2"
		"   AND EXISTS (SELECT 1 FROM go) AND d.contact NOT IN (SELECT contact FROM ros)"
		"   RETURNING 1),"
		" rins AS (INSERT INTO roster_items (username, contact, name, subscription, ask_out,"
		"   pending_in, pending_in_stanza, preapproved, visible, groups, ver)"
		"   SELECT $2, contact, name, subscription, ask_out, pending_in, pis, preapproved,"
		"     visible, groups, (SELECT rver FROM go) FROM ros"
		"   ON CONFLICT (username, contact) DO UPDATE SET name = EXCLUDED.name,"
		"     subscription = EXCLUDED.subscription, ask_out = EXCLUDED.ask_out,"
		"     pending_in = EXCLUDED.pending_in, pending_in_stanza = EXCLUDED.pending_in_stanza,"
		"     preapproved = EXCLUDED.preapproved, visible = EXCLUDED.visible,"
		"     groups = EXCLUDED.groups RETURNING 1),"
		" vc AS (INSERT INTO vcards (username, vcard) SELECT $2, r->>'vcard' FROM j"
		"   WHERE EXISTS (SELECT 1 FROM go) AND r->>'vcard' IS NOT NULL"
		"   ON CONFLICT (username) DO UPDATE SET vcard = EXCLUDED.vcard RETURNING 1),"
		" vcd AS (DELETE FROM vcards WHERE username = $2 AND EXISTS (SELECT 1 FROM go)"
		"   AND (SELECT r->>'vcard' FROM j) IS NULL RETURNING 1),"
		" la AS (INSERT INTO last_activity (username, logout_at, status)"
		"   SELECT $2, (r#>>'{last_activity,logout_at}')::timestamptz,"
		"     coalesce(r#>>'{last_activity,status}', '') FROM j"
		"   WHERE EXISTS (SELECT 1 FROM go) AND jsonb_typeof(r->'last_activity') = 'object'"
		"   ON CONFLICT (username) DO UPDATE SET logout_at = EXCLUDED.logout_at,"
		"     status = EXCLUDED.status RETURNING 1),"
		" off AS (INSERT INTO offline_messages (username, stanza, created_at)"
		"   SELECT $2, x->>'stanza', (x->>'created_at')::timestamptz"
		"   FROM j, jsonb_array_elements(coalesce(j.r->'offline', '[]')) x"
		"   WHERE EXISTS (SELECT 1 FROM go) AND NOT EXISTS (SELECT 1 FROM offline_messages o"
		"     WHERE o.username = $2 AND o.stanza = x->>'stanza'"
		"       AND o.created_at = (x->>'created_at')::timestamptz) RETURNING 1)"
		" SELECT (SELECT count(*) FROM go), coalesce((SELECT created FROM usr), false),"
		"   coalesce((SELECT home_node FROM usr), 0), (SELECT count(*) FROM ros),"
		"   (SELECT count(*) FROM off)",
		3, params, on_import_written, j);
	if (!j->req)
		on_import_written(j, NULL, "out of memory");
}

/* Step one of an import record: the user ID, read by the database's JSON parser, checked
 * by srmd's own rules before anything is written. */
static void on_import_named(void *arg, PGresult *res, const char *errmsg)
{
	struct ujob *j = arg;
	j->req = NULL;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		ujob_failed(j, res, errmsg);
		return;
	}
	const char *name = PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0);
	snprintf(j->user, sizeof j->user, "%s", name);
	if (strlen(name) >= sizeof j->user || !ha_localpart_valid(name)) {
		j->skipped++;
		ujob_note(j, j->cur_line, "", "skipped",
			  "Invalid format: \"user\" is missing or not a valid user ID");
		j->user[0] = '\0';
		ujob_next(j);
		return;
	}
	import_write(j);
}

static void on_assigned(void *arg, PGresult *res, const char *errmsg)
{
	struct ujob *j = arg;
	j->req = NULL;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		ujob_failed(j, res, errmsg);
		return;
	}
	if (PQntuples(res) == 0) {
		j->not_found++;
		ujob_note(j, j->cur_line, j->user, "not found", "");
	} else {
		snprintf(j->user, sizeof j->user, "%s", PQgetvalue(res, 0, 0));
		j->done++;
		ujob_note(j, j->cur_line, j->user, "assigned",
			  strcmp(j->home, "0") ? j->home : "unassigned");
	}
	ujob_next(j);
}

static int header_ok(const struct ujob *j, const char *line)
{
	char want[CFG_NAME + 64];
	snprintf(want, sizeof want, "%s\"%s\"", FORMAT_PREFIX, j->domain);
	size_t n = strlen(want);
	return strncmp(line, want, n) == 0 && (line[n] == ',' || line[n] == '}');
}

static void ujob_line(struct ujob *j, const char *line, size_t len)
{
	long no = j->line_no;
	if (j->failed) {
		j->not_processed++;
		return;
	}
	if (len == 0)
		return;
	if (strncmp(line, FORMAT_PREFIX, strlen(FORMAT_PREFIX)) == 0) {
		if (!header_ok(j, line)) {
			ujob_note(j, no, "", "refused",
				  "the file was exported from another domain: its contacts and "
				  "offline messages name that domain");
			j->failed = 1;
			j->fail_code = "bad-file";
			snprintf(j->failure, sizeof j->failure,
				 "line %ld: a duet-users file of another domain", no);
			return;
		}
		j->header_seen = 1;
		return;
	}
	if (!(j->record = malloc(len + 1))) {
		snprintf(j->failure, sizeof j->failure, "out of memory");
		j->failed = 1;
		return;
	}
	memcpy(j->record, line, len);
	j->record[len] = '\0';
	j->cur_line = no;
	j->user[0] = '\0';
	if (j->kind == UJOB_IMPORT) {
		if (!j->header_seen) {
			ujob_note(j, no, "", "refused",
				  "no duet-users header line before the first record");
			j->failed = 1;
			j->fail_code = "bad-file";
			snprintf(j->failure, sizeof j->failure, "not a duet-users file");
			free(j->record);
			j->record = NULL;
			return;
		}
		const char *params[1] = {j->record};
		j->req = pg_query(j->srm->pool, "SELECT $1::jsonb->>'user'", 1, params,
				  on_import_named, j);
		if (!j->req) {
			on_import_named(j, NULL, "out of memory");
			return;
		}
	} else {
		/* A record of an export file, or a bare user ID / JID per line. */
		const char *params[2] = {j->record, j->home};
		if (j->record[0] != '{') {
			char *at = strrchr(j->record, '@');
			if (at && strcasecmp(at + 1, j->domain) == 0)
				*at = '\0';
			for (char *p = j->record; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
			snprintf(j->user, sizeof j->user, "%s", j->record);
			if (!ha_localpart_valid(j->record)) {
				j->skipped++;
				ujob_note(j, no, "", "skipped", "Invalid format: not a user ID");
				free(j->record);
				j->record = NULL;
				return;
			}
		}
		j->req = pg_query(j->srm->pool,
				  "UPDATE users SET home_node = $2::int WHERE username ="
				  " CASE WHEN left($1, 1) = '{' THEN $1::jsonb->>'user' ELSE $1 END"
				  " RETURNING username",
				  2, params, on_assigned, j);
		if (!j->req) {
			on_assigned(j, NULL, "out of memory");
			return;
		}
	}
	ctl_conn_body_pause(j->c, 1);
}

static void on_ujob_body(void *arg, enum ctl_body_event ev, const char *line, size_t len)
{
	struct ujob *j = arg;
	switch (ev) {
	case CTL_BODY_LINE:
		j->line_no++;
		ujob_line(j, line, len);
		return;
	case CTL_BODY_TOO_LONG:
		j->line_no++;
		if (j->failed) {
			j->not_processed++;
		} else {
			j->skipped++;
			ujob_note(j, j->line_no, "", "skipped", "Invalid format: line too long");
		}
		return;
	case CTL_BODY_GONE:
		j->gone = 1;
		break;
	case CTL_BODY_END:
		j->ended = 1;
		break;
	}
	if (!j->req)
		ujob_finish(j);
}

static void ujob_start(struct ctl_conn *c, enum ujob_kind kind, const char *node)
{
	char home[8] = "";
	if (node) {
		if (!strcmp(node, "1") || !strcmp(node, "2"))
			snprintf(home, sizeof home, "%s", node);
		else if (!strcmp(node, "none") || !strcmp(node, "0"))
			snprintf(home, sizeof home, "0");
		else {
			ctl_reply_error(c, "usage", "NODE must be 1, 2 or none");
			return;
		}
	}
	if (bulk_job_begin(c) < 0)
		return;
	struct srm *srm = ctl_conn_ctx(c);
	struct ujob *j = calloc(1, sizeof *j);
	if (!j || !(j->out = evbuffer_new())) {
		free(j);
		bulk_job_end();
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	j->kind = kind;
	j->c = c;
	j->srm = srm;
	snprintf(j->home, sizeof j->home, "%s", home);
	bulk_domain(srm, j->domain, sizeof j->domain);
	ctl_conn_set_cancel(c, ujob_cancel, j);
	ctl_conn_read_body(c, RECORD_MAX, on_ujob_body, j);
}

void ctl_bulk_users_import(struct ctl_conn *c, int argc, char **argv)
{
	ujob_start(c, UJOB_IMPORT, argc > 0 ? argv[0] : NULL);
}

void ctl_bulk_users_assign(struct ctl_conn *c, int argc, char **argv)
{
	ujob_start(c, UJOB_ASSIGN, argv[0]);
}
