/* srmctl user commands: add, del, passwd, assign, list, show.  Accounts live in the node database's
 * users table with SCRAM-SHA-1 and SCRAM-SHA-256 salted keys, never passwords.  Deleting an
 * account or changing its password ends the user's sessions through the engine's `kick`.
 * On a pair every change is then forwarded to the peer (ha/prov.h) unless --local is given,
 * and a new account's home node follows [ha] user_assignment_mode. */
#include "ha/engine_child.h"
#include "lib/utf8.h"
#include "ha/pair.h"
#include "ha/prov.h"
#include "ha/srm.h"
#include "lib/log.h"
#include "lib/pg.h"
#include "lib/scram.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LOCAL_MAX 1023
#define PASSWORD_MAX 1023

/* Query parameters for one hash's credentials: salt, iterations, stored key, server key. */
struct creds_params {
	char salt[2 * SCRAM_MAX_SALT + 3];
	char iter[16];
	char stored[2 * SCRAM_MAX_KEY + 3];
	char server[2 * SCRAM_MAX_KEY + 3];
};

struct user_op {
	struct ctl_conn *c;
	struct srm *srm;
	struct pg_req *req;
	struct engine_child_req *ereq;
	struct prov_call *call;
	char local[LOCAL_MAX + 1];
	char jid[LOCAL_MAX + 1 + CFG_NAME + 1];
	const char *done; /* "deleted", "password changed" */
	int forward;      /* a pair without --local: apply on the peer too */
	enum ha_prov_op fwd_op;
	int home;         /* the account's home node (0 = unassigned) once known */
	struct creds_params s1, s256;
};

/* Printable UTF-8 without ASCII controls, and none of the bytes in forbid. */
static int text_valid(const char *s, const char *forbid)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		if (*p < 0x20 || *p == 0x7f || (forbid && strchr(forbid, *p)))
			return 0;
		size_t n = utf8_char_len_no_c1(p);
		if (!n)
			return 0;
		p += n;
	}
	return 1;
}

/* JID "local@domain" or bare "local" into a normalized localpart.  The rules match SCRAM
 * usernames and RFC 7622 localparts: 1..1023 bytes, ASCII lowercased, no whitespace,
 * controls or "&'/:<>@.  On error *code and msg say why. */
