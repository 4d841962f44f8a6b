/* SASL server: mechanism table, the common state checks, and credentials for unknown users.
 * The mechanisms themselves are in sasl_scram.c and sasl_plain.c. */
#include "engine/sasl.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "engine/sasl_internal.h"
#include "lib/log.h"

static const struct {
	enum sasl_mech mech;
	const char *name;
} sasl_mechs[] = {
	{SASL_MECH_SCRAM_SHA256, "SCRAM-SHA-256"},
	{SASL_MECH_SCRAM_SHA1, "SCRAM-SHA-1"},
	{SASL_MECH_PLAIN, "PLAIN"},
};

static unsigned sasl_default_iterations = 4096;

enum sasl_mech sasl_mech_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof sasl_mechs / sizeof sasl_mechs[0]; i++)
		if (name && strcmp(name, sasl_mechs[i].name) == 0)
			return sasl_mechs[i].mech;
	return SASL_MECH_NONE;
}

const char *sasl_mech_name(enum sasl_mech m)
{
	for (size_t i = 0; i < sizeof sasl_mechs / sizeof sasl_mechs[0]; i++)
		if (sasl_mechs[i].mech == m)
			return sasl_mechs[i].name;
	return "NONE";
}

void sasl_set_default_iterations(unsigned iterations)
{
	if (iterations > 0)
		sasl_default_iterations = iterations;
}

struct sasl_server *sasl_server_new(enum sasl_mech mech)
{
	struct sasl_server *s;

	if (mech != SASL_MECH_SCRAM_SHA256 && mech != SASL_MECH_SCRAM_SHA1 &&
	    mech != SASL_MECH_PLAIN)
		return NULL;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->mech = mech;
	s->hash = mech == SASL_MECH_SCRAM_SHA1 ? SCRAM_SHA1 : SCRAM_SHA256;
	s->state = SASL_ST_START;
	return s;
}

void sasl_server_free(struct sasl_server *s)
{
	if (s == NULL)
		return;
	scram_server_clear(s);
	plain_server_clear(s);
	free(s->out);
	OPENSSL_cleanse(s, sizeof *s);
	free(s);
}

enum sasl_result sasl_fail(struct sasl_server *s, const char *condition)
{
	s->failure = condition;
	s->state = SASL_ST_DONE;
	s->authenticated = 0;
	free(s->out);
	s->out = NULL;
	s->outlen = 0;
	scram_server_clear(s);
	plain_server_clear(s);
	return SASL_FAILURE;
}

int sasl_out_set(struct sasl_server *s, const void *data, size_t len)
{
	/* One spare byte so callers may treat text output as a C string. */
	unsigned char *p = malloc(len + 1);

	if (p == NULL)
		return -1;
	if (len)
		memcpy(p, data, len);
	p[len] = '\0';
	free(s->out);
	s->out = p;
	s->outlen = len;
	return 0;
}

static void sasl_out_give(struct sasl_server *s, enum sasl_result r, const unsigned char **out,
			  size_t *outlen)
{
	int has = (r == SASL_CONTINUE || r == SASL_SUCCESS) && s->out != NULL;

	if (out)
		*out = has ? s->out : (const unsigned char *)"";
	if (outlen)
		*outlen = has ? s->outlen : 0;
}

enum sasl_result sasl_server_step(struct sasl_server *s, const unsigned char *in, size_t inlen,
				  const unsigned char **out, size_t *outlen)
{
	enum sasl_result r;

	free(s->out);
	s->out = NULL;
	s->outlen = 0;
	if (s->state == SASL_ST_DONE || s->state == SASL_ST_NEED_CREDS) {
		/* A message after the outcome, or while we wait for the database: the client
		 * is not following the exchange. */
		r = sasl_fail(s, "malformed-request");
	} else if (inlen > SASL_MAX_MESSAGE) {
		r = sasl_fail(s, "malformed-request");
	} else if (inlen == 0 && s->state == SASL_ST_START && !s->empty_challenged) {
		/* No initial response (RFC 6120 §6.4.2): ask for it with an empty challenge. */
		s->empty_challenged = 1;
		r = sasl_out_set(s, "", 0) == 0 ? SASL_CONTINUE
						 : sasl_fail(s, "temporary-auth-failure");
	} else if (s->mech == SASL_MECH_PLAIN) {
		r = plain_server_step(s, in, inlen);
	} else {
		r = scram_server_step(s, in, inlen);
	}
	sasl_out_give(s, r, out, outlen);
	return r;
}

