/* Unit tests: base64, SCRAM derivation, the SASL server (SCRAM-SHA-1/256, PLAIN) and the
 * SCRAM client, including the RFC 5802 §5 and RFC 7677 §3 exchanges byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/sasl.h"
#include "lib/base64.h"
#include "lib/scram.h"
#include "lib/scram_client.h"

/* ---------- helpers ---------- */

static enum sasl_result step_str(struct sasl_server *s, const char *msg, const char **out)
{
	const unsigned char *o = NULL;
	size_t olen = 0;
	enum sasl_result r = sasl_server_step(s, (const unsigned char *)msg, strlen(msg), &o, &olen);

	if (out)
		*out = (const char *)o;
	if (r == SASL_CONTINUE || r == SASL_SUCCESS)
		assert_non_null(o);
	return r;
}

static void b64dec_or_die(const char *b64, unsigned char *out, size_t want)
{
	assert_int_equal(base64_decode(b64, strlen(b64), out), (long)want);
}

/* Credentials of the RFC examples: user "user", password "pencil". */
static void rfc_creds(enum scram_hash h, struct scram_creds *c)
{
	unsigned char salt[32];

	if (h == SCRAM_SHA1) {
		b64dec_or_die("QSXCR+Q6sek8bf92", salt, 12);
		assert_int_equal(scram_creds_derive(h, "pencil", salt, 12, 4096, c), 0);
	} else {
		b64dec_or_die("W22ZaJ0SNY7soEsUEjb6gQ==", salt, 16);
		assert_int_equal(scram_creds_derive(h, "pencil", salt, 16, 4096, c), 0);
	}
}

/* Fast credentials for the many negative tests. */
static void quick_creds(enum scram_hash h, const char *password, struct scram_creds *c)
{
	static const unsigned char salt[16] = "0123456789abcdef";

	assert_int_equal(scram_creds_derive(h, password, salt, sizeof salt, 64, c), 0);
}

/* A SCRAM-SHA-1 server that has answered the RFC 5802 client-first with the RFC nonce. */
static struct sasl_server *rfc5802_after_first(void)
{
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA1);
	struct scram_creds creds;
	const unsigned char *out;
	size_t outlen;

	assert_non_null(s);
	rfc_creds(SCRAM_SHA1, &creds);
	assert_int_equal(sasl_server_set_nonce_for_test(s, "3rfcNHYJY1ZVvWVs7j"), 0);
	assert_int_equal(step_str(s, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", NULL),
			 SASL_NEED_CREDS);
	assert_string_equal(sasl_server_username(s), "user");
	assert_int_equal(sasl_server_set_creds(s, &creds, &out, &outlen), SASL_CONTINUE);
	return s;
}

#define RFC5802_NONCE "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
#define RFC5802_FINAL "c=biws,r=" RFC5802_NONCE ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
#define RFC7677_NONCE "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC7677_FINAL "c=biws,r=" RFC7677_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="

/* ---------- base64 ---------- */

static void test_base64_rfc4648(void **state)
{
	static const char *vec[][2] = {
		{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},       {"foo", "Zm9v"},
		{"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
	};
	char enc[64];
	unsigned char dec[64];

	for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
		size_t n = strlen(vec[i][0]);
		assert_int_equal(base64_encoded_len(n), strlen(vec[i][1]));
		assert_int_equal(BASE64_LEN(n), strlen(vec[i][1]));
		assert_int_equal(base64_encode((const unsigned char *)vec[i][0], n, enc),
				 strlen(vec[i][1]));
		assert_string_equal(enc, vec[i][1]);
		assert_int_equal(base64_decode(vec[i][1], strlen(vec[i][1]), dec), (long)n);
		assert_memory_equal(dec, vec[i][0], n);
	}
	/* All byte values round-trip. */
	unsigned char all[256], back[256];
	char big[BASE64_LEN(256) + 1];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	for (size_t n = 0; n <= 256; n++) {
		size_t e = base64_encode(all, n, big);
		assert_int_equal(base64_decode(big, e, back), (long)n);
		assert_memory_equal(back, all, n);
	}
}

static void test_base64_malformed(void **state)
{
	static const char *bad[] = {
		"Zg",       "Zg=",      "Zm9",      "Z",        "Zm9v\n",   " Zm9v",    "Zm9v ",
		"Zm 9",     "Zh==",     "Zm9=",     "Z===",     "====",     "Zg==Zg==", "Zm=v",
		"Zm9v*A==", "Zg=A",     "Zm-_",     "A=B=",     "=AAA",     "AA=\n",    "Zm9\x80",
		"Zg\r\n==", "Q Q==",
	};
	unsigned char out[64];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(base64_decode(bad[i], strlen(bad[i]), out), -1);
	/* Embedded NUL (length given explicitly). */
	assert_int_equal(base64_decode("Zm\0v", 4, out), -1);
	assert_int_equal(base64_decode("QQ==\0\0\0\0", 8, out), -1);
}

/* ---------- scram derivation ---------- */

static void test_scram_names(void **state)
{
	assert_int_equal(scram_hash_len(SCRAM_SHA1), 20);
	assert_int_equal(scram_hash_len(SCRAM_SHA256), 32);
	assert_string_equal(scram_mech_name(SCRAM_SHA1), "SCRAM-SHA-1");
	assert_string_equal(scram_mech_name(SCRAM_SHA256), "SCRAM-SHA-256");
	assert_int_equal(sasl_mech_from_name("SCRAM-SHA-256"), SASL_MECH_SCRAM_SHA256);
	assert_int_equal(sasl_mech_from_name("SCRAM-SHA-1"), SASL_MECH_SCRAM_SHA1);
	assert_int_equal(sasl_mech_from_name("PLAIN"), SASL_MECH_PLAIN);
	assert_int_equal(sasl_mech_from_name("DIGEST-MD5"), SASL_MECH_NONE);
	assert_int_equal(sasl_mech_from_name("scram-sha-1"), SASL_MECH_NONE);
	assert_string_equal(sasl_mech_name(SASL_MECH_PLAIN), "PLAIN");
	assert_null(sasl_server_new(SASL_MECH_NONE));
}

