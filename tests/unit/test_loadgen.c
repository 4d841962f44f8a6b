/* Unit tests of the load generator's certificate key shortcut (contrib/loadgen/fastcert.c):
 * EC keys decoded through it verify signatures, compare, encode and print like OpenSSL's,
 * and it is torn down without leaks.  (Its SCRAM client is lib/scram_client, tested in
 * test_sasl.c.) */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "contrib/loadgen/fastcert.h"

/* ---------- fastcert ---------- */

static EVP_PKEY *ec_key(const char *encoding)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	assert_non_null(k);
	if (encoding)
		assert_int_equal(EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_ENCODING,
								 encoding), 1);
	return k;
}

/* A self-signed certificate for k, DER. */
static int cert_der(EVP_PKEY *k, unsigned char **der)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	assert_non_null(x);
	assert_non_null(n);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	assert_int_equal(X509_set_pubkey(x, k), 1);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	*der = NULL;
	int len = i2d_X509(x, der);
	assert_true(len > 0);
	X509_NAME_free(n);
	X509_free(x);
	return len;
}

static X509 *decode(const unsigned char *der, int len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, len);
	assert_non_null(x);
	return x;
}

static int verifies(EVP_PKEY *pub, const unsigned char *sig, size_t siglen)
{
	static const unsigned char msg[] = "the server's CertificateVerify";
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, pub), 1);
	int r = EVP_DigestVerify(m, sig, siglen, msg, sizeof msg);
	EVP_MD_CTX_free(m);
	return r;
}

static size_t sign(EVP_PKEY *k, unsigned char *sig, size_t cap)
{
	static const unsigned char msg[] = "the server's CertificateVerify";
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	size_t len = cap;
	assert_int_equal(EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestSign(m, sig, &len, msg, sizeof msg), 1);
	EVP_MD_CTX_free(m);
	return len;
}

/* i2d_PUBKEY of a, compared with b's. */
static void same_spki(EVP_PKEY *a, EVP_PKEY *b)
{
	unsigned char *da = NULL, *db = NULL;
	int la = i2d_PUBKEY(a, &da), lb = i2d_PUBKEY(b, &db);
	assert_true(la > 0);
	assert_int_equal(la, lb);
	assert_memory_equal(da, db, (size_t)la);
	OPENSSL_free(da);
	OPENSSL_free(db);
}

/* The certificates and the signature are made before fastcert is on: it serves a client's
 * decoding and verification (with it on, OpenSSL signs with EC keys through the legacy
 * code, which refuses the parameters X509_sign passes). */
static void check_key(const char *encoding)
{
	EVP_PKEY *k = ec_key(encoding), *other = ec_key(NULL);
	unsigned char *der, *der2, sig[128];
	int len = cert_der(k, &der), len2 = cert_der(other, &der2);
	size_t siglen = sign(k, sig, sizeof sig);

	assert_int_equal(fastcert_enable(), 0);
	X509 *x1 = decode(der, len), *x2 = decode(der, len), *x3 = decode(der, len);
	EVP_PKEY *p1 = X509_get0_pubkey(x1), *p2 = X509_get0_pubkey(x2);
	assert_non_null(p1);
	/* decoded by the load generator's method, not OpenSSL's */
	const char *info = NULL;
	EVP_PKEY_asn1_get0_info(NULL, NULL, NULL, &info, NULL, EVP_PKEY_get0_asn1(p1));
	assert_non_null(info);
	assert_non_null(strstr(info, "duet-loadgen"));
	assert_int_equal(EVP_PKEY_get_bits(p1), 256);
	assert_int_equal(EVP_PKEY_get_size(p1), EVP_PKEY_get_size(k));
	assert_int_equal(verifies(p1, sig, siglen), 1);
	sig[siglen / 2] ^= 1;
	assert_int_not_equal(verifies(p1, sig, siglen), 1);
	assert_int_equal(EVP_PKEY_eq(p1, p2), 1); /* two decoded keys: our pub_cmp */
	same_spki(p1, k);                         /* our pub_encode, as OpenSSL's */
	BIO *b = BIO_new(BIO_s_mem());
	assert_int_equal(EVP_PKEY_print_public(b, p1, 0, NULL), 1);
	char *text;
	long tl = BIO_get_mem_data(b, &text);
	assert_non_null(memmem(text, (size_t)tl, "Public-Key: (256 bit)", 21));
	BIO_free(b);

	/* another key in the same kind of certificate: different, and its own signature */
	X509 *y = decode(der2, len2);
	assert_int_equal(EVP_PKEY_eq(p1, X509_get0_pubkey(y)), 0);
	sig[siglen / 2] ^= 1;
	assert_int_not_equal(verifies(X509_get0_pubkey(y), sig, siglen), 1);

	X509_free(x1);
	X509_free(x2);
	X509_free(x3);
	X509_free(y);
	fastcert_disable();
	/* off again: OpenSSL's own decoding */
	X509 *z = decode(der, len);
	info = NULL;
	EVP_PKEY *pz = X509_get0_pubkey(z);
	if (EVP_PKEY_get0_asn1(pz))
		EVP_PKEY_asn1_get0_info(NULL, NULL, NULL, &info, NULL, EVP_PKEY_get0_asn1(pz));
	assert_true(info == NULL || strstr(info, "duet-loadgen") == NULL);
	X509_free(z);
	OPENSSL_free(der);
	OPENSSL_free(der2);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void test_fastcert_named_curve(void **state)
{
	(void)state;
	check_key(NULL);
}

static void test_fastcert_explicit_parameters(void **state)
{
	(void)state;
	check_key("explicit");
}

static void test_fastcert_twice(void **state)
{
	(void)state;
	fastcert_disable(); /* harmless when off */
	assert_int_equal(fastcert_enable(), 0);
	assert_int_equal(fastcert_enable(), -1); /* once at a time */
	fastcert_disable();
	assert_int_equal(fastcert_enable(), 0);
	fastcert_disable();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fastcert_named_curve),
		cmocka_unit_test(test_fastcert_explicit_parameters),
		cmocka_unit_test(test_fastcert_twice),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	return r;
}
