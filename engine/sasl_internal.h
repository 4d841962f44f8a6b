/* Shared state of the SASL server mechanisms; only engine/sasl*.c include this. */
#ifndef DUET_SASL_INTERNAL_H
#define DUET_SASL_INTERNAL_H

#include <stddef.h>

#include "engine/sasl.h"
#include "lib/scram.h"

/* Server nonce: 24 random bytes, base64 (RFC 5802 only asks for "enough" randomness). */
#define SASL_NONCE_RAW 24
#define SASL_TEST_NONCE_MAX 64
/* Fake salts for unknown users have the length of the salts scram_creds_new() makes. */
#define SASL_FAKE_SALT_LEN 16

enum sasl_state {
	SASL_ST_START,      /* waiting for the first client message */
	SASL_ST_NEED_CREDS, /* asked the caller for credentials */
	SASL_ST_CHALLENGED, /* SCRAM: server-first sent, waiting for client-final */
	SASL_ST_DONE,       /* SUCCESS or FAILURE returned; any further step fails */
};

struct sasl_server {
	enum sasl_mech mech;
	enum scram_hash hash;
	enum sasl_state state;
	int empty_challenged; /* an empty first message got an empty challenge already */
	const char *failure;  /* RFC 6120 §6.5 condition, static string */
	int authenticated;
	char username[SCRAM_USERNAME_MAX + 1];

	/* SCRAM: the pieces of AuthMessage and the nonce, all heap copies. */
	char *gs2_header;
	size_t gs2_len;
	char *client_first_bare;
	size_t client_first_bare_len;
	char *nonce; /* client nonce followed by server nonce */
	size_t client_nonce_len;
	size_t nonce_len;
	char *server_first;
	size_t server_first_len;
	char test_nonce[SASL_TEST_NONCE_MAX + 1];
	struct scram_creds creds;
	int user_known;

	/* PLAIN: the password until the credentials arrive (wiped then). */
	char *password;
	size_t password_len;

	/* Last output handed to the caller. */
	unsigned char *out;
	size_t outlen;
};

/* Record condition, enter DONE, return SASL_FAILURE. */
enum sasl_result sasl_fail(struct sasl_server *s, const char *condition);
/* Replace the output with a copy of data.  0 or -1 (allocation). */
int sasl_out_set(struct sasl_server *s, const void *data, size_t len);
/* Credentials that look real for a user who does not exist: a salt derived from the
 * username with a per-process secret (stable, so probing twice shows the same salt), the
 * default iteration count and random keys that nothing can match.  0 or -1. */
int sasl_fake_creds(enum scram_hash h, const char *username, struct scram_creds *out);
/* 1 when creds are usable for hash h. */
int sasl_creds_valid(const struct scram_creds *creds, enum scram_hash h);
/* Random bytes for nonces.  0 or -1. */
int sasl_random(unsigned char *buf, size_t len);

enum sasl_result scram_server_step(struct sasl_server *s, const unsigned char *in,
				   size_t inlen);
enum sasl_result scram_server_set_creds(struct sasl_server *s, const struct scram_creds *creds);
void scram_server_clear(struct sasl_server *s);

enum sasl_result plain_server_step(struct sasl_server *s, const unsigned char *in,
				   size_t inlen);
enum sasl_result plain_server_set_creds(struct sasl_server *s, const struct scram_creds *creds);
void plain_server_clear(struct sasl_server *s);

#endif
