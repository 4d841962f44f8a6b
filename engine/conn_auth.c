/* SASL on a connection (RFC 6120 §6): <auth/>, <challenge/>/<response/>, <success/> or
 * <failure/>.  Credentials are fetched asynchronously; failed attempts are counted per
 * address and an address over auth_failures_per_min is turned away for the minute. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "engine/engine.h"
#include "engine/sasl.h"
#include "lib/base64.h"
#include "lib/hex.h"
#include "lib/log.h"
#include "lib/pg.h"
#include "lib/strmap.h"

#define AUTH_MAX_B64 8192

struct fail_window {
	time_t start;
	long count;
};

bool auth_throttled(const char *ip)
{
	struct fail_window *w = strmap_get(server.auth_fail, ip);
	if (!w)
		return false;
	if (time(NULL) - w->start >= 60) {
		free(strmap_del(server.auth_fail, ip));
		return false;
	}
	return w->count >= server.cfg.auth_failures_per_min;
}

void auth_note_failure(const char *ip)
{
	server.stats.login_failures++;
	struct fail_window *w = strmap_get(server.auth_fail, ip);
	if (w && time(NULL) - w->start >= 60) {
		w->start = time(NULL);
		w->count = 0;
	}
	if (!w) {
		w = calloc(1, sizeof *w);
		if (!w || strmap_put(server.auth_fail, ip, w) < 0) {
			free(w);
			return;
		}
		w->start = time(NULL);
	}
	w->count++;
}

/* Forget windows that ended (called from the once-a-second timer). */
void auth_sweep(void)
{
	time_t now = time(NULL);
	const char *ip;
	void *v;
	for (size_t it = 0; strmap_next(server.auth_fail, &it, &ip, &v);)
		if (now - ((struct fail_window *)v)->start >= 60)
			free(strmap_del(server.auth_fail, ip));
}

void auth_cleanup(struct conn *c)
{
	conn_cancel_wait(c);
	struct pg_req **req = conn_req_slot(c);
	if (*req) {
		pg_req_cancel(*req);
		*req = NULL;
	}
	struct sasl_server **s = conn_sasl_slot(c);
	sasl_server_free(*s);
	*s = NULL;
}

static void send_sasl(struct conn *c, const char *element, const unsigned char *data,
		      size_t len)
{
	char head[96];
	snprintf(head, sizeof head, "<%s xmlns='" NS_SASL "'", element);
	if (!data) {
		char buf[160];
		int n = snprintf(buf, sizeof buf, "%s/>", head);
		conn_send_raw(c, buf, (size_t)n);
		return;
	}
	size_t b64len = base64_encoded_len(len);
	char *buf = malloc(strlen(head) + b64len + 64);
	if (!buf) {
		conn_stream_error(c, "resource-constraint", NULL);
		return;
	}
	int n = sprintf(buf, "%s>", head);
	if (len == 0)
		buf[n++] = '=';
	else
		n += (int)base64_encode(data, len, buf + n);
	n += sprintf(buf + n, "</%s>", element);
	conn_send_raw(c, buf, (size_t)n);
	free(buf);
}

static void send_failure(struct conn *c, const char *condition)
{
	char buf[256];
	int n = snprintf(buf, sizeof buf, "<failure xmlns='" NS_SASL "'><%s/></failure>",
			 condition);
	conn_send_raw(c, buf, (size_t)n);
}

static void auth_fail(struct conn *c, const char *condition)
{
	auth_note_failure(conn_ip(c));
	auth_cleanup(c);
	send_failure(c, condition);
	log_info("auth %s: failed (%s)", conn_ip(c), condition);
	if (auth_throttled(conn_ip(c)))
		conn_stream_error(c, "policy-violation", "too many failed authentications");
	else
		conn_auth_retry(c);
}

static void handle_result(struct conn *c, enum sasl_result r, const unsigned char *out,
			  size_t outlen);

static void lookup_failed(struct conn *c, PGresult *res, const char *errmsg)
{
	log_warnx("auth %s: credentials lookup failed: %s", conn_ip(c),
		  res ? PQresultErrorMessage(res) : errmsg);
	auth_cleanup(c);
	send_failure(c, "temporary-auth-failure");
	conn_auth_retry(c);
}

