/* SCRAM key derivation (RFC 5802 §3) over OpenSSL.  Passwords are used as given (no SASLprep:
 * our clients and provisioning both pass the same UTF-8 bytes). */
#include "lib/scram.h"
#include "lib/utf8.h"

#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#define SCRAM_SALT_NEW 16

/* OpenSSL 3 looks an algorithm up by name (locks, hash tables) on every use of EVP_sha256()
 * or HMAC(): a login's few HMACs and digests spent more on those look-ups than on hashing.
 * The digests and an HMAC context per hash, with its digest already set, are fetched once
 * (thread-safely); each HMAC duplicates that template and keys the copy.  A failed fetch
 * leaves NULL and the slower generic calls are used instead. */
static CRYPTO_ONCE fetch_once = CRYPTO_ONCE_STATIC_INIT;
static EVP_MD *fetched_md[2];
static EVP_MAC_CTX *hmac_template[2];

static void fetch_algorithms(void)
{
	static const char *const names[2] = {"SHA1", "SHA256"};
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);

	for (int i = 0; i < 2; i++) {
		fetched_md[i] = EVP_MD_fetch(NULL, names[i], NULL);
		EVP_MAC_CTX *t = mac ? EVP_MAC_CTX_new(mac) : NULL;
		OSSL_PARAM p[2] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
								    (char *)names[i], 0),
				   OSSL_PARAM_construct_end()};
		if (t && EVP_MAC_CTX_set_params(t, p) != 1) {
			EVP_MAC_CTX_free(t);
			t = NULL;
		}
		hmac_template[i] = t;
	}
	EVP_MAC_free(mac); /* the contexts hold their own reference */
}

static int hash_index(enum scram_hash h) { return h == SCRAM_SHA1 ? 0 : 1; }

static const EVP_MD *scram_md(enum scram_hash h)
{
	if (CRYPTO_THREAD_run_once(&fetch_once, fetch_algorithms) && fetched_md[hash_index(h)])
		return fetched_md[hash_index(h)];
	return h == SCRAM_SHA1 ? EVP_sha1() : EVP_sha256();
}

/* HMAC through the fetched template; -1 when unavailable or on failure. */
static int hmac_fetched(enum scram_hash h, const unsigned char *key, size_t keylen,
			const unsigned char *data, size_t len, unsigned char *out)
{
	if (!CRYPTO_THREAD_run_once(&fetch_once, fetch_algorithms) ||
	    hmac_template[hash_index(h)] == NULL)
		return -1;
	EVP_MAC_CTX *c = EVP_MAC_CTX_dup(hmac_template[hash_index(h)]);
	size_t olen = 0, n = scram_hash_len(h);
	int ok = c && EVP_MAC_init(c, key, keylen, NULL) == 1 &&
		 EVP_MAC_update(c, data, len) == 1 && EVP_MAC_final(c, out, &olen, n) == 1 &&
		 olen == n;
	EVP_MAC_CTX_free(c);
	return ok ? 0 : -1;
}

size_t scram_hash_len(enum scram_hash h)
{
	return h == SCRAM_SHA1 ? 20 : 32;
}

const char *scram_mech_name(enum scram_hash h)
{
	return h == SCRAM_SHA1 ? "SCRAM-SHA-1" : "SCRAM-SHA-256";
}

int scram_salted_password(enum scram_hash h, const char *password, const unsigned char *salt,
			  size_t salt_len, unsigned iterations, unsigned char *out)
{
	size_t plen = strlen(password);

	if (iterations == 0 || iterations > INT_MAX || plen > INT_MAX || salt_len > INT_MAX)
		return -1;
	if (PKCS5_PBKDF2_HMAC(password, (int)plen, salt, (int)salt_len, (int)iterations,
			      scram_md(h), (int)scram_hash_len(h), out) != 1)
		return -1;
	return 0;
}

