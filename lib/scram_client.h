/* Client side of SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding
 * (gs2 header "n,,"), for the load generator and the tests.  Messages are raw text; the
 * caller base64-encodes them for XMPP.  PBKDF2 dominates the cost of a login, so
 * scram_client_final() hands back the SaltedPassword and a later client can start from it
 * when the server announces the same salt and iteration count. */
#ifndef DUET_SCRAM_CLIENT_H
#define DUET_SCRAM_CLIENT_H

#include <stddef.h>

#include "lib/scram.h"

/* A SaltedPassword and what it was derived with: cache it keyed by (salt, iterations).
 * The keys derived from it (ClientKey, StoredKey, ServerKey) come along, so a client that
 * starts from the cache computes only the exchange's two HMACs. */
struct scram_salted {
	enum scram_hash hash;
	unsigned char salt[SCRAM_MAX_SALT];
	size_t salt_len;
	unsigned iterations;
	unsigned char salted[SCRAM_MAX_KEY];
	unsigned char client_key[SCRAM_MAX_KEY], stored_key[SCRAM_MAX_KEY];
	unsigned char server_key[SCRAM_MAX_KEY];
};

struct scram_client;

/* username: the authcid as UTF-8 (escaped here as a saslname).  password: the password, or
 * NULL when cached is given.  cached: NULL or a SaltedPassword from an earlier exchange; it
 * is used when the server's salt and iteration count are the ones it was derived with
 * (otherwise the password is needed).  NULL on bad arguments or allocation failure. */
struct scram_client *scram_client_new(enum scram_hash h, const char *username,
				      const char *password, const struct scram_salted *cached);
void scram_client_free(struct scram_client *c);

/* The client-first-message ("n,,n=user,r=nonce"); *out is owned by c, NUL-terminated. */
int scram_client_first(struct scram_client *c, const char **out, size_t *outlen);
/* Parse server-first, compute the proof, produce client-final-message.  salted_out (may be
 * NULL) receives the SaltedPassword used, for the caller's cache.  Refuses a server nonce
 * that does not extend ours, a salt longer than SCRAM_MAX_SALT, iterations outside
 * 1..max_iterations (0: default 1,000,000).  0 or -1. */
int scram_client_final(struct scram_client *c, const char *server_first, size_t len,
		       unsigned max_iterations, const char **out, size_t *outlen,
		       struct scram_salted *salted_out);
/* Check server-final ("v=..."): 0 when the server proved it knows our keys, -1 otherwise
 * (including "e=..." errors). */
int scram_client_verify(struct scram_client *c, const char *server_final, size_t len);

/* ---- Test hook: a fixed client nonce (printable ASCII without ','), for RFC vectors. */
int scram_client_set_nonce_for_test(struct scram_client *c, const char *nonce);

#endif