/* Salt, iterations, stored key and server key (hex) from row 0, columns col..col+3. */
static bool creds_parse(struct sasl_server *s, PGresult *res, int col, enum scram_hash hash,
			struct scram_creds *creds)
{
	memset(creds, 0, sizeof *creds);
	creds->hash = hash;
	creds->key_len = scram_hash_len(hash);
	long salt = hex_decode(PQgetvalue(res, 0, col), creds->salt, sizeof creds->salt);
	if (salt > 0 &&
	    hex_decode(PQgetvalue(res, 0, col + 2), creds->stored_key, creds->key_len) ==
		    (long)creds->key_len &&
	    hex_decode(PQgetvalue(res, 0, col + 3), creds->server_key, creds->key_len) ==
		    (long)creds->key_len) {
		creds->salt_len = (size_t)salt;
		creds->iterations = (unsigned)atoi(PQgetvalue(res, 0, col + 1));
		return true;
	}
	log_warnx("auth: stored credentials of %s are malformed", sasl_server_username(s));
	return false;
}

static void creds_known(struct conn *c, struct sasl_server *s, struct scram_creds *cp,
			int home)
{
	conn_set_home(c, home);
	const unsigned char *out = NULL;
	size_t outlen = 0;
	enum sasl_result r = sasl_server_set_creds(s, cp, &out, &outlen);
	handle_result(c, r, out, outlen);
}

static void creds_loaded(void *arg, PGresult *res, const char *errmsg)
{
	struct conn *c = arg;
	*conn_req_slot(c) = NULL;
	struct sasl_server *s = *conn_sasl_slot(c);
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		lookup_failed(c, res, errmsg);
		return;
	}
	struct scram_creds creds, *cp = NULL;
	int home = 0;
	enum scram_hash hash = conn_sasl_mech(c) == SASL_MECH_SCRAM_SHA1 ? SCRAM_SHA1
									 : SCRAM_SHA256;
	if (PQntuples(res) == 1 && creds_parse(s, res, 0, hash, &creds)) {
		home = atoi(PQgetvalue(res, 0, 4));
		cp = &creds;
		conn_prefetch_user(c, sasl_server_username(s));
	}
	creds_known(c, s, cp, home);
}

static void query_creds(struct conn *c, struct sasl_server *s, enum sasl_mech mech);

/* The user's row (user_with_row): the user is in memory now, and the credentials come
 * from the same row.  A user already in memory had no row: ask for the credentials. */
static void user_row_loaded(void *arg, struct user *u, PGresult *res)
{
	struct conn *c = arg;
	struct sasl_server *s = *conn_sasl_slot(c);
	conn_adopt_user(c, u);
	if (u && !res) {
		query_creds(c, s, conn_sasl_mech(c));
		return;
	}
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		lookup_failed(c, res, "out of memory");
		return;
	}
	struct scram_creds creds, *cp = NULL;
	enum scram_hash hash = conn_sasl_mech(c) == SASL_MECH_SCRAM_SHA1 ? SCRAM_SHA1
									 : SCRAM_SHA256;
	int col = USER_CREDS_COL + (hash == SCRAM_SHA1 ? 0 : 4);
	if (u && PQntuples(res) >= 1 && creds_parse(s, res, col, hash, &creds))
		cp = &creds;
	creds_known(c, s, cp, u ? u->home_node : 0);
}

static void fetch_creds(struct conn *c, struct sasl_server *s, enum sasl_mech mech)
{
	const char *name = sasl_server_username(s);
	if (!user_find_loaded(name)) {
		if (conn_wait_user(c, name) < 0) {
			lookup_failed(c, NULL, "out of memory");
			return;
		}
		user_with_row(name, user_row_loaded, c);
		return;
	}
	query_creds(c, s, mech);
}

static void query_creds(struct conn *c, struct sasl_server *s, enum sasl_mech mech)
{
	static const char *const q256 =
		"SELECT encode(sha256_salt,'hex'), sha256_iter, encode(sha256_stored,'hex'),"
		" encode(sha256_server,'hex'), home_node, '2' FROM users WHERE username = $1";
	static const char *const q1 =
		"SELECT encode(sha1_salt,'hex'), sha1_iter, encode(sha1_stored,'hex'),"
		" encode(sha1_server,'hex'), home_node, '1' FROM users WHERE username = $1";
	const char *params[1] = {sasl_server_username(s)};
	*conn_req_slot(c) = pg_query(server.db, mech == SASL_MECH_SCRAM_SHA1 ? q1 : q256, 1,
				     params, creds_loaded, c);
	if (!*conn_req_slot(c)) {
		auth_cleanup(c);
		send_failure(c, "temporary-auth-failure");
		conn_auth_retry(c);
	}
}

