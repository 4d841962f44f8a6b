/* SCRAM-SHA-1 / SCRAM-SHA-256 server (RFC 5802, RFC 7677) without channel binding.
 *
 *   client-first  = gs2-header client-first-bare      ("n,,n=user,r=cnonce")
 *   server-first  = "r=" cnonce snonce ",s=" salt ",i=" iterations
 *   client-final  = "c=" b64(gs2-header) ",r=" nonce ["," ext] ",p=" b64(proof)
 *   server-final  = "v=" b64(ServerSignature)
 *
 * Syntax violations are malformed-request, bad base64 inside the messages is
 * incorrect-encoding, everything about identity or proof is not-authorized. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "engine/sasl_internal.h"
#include "lib/base64.h"

/* A read position in a client message. */
struct scram_cursor {
	const char *p;
	const char *end;
};

/* The value of attribute `name` ("n", "r"...) at the cursor, up to the next ',' or the end;
 * the cursor moves past the value (onto the ',' if any).  0 or -1. */
static int cursor_attr(struct scram_cursor *c, char name, const char **val, size_t *len)
{
	const char *v, *comma;

	if (c->end - c->p < 2 || c->p[0] != name || c->p[1] != '=')
		return -1;
	v = c->p + 2;
	comma = memchr(v, ',', (size_t)(c->end - v));
	if (comma == NULL)
		comma = c->end;
	*val = v;
	*len = (size_t)(comma - v);
	c->p = comma;
	return 0;
}

/* Skip the ',' between attributes; 0 if there was one, -1 at the end (or anything else). */
static int cursor_comma(struct scram_cursor *c)
{
	if (c->p < c->end && *c->p == ',') {
		c->p++;
		return 0;
	}
	return -1;
}

/* RFC 5802 nonce characters: printable ASCII except ','. */
static int nonce_valid(const char *p, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return 0;
	return 1;
}

/* An optional extension "x=value" (RFC 5802 §7 attr-val): one ASCII letter, '=', one or
 * more characters.  We understand none, so they are checked and ignored. */