static void test_scram_salted_rfc5802(void **state)
{
	/* SaltedPassword of RFC 5802 §5, as published with the example's test vectors. */
	unsigned char salt[12], salted[20], want[20];

	b64dec_or_die("QSXCR+Q6sek8bf92", salt, 12);
	b64dec_or_die("HZbuOlKbWl+eR8AfIposuKbhX30=", want, 20);
	assert_int_equal(scram_salted_password(SCRAM_SHA1, "pencil", salt, 12, 4096, salted), 0);
	assert_memory_equal(salted, want, 20);
	assert_int_equal(scram_salted_password(SCRAM_SHA1, "pencil", salt, 12, 0, salted), -1);
}

static void test_scram_creds_new(void **state)
{
	struct scram_creds a, b;

	assert_int_equal(scram_creds_new(SCRAM_SHA256, "secret", 128, &a), 0);
	assert_int_equal(a.salt_len, 16);
	assert_int_equal(a.key_len, 32);
	assert_int_equal(a.iterations, 128);
	/* Deriving again with the same salt gives the same keys; another password does not. */
	assert_int_equal(scram_creds_derive(SCRAM_SHA256, "secret", a.salt, a.salt_len, 128, &b),
			 0);
	assert_true(scram_equal(a.stored_key, b.stored_key, 32));
	assert_true(scram_equal(a.server_key, b.server_key, 32));
	assert_int_equal(scram_creds_derive(SCRAM_SHA256, "Secret", a.salt, a.salt_len, 128, &b),
			 0);
	assert_false(scram_equal(a.stored_key, b.stored_key, 32));
	/* Two fresh salts differ. */
	assert_int_equal(scram_creds_new(SCRAM_SHA256, "secret", 128, &b), 0);
	assert_memory_not_equal(a.salt, b.salt, 16);
	assert_int_equal(scram_creds_derive(SCRAM_SHA1, "x", a.salt, 0, 1, &b), -1);
	assert_int_equal(scram_creds_derive(SCRAM_SHA1, "x", a.salt, SCRAM_MAX_SALT + 1, 1, &b),
			 -1);

	/* And the SASL server accepts them over SCRAM and PLAIN. */
	struct scram_client *c = scram_client_new(SCRAM_SHA256, "bob", "secret", NULL);
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA256);
	const char *m, *o;
	size_t ml, ol;
	assert_int_equal(scram_client_first(c, &m, &ml), 0);
	assert_int_equal(sasl_server_step(s, (const unsigned char *)m, ml, NULL, NULL),
			 SASL_NEED_CREDS);
	assert_int_equal(sasl_server_set_creds(s, &a, (const unsigned char **)&o, &ol),
			 SASL_CONTINUE);
	assert_int_equal(scram_client_final(c, o, ol, 0, &m, &ml, NULL), 0);
	assert_int_equal(sasl_server_step(s, (const unsigned char *)m, ml,
					  (const unsigned char **)&o, &ol),
			 SASL_SUCCESS);
	assert_int_equal(scram_client_verify(c, o, ol), 0);
	sasl_server_free(s);
	scram_client_free(c);

	s = sasl_server_new(SASL_MECH_PLAIN);
	assert_int_equal(sasl_server_step(s, (const unsigned char *)"\0bob\0secret", 11, NULL,
					  NULL),
			 SASL_NEED_CREDS);
	assert_int_equal(sasl_server_set_creds(s, &a, NULL, NULL), SASL_SUCCESS);
	sasl_server_free(s);
}

