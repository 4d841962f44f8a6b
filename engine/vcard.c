/* vcard-temp (XEP-0054): a user's vCard stored as its XML; anyone may read it, only its
 * owner may set it.  Reads queue behind the owner's writes, so a set is seen at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "lib/log.h"
#include "lib/pg.h"

struct vcard_op {
	char asker[JID_BUF]; /* full JID of the resource to answer */
	struct xml_node *iq;
	bool set;
};

static struct resource *asker_of(struct vcard_op *op)
{
	struct jid j;
	return jid_parse(op->asker, &j) == 0 ? session_find(&j) : NULL;
}

static void vcard_done(void *arg, PGresult *res, const char *errmsg)
{
	struct vcard_op *op = arg;
	struct resource *r = asker_of(op);
	struct xml_node *reply = NULL;
	if (!res || (PQresultStatus(res) != PGRES_TUPLES_OK &&
		     PQresultStatus(res) != PGRES_COMMAND_OK)) {
		log_warnx("vcard: %s", res ? PQresultErrorMessage(res) : errmsg);
		reply = stanza_error_reply(op->iq, "wait", "internal-server-error", NULL);
	} else if (op->set) {
		reply = stanza_iq_result(op->iq, NULL);
	} else {
		struct xml_node *v = NULL;
		if (PQntuples(res) == 1)
			v = xml_parse_string(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
		if (!v) {
			v = xml_elem_new("vCard");
			xml_set_attr(v, "xmlns", NS_VCARD);
		}
		reply = stanza_iq_result(op->iq, v);
	}
	if (r && r->conn && reply)
		conn_send(r->conn, reply);
	xml_free(reply);
	xml_free(op->iq);
	free(op);
}

void vcard_iq(struct resource *res, struct xml_node *iq, const char *owner)
{
	bool set = !strcmp(xml_get_attr(iq, "type"), "set");
	struct user *u = set ? res->user : user_find_loaded(owner);
	if (set && strcmp(owner, res->user->name) != 0) {
		struct xml_node *r = stanza_error_reply(iq, "auth", "forbidden", NULL);
		if (r)
			conn_send(res->conn, r);
		xml_free(r);
		xml_free(iq);
		return;
	}
	struct vcard_op *op = calloc(1, sizeof *op);
	char *text = NULL;
	if (!op || (set && !(text = xml_to_string(xml_first_elem(iq), NULL)))) {
		free(op);
		free(text);
		struct xml_node *r = stanza_error_reply(iq, "wait", "resource-constraint", NULL);
		if (r)
			conn_send(res->conn, r);
		xml_free(r);
		xml_free(iq);
		return;
	}
	snprintf(op->asker, sizeof op->asker, "%s", res->full);
	op->iq = iq;
	op->set = set;
	const char *params[2] = {owner, text};
	const char *sql = set ? "INSERT INTO vcards (username, vcard) VALUES ($1, $2)"
				" ON CONFLICT (username) DO UPDATE SET vcard = EXCLUDED.vcard"
			      : "SELECT vcard FROM vcards WHERE username = $1";
	if (u)
		user_query(u, sql, set ? 2 : 1, params, vcard_done, op);
	else if (!pg_query(server.db, sql, 1, params, vcard_done, op))
		vcard_done(op, NULL, "out of memory");
	free(text);
}
