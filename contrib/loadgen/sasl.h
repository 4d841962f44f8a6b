/* SASL SCRAM for the load generator: lib/scram_client does the exchange; this keeps the
 * last SaltedPassword per hash so PBKDF2 runs once per (salt, iterations) a server uses, never
 * during a measurement (bench servers give every user the same salt). */
#ifndef LOADGEN_SASL_H
#define LOADGEN_SASL_H

#include <stddef.h>

#include "lib/scram.h"

#define SASL_B64_MAX 512

struct scram_client;

struct sasl_scram {
	enum scram_hash hash;
	struct scram_client *sc;
};

/* Fill out with base64(client-first-message).  0 or -1. */
int sasl_scram_start(struct sasl_scram *s, enum scram_hash h, const char *user,
		     const char *password, char *out, size_t outcap);
/* From the base64 server-first message, write base64(client-final-message).  On error
 * returns -1 and *why names the problem (a static string). */
int sasl_scram_step(struct sasl_scram *s, const char *chal_b64, size_t chal_len, char *out,
		    size_t outcap, const char **why);
/* Check base64(server-final-message) from <success/>.  0 when the signature matches. */
int sasl_scram_finish(struct sasl_scram *s, const char *succ_b64, size_t len);
void sasl_scram_clear(struct sasl_scram *s);

/* Number of PBKDF2 runs so far (SaltedPassword cache misses), for the report. */
unsigned long sasl_cache_misses(void);

#endif
