/* srmctl contacts export / import: the manual's contact-list CSV (inventory-part2 §14.4,
 * §14.5; docs/bulk-tools.md).
 *
 * Export answers one page (EXPORT_PAGE roster items) per request; the body's first line is
 * "more CURSOR" or "done", then the rows.  Import reads the CSV as the request body and
 * applies it in batches of IMPORT_BATCH rows, each one statement (one transaction), so a
 * batch is applied whole or not at all and the replication triggers capture it like any
 * other write.  Rows are judged by the manual's rules: Table 26 in C (ctl_bulk_csv.c), the
 * contact-list limit and the user's assignment in SQL, in file order.  Re-importing a file
 * changes nothing (a row whose contact and group are there already is "unchanged").  Users
 * of home nodes this node does not serve are skipped ("User not assigned to local node"):
 * their serving node is their one writer (docs/architecture.md), so on a pair the file is
 * imported on both nodes.  The engine re-reads the roster of each changed user it holds in
 * memory (roster-reload). */
#include "ha/ctl_bulk.h"

#include "ha/srm.h"
#include "lib/log.h"
#include "lib/strmap.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EXPORT_PAGE 2000
#define CURSOR_PART 2048 /* bytes of a user ID or contact JID in a cursor (both are less) */
#define IMPORT_BATCH 500
#define SKIPS_LISTED_MAX 100000 /* skip lines kept for the answer; later ones are counted */

/* ---- export ---- */

struct cexport {
	struct ctl_conn *c;
	struct pg_req *req;
	char domain[CFG_NAME];
};

static void export_cancel(void *arg)
{
	struct cexport *ex = arg;
	pg_req_cancel(ex->req);
	free(ex);
}

/* SELECTION: all, unassigned, 1, 2, or a user (JID or localpart).  Into the query's
 * kind ("all", "node", "user") and value. */
static int selection_parse(const char *sel, const char *domain, const char **kind, char *value,
			   size_t cap)
{
	if (strcmp(sel, "all") == 0) {
		*kind = "all";
		snprintf(value, cap, "0");
	} else if (strcmp(sel, "unassigned") == 0 || strcmp(sel, "none") == 0) {
		*kind = "node";
		snprintf(value, cap, "0");
	} else if (strcmp(sel, "1") == 0 || strcmp(sel, "2") == 0) {
		*kind = "node";
		snprintf(value, cap, "%s", sel);
	} else {
		const char *at = strrchr(sel, '@');
		size_t n = at ? (size_t)(at - sel) : strlen(sel);
		if (at && strcasecmp(at + 1, domain) != 0)
			return -1;
		if (n == 0 || n >= cap)
			return -1;
		memcpy(value, sel, n);
		value[n] = '\0';
		for (char *p = value; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		*kind = "user";
	}
	return 0;
}

static void export_row(struct ctl_conn *c, const char *user, const char *domain,
		       const char *contact, const char *nick, const char *group)
{
	const char *at = strrchr(contact, '@');
	char cl[BULK_JID_BUF];
	size_t n = (size_t)(at - contact);
	memcpy(cl, contact, n);
	cl[n] = '\0';
	char line[4 * BULK_CSV_MAX_LINE] = "";
	const char *fields[6] = {user, domain, cl, at + 1, nick, group};
	for (int i = 0; i < 6; i++) {
		if (i)
			strcat(line, ",");
		bulk_csv_field(line, sizeof line, fields[i]);
	}
	ctl_body_printf(c, "%s\n", line);
}

static void on_export_page(void *arg, PGresult *res, const char *errmsg)
{
	struct cexport *ex = arg;
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
		/* The cursor: hex(user) "." hex(contact) of the last item (hex: any bytes). */
		const char *u = PQgetvalue(res, n - 1, 0), *k = PQgetvalue(res, n - 1, 1);
		char hu[2 * CURSOR_PART + 1], hk[2 * CURSOR_PART + 1];
		bulk_hex_encode(u, strlen(u), hu, sizeof hu);
		bulk_hex_encode(k, strlen(k), hk, sizeof hk);
		ctl_body_printf(c, "more %s.%s\n", hu, hk);
	} else {
		ctl_body_printf(c, "done\n");
	}
	long unexportable = 0;
	for (int i = 0; i < n; i++) {
		const char *user = PQgetvalue(res, i, 0), *contact = PQgetvalue(res, i, 1);
		const char *nick = PQgetvalue(res, i, 2);
		char *groups = PQgetvalue(res, i, 3);
		const char *at = strrchr(contact, '@');
		/* A server JID as a contact, or a value no CSV row can carry. */
		if (!at || at == contact || strlen(contact) >= BULK_JID_BUF ||
		    strlen(user) >= BULK_ID_BUF || strlen(nick) >= BULK_TEXT_BUF ||
		    strlen(groups) >= BULK_CSV_MAX_LINE) {
			unexportable++;
			continue;
		}
		if (!*groups) {
			export_row(c, user, ex->domain, contact, nick, BULK_DEFAULT_GROUP);
			continue;
		}
		for (char *g = groups;;) {
			char *nl = strchr(g, '\n');
			if (nl)
				*nl = '\0';
			export_row(c, user, ex->domain, contact, nick, g);
			if (!nl)
				break;
			g = nl + 1;
		}
	}
	if (unexportable)
		log_warnx("bulk: contacts export: %ld roster items have no CSV form (a contact "
			  "without a localpart, or longer than the format allows)",
			  unexportable);
	free(ex);
	ctl_reply_ok(c);
}

