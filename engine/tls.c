/* The server's TLS context: TLS 1.2+, the configured certificate chain and key, and
 * buffers released while a connection is idle (memory per idle connection matters).
 * Connections drive OpenSSL on their sockets directly (conn.c): read-ahead, and writes
 * that may end part way through a buffer which may move before the retry. */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "engine/engine.h"
#include "lib/log.h"

SSL_CTX *tls_context_new(const char *cert, const char *key);
SSL_CTX *tls_context_new(const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* NO_AUTO_CHAIN: the chain is exactly what the certificate file holds.  Without it,
	 * a file with no intermediates has OpenSSL try to build a chain from this context's
	 * (empty) certificate store on every handshake. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_NO_AUTO_CHAIN);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* No session tickets or cache: clients here rarely resume, and each costs memory. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	/* ChaCha20-Poly1305 first (server's choice): its per-connection cipher state is a
	 * fraction of AES-GCM's, and presence traffic is small messages, not bulk data. */
	SSL_CTX_set_ciphersuites(ctx, "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:"
				      "TLS_AES_256_GCM_SHA384");
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		log_warnx("tls: cannot load %s / %s: %s", cert, key,
			  ERR_reason_error_string(ERR_get_error()));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}