static void test_username_normalize(void **state)
{
	char out[SCRAM_USERNAME_MAX + 1];
	char *big = malloc(SCRAM_USERNAME_MAX + 2);

	assert_int_equal(scram_username_normalize((const unsigned char *)"AliCe", 5, out), 0);
	assert_string_equal(out, "alice");
	assert_int_equal(scram_username_normalize((const unsigned char *)"\xc3\x89t\xc3\xa9", 5,
						  out),
			 0);
	assert_string_equal(out, "\xc3\x89t\xc3\xa9"); /* non-ASCII kept as is */
	static const char *bad[] = {"a b", "a@b", "a/b", "a\tb", "a\x7f", "\xc3\x28",
				    "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc2\x85",
				    "a\xc2\xa0", "\xe3\x80\x80", "\xe2\x80\x8b", "\xe2\x82",
				    "a:b", "a<b", "a>b", "a&b", "a'b", "a\"b"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(scram_username_normalize((const unsigned char *)bad[i],
							  strlen(bad[i]), out),
				 -1);
	assert_int_equal(scram_username_normalize((const unsigned char *)"a\0b", 3, out), -1);
	assert_int_equal(scram_username_normalize((const unsigned char *)"", 0, out), -1);
	memset(big, 'x', SCRAM_USERNAME_MAX + 1);
	assert_int_equal(scram_username_normalize((unsigned char *)big, SCRAM_USERNAME_MAX, out),
			 0);
	assert_int_equal(strlen(out), SCRAM_USERNAME_MAX);
	assert_int_equal(
		scram_username_normalize((unsigned char *)big, SCRAM_USERNAME_MAX + 1, out), -1);
	free(big);
}

/* ---------- SCRAM server: RFC vectors ---------- */

static void test_scram_rfc5802(void **state)
{
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA1);
	struct scram_creds creds;
	const unsigned char *out;
	size_t outlen;
	const char *o;

	rfc_creds(SCRAM_SHA1, &creds);
	assert_int_equal(sasl_server_hash(s), SCRAM_SHA1);
	assert_int_equal(sasl_server_set_nonce_for_test(s, "3rfcNHYJY1ZVvWVs7j"), 0);
	assert_int_equal(step_str(s, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", NULL),
			 SASL_NEED_CREDS);
	assert_string_equal(sasl_server_username(s), "user");
	assert_int_equal(sasl_server_set_creds(s, &creds, &out, &outlen), SASL_CONTINUE);
	assert_int_equal(outlen, strlen("r=" RFC5802_NONCE ",s=QSXCR+Q6sek8bf92,i=4096"));
	assert_memory_equal(out, "r=" RFC5802_NONCE ",s=QSXCR+Q6sek8bf92,i=4096", outlen);
	assert_int_equal(step_str(s, RFC5802_FINAL, &o), SASL_SUCCESS);
	assert_string_equal(o, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
	assert_string_equal(sasl_server_authenticated(s), "user");
	assert_null(sasl_server_failure(s));
	/* Anything after SUCCESS is a protocol violation. */
	assert_int_equal(step_str(s, RFC5802_FINAL, NULL), SASL_FAILURE);
	assert_string_equal(sasl_server_failure(s), "malformed-request");
	assert_null(sasl_server_authenticated(s));
	sasl_server_free(s);
}

static void test_scram_rfc7677(void **state)
{
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA256);
	struct scram_creds creds;
	const unsigned char *out;
	size_t outlen;
	const char *o;

	rfc_creds(SCRAM_SHA256, &creds);
	assert_int_equal(sasl_server_set_nonce_for_test(s, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"), 0);
	assert_int_equal(step_str(s, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO", NULL), SASL_NEED_CREDS);
	assert_int_equal(sasl_server_set_creds(s, &creds, &out, &outlen), SASL_CONTINUE);
	assert_string_equal((const char *)out,
			    "r=" RFC7677_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
	assert_int_equal(step_str(s, RFC7677_FINAL, &o), SASL_SUCCESS);
	assert_string_equal(o, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
	sasl_server_free(s);
}

static void test_scram_test_nonce_checks(void **state)
{
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA1);

	assert_int_equal(sasl_server_set_nonce_for_test(s, ""), -1);
	assert_int_equal(sasl_server_set_nonce_for_test(s, "a,b"), -1);
	assert_int_equal(sasl_server_set_nonce_for_test(s, "a b"), -1);
	sasl_server_free(s);
}

/* ---------- SCRAM server: failures ---------- */

static void test_scram_wrong_password(void **state)
{
	for (int h = 0; h < 2; h++) {
		enum scram_hash hash = h ? SCRAM_SHA256 : SCRAM_SHA1;
		struct sasl_server *s =
			sasl_server_new(h ? SASL_MECH_SCRAM_SHA256 : SASL_MECH_SCRAM_SHA1);
		struct scram_client *c = scram_client_new(hash, "user", "pencil2", NULL);
		struct scram_creds creds;
		const char *m, *o;
		size_t ml, ol;

		quick_creds(hash, "pencil", &creds);
		assert_int_equal(scram_client_first(c, &m, &ml), 0);
		assert_int_equal(sasl_server_step(s, (const unsigned char *)m, ml, NULL, NULL),
				 SASL_NEED_CREDS);
		assert_int_equal(sasl_server_set_creds(s, &creds, (const unsigned char **)&o, &ol),
				 SASL_CONTINUE);
		assert_int_equal(scram_client_final(c, o, ol, 0, &m, &ml, NULL), 0);
		assert_int_equal(sasl_server_step(s, (const unsigned char *)m, ml, NULL, NULL),
				 SASL_FAILURE);
		assert_string_equal(sasl_server_failure(s), "not-authorized");
		assert_null(sasl_server_authenticated(s));
		/* And another step after FAILURE. */
		assert_int_equal(step_str(s, "n,,n=user,r=abc", NULL), SASL_FAILURE);
		assert_string_equal(sasl_server_failure(s), "malformed-request");
		sasl_server_free(s);
		scram_client_free(c);
	}
}

/* Run client-first for an unknown user; return the server-first text (caller frees). */
static char *unknown_first(const char *user_msg, struct sasl_server **sp)
{
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA256);
	const unsigned char *out;
	size_t outlen;

	assert_int_equal(step_str(s, user_msg, NULL), SASL_NEED_CREDS);
	assert_int_equal(sasl_server_set_creds(s, NULL, &out, &outlen), SASL_CONTINUE);
	*sp = s;
	return strndup((const char *)out, outlen);
}

static void test_scram_unknown_user(void **state)
{
	struct sasl_server *s1, *s2, *s3;
	char *f1 = unknown_first("n,,n=ghost,r=abcdefgh", &s1);
	char *f2 = unknown_first("n,,n=ghost,r=abcdefgh", &s2);
	char *f3 = unknown_first("n,,n=spirit,r=abcdefgh", &s3);
	const char *salt1 = strstr(f1, ",s="), *salt2 = strstr(f2, ",s="), *salt3 = strstr(f3, ",s=");

	/* Looks like a real challenge: our nonce extended, a 16-byte salt, 4096 iterations. */
	assert_true(strncmp(f1, "r=abcdefgh", 10) == 0);
	assert_int_equal(strlen(f1), strlen("r=abcdefgh") + 32 + strlen(",s=") + 24 +
					     strlen(",i=4096"));
	assert_non_null(strstr(f1, ",i=4096"));
	/* The same salt every time for one name (a probe cannot spot randomness)... */
	assert_non_null(salt1);
	assert_non_null(salt2);
	assert_int_equal(strcmp(salt1, salt2), 0);
	assert_int_not_equal(strcmp(f1, f2), 0); /* ...but fresh nonces */
	assert_int_not_equal(strcmp(salt1, salt3), 0);

	/* A client that knows some password gets not-authorized at the end. */
	char final[256];
	snprintf(final, sizeof final, "c=biws,r=%.*s,p=%s", (int)(strchr(f1, ',') - f1 - 2), f1 + 2,
		 "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
	assert_int_equal(step_str(s1, final, NULL), SASL_FAILURE);
	assert_string_equal(sasl_server_failure(s1), "not-authorized");

	/* The real client flow gives the same answer. */
	struct scram_client *c = scram_client_new(SCRAM_SHA256, "ghost", "boo", NULL);
	const char *m, *o;
	size_t ml;
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA256);
	assert_int_equal(scram_client_first(c, &m, &ml), 0);
	assert_int_equal(sasl_server_step(s, (const unsigned char *)m, ml, NULL, NULL),
			 SASL_NEED_CREDS);
	size_t ol;
	assert_int_equal(sasl_server_set_creds(s, NULL, (const unsigned char **)&o, &ol),
			 SASL_CONTINUE);
	assert_int_equal(scram_client_final(c, o, ol, 0, &m, &ml, NULL), 0);
	assert_int_equal(sasl_server_step(s, (const unsigned char *)m, ml, NULL, NULL),
			 SASL_FAILURE);
	assert_string_equal(sasl_server_failure(s), "not-authorized");

	sasl_server_free(s);
	scram_client_free(c);
	sasl_server_free(s1);
	sasl_server_free(s2);
	sasl_server_free(s3);
	free(f1);
	free(f2);
	free(f3);
}

static void test_scram_default_iterations(void **state)
{
	struct sasl_server *s;
	char *f;

	sasl_set_default_iterations(10000);
	f = unknown_first("n,,n=ghost,r=abcdefgh", &s);
	assert_non_null(strstr(f, ",i=10000"));
	sasl_set_default_iterations(4096);
	free(f);
	sasl_server_free(s);
}

struct first_case {
	const char *msg;
	size_t len; /* 0: strlen */
	int result;
	const char *cond;     /* on FAILURE */
	const char *username; /* on NEED_CREDS */
};

static void test_scram_client_first_cases(void **state)
{
	static const struct first_case cases[] = {
		{"x,,n=user,r=abc", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,n=user,r=abc", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,", 0, SASL_FAILURE, "malformed-request", NULL},
		{"nn,,n=user,r=abc", 0, SASL_FAILURE, "malformed-request", NULL},
		{"p=tls-unique,,n=user,r=abc", 0, SASL_FAILURE, "not-authorized", NULL},
		{"p=tls-server-end-point,a=user,n=user,r=abc", 0, SASL_FAILURE, "not-authorized",
		 NULL},
		{"n,,m=ext,n=user,r=abc", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=user", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=user,", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=,r=abc", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,user,r=abc", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,r=abc,n=user", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=us=41er,r=abc", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=user=,r=abc", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=user=2,r=abc", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=us=2cer,r=abc", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=user,r=", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=user,r=ab c", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=user,r=ab\x7f", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=user,r=abc,", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=user,r=abc,xy", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=user,r=abc,x=", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=user,r=abc,1=2", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=user,s=abc", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=user,r=abc\0def", 19, SASL_FAILURE, "malformed-request", NULL},
		{"n,,n=us\0er,r=abc", 16, SASL_FAILURE, "malformed-request", NULL},
		{"n,a=,n=user,r=abc", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,a=user,,n=user,r=abc", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,a=us=ZZer,n=user,r=abc", 0, SASL_FAILURE, "malformed-request", NULL},
		{"n,a=other,n=user,r=abc", 0, SASL_FAILURE, "invalid-authzid", NULL},
		{"n,a=user@example.com,n=user,r=abc", 0, SASL_FAILURE, "invalid-authzid", NULL},
		{"n,,n=us er,r=abc", 0, SASL_FAILURE, "not-authorized", NULL},
		{"n,,n=us@er,r=abc", 0, SASL_FAILURE, "not-authorized", NULL},
		{"n,,n=us/er,r=abc", 0, SASL_FAILURE, "not-authorized", NULL},
		{"n,,n=u\x01,r=abc", 0, SASL_FAILURE, "not-authorized", NULL},
		{"n,,n=\xc3\x28,r=abc", 0, SASL_FAILURE, "not-authorized", NULL},
		/* accepted */
		{"n,,n=user,r=abc", 0, SASL_NEED_CREDS, NULL, "user"},
		{"y,,n=user,r=abc", 0, SASL_NEED_CREDS, NULL, "user"},
		{"n,,n=UsEr,r=abc", 0, SASL_NEED_CREDS, NULL, "user"},
		{"n,a=user,n=user,r=abc", 0, SASL_NEED_CREDS, NULL, "user"},
		{"n,a=USER,n=user,r=abc", 0, SASL_NEED_CREDS, NULL, "user"},
		{"n,,n=us=2Cer,r=abc", 0, SASL_NEED_CREDS, NULL, "us,er"},
		{"n,,n=us=3Der,r=abc", 0, SASL_NEED_CREDS, NULL, "us=er"},
		{"n,a=us=2Cer,n=us=2Cer,r=abc", 0, SASL_NEED_CREDS, NULL, "us,er"},
		{"n,,n=\xc3\xa9t\xc3\xa9,r=abc", 0, SASL_NEED_CREDS, NULL, "\xc3\xa9t\xc3\xa9"},
		{"n,,n=user,r=abc,x=1,y=2", 0, SASL_NEED_CREDS, NULL, "user"},
		{"n,,n=user,r=!\"#$%&'()*+-./:;<=>?@[\\]^_`{|}~", 0, SASL_NEED_CREDS, NULL, "user"},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct first_case *tc = &cases[i];
		struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA256);
		size_t len = tc->len ? tc->len : strlen(tc->msg);
		enum sasl_result r =
			sasl_server_step(s, (const unsigned char *)tc->msg, len, NULL, NULL);

		if ((int)r != tc->result)
			fail_msg("case %zu \"%s\": result %d, want %d", i, tc->msg, r, tc->result);
		if (tc->cond)
			assert_string_equal(sasl_server_failure(s), tc->cond);
		if (tc->username)
			assert_string_equal(sasl_server_username(s), tc->username);
		sasl_server_free(s);
	}
}

static void test_scram_username_bounds(void **state)
{
	char *msg = malloc(2048);

	for (int n = 1022; n <= 1024; n++) {
		struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA1);
		memcpy(msg, "n,,n=", 5);
		memset(msg + 5, 'a', (size_t)n);
		strcpy(msg + 5 + n, ",r=abc");
		enum sasl_result r = step_str(s, msg, NULL);
		if (n <= 1023) {
			assert_int_equal(r, SASL_NEED_CREDS);
			assert_int_equal(strlen(sasl_server_username(s)), (size_t)n);
		} else {
			assert_int_equal(r, SASL_FAILURE);
			assert_string_equal(sasl_server_failure(s), "not-authorized");
		}
		sasl_server_free(s);
	}
	free(msg);
}

static void test_scram_message_bounds(void **state)
{
	size_t n = SASL_MAX_MESSAGE + 1;
	char *msg = malloc(n + 1);
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA256);

	/* A long but legal nonce pushed past the bound. */
	memcpy(msg, "n,,n=user,r=", 12);
	memset(msg + 12, 'x', n - 12);
	msg[n] = '\0';
	assert_int_equal(step_str(s, msg, NULL), SASL_FAILURE);
	assert_string_equal(sasl_server_failure(s), "malformed-request");
	sasl_server_free(s);

	/* Exactly at the bound it is accepted and answered. */
	msg[SASL_MAX_MESSAGE] = '\0';
	s = sasl_server_new(SASL_MECH_SCRAM_SHA256);
	assert_int_equal(step_str(s, msg, NULL), SASL_NEED_CREDS);
	const unsigned char *out;
	size_t outlen;
	assert_int_equal(sasl_server_set_creds(s, NULL, &out, &outlen), SASL_CONTINUE);
	assert_true(outlen > SASL_MAX_MESSAGE - 12);
	sasl_server_free(s);
	free(msg);
}

static void test_scram_empty_initial_response(void **state)
{
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA1);
	const unsigned char *out;
	size_t outlen = 99;

	/* No initial response: an empty challenge, then the real client-first. */
	assert_int_equal(sasl_server_step(s, NULL, 0, &out, &outlen), SASL_CONTINUE);
	assert_int_equal(outlen, 0);
	assert_int_equal(step_str(s, "n,,n=user,r=abc", NULL), SASL_NEED_CREDS);
	sasl_server_free(s);

	/* Twice empty is malformed. */
	s = sasl_server_new(SASL_MECH_SCRAM_SHA1);
	assert_int_equal(sasl_server_step(s, NULL, 0, &out, &outlen), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(s, NULL, 0, &out, &outlen), SASL_FAILURE);
	assert_string_equal(sasl_server_failure(s), "malformed-request");
	sasl_server_free(s);
}

static void test_scram_sequence_errors(void **state)
{
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA1);
	struct scram_creds creds;

	/* Credentials nobody asked for. */
	quick_creds(SCRAM_SHA1, "pencil", &creds);
	assert_int_equal(sasl_server_set_creds(s, &creds, NULL, NULL), SASL_FAILURE);
	assert_string_equal(sasl_server_failure(s), "temporary-auth-failure");
	sasl_server_free(s);

	/* A message while the server waits for the database. */
	s = sasl_server_new(SASL_MECH_SCRAM_SHA1);
	assert_int_equal(step_str(s, "n,,n=user,r=abc", NULL), SASL_NEED_CREDS);
	assert_int_equal(step_str(s, "n,,n=user,r=abc", NULL), SASL_FAILURE);
	assert_string_equal(sasl_server_failure(s), "malformed-request");
	sasl_server_free(s);

	/* Credentials for the wrong hash are a server-side problem. */
	s = sasl_server_new(SASL_MECH_SCRAM_SHA1);
	quick_creds(SCRAM_SHA256, "pencil", &creds);
	assert_int_equal(step_str(s, "n,,n=user,r=abc", NULL), SASL_NEED_CREDS);
	assert_int_equal(sasl_server_set_creds(s, &creds, NULL, NULL), SASL_FAILURE);
	assert_string_equal(sasl_server_failure(s), "temporary-auth-failure");
	sasl_server_free(s);
}

