/* The peer link's plumbing that does not depend on link state: parsing and resolving
 * "host:port" addresses, and the TLS context and per-connection SSL objects with the
 * group-CA and peer-name checks (docs/peer-protocol.md §1). */
#include "heartbeat/peer_tls.h"

#include <stdio.h>
#include <string.h>

#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "lib/log.h"

/* "host:port" or "[v6]:port" -> sockaddr (first result of getaddrinfo). */
int peer_address_resolve(const char *spec, struct sockaddr_storage *sa, int *salen)
{
	char host[256], port[16];
	const char *colon, *hs = spec;
	size_t hl;
	struct evutil_addrinfo hints, *res = NULL;
	int r;

	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');
		if (!end || end[1] != ':')
			return -1;
		hs = spec + 1;
		hl = (size_t)(end - hs);
		colon = end + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon)
			return -1;
		hl = (size_t)(colon - spec);
	}
	if (hl == 0 || hl >= sizeof host || strlen(colon + 1) == 0 ||
	    strlen(colon + 1) >= sizeof port)
		return -1;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	snprintf(port, sizeof port, "%s", colon + 1);
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = EVUTIL_AI_NUMERICSERV;
	r = evutil_getaddrinfo(host, port, &hints, &res);
	if (r != 0 || !res)
		return -1;
	if (res->ai_addrlen > sizeof *sa) {
		evutil_freeaddrinfo(res);
		return -1;
	}
	memcpy(sa, res->ai_addr, res->ai_addrlen);
	*salen = (int)res->ai_addrlen;
	evutil_freeaddrinfo(res);
	return 0;
}

void peer_tls_log_errors(const char *what)
{
	unsigned long e;
	char buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof buf);
		log_warnx("peer: %s: %s", what, buf);
	}
}

SSL_CTX *peer_tls_context_new(const char *ca, const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	STACK_OF(X509_NAME) *cas;

	if (!ctx) {
		peer_tls_log_errors("SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		log_warnx("peer: cannot load certificate %s / key %s", cert, key);
		peer_tls_log_errors("certificate");
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* The group CA is the only trust anchor: no system store. */
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		log_warnx("peer: cannot load CA %s", ca);
		peer_tls_log_errors("CA");
		SSL_CTX_free(ctx);
		return NULL;
	}
	cas = SSL_load_client_CA_file(ca);
	if (cas)
		SSL_CTX_set_client_CA_list(ctx, cas);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, 4);
	return ctx;
}

/* An SSL for one connection, checking in both roles that the peer's certificate names the
 * expected peer (X509_check_host: DNS SANs, or the CN when there are none). */
SSL *peer_tls_new(SSL_CTX *ctx, const char *peer_name, bool outgoing)
{
	SSL *ssl = SSL_new(ctx);

	if (!ssl) {
		peer_tls_log_errors("SSL_new");
		return NULL;
	}
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set1_host(ssl, peer_name) != 1 ||
	    (outgoing && SSL_set_tlsext_host_name(ssl, peer_name) != 1)) {
		peer_tls_log_errors("SSL_set1_host");
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}
