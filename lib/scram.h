/* SCRAM (RFC 5802, RFC 7677) credential derivation, shared by srmd (provisioning), presenced
 * (SASL) and the load generator.  Only salted keys are ever stored: never passwords. */
#ifndef DUET_SCRAM_H
#define DUET_SCRAM_H

#include <stddef.h>

enum scram_hash { SCRAM_SHA1, SCRAM_SHA256 };

#define SCRAM_MAX_KEY 32
#define SCRAM_MAX_SALT 64

struct scram_creds {
	enum scram_hash hash;
	unsigned char salt[SCRAM_MAX_SALT];
	size_t salt_len;
	unsigned iterations;
	unsigned char stored_key[SCRAM_MAX_KEY];
	unsigned char server_key[SCRAM_MAX_KEY];
	size_t key_len; /* 20 for SHA-1, 32 for SHA-256 */
};

size_t scram_hash_len(enum scram_hash h);
const char *scram_mech_name(enum scram_hash h); /* "SCRAM-SHA-1" / "SCRAM-SHA-256" */

/* SaltedPassword := Hi(password, salt, i) (PBKDF2-HMAC).  out must hold hash_len bytes. */
int scram_salted_password(enum scram_hash h, const char *password, const unsigned char *salt,
			  size_t salt_len, unsigned iterations, unsigned char *out);
/* From a SaltedPassword: ClientKey, StoredKey, ServerKey. */
void scram_keys_from_salted(enum scram_hash h, const unsigned char *salted,
			    unsigned char *client_key, unsigned char *stored_key,
			    unsigned char *server_key);
/* Derive stored credentials for password with the given salt.  0 or -1. */
int scram_creds_derive(enum scram_hash h, const char *password, const unsigned char *salt,
		       size_t salt_len, unsigned iterations, struct scram_creds *out);
/* Same with a fresh random 16-byte salt (OpenSSL RAND_bytes). */
int scram_creds_new(enum scram_hash h, const char *password, unsigned iterations,
		    struct scram_creds *out);
/* HMAC and H over the chosen hash; out must hold hash_len bytes. */
void scram_hmac(enum scram_hash h, const unsigned char *key, size_t keylen,
		const unsigned char *data, size_t len, unsigned char *out);
void scram_h(enum scram_hash h, const unsigned char *data, size_t len, unsigned char *out);
/* Constant-time compare: 1 when the len bytes are equal, 0 otherwise. */
int scram_equal(const unsigned char *a, const unsigned char *b, size_t len);

/* The one username rule for SASL (a simplified nodeprep, as srmctl provisioning checks):
 * 1..1023 bytes of well-formed UTF-8 without control characters (C0, DEL, C1), NUL,
 * whitespace or the RFC 7622 localpart exclusions " & ' / : < > @; ASCII letters are
 * lowercased, other characters kept.  out must hold
 * SCRAM_USERNAME_MAX + 1 bytes and is NUL-terminated.  0 or -1. */
#define SCRAM_USERNAME_MAX 1023
int scram_username_normalize(const unsigned char *in, size_t len, char *out);

#endif
