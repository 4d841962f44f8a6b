/* OpenSSL 3.0 decodes a certificate's public key through its provider decoders, and
 * setting up a decoder context for every certificate costs more than the rest of the
 * client's side of a TLS 1.3 handshake: d2i_X509 was 29% of the load generator's
 * instructions per login (callgrind, ECDSA P-256 server certificate).  An ENGINE that
 * claims the EC key method makes OpenSSL take its legacy, direct decoder for EC keys and
 * verify the server's signature with the legacy EC code (the same P-256 arithmetic).
 * The handshake is unchanged on the wire; only the load generator does this, and it does
 * it for every server it measures. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "contrib/loadgen/fastcert.h"

#include <openssl/engine.h>
#include <openssl/evp.h>

static EVP_PKEY_METHOD *ec_meth;

static int ec_pkey_meths(ENGINE *e, EVP_PKEY_METHOD **pmeth, const int **nids, int nid)
{
	static const int ids[] = {EVP_PKEY_EC};
	if (!pmeth) {
		*nids = ids;
		return 1;
	}
	*pmeth = nid == EVP_PKEY_EC ? ec_meth : NULL;
	return *pmeth != NULL;
}

int fastcert_enable(void)
{
	const EVP_PKEY_METHOD *builtin = EVP_PKEY_meth_find(EVP_PKEY_EC);
	if (!builtin || !(ec_meth = EVP_PKEY_meth_new(EVP_PKEY_EC, 0)))
		return -1;
	EVP_PKEY_meth_copy(ec_meth, builtin);
	ENGINE *e = ENGINE_new();
	if (!e)
		return -1;
	int ok = ENGINE_set_id(e, "duet-loadgen-ec") &&
		 ENGINE_set_name(e, "duet-loadgen: legacy EC key decoding") &&
		 ENGINE_set_pkey_meths(e, ec_pkey_meths) && ENGINE_register_pkey_meths(e);
	if (!ok) {
		ENGINE_free(e);
		return -1;
	}
	return 0; /* the registration points to e without a reference: it lives on */
}