void ctl_bulk_contacts_export(struct ctl_conn *c, int argc, char **argv)
{
	struct srm *srm = ctl_conn_ctx(c);
	struct cexport *ex = calloc(1, sizeof *ex);
	if (!ex) {
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	ex->c = c;
	bulk_domain(srm, ex->domain, sizeof ex->domain);
	const char *kind;
	char value[BULK_ID_BUF * 2];
	if (selection_parse(argv[0], ex->domain, &kind, value, sizeof value) < 0) {
		free(ex);
		ctl_reply_error(c, "usage",
				"SELECTION is all, unassigned, 1, 2 or a user of this domain");
		return;
	}
	char after_user[CURSOR_PART + 1] = "", after_contact[CURSOR_PART + 1] = "";
	int first = strcmp(argv[1], "-") == 0;
	if (!first) {
		char *dot = strchr(argv[1], '.');
		if (dot)
			*dot = '\0';
		if (!dot || bulk_hex_decode(argv[1], after_user, sizeof after_user) < 0 ||
		    bulk_hex_decode(dot + 1, after_contact, sizeof after_contact) < 0) {
			free(ex);
			ctl_reply_error(c, "usage", "bad CURSOR");
			return;
		}
	}
	const char *params[5] = {kind, value, first ? NULL : after_user,
				 first ? NULL : after_contact};
	char limit[16];
	snprintf(limit, sizeof limit, "%d", EXPORT_PAGE);
	params[4] = limit;
	ex->req = pg_query(srm->pool,
			   "SELECT r.username, r.contact, coalesce(r.name, ''),"
			   " array_to_string(r.groups, E'\\n')"
			   " FROM roster_items r JOIN users u ON u.username = r.username"
			   " WHERE r.visible AND ($1 = 'all'"
			   "  OR ($1 = 'node' AND u.home_node::text = $2)"
			   "  OR ($1 = 'user' AND u.username = $2))"
			   " AND ($3::text IS NULL OR (r.username, r.contact) > ($3::text, $4::text))"
			   /* The primary key's order (the database's collation): each page is an
			    * index range, not a sort of every roster. */
			   " ORDER BY r.username, r.contact LIMIT $5::int",
			   5, params, on_export_page, ex);
	if (!ex->req) {
		free(ex);
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	ctl_conn_set_cancel(c, export_cancel, ex);
}

/* ---- import ---- */

struct skip {
	long row;
	enum bulk_reason reason;
	char *detail;
};

struct cimport {
	struct ctl_conn *c;
	struct srm *srm;
	struct pg_req *req;
	long line_no;
	int nbatch;
	long rownos[IMPORT_BATCH];
	struct bulk_contact_row *rows; /* IMPORT_BATCH of them */
	long imported, unchanged, skipped, errors, not_processed;
	long per_reason[BULK_REASON_COUNT];
	long users_changed, users_reloaded;
	struct skip *skips; /* kept to be listed by row at the end (DB verdicts come later) */
	long skips_listed, skips_cap;
	int ended, failed, gone;
	char served[32], domain[CFG_NAME], max[24];
	char failure[400];
};

static void import_free(struct cimport *im)
{
	if (im->req)
		pg_req_cancel(im->req);
	for (long i = 0; i < im->skips_listed; i++)
		free(im->skips[i].detail);
	free(im->skips);
	free(im->rows);
	free(im);
	bulk_job_end();
}

static void import_cancel(void *arg)
{
	import_free(arg);
}

static void import_skip(struct cimport *im, long row, enum bulk_reason r, const char *detail)
{
	im->skipped++;
	im->per_reason[r]++;
	if (im->skips_listed >= SKIPS_LISTED_MAX)
		return;
	if (im->skips_listed == im->skips_cap) {
		long cap = im->skips_cap ? 2 * im->skips_cap : 64;
		struct skip *n = realloc(im->skips, (size_t)cap * sizeof *n);
		if (!n)
			return;
		im->skips = n;
		im->skips_cap = cap;
	}
	struct skip *k = &im->skips[im->skips_listed];
	if (!(k->detail = strdup(detail)))
		return;
	k->row = row;
	k->reason = r;
	im->skips_listed++;
}

static int skip_cmp(const void *a, const void *b)
{
	const struct skip *x = a, *y = b;
	return (x->row > y->row) - (x->row < y->row);
}

/* The skipped rows in file order: "row N: Reason (detail)", or JSON objects. */
static void skips_print(struct cimport *im)
{
	struct ctl_conn *c = im->c;
	if (im->skips_listed)
		qsort(im->skips, (size_t)im->skips_listed, sizeof *im->skips, skip_cmp);
	for (long i = 0; i < im->skips_listed; i++) {
		const struct skip *k = &im->skips[i];
		if (!ctl_conn_json(c)) {
			ctl_body_printf(c, "row %ld: %s (%s)\n", k->row, bulk_reason_message[k->reason],
					k->detail);
			continue;
		}
		ctl_body_printf(c, "%s{\"row\":%ld,\"reason\":\"%s\",\"message\":\"%s\",\"detail\":",
				i ? "," : "", k->row, bulk_reason_code[k->reason],
				bulk_reason_message[k->reason]);
		ctl_body_json_string(c, k->detail);
		ctl_body_printf(c, "}");
	}
}

static void import_finish(struct cimport *im)
{
	struct ctl_conn *c = im->c;
	if (im->gone) {
		ctl_reply_error(c, "usage", "the client went away before the end of the file");
		import_free(im);
		return;
	}
	log_info("bulk: contacts import: %ld imported (%ld unchanged), %ld skipped, %ld errors, "
		 "%ld not processed; %ld users changed",
		 im->imported, im->unchanged, im->skipped, im->errors, im->not_processed,
		 im->users_changed);
	if (ctl_conn_json(c)) {
		ctl_body_printf(c,
				"{\"imported\":%ld,\"unchanged\":%ld,\"skipped\":%ld,\"errors\":%ld,"
				"\"not_processed\":%ld,\"users_changed\":%ld,"
				"\"engine_reloads\":%ld,\"skipped_by_reason\":{",
				im->imported, im->unchanged, im->skipped, im->errors,
				im->not_processed, im->users_changed, im->users_reloaded);
		for (int r = 1; r < BULK_REASON_COUNT; r++)
			ctl_body_printf(c, "%s\"%s\":%ld", r > 1 ? "," : "", bulk_reason_code[r],
					im->per_reason[r]);
		ctl_body_printf(c, "},\"skips_listed\":%ld,\"skips\":[", im->skips_listed);
	} else {
		ctl_body_printf(c,
				"imported: %ld (unchanged: %ld)\nskipped: %ld\nerrors: %ld\n"
				"not processed: %ld\nusers changed: %ld (engine reloads: %ld)\n",
				im->imported, im->unchanged, im->skipped, im->errors,
				im->not_processed, im->users_changed, im->users_reloaded);
	}
	skips_print(im);
	if (ctl_conn_json(c))
		ctl_body_printf(c, "]%s%s%s}\n", im->failed ? ",\"failure\":\"" : "",
				im->failed ? im->failure : "", im->failed ? "\"" : "");
	else if (im->skipped > im->skips_listed)
		ctl_body_printf(c, "(%ld more skipped rows not listed)\n",
				im->skipped - im->skips_listed);
	if (im->failed) {
		char msg[500];
		snprintf(msg, sizeof msg, "%s", im->failure);
		import_free(im);
		ctl_reply_error(c, "database", "import ended early: %s", msg);
		return;
	}
	import_free(im);
	ctl_reply_ok(c);
}

static void import_flush(struct cimport *im);

static void on_import_batch(void *arg, PGresult *res, const char *errmsg)
{
	struct cimport *im = arg;
	im->req = NULL;
	int n = im->nbatch;
	im->nbatch = 0;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		/* The batch is rolled back: its rows are the manual's internal server errors,
		 * and the rest of the file is not processed. */
		bulk_db_error(res, errmsg, im->failure, sizeof im->failure);
		log_warnx("bulk: contacts import: batch of %d rows failed: %s", n, im->failure);
		im->errors += n;
		im->failed = 1;
	} else {
		struct strmap *changed = strmap_new();
		for (int i = 0; i < PQntuples(res); i++) {
			long row = atol(PQgetvalue(res, i, 0));
			if (!PQgetisnull(res, i, 1)) {
				enum bulk_reason r = bulk_reason_from_code(PQgetvalue(res, i, 1));
				if (r == BULK_REASON_COUNT)
					r = BULK_INVALID_FORMAT;
				char detail[BULK_ID_BUF + BULK_JID_BUF + 64];
				snprintf(detail, sizeof detail, "user %s, contact %s",
					 PQgetvalue(res, i, 2), PQgetvalue(res, i, 4));
				import_skip(im, row, r, detail);
				continue;
			}
			im->imported++;
			if (PQgetvalue(res, i, 3)[0] != 't') {
				im->unchanged++;
				continue;
			}
			const char *user = PQgetvalue(res, i, 2);
			if (changed && !strmap_get(changed, user)) {
				strmap_put(changed, user, (void *)1);
				im->users_changed++;
				if (bulk_engine_reload(im->srm, user) == 0)
					im->users_reloaded++;
			}
		}
		if (changed)
			strmap_free(changed);
	}
	if (im->ended || im->gone) {
		import_finish(im);
		return;
	}
	ctl_conn_body_pause(im->c, 0);
}

static void import_flush(struct cimport *im)
{
	struct evbuffer *a[5];
	for (int k = 0; k < 5; k++)
		a[k] = evbuffer_new();
	if (!a[0] || !a[1] || !a[2] || !a[3] || !a[4]) {
		for (int k = 0; k < 5; k++)
			if (a[k])
				evbuffer_free(a[k]);
		on_import_batch(im, NULL, "out of memory");
		return;
	}
	for (int i = 0; i < im->nbatch; i++) {
		char row[24];
		snprintf(row, sizeof row, "%ld", im->rownos[i]);
		bulk_pg_array_add(a[0], row);
		bulk_pg_array_add(a[1], im->rows[i].user);
		bulk_pg_array_add(a[2], im->rows[i].contact);
		bulk_pg_array_add(a[3], im->rows[i].nick[0] ? im->rows[i].nick : NULL);
		bulk_pg_array_add(a[4], im->rows[i].group);
	}
	const char *params[7];
	for (int k = 0; k < 5; k++)
		params[k] = bulk_pg_array_end(a[k]);
	params[5] = im->served;
	params[6] = im->max;
	/* One statement: the batch commits whole.  Rows are judged in file order: a contact
	 * new to the user's list (or hidden until now) takes a place in it, and past
	 * max_contacts (0 = No Limit) it is refused; a row of a contact already listed only
	 * adds its group.  Only items that change are written, under a new roster version. */
	im->req = pg_query(
		im->srm->pool,
		"WITH inp AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[],"
		"   $4::text[], $5::text[]) AS t(rowno, username, contact, nick, grp)),"
		" usr AS (SELECT u.username, u.home_node, u.roster_ver,"
		"   (SELECT count(*) FROM roster_items r WHERE r.username = u.username"
		"     AND r.visible) AS nvis"
		"   FROM users u WHERE u.username IN (SELECT username FROM inp)),"
		" cls AS (SELECT i.*, s.home_node, s.nvis, coalesce(r.visible, false) AS present"
		"   FROM inp i LEFT JOIN usr s ON s.username = i.username"
		"   LEFT JOIN roster_items r ON r.username = i.username AND r.contact = i.contact),"
		" fresh AS (SELECT username, contact,"
		"   row_number() OVER (PARTITION BY username ORDER BY min(rowno)) AS rn"
		"   FROM cls WHERE NOT present AND home_node = ANY ($6::int[])"
		"   GROUP BY username, contact),"
		" dec AS (SELECT c.rowno, c.username, c.contact, c.nick, c.grp,"
		"   CASE WHEN c.home_node IS NULL OR NOT (c.home_node = ANY ($6::int[]))"
		"          THEN 'user-not-assigned'"
		"        WHEN $7::int > 0 AND f.rn IS NOT NULL AND c.nvis + f.rn > $7::int"
		"          THEN 'contact-list-limit' END AS reason"
		"   FROM cls c LEFT JOIN fresh f ON f.username = c.username"
		"     AND f.contact = c.contact),"
		" want AS (SELECT username, contact,"
		"   (array_agg(nick ORDER BY rowno DESC) FILTER (WHERE nick IS NOT NULL))[1] AS nick,"
		"   array_agg(grp ORDER BY rowno) AS grps"
		"   FROM dec WHERE reason IS NULL GROUP BY username, contact),"
		" merged AS (SELECT w.username, w.contact, coalesce(w.nick, r.name) AS name,"
		"   ARRAY(SELECT g FROM (SELECT g, min(o) AS o FROM unnest(coalesce(r.groups, '{}')"
		"     || w.grps) WITH ORDINALITY AS x(g, o) GROUP BY g) y ORDER BY o) AS groups,"
		"   r.contact IS NOT NULL AS existed, coalesce(r.visible, false) AS was_visible,"
		"   r.name AS old_name, r.groups AS old_groups"
		"   FROM want w LEFT JOIN roster_items r ON r.username = w.username"
		"     AND r.contact = w.contact),"
		" chg AS (SELECT m.*, s.roster_ver + 1 AS ver FROM merged m"
		"   JOIN usr s ON s.username = m.username"
		"   WHERE NOT m.existed OR NOT m.was_visible OR m.name IS DISTINCT FROM m.old_name"
		"     OR m.groups <> m.old_groups),"
		" ups AS (INSERT INTO roster_items (username, contact, name, groups, visible, ver)"
		"   SELECT username, contact, name, groups, true, ver FROM chg"
		"   ON CONFLICT (username, contact) DO UPDATE SET name = EXCLUDED.name,"
		"     groups = EXCLUDED.groups, visible = true, ver = EXCLUDED.ver RETURNING 1),"
		" bump AS (UPDATE users u SET roster_ver = u.roster_ver + 1"
		"   WHERE u.username IN (SELECT username FROM chg) RETURNING 1)"
		" SELECT d.rowno, d.reason, d.username,"
		"   d.reason IS NULL AND EXISTS (SELECT 1 FROM chg WHERE chg.username = d.username"
		"     AND chg.contact = d.contact), d.contact"
		" FROM dec d ORDER BY d.rowno",
		7, params, on_import_batch, im);
	for (int k = 0; k < 5; k++)
		evbuffer_free(a[k]);
	if (!im->req) {
		on_import_batch(im, NULL, "out of memory");
		return;
	}
	ctl_conn_body_pause(im->c, 1);
}

static void import_line(struct cimport *im, const char *line, size_t len)
{
	long row = im->line_no;
	if (im->failed) {
		im->not_processed++;
		return;
	}
	if (len == 0 || (len == 1 && line[0] == '\r'))
		return; /* a blank line is no row */
	struct bulk_csv_fields f;
	const char *why;
	if (bulk_csv_split(line, len, &f, &why) < 0) {
		import_skip(im, row, BULK_INVALID_FORMAT, why);
		return;
	}
	if (row == 1 && bulk_csv_is_header(&f, "User ID"))
		return;
	char detail[600];
	struct bulk_contact_row *r = &im->rows[im->nbatch];
	enum bulk_reason reason = bulk_contact_row_parse(&f, im->domain, r, detail, sizeof detail);
	if (reason != BULK_OK) {
		import_skip(im, row, reason, detail);
		return;
	}
	im->rownos[im->nbatch++] = row;
	if (im->nbatch == IMPORT_BATCH)
		import_flush(im);
}

static void on_import_body(void *arg, enum ctl_body_event ev, const char *line, size_t len)
{
	struct cimport *im = arg;
	switch (ev) {
	case CTL_BODY_LINE:
		im->line_no++;
		import_line(im, line, len);
		return;
	case CTL_BODY_TOO_LONG:
		im->line_no++;
		if (im->failed)
			im->not_processed++;
		else
			import_skip(im, im->line_no, BULK_INVALID_FORMAT,
				    "line longer than 4096 bytes");
		return;
	case CTL_BODY_GONE:
		im->gone = 1;
		break;
	case CTL_BODY_END:
		im->ended = 1;
		break;
	}
	if (im->req)
		return; /* the batch in flight finishes the import */
	if (im->nbatch && !im->failed && !im->gone) {
		import_flush(im);
		return;
	}
	import_finish(im);
}

void ctl_bulk_contacts_import(struct ctl_conn *c, int argc, char **argv)
{
	if (bulk_job_begin(c) < 0)
		return;
	struct srm *srm = ctl_conn_ctx(c);
	struct cimport *im = calloc(1, sizeof *im);
	if (!im || !(im->rows = calloc(IMPORT_BATCH, sizeof *im->rows))) {
		if (im)
			free(im->rows);
		free(im);
		bulk_job_end();
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	im->c = c;
	im->srm = srm;
	bulk_domain(srm, im->domain, sizeof im->domain);
	bulk_served_nodes(srm, im->served, sizeof im->served);
	snprintf(im->max, sizeof im->max, "%ld", srm->cfg.max_contacts);
	ctl_conn_set_cancel(c, import_cancel, im);
	ctl_conn_read_body(c, BULK_CSV_MAX_LINE, on_import_body, im);
}