static void handle_result(struct conn *c, enum sasl_result r, const unsigned char *out,
			  size_t outlen)
{
	struct sasl_server *s = *conn_sasl_slot(c);
	switch (r) {
	case SASL_CONTINUE:
		send_sasl(c, "challenge", out, outlen);
		return;
	case SASL_NEED_CREDS:
		fetch_creds(c, s, conn_sasl_mech(c));
		return;
	case SASL_FAILURE:
		auth_fail(c, sasl_server_failure(s));
		return;
	case SASL_SUCCESS: {
		char user[JID_PART_MAX + 1];
		snprintf(user, sizeof user, "%s", sasl_server_authenticated(s));
		send_sasl(c, "success", outlen ? out : NULL, outlen);
		auth_cleanup(c);
		log_debug("auth %s: %s authenticated", conn_ip(c), user);
		conn_auth_succeeded(c, user);
		return;
	}
	}
}

static long decode_payload(struct conn *c, struct xml_node *el, unsigned char **buf)
{
	char *text = xml_text(el);
	if (!text)
		return -2;
	size_t n = strlen(text);
	long len;
	*buf = malloc(n / 4 * 3 + 1);
	if (!*buf) {
		free(text);
		return -2;
	}
	if (n == 0 || (n == 1 && text[0] == '='))
		len = 0; /* RFC 6120 §6.4.2: '=' is an empty response */
	else if (n > AUTH_MAX_B64)
		len = -1;
	else
		len = base64_decode(text, n, *buf);
	free(text);
	return len;
}

/* Decode the base64 payload of <auth/> or <response/> and take the next SASL step. */
static void step_with(struct conn *c, struct sasl_server *s, struct xml_node *el)
{
	unsigned char *buf = NULL;
	long len = decode_payload(c, el, &buf);
	if (len == -2) {
		free(buf);
		conn_stream_error(c, "resource-constraint", NULL);
		return;
	}
	if (len < 0) {
		free(buf);
		auth_fail(c, "incorrect-encoding");
		return;
	}
	const unsigned char *out = NULL;
	size_t outlen = 0;
	enum sasl_result r = sasl_server_step(s, buf, (size_t)len, &out, &outlen);
	free(buf);
	handle_result(c, r, out, outlen);
}

void auth_start(struct conn *c, struct xml_node *auth)
{
	if (auth_throttled(conn_ip(c))) {
		send_failure(c, "temporary-auth-failure");
		conn_stream_error(c, "policy-violation", "too many failed authentications");
		return;
	}
	if (!conn_take_admission(c)) {
		conn_refuse_login(c);
		return;
	}
	const char *name = xml_get_attr(auth, "mechanism");
	enum sasl_mech mech = name ? sasl_mech_from_name(name) : SASL_MECH_NONE;
	if (mech == SASL_MECH_NONE || (mech == SASL_MECH_PLAIN && !conn_tls_active(c))) {
		send_failure(c, mech == SASL_MECH_NONE ? "invalid-mechanism" : "mechanism-too-weak");
		conn_auth_retry(c);
		return;
	}
	struct sasl_server *s = sasl_server_new(mech);
	if (!s) {
		conn_stream_error(c, "resource-constraint", NULL);
		return;
	}
	*conn_sasl_slot(c) = s;
	conn_set_mech(c, mech);
	step_with(c, s, auth);
}

void auth_response(struct conn *c, struct xml_node *resp)
{
	struct sasl_server *s = *conn_sasl_slot(c);
	if (!s || *conn_req_slot(c) || conn_waiting_user(c)) {
		/* A response while we are still fetching credentials: out of order. */
		auth_fail(c, "malformed-request");
		return;
	}
	step_with(c, s, resp);
}

void auth_abort(struct conn *c)
{
	auth_cleanup(c);
	send_failure(c, "aborted");
	conn_auth_retry(c);
}