static int extension_valid(const char *p, size_t n)
{
	return n >= 3 && ((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z')) &&
	       p[1] == '=';
}

/* Decode a saslname: "=2C" is ',', "=3D" is '=', any other '=' is malformed.  out holds
 * at least len bytes.  Returns the decoded length, -1 when malformed (or empty). */
static long saslname_decode(const char *in, size_t len, unsigned char *out)
{
	size_t o = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (in[i] != '=') {
			out[o++] = (unsigned char)in[i];
			continue;
		}
		if (len - i < 3)
			return -1;
		if (in[i + 1] == '2' && in[i + 2] == 'C')
			out[o++] = ',';
		else if (in[i + 1] == '3' && in[i + 2] == 'D')
			out[o++] = '=';
		else
			return -1;
		i += 2;
	}
	return (long)o;
}

/* Decode and normalize a saslname into out (SCRAM_USERNAME_MAX + 1).  Returns 0, -1 when
 * the escapes are malformed, -2 when the name breaks the username rule. */
static int saslname_to_username(const char *in, size_t len, char *out)
{
	unsigned char *raw = malloc(len ? len : 1);
	long n;
	int rc = 0;

	if (raw == NULL)
		return -3;
	n = saslname_decode(in, len, raw);
	if (n < 0)
		rc = -1;
	else if (scram_username_normalize(raw, (size_t)n, out) != 0)
		rc = -2;
	free(raw);
	return rc;
}

static char *memdup_str(const char *p, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

void scram_server_clear(struct sasl_server *s)
{
	free(s->gs2_header);
	free(s->client_first_bare);
	free(s->nonce);
	free(s->server_first);
	s->gs2_header = s->client_first_bare = s->nonce = s->server_first = NULL;
	s->gs2_len = s->client_first_bare_len = s->nonce_len = s->client_nonce_len = 0;
	s->server_first_len = 0;
	OPENSSL_cleanse(&s->creds, sizeof s->creds);
}

/* gs2-header: ("n" / "y") "," ["a=" saslname] ","; sets *authzid when present.
 * Returns 0 or a failure condition. */
static const char *gs2_parse(struct scram_cursor *c, const char **authzid, size_t *authzid_len)
{
	*authzid = NULL;
	*authzid_len = 0;
	if (c->end - c->p >= 2 && c->p[0] == 'p' && c->p[1] == '=')
		return "not-authorized"; /* channel binding: we offer no -PLUS mechanism */
	if (c->p == c->end || (*c->p != 'n' && *c->p != 'y'))
		return "malformed-request";
	c->p++;
	if (cursor_comma(c) != 0)
		return "malformed-request";
	if (c->p < c->end && *c->p == 'a') {
		if (cursor_attr(c, 'a', authzid, authzid_len) != 0 || *authzid_len == 0)
			return "malformed-request";
	}
	if (cursor_comma(c) != 0)
		return "malformed-request";
	return NULL;
}

/* Optional extensions after the nonce, up to the end of the message. */
static int extensions_skip(struct scram_cursor *c)
{
	while (cursor_comma(c) == 0) {
		const char *e = c->p, *comma = memchr(e, ',', (size_t)(c->end - e));
		size_t n = (size_t)((comma ? comma : c->end) - e);

		if (!extension_valid(e, n))
			return -1;
		c->p = e + n;
	}
	return c->p == c->end ? 0 : -1;
}

static enum sasl_result scram_client_first(struct sasl_server *s, const char *in, size_t inlen)
{
	struct scram_cursor c = {in, in + inlen};
	const char *authzid, *user, *cnonce, *bare, *cond;
	size_t authzid_len, user_len, cnonce_len;
	int rc;

	if ((cond = gs2_parse(&c, &authzid, &authzid_len)) != NULL)
		return sasl_fail(s, cond);
	s->gs2_header = memdup_str(in, (size_t)(c.p - in));
	s->gs2_len = (size_t)(c.p - in);
	bare = c.p;
	/* "m=" is the reserved mandatory extension: we must fail if we see it. */
	if (cursor_attr(&c, 'n', &user, &user_len) != 0)
		return sasl_fail(s, "malformed-request");
	if (cursor_comma(&c) != 0 || cursor_attr(&c, 'r', &cnonce, &cnonce_len) != 0 ||
	    !nonce_valid(cnonce, cnonce_len) || extensions_skip(&c) != 0)
		return sasl_fail(s, "malformed-request");

	rc = saslname_to_username(user, user_len, s->username);
	if (rc == -1)
		return sasl_fail(s, "malformed-request");
	if (rc == -2) {
		s->username[0] = '\0';
		return sasl_fail(s, "not-authorized");
	}
	if (rc != 0)
		return sasl_fail(s, "temporary-auth-failure");
	if (authzid) {
		char *az = malloc(SCRAM_USERNAME_MAX + 1);

		if (az == NULL)
			return sasl_fail(s, "temporary-auth-failure");
		rc = saslname_to_username(authzid, authzid_len, az);
		int same = rc == 0 && strcmp(az, s->username) == 0;
		free(az);
		if (rc == -1)
			return sasl_fail(s, "malformed-request");
		if (rc == -3)
			return sasl_fail(s, "temporary-auth-failure");
		if (!same)
			return sasl_fail(s, "invalid-authzid");
	}

	s->client_first_bare = memdup_str(bare, (size_t)(c.end - bare));
	s->client_first_bare_len = (size_t)(c.end - bare);
	s->nonce = malloc(cnonce_len + base64_encoded_len(SASL_NONCE_RAW) + SASL_TEST_NONCE_MAX + 1);
	if (s->gs2_header == NULL || s->client_first_bare == NULL || s->nonce == NULL)
		return sasl_fail(s, "temporary-auth-failure");
	memcpy(s->nonce, cnonce, cnonce_len);
	s->client_nonce_len = s->nonce_len = cnonce_len;
	s->state = SASL_ST_NEED_CREDS;
	return SASL_NEED_CREDS;
}

enum sasl_result scram_server_set_creds(struct sasl_server *s, const struct scram_creds *creds)
{
	char *snonce = s->nonce + s->client_nonce_len;
	char salt64[BASE64_LEN(SCRAM_MAX_SALT) + 1];
	size_t size;
	int n;

	if (creds) {
		s->creds = *creds;
		s->user_known = 1;
	} else if (sasl_fake_creds(s->hash, s->username, &s->creds) != 0) {
		return sasl_fail(s, "temporary-auth-failure");
	}

	if (s->test_nonce[0]) {
		size_t tl = strlen(s->test_nonce);
		memcpy(snonce, s->test_nonce, tl + 1);
		s->nonce_len += tl;
	} else {
		unsigned char raw[SASL_NONCE_RAW];
		if (sasl_random(raw, sizeof raw) != 0)
			return sasl_fail(s, "temporary-auth-failure");
		s->nonce_len += base64_encode(raw, sizeof raw, snonce);
	}

	base64_encode(s->creds.salt, s->creds.salt_len, salt64);
	size = s->nonce_len + strlen(salt64) + 32;
	s->server_first = malloc(size);
	if (s->server_first == NULL)
		return sasl_fail(s, "temporary-auth-failure");
	n = snprintf(s->server_first, size, "r=%.*s,s=%s,i=%u", (int)s->nonce_len, s->nonce,
		     salt64, s->creds.iterations);
	if (n < 0 || (size_t)n >= size)
		return sasl_fail(s, "temporary-auth-failure");
	s->server_first_len = (size_t)n;
	if (sasl_out_set(s, s->server_first, s->server_first_len) != 0)
		return sasl_fail(s, "temporary-auth-failure");
	s->state = SASL_ST_CHALLENGED;
	return SASL_CONTINUE;
}

/* Decode base64 text of at most max bytes of data; heap result in *out.  Returns the
 * length, -1 for bad base64, -2 when longer than max, -3 on allocation failure. */
static long b64_decode_bounded(const char *in, size_t len, size_t max, unsigned char **out)
{
	long n;

	*out = NULL;
	if (len / 4 * 3 > max + 2)
		return -2;
	*out = malloc(len / 4 * 3 + 1);
	if (*out == NULL)
		return -3;
	n = base64_decode(in, len, *out);
	if (n < 0)
		return -1;
	return (size_t)n > max ? -2 : n;
}

/* Check the proof and, when it is good, put the server-final message in the output. */
static enum sasl_result scram_verify(struct sasl_server *s, const unsigned char *proof,
				     const char *without_proof, size_t without_len)
{
	size_t hl = scram_hash_len(s->hash);
	size_t alen = s->client_first_bare_len + 1 + s->server_first_len + 1 + without_len;
	unsigned char sig[SCRAM_MAX_KEY], key[SCRAM_MAX_KEY], stored[SCRAM_MAX_KEY];
	char *auth = malloc(alen);
	int ok;

	if (auth == NULL)
		return sasl_fail(s, "temporary-auth-failure");
	memcpy(auth, s->client_first_bare, s->client_first_bare_len);
	auth[s->client_first_bare_len] = ',';
	memcpy(auth + s->client_first_bare_len + 1, s->server_first, s->server_first_len);
	auth[s->client_first_bare_len + 1 + s->server_first_len] = ',';
	memcpy(auth + alen - without_len, without_proof, without_len);

	/* ClientKey = proof XOR HMAC(StoredKey, AuthMessage); good when H(ClientKey) is the
	 * StoredKey.  Unknown users go through the same work and fail here. */
	scram_hmac(s->hash, s->creds.stored_key, hl, (unsigned char *)auth, alen, sig);
	for (size_t i = 0; i < hl; i++)
		key[i] = proof[i] ^ sig[i];
	scram_h(s->hash, key, hl, stored);
	ok = scram_equal(stored, s->creds.stored_key, hl) & s->user_known;
	OPENSSL_cleanse(key, sizeof key);
	if (!ok) {
		free(auth);
		return sasl_fail(s, "not-authorized");
	}

	char final[2 + BASE64_LEN(SCRAM_MAX_KEY) + 1];
	scram_hmac(s->hash, s->creds.server_key, hl, (unsigned char *)auth, alen, sig);
	free(auth);
	final[0] = 'v';
	final[1] = '=';
	size_t flen = 2 + base64_encode(sig, hl, final + 2);
	if (sasl_out_set(s, final, flen) != 0)
		return sasl_fail(s, "temporary-auth-failure");
	s->authenticated = 1;
	s->state = SASL_ST_DONE;
	scram_server_clear(s);
	return SASL_SUCCESS;
}

static enum sasl_result scram_client_final(struct sasl_server *s, const char *in, size_t inlen)
{
	struct scram_cursor c = {in, in + inlen};
	const char *cb, *nonce, *proof64 = NULL, *proof_attr = NULL;
	size_t cb_len, nonce_len, proof_len = 0;
	unsigned char *buf;
	long n;

	if (cursor_attr(&c, 'c', &cb, &cb_len) != 0 || cursor_comma(&c) != 0 ||
	    cursor_attr(&c, 'r', &nonce, &nonce_len) != 0)
		return sasl_fail(s, "malformed-request");
	/* Extensions, then the proof, which must be the last attribute. */
	while (cursor_comma(&c) == 0) {
		const char *e = c.p, *comma = memchr(e, ',', (size_t)(c.end - e));
		size_t len = (size_t)((comma ? comma : c.end) - e);

		if (len >= 2 && e[0] == 'p' && e[1] == '=') {
			if (comma != NULL)
				return sasl_fail(s, "malformed-request");
			proof_attr = e;
			proof64 = e + 2;
			proof_len = len - 2;
		} else if (!extension_valid(e, len)) {
			return sasl_fail(s, "malformed-request");
		}
		c.p = e + len;
	}
	if (proof_attr == NULL || c.p != c.end || !nonce_valid(nonce, nonce_len))
		return sasl_fail(s, "malformed-request");

	n = b64_decode_bounded(cb, cb_len, SASL_MAX_MESSAGE, &buf);
	if (n == -3) {
		free(buf);
		return sasl_fail(s, "temporary-auth-failure");
	}
	int cb_ok = n >= 0 && (size_t)n == s->gs2_len && memcmp(buf, s->gs2_header, s->gs2_len) == 0;
	free(buf);
	if (n == -1)
		return sasl_fail(s, "incorrect-encoding");
	if (!cb_ok)
		return sasl_fail(s, "not-authorized"); /* channel binding does not match */
	if (nonce_len != s->nonce_len || memcmp(nonce, s->nonce, nonce_len) != 0)
		return sasl_fail(s, "not-authorized");

	n = b64_decode_bounded(proof64, proof_len, SCRAM_MAX_KEY, &buf);
	if (n < 0 || (size_t)n != scram_hash_len(s->hash)) {
		free(buf);
		if (n == -1)
			return sasl_fail(s, "incorrect-encoding");
		if (n == -3)
			return sasl_fail(s, "temporary-auth-failure");
		return sasl_fail(s, "malformed-request");
	}
	/* client-final-message-without-proof ends before ",p=". */
	enum sasl_result r = scram_verify(s, buf, in, (size_t)(proof_attr - 1 - in));
	free(buf);
	return r;
}

enum sasl_result scram_server_step(struct sasl_server *s, const unsigned char *in, size_t inlen)
{
	/* SCRAM messages are text: a NUL can only be an attack on C string handling. */
	if (inlen > 0 && memchr(in, '\0', inlen) != NULL)
		return sasl_fail(s, "malformed-request");
	if (s->state == SASL_ST_START)
		return scram_client_first(s, (const char *)in, inlen);
	return scram_client_final(s, (const char *)in, inlen);
}