struct final_case {
	const char *msg;
	const char *cond;
};

static void test_scram_client_final_cases(void **state)
{
	static const struct final_case cases[] = {
		/* channel binding: "eSws" is base64("y,,"), ours was "n,," */
		{"c=eSws,r=" RFC5802_NONCE ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "not-authorized"},
		{"c=,r=" RFC5802_NONCE ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "not-authorized"},
		{"c=biw,r=" RFC5802_NONCE ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "incorrect-encoding"},
		{"c=bi ws,r=" RFC5802_NONCE ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		 "incorrect-encoding"},
		/* nonce */
		{"c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		 "not-authorized"},
		{"c=biws,r=" RFC5802_NONCE "x,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "not-authorized"},
		{"c=biws,r=,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "malformed-request"},
		/* proof */
		{"c=biws,r=" RFC5802_NONCE, "malformed-request"},
		{"c=biws,r=" RFC5802_NONCE ",", "malformed-request"},
		{"c=biws,r=" RFC5802_NONCE ",p=", "malformed-request"},
		{"c=biws,r=" RFC5802_NONCE ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts", "incorrect-encoding"},
		{"c=biws,r=" RFC5802_NONCE ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Tt=", "incorrect-encoding"},
		{"c=biws,r=" RFC5802_NONCE ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=,x=1",
		 "malformed-request"},
		{"c=biws,r=" RFC5802_NONCE ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=,", "malformed-request"},
		{"c=biws,r=" RFC5802_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		 "malformed-request"},
		{"c=biws,r=" RFC5802_NONCE ",p=AAAA", "malformed-request"},
		{"c=biws,r=" RFC5802_NONCE ",p=w0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "not-authorized"},
		/* an extension is legal but changes AuthMessage, so the proof no longer fits */
		{"c=biws,r=" RFC5802_NONCE ",x=1,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "not-authorized"},
		{"c=biws,r=" RFC5802_NONCE ",xx,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		 "malformed-request"},
		/* order and shape */
		{"r=" RFC5802_NONCE ",c=biws,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "malformed-request"},
		{"c=biws,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "malformed-request"},
		{"c=biws", "malformed-request"},
		{"", "malformed-request"},
		{" c=biws,r=" RFC5802_NONCE ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "malformed-request"},
		{"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", "malformed-request"},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sasl_server *s = rfc5802_after_first();
		enum sasl_result r = step_str(s, cases[i].msg, NULL);

		if (r != SASL_FAILURE || strcmp(sasl_server_failure(s), cases[i].cond) != 0)
			fail_msg("case %zu \"%s\": result %d cond %s, want %s", i, cases[i].msg, r,
				 sasl_server_failure(s) ? sasl_server_failure(s) : "-",
				 cases[i].cond);
		sasl_server_free(s);
	}

	/* NUL in the final message. */
	struct sasl_server *s = rfc5802_after_first();
	char msg[] = RFC5802_FINAL;
	msg[3] = '\0';
	assert_int_equal(sasl_server_step(s, (unsigned char *)msg, sizeof msg - 1, NULL, NULL),
			 SASL_FAILURE);
	assert_string_equal(sasl_server_failure(s), "malformed-request");
	sasl_server_free(s);
}

/* The y,, flag (client could do channel binding, thinks we cannot) is bound in c=. */
static void test_scram_gs2_y_and_authzid(void **state)
{
	struct scram_creds creds;
	const unsigned char *out;
	size_t outlen;
	const char *o;

	rfc_creds(SCRAM_SHA1, &creds);
	struct sasl_server *s = sasl_server_new(SASL_MECH_SCRAM_SHA1);
	assert_int_equal(sasl_server_set_nonce_for_test(s, "3rfcNHYJY1ZVvWVs7j"), 0);
	assert_int_equal(step_str(s, "y,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", NULL),
			 SASL_NEED_CREDS);
	assert_int_equal(sasl_server_set_creds(s, &creds, &out, &outlen), SASL_CONTINUE);
	/* c=biws ("n,,") does not match what was sent: refused before the proof. */
	assert_int_equal(step_str(s, RFC5802_FINAL, &o), SASL_FAILURE);
	assert_string_equal(sasl_server_failure(s), "not-authorized");
	sasl_server_free(s);
}

/* ---------- PLAIN ---------- */

static enum sasl_result plain_run(const char *msg, size_t len, const struct scram_creds *creds,
				  int known, struct sasl_server **sp)
{
	struct sasl_server *s = sasl_server_new(SASL_MECH_PLAIN);
	enum sasl_result r = sasl_server_step(s, (const unsigned char *)msg, len, NULL, NULL);

	assert_int_equal(sasl_server_hash(s), SCRAM_SHA256);
	if (r == SASL_NEED_CREDS)
		r = sasl_server_set_creds(s, known ? creds : NULL, NULL, NULL);
	*sp = s;
	return r;
}

#define PLAIN(lit) lit, sizeof lit - 1

static void test_plain(void **state)
{
	struct scram_creds creds;
	struct sasl_server *s;

	quick_creds(SCRAM_SHA256, "pencil", &creds);

	assert_int_equal(plain_run(PLAIN("\0user\0pencil"), &creds, 1, &s), SASL_SUCCESS);
	assert_string_equal(sasl_server_authenticated(s), "user");
	assert_int_equal(step_str(s, "x", NULL), SASL_FAILURE);
	assert_string_equal(sasl_server_failure(s), "malformed-request");
	sasl_server_free(s);

	assert_int_equal(plain_run(PLAIN("\0USER\0pencil"), &creds, 1, &s), SASL_SUCCESS);
	assert_string_equal(sasl_server_authenticated(s), "user");
	sasl_server_free(s);

	assert_int_equal(plain_run(PLAIN("user\0user\0pencil"), &creds, 1, &s), SASL_SUCCESS);
	sasl_server_free(s);

	static const struct {
		const char *msg;
		size_t len;
		int known;
		const char *cond;
	} bad[] = {
		{PLAIN("\0user\0pencil2"), 1, "not-authorized"},
		{PLAIN("\0user\0Pencil"), 1, "not-authorized"},
		{PLAIN("\0user\0pencil"), 0, "not-authorized"},
		{PLAIN("admin\0user\0pencil"), 1, "invalid-authzid"},
		{PLAIN("user@example.com\0user\0pencil"), 1, "invalid-authzid"},
		{PLAIN("userpencil"), 1, "malformed-request"},
		{PLAIN("\0userpencil"), 1, "malformed-request"},
		{PLAIN("user\0pencil"), 1, "malformed-request"},
		{PLAIN("\0user\0"), 1, "malformed-request"},
		{PLAIN("\0\0pencil"), 1, "malformed-request"},
		{PLAIN("\0user\0pen\0cil"), 1, "malformed-request"},
		{PLAIN("\0\0"), 1, "malformed-request"},
		{PLAIN("\0us er\0pencil"), 1, "not-authorized"},
		{PLAIN("\0us@er\0pencil"), 1, "not-authorized"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		enum sasl_result r = plain_run(bad[i].msg, bad[i].len, &creds, bad[i].known, &s);
		if (r != SASL_FAILURE || strcmp(sasl_server_failure(s), bad[i].cond) != 0)
			fail_msg("plain case %zu: result %d cond %s, want %s", i, r,
				 sasl_server_failure(s) ? sasl_server_failure(s) : "-",
				 bad[i].cond);
		assert_null(sasl_server_authenticated(s));
		sasl_server_free(s);
	}

	/* Empty initial response, then the credentials in a response. */
	s = sasl_server_new(SASL_MECH_PLAIN);
	assert_int_equal(sasl_server_step(s, NULL, 0, NULL, NULL), SASL_CONTINUE);
	assert_int_equal(sasl_server_step(s, (const unsigned char *)"\0user\0pencil", 12, NULL,
					  NULL),
			 SASL_NEED_CREDS);
	assert_int_equal(sasl_server_set_creds(s, &creds, NULL, NULL), SASL_SUCCESS);
	sasl_server_free(s);

	/* SHA-1 credentials are not what PLAIN asked for. */
	quick_creds(SCRAM_SHA1, "pencil", &creds);
	assert_int_equal(plain_run(PLAIN("\0user\0pencil"), &creds, 1, &s), SASL_FAILURE);
	assert_string_equal(sasl_server_failure(s), "temporary-auth-failure");
	sasl_server_free(s);
}

/* ---------- SCRAM client ---------- */

static void test_client_rfc5802(void **state)
{
	struct scram_client *c = scram_client_new(SCRAM_SHA1, "user", "pencil", NULL);
	struct scram_salted salted;
	const char *m;
	size_t ml;
	static const char sf[] = "r=" RFC5802_NONCE ",s=QSXCR+Q6sek8bf92,i=4096";
	static const char sfinal[] = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

	assert_int_equal(scram_client_set_nonce_for_test(c, "fyko+d2lbbFgONRv9qkxdawL"), 0);
	assert_int_equal(scram_client_first(c, &m, &ml), 0);
	assert_string_equal(m, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
	assert_int_equal(ml, strlen(m));
	assert_int_equal(scram_client_final(c, sf, strlen(sf), 0, &m, &ml, &salted), 0);
	assert_int_equal(ml, strlen(RFC5802_FINAL));
	assert_memory_equal(m, RFC5802_FINAL, ml);
	assert_int_equal(scram_client_verify(c, sfinal, strlen(sfinal)), 0);
	scram_client_free(c);

	/* From the cached SaltedPassword, without the password. */
	assert_int_equal(salted.iterations, 4096);
	assert_int_equal(salted.salt_len, 12);
	c = scram_client_new(SCRAM_SHA1, "user", NULL, &salted);
	assert_int_equal(scram_client_set_nonce_for_test(c, "fyko+d2lbbFgONRv9qkxdawL"), 0);
	assert_int_equal(scram_client_first(c, &m, &ml), 0);
	assert_int_equal(scram_client_final(c, sf, strlen(sf), 0, &m, &ml, NULL), 0);
	assert_memory_equal(m, RFC5802_FINAL, ml);
	assert_int_equal(scram_client_verify(c, sfinal, strlen(sfinal)), 0);
	scram_client_free(c);

	/* Cache for another iteration count and no password: cannot continue. */
	c = scram_client_new(SCRAM_SHA1, "user", NULL, &salted);
	assert_int_equal(scram_client_set_nonce_for_test(c, "fyko+d2lbbFgONRv9qkxdawL"), 0);
	assert_int_equal(scram_client_first(c, &m, &ml), 0);
	static const char sf2[] = "r=" RFC5802_NONCE ",s=QSXCR+Q6sek8bf92,i=4097";
	assert_int_equal(scram_client_final(c, sf2, strlen(sf2), 0, &m, &ml, NULL), -1);
	scram_client_free(c);

	assert_null(scram_client_new(SCRAM_SHA1, "user", NULL, NULL));
	assert_null(scram_client_new(SCRAM_SHA256, "user", NULL, &salted)); /* hash mismatch */
	assert_null(scram_client_new(SCRAM_SHA1, "", "x", NULL));
}

static void test_client_rfc7677(void **state)
{
	struct scram_client *c = scram_client_new(SCRAM_SHA256, "user", "pencil", NULL);
	const char *m;
	size_t ml;
	static const char sf[] = "r=" RFC7677_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
	static const char sfinal[] = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

	assert_int_equal(scram_client_set_nonce_for_test(c, "rOprNGfwEbeRWgbNEkqO"), 0);
	assert_int_equal(scram_client_first(c, &m, &ml), 0);
	assert_int_equal(scram_client_final(c, sf, strlen(sf), 0, &m, &ml, NULL), 0);
	assert_memory_equal(m, RFC7677_FINAL, ml);
	assert_int_equal(ml, strlen(RFC7677_FINAL));
	assert_int_equal(scram_client_verify(c, sfinal, strlen(sfinal)), 0);
	scram_client_free(c);
}

static void test_client_refuses(void **state)
{
	static const char *bad_first[] = {
		"r=OTHERNONCE3rfc,s=QSXCR+Q6sek8bf92,i=4096",   /* not our nonce */
		"r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096", /* not extended */
		"r=" RFC5802_NONCE ",s=QSXCR+Q6sek8bf9,i=4096", /* bad base64 */
		"r=" RFC5802_NONCE ",s=,i=4096",
		"r=" RFC5802_NONCE ",s=QSXCR+Q6sek8bf92,i=0",
		"r=" RFC5802_NONCE ",s=QSXCR+Q6sek8bf92,i=04096",
		"r=" RFC5802_NONCE ",s=QSXCR+Q6sek8bf92,i=",
		"r=" RFC5802_NONCE ",s=QSXCR+Q6sek8bf92,i=4096x",
		"r=" RFC5802_NONCE ",s=QSXCR+Q6sek8bf92,i=99999999999999999999",
		"r=" RFC5802_NONCE ",s=QSXCR+Q6sek8bf92",
		"m=x,r=" RFC5802_NONCE ",s=QSXCR+Q6sek8bf92,i=4096",
		"e=other-error",
		"",
	};
	const char *m;
	size_t ml;

	for (size_t i = 0; i < sizeof bad_first / sizeof bad_first[0]; i++) {
		struct scram_client *c = scram_client_new(SCRAM_SHA1, "user", "pencil", NULL);
		assert_int_equal(scram_client_set_nonce_for_test(c, "fyko+d2lbbFgONRv9qkxdawL"), 0);
		assert_int_equal(scram_client_first(c, &m, &ml), 0);
		if (scram_client_final(c, bad_first[i], strlen(bad_first[i]), 0, &m, &ml, NULL) !=
		    -1)
			fail_msg("client accepted server-first %zu: %s", i, bad_first[i]);
		scram_client_free(c);
	}
	/* Iteration cap chosen by the caller. */
	struct scram_client *c = scram_client_new(SCRAM_SHA1, "user", "pencil", NULL);
	static const char sf[] = "r=" RFC5802_NONCE ",s=QSXCR+Q6sek8bf92,i=4096";
	assert_int_equal(scram_client_set_nonce_for_test(c, "fyko+d2lbbFgONRv9qkxdawL"), 0);
	assert_int_equal(scram_client_first(c, &m, &ml), 0);
	assert_int_equal(scram_client_final(c, sf, strlen(sf), 4095, &m, &ml, NULL), -1);
	scram_client_free(c);

	static const char *bad_final[] = {
		"v=rmF9pqV8S7suAoZWja4dJRkFsKQ", "v=smF9pqV8S7suAoZWja4dJRkFsKQ=",
		"e=invalid-proof", "", "v=", "rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	};
	for (size_t i = 0; i < sizeof bad_final / sizeof bad_final[0]; i++) {
		c = scram_client_new(SCRAM_SHA1, "user", "pencil", NULL);
		assert_int_equal(scram_client_set_nonce_for_test(c, "fyko+d2lbbFgONRv9qkxdawL"), 0);
		assert_int_equal(scram_client_first(c, &m, &ml), 0);
		assert_int_equal(scram_client_final(c, sf, strlen(sf), 0, &m, &ml, NULL), 0);
		if (scram_client_verify(c, bad_final[i], strlen(bad_final[i])) != -1)
			fail_msg("client accepted server-final %s", bad_final[i]);
		scram_client_free(c);
	}
	/* Out of order calls. */
	c = scram_client_new(SCRAM_SHA1, "user", "pencil", NULL);
	assert_int_equal(scram_client_verify(c, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=", 30), -1);
	assert_int_equal(scram_client_final(c, sf, strlen(sf), 0, &m, &ml, NULL), -1);
	scram_client_free(c);
}

/* Client and server together, with names that need saslname escaping. */
static void test_client_server_roundtrip(void **state)
{
	static const char *names[] = {"alice", "Bob", "a,b=c", "\xc3\xa9l\xc3\xa8ve"};

	for (int h = 0; h < 2; h++) {
		enum scram_hash hash = h ? SCRAM_SHA256 : SCRAM_SHA1;
		enum sasl_mech mech = h ? SASL_MECH_SCRAM_SHA256 : SASL_MECH_SCRAM_SHA1;
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
			struct scram_creds creds;
			struct scram_salted salted;
			const char *m, *o;
			size_t ml, ol;

			quick_creds(hash, "p\xc3\xa4ss,=word", &creds);
			struct scram_client *c =
				scram_client_new(hash, names[i], "p\xc3\xa4ss,=word", NULL);
			struct sasl_server *s = sasl_server_new(mech);
			assert_int_equal(scram_client_first(c, &m, &ml), 0);
			assert_int_equal(
				sasl_server_step(s, (const unsigned char *)m, ml, NULL, NULL),
				SASL_NEED_CREDS);
			assert_int_equal(sasl_server_set_creds(s, &creds,
							       (const unsigned char **)&o, &ol),
					 SASL_CONTINUE);
			assert_int_equal(scram_client_final(c, o, ol, 0, &m, &ml, &salted), 0);
			assert_int_equal(sasl_server_step(s, (const unsigned char *)m, ml,
							  (const unsigned char **)&o, &ol),
					 SASL_SUCCESS);
			assert_int_equal(scram_client_verify(c, o, ol), 0);
			assert_non_null(sasl_server_authenticated(s));
			sasl_server_free(s);
			scram_client_free(c);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64_rfc4648),
		cmocka_unit_test(test_base64_malformed),
		cmocka_unit_test(test_scram_names),
		cmocka_unit_test(test_scram_salted_rfc5802),
		cmocka_unit_test(test_scram_creds_new),
		cmocka_unit_test(test_username_normalize),
		cmocka_unit_test(test_scram_rfc5802),
		cmocka_unit_test(test_scram_rfc7677),
		cmocka_unit_test(test_scram_test_nonce_checks),
		cmocka_unit_test(test_scram_wrong_password),
		cmocka_unit_test(test_scram_unknown_user),
		cmocka_unit_test(test_scram_default_iterations),
		cmocka_unit_test(test_scram_client_first_cases),
		cmocka_unit_test(test_scram_username_bounds),
		cmocka_unit_test(test_scram_message_bounds),
		cmocka_unit_test(test_scram_empty_initial_response),
		cmocka_unit_test(test_scram_sequence_errors),
		cmocka_unit_test(test_scram_client_final_cases),
		cmocka_unit_test(test_scram_gs2_y_and_authzid),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_client_rfc5802),
		cmocka_unit_test(test_client_rfc7677),
		cmocka_unit_test(test_client_refuses),
		cmocka_unit_test(test_client_server_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
