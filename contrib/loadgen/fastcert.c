/* OpenSSL 3.0 decodes a certificate's public key through its provider decoders, and
 * setting up a decoder context for every certificate costs more than the rest of the
 * client's side of a TLS 1.3 handshake: d2i_X509 was 29% of the load generator's
 * instructions per login (callgrind, ECDSA P-256 server certificate).  An ENGINE that
 * claims the EC key method makes OpenSSL take its legacy, direct decoder for EC keys and
 * verify the server's signature with the legacy EC code (the same P-256 arithmetic).
 *
 * The legacy decoder still builds the curve (EC_GROUP_new_by_curve_name: Montgomery
 * constants of the field and the order, about 0.14 M instructions) for every certificate,
 * to copy it into the key and free it.  The ENGINE therefore also claims the EC ASN.1
 * method: a copy of OpenSSL's whose public-key functions are ours, decoding a named curve
 * from a group built once per curve (EC_KEY_set_group copies it: a few k instructions).
 * The handshake is unchanged on the wire; only the load generator does this, and it does
 * it for every server it measures.  Single-threaded, like the load generator. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "contrib/loadgen/fastcert.h"

#include <openssl/ec.h>
#include <openssl/engine.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

static ENGINE *engine;
/* Owned by the engine once it is set up: ENGINE_free frees them through the callbacks. */
static EVP_PKEY_METHOD *ec_meth;
static EVP_PKEY_ASN1_METHOD *ec_ameth;

/* The named curves seen so far, each built once.  A server has one certificate: more
 * curves than this are built per certificate, as before. */
#define CACHED_CURVES 4
static struct {
	int nid;
	EC_GROUP *group;
} curves[CACHED_CURVES];

static const int ec_ids[] = {EVP_PKEY_EC};

static int ec_pkey_meths(ENGINE *e, EVP_PKEY_METHOD **pmeth, const int **nids, int nid)
{
	(void)e;
	if (!pmeth) {
		*nids = ec_ids;
		return 1;
	}
	*pmeth = nid == EVP_PKEY_EC ? ec_meth : NULL;
	return *pmeth != NULL;
}

static int ec_asn1_meths(ENGINE *e, EVP_PKEY_ASN1_METHOD **ameth, const int **nids, int nid)
{
	(void)e;
	if (!ameth) {
		*nids = ec_ids;
		return 1;
	}
	*ameth = nid == EVP_PKEY_EC ? ec_ameth : NULL;
	return *ameth != NULL;
}

/* The group of a named curve: the cached one, or a new one in *made (caller frees) when
 * the cache is full.  NULL for an unknown curve. */
static const EC_GROUP *curve_group(int nid, EC_GROUP **made)
{
	int i;
	*made = NULL;
	for (i = 0; i < CACHED_CURVES && curves[i].group; i++)
		if (curves[i].nid == nid)
			return curves[i].group;
	EC_GROUP *g = EC_GROUP_new_by_curve_name(nid);
	if (!g)
		return NULL;
	EC_GROUP_set_asn1_flag(g, OPENSSL_EC_NAMED_CURVE);
	if (i == CACHED_CURVES) {
		*made = g;
		return g;
	}
	curves[i].nid = nid;
	curves[i].group = g;
	return g;
}

/* SubjectPublicKeyInfo -> EC key: the curve as an OID (cached group) or as explicit
 * parameters (RFC 5480 forbids them in certificates, but OpenSSL accepts them: so do we),
 * then the point, which o2i_ECPublicKey checks is on the curve. */
static int fast_pub_decode(EVP_PKEY *pk, const X509_PUBKEY *pub)
{
	const unsigned char *p;
	int len, ptype;
	const void *pval;
	X509_ALGOR *alg;
	EC_KEY *key = NULL;
	EC_GROUP *made = NULL;

	if (!X509_PUBKEY_get0_param(NULL, &p, &len, &alg, pub))
		return 0;
	X509_ALGOR_get0(NULL, &ptype, &pval, alg);
	if (ptype == V_ASN1_OBJECT) {
		const EC_GROUP *g = curve_group(OBJ_obj2nid(pval), &made);
		if (!g || !(key = EC_KEY_new()) || !EC_KEY_set_group(key, g))
			goto fail;
	} else if (ptype == V_ASN1_SEQUENCE) {
		const ASN1_STRING *s = pval;
		const unsigned char *pm = ASN1_STRING_get0_data(s);
		if (!(key = d2i_ECParameters(NULL, &pm, ASN1_STRING_length(s))))
			goto fail;
	} else {
		goto fail;
	}
	if (!o2i_ECPublicKey(&key, &p, len) || !EVP_PKEY_assign_EC_KEY(pk, key))
		goto fail;
	EC_GROUP_free(made);
	return 1;
fail:
	EC_KEY_free(key);
	EC_GROUP_free(made);
	return 0;
}

/* EC key -> SubjectPublicKeyInfo (not used by a handshake; OpenSSL's method set must be
 * complete): named curves as their OID, others as explicit parameters. */