enum sasl_result sasl_server_set_creds(struct sasl_server *s, const struct scram_creds *creds,
				       const unsigned char **out, size_t *outlen)
{
	enum sasl_result r;

	free(s->out);
	s->out = NULL;
	s->outlen = 0;
	if (s->state != SASL_ST_NEED_CREDS) {
		log_warnx("sasl: credentials supplied while not asked for");
		r = sasl_fail(s, "temporary-auth-failure");
	} else if (creds != NULL && !sasl_creds_valid(creds, s->hash)) {
		log_warnx("sasl: unusable stored credentials for %s (%s)", s->username,
			  scram_mech_name(s->hash));
		r = sasl_fail(s, "temporary-auth-failure");
	} else if (s->mech == SASL_MECH_PLAIN) {
		r = plain_server_set_creds(s, creds);
	} else {
		r = scram_server_set_creds(s, creds);
	}
	sasl_out_give(s, r, out, outlen);
	return r;
}

const char *sasl_server_username(const struct sasl_server *s)
{
	return s->username[0] ? s->username : NULL;
}

const char *sasl_server_failure(const struct sasl_server *s)
{
	return s->failure;
}

const char *sasl_server_authenticated(const struct sasl_server *s)
{
	return s->authenticated ? s->username : NULL;
}

enum scram_hash sasl_server_hash(const struct sasl_server *s)
{
	return s->hash;
}

int sasl_server_set_nonce_for_test(struct sasl_server *s, const char *server_nonce)
{
	size_t n = strlen(server_nonce);

	if (n == 0 || n > SASL_TEST_NONCE_MAX)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (server_nonce[i] < 0x21 || server_nonce[i] > 0x7e || server_nonce[i] == ',')
			return -1;
	memcpy(s->test_nonce, server_nonce, n + 1);
	return 0;
}

int sasl_creds_valid(const struct scram_creds *creds, enum scram_hash h)
{
	return creds->hash == h && creds->key_len == scram_hash_len(h) && creds->salt_len > 0 &&
	       creds->salt_len <= SCRAM_MAX_SALT && creds->iterations > 0;
}

int sasl_random(unsigned char *buf, size_t len)
{
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

int sasl_fake_creds(enum scram_hash h, const char *username, struct scram_creds *out)
{
	/* Per-process: a restarted server shows other fake salts, which real users'
	 * salts never do, but probing across restarts is far less practical. */
	static unsigned char secret[32];
	static int have_secret;
	unsigned char mac[SCRAM_MAX_KEY];
	const char *mech = scram_mech_name(h);
	size_t mlen = strlen(mech), ulen = strlen(username);
	unsigned char msg[32 + SCRAM_USERNAME_MAX + 1];

	if (!have_secret) {
		if (sasl_random(secret, sizeof secret) != 0)
			return -1;
		have_secret = 1;
	}
	/* mechanism name, NUL, username: a different salt per hash like real users. */
	memcpy(msg, mech, mlen);
	msg[mlen] = 0;
	memcpy(msg + mlen + 1, username, ulen);
	scram_hmac(SCRAM_SHA256, secret, sizeof secret, msg, mlen + 1 + ulen, mac);

	memset(out, 0, sizeof *out);
	out->hash = h;
	memcpy(out->salt, mac, SASL_FAKE_SALT_LEN);
	out->salt_len = SASL_FAKE_SALT_LEN;
	out->iterations = sasl_default_iterations;
	out->key_len = scram_hash_len(h);
	if (sasl_random(out->stored_key, out->key_len) != 0 ||
	    sasl_random(out->server_key, out->key_len) != 0)
		return -1;
	return 0;
}
