/* SCRAM client (RFC 5802 §3, §5), gs2 header "n,," only. */
#include "lib/scram_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "lib/base64.h"

#define CLIENT_NONCE_RAW 24
#define CLIENT_NONCE_MAX 64
#define CLIENT_MAX_MESSAGE 4096
#define CLIENT_DEFAULT_MAX_ITER 1000000u

enum scram_client_state { SC_NEW, SC_FIRST_SENT, SC_FINAL_SENT, SC_DONE };

struct scram_client {
	enum scram_hash hash;
	enum scram_client_state state;
	char *saslname; /* escaped username */
	char *password; /* NULL when only the cache is known */
	struct scram_salted cached;
	int have_cached;
	char nonce[CLIENT_NONCE_MAX + 1];
	char *first_bare;
	size_t first_bare_len;
	unsigned char server_signature[SCRAM_MAX_KEY];
	char *out;
};

/* saslname escaping: ',' -> "=2C", '=' -> "=3D". */
static char *saslname_encode(const char *name)
{
	size_t n = 0;
	char *out, *o;

	for (const char *p = name; *p; p++)
		n += (*p == ',' || *p == '=') ? 3 : 1;
	out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	o = out;
	for (const char *p = name; *p; p++) {
		if (*p == ',') {
			memcpy(o, "=2C", 3);
			o += 3;
		} else if (*p == '=') {
			memcpy(o, "=3D", 3);
			o += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

struct scram_client *scram_client_new(enum scram_hash h, const char *username,
				      const char *password, const struct scram_salted *cached)
{
	struct scram_client *c;
	unsigned char raw[CLIENT_NONCE_RAW];

	if (username == NULL || *username == '\0' || (password == NULL && cached == NULL))
		return NULL;
	if (cached && (cached->hash != h || cached->salt_len == 0 ||
		       cached->salt_len > SCRAM_MAX_SALT || cached->iterations == 0))
		return NULL;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->hash = h;
	c->saslname = saslname_encode(username);
	c->password = password ? strdup(password) : NULL;
	if (c->saslname == NULL || (password && c->password == NULL) ||
	    RAND_bytes(raw, sizeof raw) != 1) {
		scram_client_free(c);
		return NULL;
	}
	base64_encode(raw, sizeof raw, c->nonce);
	if (cached) {
		c->cached = *cached;
		c->have_cached = 1;
	}
	return c;
}

void scram_client_free(struct scram_client *c)
{
	if (c == NULL)
		return;
	free(c->saslname);
	if (c->password) {
		OPENSSL_cleanse(c->password, strlen(c->password));
		free(c->password);
	}
	free(c->first_bare);
	free(c->out);
	OPENSSL_cleanse(c, sizeof *c);
	free(c);
}

int scram_client_set_nonce_for_test(struct scram_client *c, const char *nonce)
{
	size_t n = strlen(nonce);

	if (c->state != SC_NEW || n == 0 || n > CLIENT_NONCE_MAX)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (nonce[i] < 0x21 || nonce[i] > 0x7e || nonce[i] == ',')
			return -1;
	memcpy(c->nonce, nonce, n + 1);
	return 0;
}

int scram_client_first(struct scram_client *c, const char **out, size_t *outlen)
{
	size_t size = strlen(c->saslname) + strlen(c->nonce) + 16;
	int n;

	if (c->state != SC_NEW)
		return -1;
	free(c->out);
	c->out = malloc(size);
	if (c->out == NULL)
		return -1;
	n = snprintf(c->out, size, "n,,n=%s,r=%s", c->saslname, c->nonce);
	if (n < 0 || (size_t)n >= size)
		return -1;
	/* client-first-message-bare: everything after the gs2 header "n,,". */
	c->first_bare_len = (size_t)n - 3;
	c->first_bare = strdup(c->out + 3);
	if (c->first_bare == NULL)
		return -1;
	c->state = SC_FIRST_SENT;
	*out = c->out;
	*outlen = (size_t)n;
	return 0;
}

/* Parsed server-first-message; pointers into the message. */
struct server_first {
	const char *nonce;
	size_t nonce_len;
	unsigned char salt[SCRAM_MAX_SALT];
	size_t salt_len;
	unsigned iterations;
};

/* "r=" nonce ",s=" salt ",i=" iterations ["," extensions]. */
static int server_first_parse(const char *m, size_t len, unsigned max_iter,
			      struct server_first *sf)
{
	const char *end = m + len, *p = m, *comma;
	unsigned char saltbuf[BASE64_LEN(SCRAM_MAX_SALT)];
	unsigned long long it = 0;
	long n;

	if (len < 2 || memcmp(p, "r=", 2) != 0)
		return -1;
	p += 2;
	comma = memchr(p, ',', (size_t)(end - p));
	if (comma == NULL)
		return -1;
	sf->nonce = p;
	sf->nonce_len = (size_t)(comma - p);
	for (size_t i = 0; i < sf->nonce_len; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return -1;
	p = comma + 1;

	if (end - p < 2 || memcmp(p, "s=", 2) != 0)
		return -1;
	p += 2;
	comma = memchr(p, ',', (size_t)(end - p));
	if (comma == NULL || (size_t)(comma - p) > BASE64_LEN(SCRAM_MAX_SALT))
		return -1;
	n = base64_decode(p, (size_t)(comma - p), saltbuf);
	if (n <= 0 || (size_t)n > SCRAM_MAX_SALT)
		return -1;
	memcpy(sf->salt, saltbuf, (size_t)n);
	sf->salt_len = (size_t)n;
	p = comma + 1;

	if (end - p < 3 || memcmp(p, "i=", 2) != 0)
		return -1;
	p += 2;
	if (*p == '0')
		return -1; /* no leading zeros, and 0 iterations is meaningless */
	while (p < end && *p >= '0' && *p <= '9') {
		it = it * 10 + (unsigned)(*p - '0');
		if (it > max_iter)
			return -1;
		p++;
	}
	if (it == 0 || (p < end && *p != ','))
		return -1;
	sf->iterations = (unsigned)it;
	return 0;
}

/* The SaltedPassword for this salt/iteration count and its keys, from the cache or by
 * PBKDF2. */
static int client_salted(struct scram_client *c, const struct server_first *sf,
			 unsigned char *salted, unsigned char *client_key, unsigned char *stored,
			 unsigned char *server_key)
{
	size_t hl = scram_hash_len(c->hash);

	if (c->have_cached && c->cached.salt_len == sf->salt_len &&
	    memcmp(c->cached.salt, sf->salt, sf->salt_len) == 0 &&
	    c->cached.iterations == sf->iterations) {
		memcpy(salted, c->cached.salted, hl);
		memcpy(client_key, c->cached.client_key, hl);
		memcpy(stored, c->cached.stored_key, hl);
		memcpy(server_key, c->cached.server_key, hl);
		return 0;
	}
	if (c->password == NULL ||
	    scram_salted_password(c->hash, c->password, sf->salt, sf->salt_len, sf->iterations,
				  salted) != 0)
		return -1;
	scram_keys_from_salted(c->hash, salted, client_key, stored, server_key);
	return 0;
}

int scram_client_final(struct scram_client *c, const char *server_first, size_t len,
		       unsigned max_iterations, const char **out, size_t *outlen,
		       struct scram_salted *salted_out)
{
	struct server_first sf;
	size_t hl = scram_hash_len(c->hash), cn = strlen(c->nonce);
	unsigned char salted[SCRAM_MAX_KEY], client_key[SCRAM_MAX_KEY], stored[SCRAM_MAX_KEY];
	unsigned char server_key[SCRAM_MAX_KEY], sig[SCRAM_MAX_KEY];
	char *auth = NULL, *final = NULL;
	size_t wlen, alen, size;
	int rc = -1;

	if (c->state != SC_FIRST_SENT || len > CLIENT_MAX_MESSAGE ||
	    memchr(server_first, '\0', len) != NULL)
		goto out;
	c->state = SC_DONE; /* any failure below ends the exchange */
	if (server_first_parse(server_first, len,
			       max_iterations ? max_iterations : CLIENT_DEFAULT_MAX_ITER, &sf) != 0)
		goto out;
	/* The server nonce must extend ours, or this is a replayed or foreign exchange. */
	if (sf.nonce_len <= cn || memcmp(sf.nonce, c->nonce, cn) != 0)
		goto out;
	if (client_salted(c, &sf, salted, client_key, stored, server_key) != 0)
		goto out;

	/* client-final-message-without-proof: "c=biws,r=" nonce (biws = base64 "n,,"). */
	size = 9 + sf.nonce_len + 3 + BASE64_LEN(SCRAM_MAX_KEY) + 1;
	final = malloc(size);
	alen = c->first_bare_len + 1 + len + 1 + 9 + sf.nonce_len;
	auth = malloc(alen);
	if (final == NULL || auth == NULL)
		goto out;
	memcpy(final, "c=biws,r=", 9);
	memcpy(final + 9, sf.nonce, sf.nonce_len);
	wlen = 9 + sf.nonce_len;
	memcpy(auth, c->first_bare, c->first_bare_len);
	auth[c->first_bare_len] = ',';
	memcpy(auth + c->first_bare_len + 1, server_first, len);
	auth[c->first_bare_len + 1 + len] = ',';
	memcpy(auth + c->first_bare_len + 2 + len, final, wlen);

	scram_hmac(c->hash, stored, hl, (unsigned char *)auth, alen, sig);
	for (size_t i = 0; i < hl; i++)
		sig[i] ^= client_key[i]; /* ClientProof */
	memcpy(final + wlen, ",p=", 3);
	wlen += 3;
	wlen += base64_encode(sig, hl, final + wlen);
	scram_hmac(c->hash, server_key, hl, (unsigned char *)auth, alen, c->server_signature);

	if (salted_out) {
		memset(salted_out, 0, sizeof *salted_out);
		salted_out->hash = c->hash;
		memcpy(salted_out->salt, sf.salt, sf.salt_len);
		salted_out->salt_len = sf.salt_len;
		salted_out->iterations = sf.iterations;
		memcpy(salted_out->salted, salted, hl);
		memcpy(salted_out->client_key, client_key, hl);
		memcpy(salted_out->stored_key, stored, hl);
		memcpy(salted_out->server_key, server_key, hl);
	}
	free(c->out);
	c->out = final;
	final = NULL;
	*out = c->out;
	*outlen = wlen;
	c->state = SC_FINAL_SENT;
	rc = 0;
out:
	OPENSSL_cleanse(salted, sizeof salted);
	OPENSSL_cleanse(client_key, sizeof client_key);
	free(final);
	free(auth);
	return rc;
}

int scram_client_verify(struct scram_client *c, const char *server_final, size_t len)
{
	size_t hl = scram_hash_len(c->hash), vlen;
	unsigned char v[BASE64_LEN(SCRAM_MAX_KEY)];
	const char *comma;
	long n;

	if (c->state != SC_FINAL_SENT)
		return -1;
	c->state = SC_DONE;
	if (len < 2 || memcmp(server_final, "v=", 2) != 0)
		return -1; /* "e=..." or garbage */
	comma = memchr(server_final, ',', len);
	vlen = (size_t)((comma ? comma : server_final + len) - server_final) - 2;
	if (vlen != BASE64_LEN(hl))
		return -1;
	n = base64_decode(server_final + 2, vlen, v);
	if (n != (long)hl)
		return -1;
	return scram_equal(v, c->server_signature, hl) ? 0 : -1;
}
