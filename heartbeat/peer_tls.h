/* Addresses and TLS for the peer link (heartbeat/peer_tls.c). */
#ifndef DUET_PEER_TLS_H
#define DUET_PEER_TLS_H

#include <stdbool.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

/* "host:port" or "[v6]:port" -> the first getaddrinfo() result.  0 or -1. */
int peer_address_resolve(const char *spec, struct sockaddr_storage *sa, int *salen);
/* TLS 1.2+, our certificate chain and key, the group CA as the only trust anchor, peer
 * certificates required in both roles.  NULL (logged) on error. */
SSL_CTX *peer_tls_context_new(const char *ca, const char *cert, const char *key);
/* An SSL that accepts only a certificate naming peer_name (DNS SAN, or CN without SANs). */
SSL *peer_tls_new(SSL_CTX *ctx, const char *peer_name, bool outgoing);
/* Log and clear OpenSSL's error queue. */
void peer_tls_log_errors(const char *what);

#endif
