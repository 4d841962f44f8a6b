/* Server side of SASL for XMPP: SCRAM-SHA-256, SCRAM-SHA-1 (RFC 5802/7677) and PLAIN
 * (RFC 4616).  Pure protocol code: no I/O, no database.  The caller base64-decodes client
 * data, calls sasl_server_step(), and fetches credentials asynchronously when asked. */
#ifndef DUET_SASL_H
#define DUET_SASL_H

#include <stddef.h>

#include "lib/scram.h"

enum sasl_mech { SASL_MECH_SCRAM_SHA256, SASL_MECH_SCRAM_SHA1, SASL_MECH_PLAIN, SASL_MECH_NONE };

enum sasl_result {
	SASL_CONTINUE,   /* send *out as a <challenge/>, wait for the next <response/> */
	SASL_NEED_CREDS, /* look up sasl_server_username(), then call sasl_server_set_creds() */
	SASL_SUCCESS,    /* send <success/> with *out (additional data, may be empty) */
	SASL_FAILURE,    /* send <failure/> with the condition from sasl_server_failure() */
};

struct sasl_server;

/* Mechanism by its SASL name ("SCRAM-SHA-256"...), SASL_MECH_NONE if unknown. */
enum sasl_mech sasl_mech_from_name(const char *name);
const char *sasl_mech_name(enum sasl_mech m);

struct sasl_server *sasl_server_new(enum sasl_mech mech);
void sasl_server_free(struct sasl_server *s);

/* Feed the next client message (already base64-decoded; the initial response may be
 * empty).  On CONTINUE/SUCCESS, *out / *outlen hold raw bytes to base64-encode (owned by s,
 * valid until the next call). */
enum sasl_result sasl_server_step(struct sasl_server *s, const unsigned char *in, size_t inlen,
				  const unsigned char **out, size_t *outlen);
/* After NEED_CREDS: the authentication identity (normalized localpart, lowercase ASCII). */
const char *sasl_server_username(const struct sasl_server *s);
/* Provide the user's stored credentials for this mechanism's hash (SHA-256 for PLAIN);
 * creds NULL when the user does not exist (SCRAM then continues with a fake salt so an
 * attacker cannot tell, and fails at the end).  Returns the next result exactly like
 * sasl_server_step() (CONTINUE with the server-first-message for SCRAM, SUCCESS or
 * FAILURE for PLAIN). */
enum sasl_result sasl_server_set_creds(struct sasl_server *s, const struct scram_creds *creds,
				       const unsigned char **out, size_t *outlen);
/* RFC 6120 §6.5 condition after FAILURE: "not-authorized", "malformed-request",
 * "incorrect-encoding", "invalid-authzid", "temporary-auth-failure"... */
const char *sasl_server_failure(const struct sasl_server *s);
/* After SUCCESS: the authenticated username. */
const char *sasl_server_authenticated(const struct sasl_server *s);
/* The hash whose credentials sasl_server_set_creds() wants (SHA-256 for PLAIN). */
enum scram_hash sasl_server_hash(const struct sasl_server *s);

/* Iteration count announced for unknown users (set it to the configured scram_iterations so
 * fake challenges look like real ones).  Default 4096. */
void sasl_set_default_iterations(unsigned iterations);

/* Bounds on client data (RFC 6120 leaves them to the server). */
#define SASL_MAX_MESSAGE 4096

/* ---- Test hook, for the RFC 5802/7677 vectors only: never call it in the server. ----
 * Use server_nonce (printable ASCII without ',', 1..64 bytes) instead of a random one for
 * the server part of the SCRAM nonce.  Call before sasl_server_set_creds().  0 or -1. */
int sasl_server_set_nonce_for_test(struct sasl_server *s, const char *server_nonce);

#endif