void scram_keys_from_salted(enum scram_hash h, const unsigned char *salted,
			    unsigned char *client_key, unsigned char *stored_key,
			    unsigned char *server_key)
{
	size_t n = scram_hash_len(h);
	unsigned char ck[SCRAM_MAX_KEY];

	scram_hmac(h, salted, n, (const unsigned char *)"Client Key", 10, ck);
	if (stored_key)
		scram_h(h, ck, n, stored_key);
	if (server_key)
		scram_hmac(h, salted, n, (const unsigned char *)"Server Key", 10, server_key);
	if (client_key)
		memcpy(client_key, ck, n);
	OPENSSL_cleanse(ck, sizeof ck);
}

int scram_creds_derive(enum scram_hash h, const char *password, const unsigned char *salt,
		       size_t salt_len, unsigned iterations, struct scram_creds *out)
{
	unsigned char salted[SCRAM_MAX_KEY];

	if (salt_len == 0 || salt_len > SCRAM_MAX_SALT)
		return -1;
	if (scram_salted_password(h, password, salt, salt_len, iterations, salted) != 0)
		return -1;
	memset(out, 0, sizeof *out);
	out->hash = h;
	memcpy(out->salt, salt, salt_len);
	out->salt_len = salt_len;
	out->iterations = iterations;
	out->key_len = scram_hash_len(h);
	scram_keys_from_salted(h, salted, NULL, out->stored_key, out->server_key);
	OPENSSL_cleanse(salted, sizeof salted);
	return 0;
}

int scram_creds_new(enum scram_hash h, const char *password, unsigned iterations,
		    struct scram_creds *out)
{
	unsigned char salt[SCRAM_SALT_NEW];

	if (RAND_bytes(salt, sizeof salt) != 1)
		return -1;
	return scram_creds_derive(h, password, salt, sizeof salt, iterations, out);
}

void scram_hmac(enum scram_hash h, const unsigned char *key, size_t keylen,
		const unsigned char *data, size_t len, unsigned char *out)
{
	unsigned int olen = 0;

	if (hmac_fetched(h, key, keylen, data, len, out) == 0)
		return;
	/* Cannot fail for these digests except on allocation failure inside OpenSSL; an
	 * all-zero output then never matches a stored key, so failing closed is automatic. */
	if (HMAC(scram_md(h), key, (int)keylen, data, len, out, &olen) == NULL)
		memset(out, 0, scram_hash_len(h));
}

void scram_h(enum scram_hash h, const unsigned char *data, size_t len, unsigned char *out)
{
	unsigned int olen = 0;

	if (EVP_Digest(data, len, out, &olen, scram_md(h), NULL) != 1)
		memset(out, 0, scram_hash_len(h));
}

int scram_equal(const unsigned char *a, const unsigned char *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

/* Refused by code point: C0, DEL, C1, the characters RFC 7622 / nodeprep prohibit in a
 * localpart (" & ' / : < > @, as srmctl provisioning does), and whitespace including the
 * Unicode space separators a name could hide behind (NBSP, U+2000..U+200B, line/paragraph
 * separators, NNBSP, MMSP, ideographic space, BOM). */
static int username_char_refused(unsigned long c)
{
	if (c < 0x20 || c == ' ' || (c >= 0x7f && c <= 0xa0))
		return 1;
	if (c < 0x80 && strchr("\"&'/:<>@", (int)c) != NULL)
		return 1;
	if (c == 0x1680 || (c >= 0x2000 && c <= 0x200b) || c == 0x2028 || c == 0x2029 ||
	    c == 0x202f || c == 0x205f || c == 0x3000 || c == 0xfeff)
		return 1;
	return 0;
}

int scram_username_normalize(const unsigned char *in, size_t len, char *out)
{
	size_t i = 0;

	out[0] = '\0';
	if (len == 0 || len > SCRAM_USERNAME_MAX)
		return -1;
	while (i < len) {
		unsigned long c;
		size_t n = utf8_decode(in + i, len - i, &c);

		if (n == 0 || username_char_refused(c)) {
			out[0] = '\0';
			return -1;
		}
		for (size_t k = 0; k < n; k++) {
			unsigned char b = in[i + k];
			out[i + k] = (char)(b >= 'A' && b <= 'Z' ? b - 'A' + 'a' : b);
		}
		i += n;
	}
	out[len] = '\0';
	return 0;
}