static int jid_to_local(const char *arg, const char *domain, char *local, const char **code,
			char *msg, size_t msglen)
{
	const char *at = strchr(arg, '@');
	size_t llen = at ? (size_t)(at - arg) : strlen(arg);
	if (strchr(arg, '/')) {
		*code = "bad-jid";
		snprintf(msg, msglen, "a JID with a resource is not an account: %.200s", arg);
		return -1;
	}
	if (at) {
		const char *dom = at + 1;
		size_t dlen = strlen(dom);
		if (dlen && dom[dlen - 1] == '.') /* RFC 7622 §3.2: a trailing dot is dropped */
			dlen--;
		if (dlen != strlen(domain) || strncasecmp(dom, domain, dlen) != 0) {
			*code = "wrong-domain";
			snprintf(msg, msglen, "domain %.200s is not this node's domain %s", dom,
				 domain);
			return -1;
		}
	}
	if (llen == 0 || llen > LOCAL_MAX) {
		*code = "bad-jid";
		snprintf(msg, msglen, "the localpart must be 1 to %d bytes", LOCAL_MAX);
		return -1;
	}
	memcpy(local, arg, llen);
	local[llen] = '\0';
	if (!text_valid(local, " \"&'/:<>@")) {
		*code = "bad-jid";
		snprintf(msg, msglen,
			 "invalid localpart (not UTF-8, or contains whitespace, a control "
			 "character or one of \"&'/:<>@)");
		return -1;
	}
	for (char *p = local; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return 0;
}

static int password_valid(const char *pw)
{
	size_t n = strlen(pw);
	return n > 0 && n <= PASSWORD_MAX && text_valid(pw, NULL);
}

static void hex_bytea(const unsigned char *b, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	*out++ = '\\';
	*out++ = 'x';
	for (size_t i = 0; i < n; i++) {
		*out++ = hex[b[i] >> 4];
		*out++ = hex[b[i] & 15];
	}
	*out = '\0';
}

static void creds_params_fill(const struct scram_creds *cr, struct creds_params *p)
{
	hex_bytea(cr->salt, cr->salt_len, p->salt);
	snprintf(p->iter, sizeof p->iter, "%u", cr->iterations);
	hex_bytea(cr->stored_key, cr->key_len, p->stored);
	hex_bytea(cr->server_key, cr->key_len, p->server);
}

/* PBKDF2 twice: deliberate CPU work, done only for single operator commands. */
static int creds_derive(const char *password, unsigned iterations, struct creds_params *sha1,
			struct creds_params *sha256)
{
	struct scram_creds c1, c256;
	int rc = -1;
	if (scram_creds_new(SCRAM_SHA1, password, iterations, &c1) == 0 &&
	    scram_creds_new(SCRAM_SHA256, password, iterations, &c256) == 0) {
		creds_params_fill(&c1, sha1);
		creds_params_fill(&c256, sha256);
		rc = 0;
	}
	explicit_bzero(&c1, sizeof c1);
	explicit_bzero(&c256, sizeof c256);
	return rc;
}

static struct user_op *op_new(struct ctl_conn *c, const char *jid_arg)
{
	struct srm *srm = ctl_conn_ctx(c);
	struct user_op *op = calloc(1, sizeof *op);
	if (!op) {
		ctl_reply_error(c, "internal", "out of memory");
		return NULL;
	}
	op->c = c;
	op->srm = srm;
	const char *code = NULL;
	char msg[512];
	if (jid_to_local(jid_arg, srm->cfg.domain, op->local, &code, msg, sizeof msg) < 0) {
		ctl_reply_error(c, code, "%s", msg);
		free(op);
		return NULL;
	}
	char domain[CFG_NAME];
	snprintf(domain, sizeof domain, "%s", srm->cfg.domain);
	for (char *p = domain; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	snprintf(op->jid, sizeof op->jid, "%s@%s", op->local, domain);
	op->forward = srm->pair && !ctl_conn_local(c);
	if (op->forward && !pair_peer_reachable(srm->pair)) {
		/* Checked first so that nothing changes on either node. */
		ctl_reply_error(c, "peer-unreachable",
				"node %d (the peer) is unreachable over the peer link: nothing "
				"changed (--local changes this node only)",
				pair_peer_node(srm->pair));
		free(op);
		return NULL;
	}
	return op;
}

static void op_cancel(void *arg)
{
	struct user_op *op = arg;
	if (op->req)
		pg_req_cancel(op->req);
	if (op->ereq)
		engine_child_req_cancel(op->ereq);
	if (op->call)
		prov_call_cancel(op->call);
	free(op);
}

static void op_reply_error(struct user_op *op, const char *code, const char *msg);

static void on_forward_done(void *arg, enum ha_prov_status st, const char *msg)
{
	struct user_op *op = arg;
	op->call = NULL;
	struct srm *srm = op->srm;
	int peer = srm->pair ? pair_peer_node(srm->pair) : 0;
	if (st == HA_PROV_OK) {
		ctl_body_printf(op->c, "node %d: %s\n", peer, msg);
		ctl_reply_ok(op->c);
		free(op);
		return;
	}
	char line[600];
	snprintf(line, sizeof line,
		 "done on node %ld, but node %d failed: %s (repeat the command; the peer applies "
		 "it idempotently)",
		 srm->cfg.node_id, peer, msg);
	op_reply_error(op, st == HA_PROV_NOT_FOUND ? "not-found" : "peer", line);
}

static void fill_creds(struct ha_prov_creds *out, const struct creds_params *in)
{
	snprintf(out->salt, sizeof out->salt, "%s", in->salt);
	snprintf(out->iter, sizeof out->iter, "%.11s", in->iter);
	snprintf(out->stored, sizeof out->stored, "%s", in->stored);
	snprintf(out->server, sizeof out->server, "%s", in->server);
}

/* The local change is done: on a pair, apply it on the peer before answering. */
static void op_reply_ok(struct user_op *op)
{
	if (!op->forward) {
		ctl_reply_ok(op->c);
		free(op);
		return;
	}
	struct ha_prov_req req;
	memset(&req, 0, sizeof req);
	req.op = op->fwd_op;
	req.home = (uint8_t)op->home;
	snprintf(req.user, sizeof req.user, "%s", op->local);
	if (req.op == HA_PROV_UPSERT) {
		fill_creds(&req.sha1, &op->s1);
		fill_creds(&req.sha256, &op->s256);
	}
	char why[200];
	op->call = prov_forward(op->srm->prov, &req, on_forward_done, op, why, sizeof why);
	if (!op->call) {
		char line[400];
		snprintf(line, sizeof line, "done on node %ld, but not on node %d: %s",
			 op->srm->cfg.node_id, pair_peer_node(op->srm->pair), why);
		op_reply_error(op, "peer", line);
		return;
	}
	ctl_conn_set_cancel(op->c, op_cancel, op);
}

static void op_reply_error(struct user_op *op, const char *code, const char *msg)
{
	char line[512];
	snprintf(line, sizeof line, "%s", msg ? msg : "query failed");
	line[strcspn(line, "\r\n")] = '\0';
	ctl_reply_error(op->c, code, "%s", line);
	free(op);
}

/* 1 if res is a success of the wanted kind; otherwise replies with the error and frees op. */
static int op_check_result(struct user_op *op, PGresult *res, const char *errmsg,
			   ExecStatusType want)
{
	op->req = NULL;
	if (!res) {
		op_reply_error(op, "database", errmsg);
		return 0;
	}
	if (PQresultStatus(res) != want) {
		op_reply_error(op, "database", PQresultErrorMessage(res));
		return 0;
	}
	return 1;
}

static int op_query(struct user_op *op, const char *sql, int n, const char *const *params,
		    pg_cb cb)
{
	op->req = pg_query(op->srm->pool, sql, n, params, cb, op);
	if (!op->req) {
		op_reply_error(op, "internal", "out of memory");
		return -1;
	}
	ctl_conn_set_cancel(op->c, op_cancel, op);
	return 0;
}

/* --- kick after del / passwd --- */

static void on_kick_reply(void *arg, const char *reply)
{
	struct user_op *op = arg;
	op->ereq = NULL;
	long count;
	if (!reply)
		ctl_body_printf(op->c, "the engine went away before ending sessions\n");
	else if (sscanf(reply, "kick ok %ld", &count) == 1)
		ctl_body_printf(op->c, "sessions ended: %ld\n", count);
	else {
		char buf[200];
		snprintf(buf, sizeof buf, "%s", reply);
		for (char *p = buf; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		ctl_body_printf(op->c, "the engine did not end sessions: %s\n", buf);
	}
	op_reply_ok(op);
}

static void op_kick(struct user_op *op)
{
	char line[sizeof op->jid + 8];
	snprintf(line, sizeof line, "kick %s", op->jid);
	ctl_body_printf(op->c, "%s: %s\n", op->jid, op->done);
	op->ereq = engine_child_request(op->srm->engine, line, on_kick_reply, op);
	if (!op->ereq) {
		ctl_body_printf(op->c, "the engine is not running: no sessions to end\n");
		op_reply_ok(op);
		return;
	}
	ctl_conn_set_cancel(op->c, op_cancel, op);
}

/* --- user add --- */

static void on_add_result(void *arg, PGresult *res, const char *errmsg)
{
	struct user_op *op = arg;
	if (!op_check_result(op, res, errmsg, PGRES_TUPLES_OK))
		return;
	if (PQntuples(res) == 0) {
		char msg[sizeof op->jid + 32];
		snprintf(msg, sizeof msg, "user %s already exists", op->jid);
		op_reply_error(op, "exists", msg);
		return;
	}
	op->home = atoi(PQgetvalue(res, 0, 1));
	op->fwd_op = HA_PROV_UPSERT;
	if (op->home) {
		log_info("user: %s added (home node %d)", op->jid, op->home);
		ctl_body_printf(op->c, "%s: added (home node %d)\n", op->jid, op->home);
	} else {
		log_info("user: %s added (unassigned)", op->jid);
		ctl_body_printf(op->c, "%s: added (unassigned: cannot log in until assigned)\n",
				op->jid);
	}
	op_reply_ok(op);
}

/* The home node of a new account: this node on a single node; on a pair, by
 * user_assignment_mode (Balanced: the home node with fewer accounts, node 1 on a tie;
 * Active-Standby: node 1; None: unassigned). */
static const char *home_expr(const struct srm *srm, char *buf, size_t len)
{
	const char *mode = srm->cfg.ha_user_assignment_mode;
	if (!srm->pair)
		snprintf(buf, len, "%ld", srm->cfg.node_id);
	else if (strcmp(mode, "active-standby") == 0)
		snprintf(buf, len, "1");
	else if (strcmp(mode, "none") == 0)
		snprintf(buf, len, "0");
	else
		snprintf(buf, len, "(SELECT CASE WHEN count(*) FILTER (WHERE home_node = 2) <"
				   " count(*) FILTER (WHERE home_node = 1) THEN 2 ELSE 1 END"
				   " FROM users)");
	return buf;
}

/* An operation on JID with fresh SCRAM credentials for PASSWORD; NULL once the error has
 * been answered. */
static struct user_op *op_with_credentials(struct ctl_conn *c, const char *jid,
					   const char *password)
{
	struct user_op *op = op_new(c, jid);
	if (!op)
		return NULL;
	if (!password_valid(password)) {
		op_reply_error(op, "bad-password",
			       "the password must be 1 to 1023 bytes of UTF-8 without control "
			       "characters");
		return NULL;
	}
	if (creds_derive(password, (unsigned)op->srm->cfg.scram_iterations, &op->s1, &op->s256) <
	    0) {
		op_reply_error(op, "internal", "credential derivation failed");
		return NULL;
	}
	return op;
}

static void cmd_user_add(struct ctl_conn *c, int argc, char **argv)
{
	struct user_op *op = op_with_credentials(c, argv[0], argv[1]);
	if (!op)
		return;
	char home[256], sql[1024];
	snprintf(sql, sizeof sql,
		 "INSERT INTO users (username, home_node, sha1_salt, sha1_iter, sha1_stored,"
		 " sha1_server, sha256_salt, sha256_iter, sha256_stored, sha256_server)"
		 " VALUES ($1, %s, $2::bytea, $3::int, $4::bytea, $5::bytea, $6::bytea,"
		 " $7::int, $8::bytea, $9::bytea)"
		 " ON CONFLICT (username) DO NOTHING RETURNING username, home_node",
		 home_expr(op->srm, home, sizeof home));
	const char *params[] = {op->local,     op->s1.salt,     op->s1.iter,
				op->s1.stored, op->s1.server,   op->s256.salt,
				op->s256.iter, op->s256.stored, op->s256.server};
	op_query(op, sql, 9, params, on_add_result);
}

/* --- user passwd --- */

static void on_passwd_result(void *arg, PGresult *res, const char *errmsg)
{
	struct user_op *op = arg;
	if (!op_check_result(op, res, errmsg, PGRES_TUPLES_OK))
		return;
	if (PQntuples(res) == 0) {
		char msg[sizeof op->jid + 32];
		snprintf(msg, sizeof msg, "no user %s", op->jid);
		op_reply_error(op, "not-found", msg);
		return;
	}
	/* The peer gets the whole account, so a peer that missed it is repaired. */
	op->home = atoi(PQgetvalue(res, 0, 0));
	op->fwd_op = HA_PROV_UPSERT;
	log_info("user: %s password changed", op->jid);
	op->done = "password changed";
	op_kick(op);
}

static void cmd_user_passwd(struct ctl_conn *c, int argc, char **argv)
{
	struct user_op *op = op_with_credentials(c, argv[0], argv[1]);
	if (!op)
		return;
	const char *params[] = {op->local,     op->s1.salt,     op->s1.iter,
				op->s1.stored, op->s1.server,   op->s256.salt,
				op->s256.iter, op->s256.stored, op->s256.server};
	op_query(op,
		 "UPDATE users SET sha1_salt = $2::bytea, sha1_iter = $3::int,"
		 " sha1_stored = $4::bytea, sha1_server = $5::bytea, sha256_salt = $6::bytea,"
		 " sha256_iter = $7::int, sha256_stored = $8::bytea, sha256_server = $9::bytea"
		 " WHERE username = $1 RETURNING home_node",
		 9, params, on_passwd_result);
}

/* --- user del --- */

static void on_del_result(void *arg, PGresult *res, const char *errmsg)
{
	struct user_op *op = arg;
	if (!op_check_result(op, res, errmsg, PGRES_COMMAND_OK))
		return;
	if (strcmp(PQcmdTuples(res), "0") == 0) {
		char msg[sizeof op->jid + 32];
		snprintf(msg, sizeof msg, "no user %s", op->jid);
		op_reply_error(op, "not-found", msg);
		return;
	}
	log_info("user: %s deleted", op->jid);
	op->fwd_op = HA_PROV_DELETE;
	op->done = "deleted";
	op_kick(op);
}

static void cmd_user_del(struct ctl_conn *c, int argc, char **argv)
{
	struct user_op *op = op_new(c, argv[0]);
	if (!op)
		return;
	const char *params[] = {op->local};
	op_query(op, "DELETE FROM users WHERE username = $1", 1, params, on_del_result);
}

/* --- user assign --- */

static void on_assign_result(void *arg, PGresult *res, const char *errmsg)
{
	struct user_op *op = arg;
	if (!op_check_result(op, res, errmsg, PGRES_COMMAND_OK))
		return;
	if (strcmp(PQcmdTuples(res), "0") == 0) {
		char msg[sizeof op->jid + 32];
		snprintf(msg, sizeof msg, "no user %s", op->jid);
		op_reply_error(op, "not-found", msg);
		return;
	}
	op->fwd_op = HA_PROV_ASSIGN;
	if (op->home)
		ctl_body_printf(op->c, "%s: assigned to home node %d\n", op->jid, op->home);
	else
		ctl_body_printf(op->c, "%s: unassigned\n", op->jid);
	log_info("user: %s assigned to home node %d", op->jid, op->home);
	op_reply_ok(op);
}

/* NODE is 1, 2, or none (unassigned: the user cannot log in). */
static void cmd_user_assign(struct ctl_conn *c, int argc, char **argv)
{
	int home;
	if (strcmp(argv[1], "1") == 0 || strcmp(argv[1], "2") == 0)
		home = argv[1][0] - '0';
	else if (strcmp(argv[1], "none") == 0 || strcmp(argv[1], "0") == 0)
		home = 0;
	else {
		ctl_reply_error(c, "usage", "NODE must be 1, 2 or none");
		return;
	}
	struct user_op *op = op_new(c, argv[0]);
	if (!op)
		return;
	op->home = home;
	char h[8];
	snprintf(h, sizeof h, "%d", home);
	const char *params[] = {op->local, h};
	op_query(op, "UPDATE users SET home_node = $2::int WHERE username = $1", 2, params,
		 on_assign_result);
}

/* --- user list --- */

struct list_op {
	struct ctl_conn *c;
	struct pg_req *req;
	char domain[CFG_NAME];
};

static void list_cancel(void *arg)
{
	struct list_op *op = arg;
	pg_req_cancel(op->req);
	free(op);
}

static void on_list_result(void *arg, PGresult *res, const char *errmsg)
{
	struct list_op *op = arg;
	struct ctl_conn *c = op->c;
	char why[512];
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(why, sizeof why, "%s",
			 res ? PQresultErrorMessage(res) : errmsg ? errmsg : "query failed");
		why[strcspn(why, "\r\n")] = '\0';
		free(op);
		ctl_reply_error(c, "database", "%s", why);
		return;
	}
	int n = PQntuples(res), json = ctl_conn_json(c);
	if (json)
		ctl_body_printf(c, "{\"users\":[");
	for (int i = 0; i < n; i++) {
		const char *user = PQgetvalue(res, i, 0);
		long home = atol(PQgetvalue(res, i, 1));
		char jid[LOCAL_MAX + CFG_NAME + 2];
		snprintf(jid, sizeof jid, "%s@%s", user, op->domain);
		if (json) {
			ctl_body_printf(c, "%s{\"jid\":", i ? "," : "");
			ctl_body_json_string(c, jid);
			ctl_body_printf(c, ",\"username\":");
			ctl_body_json_string(c, user);
			ctl_body_printf(c, ",\"home_node\":%ld}", home);
		} else {
			ctl_body_printf(c, "%s %ld\n", jid, home);
		}
	}
	if (json)
		ctl_body_printf(c, "],\"count\":%d}\n", n);
	free(op);
	ctl_reply_ok(c);
}

static void cmd_user_list(struct ctl_conn *c, int argc, char **argv)
{
	struct srm *srm = ctl_conn_ctx(c);
	struct list_op *op = calloc(1, sizeof *op);
	if (!op) {
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	op->c = c;
	snprintf(op->domain, sizeof op->domain, "%s", srm->cfg.domain);
	for (char *p = op->domain; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	op->req = pg_query(srm->pool, "SELECT username, home_node FROM users ORDER BY username", 0,
			   NULL, on_list_result, op);
	if (!op->req) {
		free(op);
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	ctl_conn_set_cancel(c, list_cancel, op);
}

/* --- user show --- */

/* Which node serves home node `home` now: this node's serve set, then the peer's last
 * known one; 0 = nobody. */
static int served_by(const struct srm *srm, long home)
{
	if (home != 1 && home != 2)
		return 0;
	if (!srm->pair)
		return home == srm->cfg.node_id ? (int)home : 0;
	struct ha_wire_state self;
	struct pair_peer_view peer;
	pair_local_wire(srm->pair, &self);
	pair_peer_view(srm->pair, &peer);
	if (self.info.serve & HA_HOME_BIT(home))
		return (int)srm->cfg.node_id;
	if (peer.known && (peer.st.info.serve & HA_HOME_BIT(home)))
		return pair_peer_node(srm->pair);
	return 0;
}

static void on_show_result(void *arg, PGresult *res, const char *errmsg)
{
	struct user_op *op = arg;
	if (!op_check_result(op, res, errmsg, PGRES_TUPLES_OK))
		return;
	if (PQntuples(res) != 1) {
		char msg[LOCAL_MAX + CFG_NAME + 32];
		snprintf(msg, sizeof msg, "%s: no such account", op->jid);
		op_reply_error(op, "not-found", msg);
		return;
	}
	struct ctl_conn *c = op->c;
	long home = atol(PQgetvalue(res, 0, 0));
	const char *created = PQgetvalue(res, 0, 1);
	long contacts = atol(PQgetvalue(res, 0, 2)), offline = atol(PQgetvalue(res, 0, 3));
	const char *logout = PQgetvalue(res, 0, 4), *status = PQgetvalue(res, 0, 5);
	int server = served_by(op->srm, home);
	if (ctl_conn_json(c)) {
		ctl_body_printf(c, "{\"jid\":");
		ctl_body_json_string(c, op->jid);
		ctl_body_printf(c, ",\"username\":");
		ctl_body_json_string(c, op->local);
		ctl_body_printf(c, ",\"home_node\":%ld,\"served_by\":", home);
		if (server)
			ctl_body_printf(c, "%d", server);
		else
			ctl_body_printf(c, "null");
		ctl_body_printf(c, ",\"created\":\"%s\",\"contacts\":%ld,\"offline_messages\":%ld,"
				"\"last_logout\":",
				created, contacts, offline);
		if (*logout) {
			ctl_body_printf(c, "\"%s\",\"last_status\":", logout);
			ctl_body_json_string(c, status);
		} else {
			ctl_body_printf(c, "null,\"last_status\":null");
		}
		ctl_body_printf(c, "}\n");
	} else {
		ctl_body_printf(c, "jid:          %s\n", op->jid);
		if (home == 1 || home == 2)
			ctl_body_printf(c, "home node:    %ld\n", home);
		else
			ctl_body_printf(c, "home node:    none (cannot log in until "
					   "`srmctl user assign`)\n");
		if (server)
			ctl_body_printf(c, "served by:    node %d%s\n", server,
					server == home ? "" : " (its home node is failed over)");
		else
			ctl_body_printf(c, "served by:    nobody now\n");
		ctl_body_printf(c, "created:      %s\n", created);
		ctl_body_printf(c, "contacts:     %ld\n", contacts);
		ctl_body_printf(c, "offline:      %ld message%s waiting\n", offline,
				offline == 1 ? "" : "s");
		/* The status text is the user's: one line, no control characters. */
		char st[201];
		snprintf(st, sizeof st, "%s", status);
		for (char *p = st; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = ' ';
		if (*logout)
			ctl_body_printf(c, "last logout:  %s%s%s%s\n", logout, *st ? " (\"" : "", st,
					*st ? "\")" : "");
		else
			ctl_body_printf(c, "last logout:  never (or online since its first login)\n");
	}
	free(op);
	ctl_reply_ok(c);
}

static void cmd_user_show(struct ctl_conn *c, int argc, char **argv)
{
	struct srm *srm = ctl_conn_ctx(c);
	struct user_op *op = calloc(1, sizeof *op);
	if (!op) {
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	op->c = c;
	op->srm = srm;
	const char *code = NULL;
	char msg[512];
	if (jid_to_local(argv[0], srm->cfg.domain, op->local, &code, msg, sizeof msg) < 0) {
		ctl_reply_error(c, code, "%s", msg);
		free(op);
		return;
	}
	char domain[CFG_NAME];
	snprintf(domain, sizeof domain, "%s", srm->cfg.domain);
	for (char *p = domain; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	snprintf(op->jid, sizeof op->jid, "%s@%s", op->local, domain);
	const char *params[] = {op->local};
	op_query(op,
		 "SELECT u.home_node,"
		 " to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
		 " (SELECT count(*) FROM roster_items r"
		 "   WHERE r.username = u.username AND r.visible),"
		 " (SELECT count(*) FROM offline_messages o WHERE o.username = u.username),"
		 " coalesce(to_char(la.logout_at AT TIME ZONE 'UTC',"
		 "   'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
		 " coalesce(la.status, '')"
		 " FROM users u LEFT JOIN last_activity la ON la.username = u.username"
		 " WHERE u.username = $1",
		 1, params, on_show_result);
}

const struct ctl_command ctl_user_commands[] = {
	{"user add", "JID PASSWORD", 2, 2, 0, 1, cmd_user_add},
	{"user del", "JID", 1, 1, 0, 1, cmd_user_del},
	{"user passwd", "JID PASSWORD", 2, 2, 0, 1, cmd_user_passwd},
	{"user assign", "JID NODE", 2, 2, 0, 1, cmd_user_assign},
	{"user list", "", 0, 0, 1, 0, cmd_user_list},
	{"user show", "JID", 1, 1, 1, 0, cmd_user_show},
	{NULL, NULL, 0, 0, 0, 0, NULL},
};