static int fast_pub_encode(X509_PUBKEY *pub, const EVP_PKEY *pk)
{
	const EC_KEY *key = EVP_PKEY_get0_EC_KEY(pk);
	const EC_GROUP *g = key ? EC_KEY_get0_group(key) : NULL;
	unsigned char *point = NULL;
	ASN1_STRING *params = NULL;
	void *pval;
	int ptype, nid;

	if (!g)
		return 0;
	nid = EC_GROUP_get_curve_name(g);
	if (EC_GROUP_get_asn1_flag(g) && nid != NID_undef) {
		pval = OBJ_nid2obj(nid);
		ptype = V_ASN1_OBJECT;
	} else {
		unsigned char *der = NULL;
		int dlen = i2d_ECParameters(key, &der);
		if (dlen <= 0 || !(params = ASN1_STRING_new())) {
			OPENSSL_free(der);
			return 0;
		}
		ASN1_STRING_set0(params, der, dlen);
		pval = params;
		ptype = V_ASN1_SEQUENCE;
	}
	int plen = i2o_ECPublicKey(key, &point); /* allocates point */
	if (plen > 0 && pval &&
	    X509_PUBKEY_set0_param(pub, OBJ_nid2obj(EVP_PKEY_EC), ptype, pval, point, plen))
		return 1;
	OPENSSL_free(point);
	ASN1_STRING_free(params);
	return 0;
}

/* 1 equal, 0 different, -2 not comparable (OpenSSL's convention for pub_cmp). */
static int fast_pub_cmp(const EVP_PKEY *a, const EVP_PKEY *b)
{
	const EC_KEY *ka = EVP_PKEY_get0_EC_KEY(a), *kb = EVP_PKEY_get0_EC_KEY(b);
	const EC_GROUP *g = kb ? EC_KEY_get0_group(kb) : NULL;
	const EC_POINT *pa = ka ? EC_KEY_get0_public_key(ka) : NULL;
	const EC_POINT *pb = kb ? EC_KEY_get0_public_key(kb) : NULL;
	if (!g || !pa || !pb)
		return -2;
	int r = EC_POINT_cmp(g, pa, pb, NULL);
	return r == 0 ? 1 : r == 1 ? 0 : -2;
}

static int fast_pub_print(BIO *out, const EVP_PKEY *pk, int indent, ASN1_PCTX *pctx)
{
	const EC_KEY *key = EVP_PKEY_get0_EC_KEY(pk);
	const EC_GROUP *g = key ? EC_KEY_get0_group(key) : NULL;
	const EC_POINT *pt = key ? EC_KEY_get0_public_key(key) : NULL;
	char *hex = g && pt ? EC_POINT_point2hex(g, pt, POINT_CONVERSION_UNCOMPRESSED, NULL)
			    : NULL;
	int ok = hex && BIO_indent(out, indent, 128) &&
		 BIO_printf(out, "Public-Key: (%d bit)\n", EC_GROUP_order_bits(g)) > 0 &&
		 BIO_indent(out, indent, 128) && BIO_printf(out, "pub: %s\n", hex) > 0 &&
		 EVP_PKEY_print_params(out, pk, indent, pctx) > 0;
	OPENSSL_free(hex);
	return ok;
}

static int fast_pkey_size(const EVP_PKEY *pk)
{
	const EC_KEY *key = EVP_PKEY_get0_EC_KEY(pk);
	return key ? ECDSA_size(key) : 0;
}

static int fast_pkey_bits(const EVP_PKEY *pk)
{
	const EC_KEY *key = EVP_PKEY_get0_EC_KEY(pk);
	const EC_GROUP *g = key ? EC_KEY_get0_group(key) : NULL;
	return g ? EC_GROUP_order_bits(g) : 0;
}

int fastcert_enable(void)
{
	const EVP_PKEY_METHOD *builtin = EVP_PKEY_meth_find(EVP_PKEY_EC);
	const EVP_PKEY_ASN1_METHOD *builtin_asn1 = EVP_PKEY_asn1_find(NULL, EVP_PKEY_EC);
	if (engine || !builtin || !builtin_asn1)
		return -1;
	ec_meth = EVP_PKEY_meth_new(EVP_PKEY_EC, 0);
	ec_ameth = EVP_PKEY_asn1_new(EVP_PKEY_EC, 0, "EC", "duet-loadgen EC, cached curves");
	engine = ENGINE_new();
	if (!ec_meth || !ec_ameth || !engine) {
		EVP_PKEY_meth_free(ec_meth);
		EVP_PKEY_asn1_free(ec_ameth);
		ENGINE_free(engine);
		ec_meth = NULL;
		ec_ameth = NULL;
		engine = NULL;
		return -1;
	}
	EVP_PKEY_meth_copy(ec_meth, builtin);
	EVP_PKEY_asn1_copy(ec_ameth, builtin_asn1);
	EVP_PKEY_asn1_set_public(ec_ameth, fast_pub_decode, fast_pub_encode, fast_pub_cmp,
				 fast_pub_print, fast_pkey_size, fast_pkey_bits);
	/* From here the engine owns both methods. */
	int ok = ENGINE_set_pkey_meths(engine, ec_pkey_meths) &&
		 ENGINE_set_pkey_asn1_meths(engine, ec_asn1_meths) &&
		 ENGINE_set_id(engine, "duet-loadgen-ec") &&
		 ENGINE_set_name(engine, "duet-loadgen: legacy EC key decoding") &&
		 ENGINE_register_pkey_meths(engine) && ENGINE_register_pkey_asn1_meths(engine);
	if (!ok) {
		fastcert_disable();
		return -1;
	}
	return 0;
}

void fastcert_disable(void)
{
	if (engine) {
		/* The registrations hold no structural reference, only a cached functional
		 * one, which unregistering releases: ours is then the last and frees the
		 * engine with both methods. */
		ENGINE_unregister_pkey_meths(engine);
		ENGINE_unregister_pkey_asn1_meths(engine);
		ENGINE_free(engine);
		engine = NULL;
		ec_meth = NULL;
		ec_ameth = NULL;
	}
	for (int i = 0; i < CACHED_CURVES; i++) {
		EC_GROUP_free(curves[i].group);
		curves[i].group = NULL;
	}
}
