/* srmctl user commands: add, del, passwd, list.  Accounts live in the node database's users
 * table with SCRAM-SHA-1 and SCRAM-SHA-256 salted keys, never passwords.  Deleting an account
 * or changing its password ends the user's sessions through the engine's `kick`. */
#include "ha/engine_child.h"
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

struct user_op {
	struct ctl_conn *c;
	struct srm *srm;
	struct pg_req *req;
	struct engine_child_req *ereq;
	char local[LOCAL_MAX + 1];
	char jid[LOCAL_MAX + 1 + CFG_NAME + 1];
	const char *done; /* "deleted", "password changed" */
};

/* Length of the UTF-8 sequence at p (well-formed, no overlongs or surrogates), 0 if bad. */
static size_t utf8_seq_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	size_t n;
	unsigned cp;
	if ((p[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	if (cp >= 0x80 && cp <= 0x9f) /* C1 controls */
		return 0;
	return n;
}

/* Printable UTF-8 without ASCII controls, and none of the bytes in forbid. */
static int text_valid(const char *s, const char *forbid)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		if (*p < 0x20 || *p == 0x7f || (forbid && strchr(forbid, *p)))
			return 0;
		size_t n = utf8_seq_len(p);
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

/* Query parameters for one hash's credentials: salt, iterations, stored key, server key. */
struct creds_params {
	char salt[2 * SCRAM_MAX_SALT + 3];
	char iter[16];
	char stored[2 * SCRAM_MAX_KEY + 3];
	char server[2 * SCRAM_MAX_KEY + 3];
};

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
	return op;
}

static void op_cancel(void *arg)
{
	struct user_op *op = arg;
	if (op->req)
		pg_req_cancel(op->req);
	if (op->ereq)
		engine_child_req_cancel(op->ereq);
	free(op);
}

static void op_reply_ok(struct user_op *op)
{
	ctl_reply_ok(op->c);
	free(op);
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
	log_info("user: %s added (home node %ld)", op->jid, op->srm->cfg.node_id);
	ctl_body_printf(op->c, "%s: added (home node %ld)\n", op->jid, op->srm->cfg.node_id);
	op_reply_ok(op);
}

static void cmd_user_add(struct ctl_conn *c, int argc, char **argv)
{
	struct user_op *op = op_new(c, argv[0]);
	if (!op)
		return;
	if (!password_valid(argv[1])) {
		op_reply_error(op, "bad-password",
			       "the password must be 1 to 1023 bytes of UTF-8 without control "
			       "characters");
		return;
	}
	struct creds_params s1, s256;
	if (creds_derive(argv[1], (unsigned)op->srm->cfg.scram_iterations, &s1, &s256) < 0) {
		op_reply_error(op, "internal", "credential derivation failed");
		return;
	}
	char home[16];
	snprintf(home, sizeof home, "%ld", op->srm->cfg.node_id);
	const char *params[] = {op->local, home,      s1.salt,   s1.iter,      s1.stored,
				s1.server, s256.salt, s256.iter, s256.stored, s256.server};
	op_query(op,
		 "INSERT INTO users (username, home_node, sha1_salt, sha1_iter, sha1_stored,"
		 " sha1_server, sha256_salt, sha256_iter, sha256_stored, sha256_server)"
		 " VALUES ($1, $2::int, $3::bytea, $4::int, $5::bytea, $6::bytea, $7::bytea,"
		 " $8::int, $9::bytea, $10::bytea)"
		 " ON CONFLICT (username) DO NOTHING RETURNING username",
		 10, params, on_add_result);
}

/* --- user passwd --- */

static void on_passwd_result(void *arg, PGresult *res, const char *errmsg)
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
	log_info("user: %s password changed", op->jid);
	op->done = "password changed";
	op_kick(op);
}

static void cmd_user_passwd(struct ctl_conn *c, int argc, char **argv)
{
	struct user_op *op = op_new(c, argv[0]);
	if (!op)
		return;
	if (!password_valid(argv[1])) {
		op_reply_error(op, "bad-password",
			       "the password must be 1 to 1023 bytes of UTF-8 without control "
			       "characters");
		return;
	}
	struct creds_params s1, s256;
	if (creds_derive(argv[1], (unsigned)op->srm->cfg.scram_iterations, &s1, &s256) < 0) {
		op_reply_error(op, "internal", "credential derivation failed");
		return;
	}
	const char *params[] = {op->local, s1.salt,   s1.iter,     s1.stored,  s1.server,
				s256.salt, s256.iter, s256.stored, s256.server};
	op_query(op,
		 "UPDATE users SET sha1_salt = $2::bytea, sha1_iter = $3::int,"
		 " sha1_stored = $4::bytea, sha1_server = $5::bytea, sha256_salt = $6::bytea,"
		 " sha256_iter = $7::int, sha256_stored = $8::bytea, sha256_server = $9::bytea"
		 " WHERE username = $1",
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

const struct ctl_command ctl_user_commands[] = {
	{"user add", "JID PASSWORD", 2, 2, 0, cmd_user_add},
	{"user del", "JID", 1, 1, 0, cmd_user_del},
	{"user passwd", "JID PASSWORD", 2, 2, 0, cmd_user_passwd},
	{"user list", "", 0, 0, 1, cmd_user_list},
	{NULL, NULL, 0, 0, 0, NULL},
};
