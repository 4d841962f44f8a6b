/* PLAIN (RFC 4616): message = [authzid] NUL authcid NUL passwd.  Only SCRAM keys are
 * stored, so the password is checked by deriving the SHA-256 StoredKey from it with the
 * user's salt and iteration count and comparing in constant time. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "engine/sasl_internal.h"

void plain_server_clear(struct sasl_server *s)
{
	if (s->password) {
		OPENSSL_cleanse(s->password, s->password_len);
		free(s->password);
	}
	s->password = NULL;
	s->password_len = 0;
}

enum sasl_result plain_server_step(struct sasl_server *s, const unsigned char *in, size_t inlen)
{
	const unsigned char *nul1, *nul2, *authcid, *passwd;
	size_t authzid_len, authcid_len, passwd_len;

	if (s->state != SASL_ST_START)
		return sasl_fail(s, "malformed-request");
	nul1 = inlen ? memchr(in, '\0', inlen) : NULL;
	if (nul1 == NULL)
		return sasl_fail(s, "malformed-request");
	authzid_len = (size_t)(nul1 - in);
	authcid = nul1 + 1;
	nul2 = memchr(authcid, '\0', (size_t)(in + inlen - authcid));
	if (nul2 == NULL)
		return sasl_fail(s, "malformed-request");
	authcid_len = (size_t)(nul2 - authcid);
	passwd = nul2 + 1;
	passwd_len = (size_t)(in + inlen - passwd);
	if (authcid_len == 0 || passwd_len == 0 || memchr(passwd, '\0', passwd_len) != NULL)
		return sasl_fail(s, "malformed-request");

	if (scram_username_normalize(authcid, authcid_len, s->username) != 0)
		return sasl_fail(s, "not-authorized");
	if (authzid_len > 0) {
		char *az = malloc(SCRAM_USERNAME_MAX + 1);
		int same;

		if (az == NULL)
			return sasl_fail(s, "temporary-auth-failure");
		same = scram_username_normalize(in, authzid_len, az) == 0 &&
		       strcmp(az, s->username) == 0;
		free(az);
		if (!same)
			return sasl_fail(s, "invalid-authzid");
	}

	s->password = malloc(passwd_len + 1);
	if (s->password == NULL)
		return sasl_fail(s, "temporary-auth-failure");
	memcpy(s->password, passwd, passwd_len);
	s->password[passwd_len] = '\0';
	s->password_len = passwd_len;
	s->state = SASL_ST_NEED_CREDS;
	return SASL_NEED_CREDS;
}

enum sasl_result plain_server_set_creds(struct sasl_server *s, const struct scram_creds *creds)
{
	struct scram_creds fake;
	unsigned char salted[SCRAM_MAX_KEY], stored[SCRAM_MAX_KEY];
	int known = creds != NULL, ok;

	/* Unknown users cost the same PBKDF2 as real ones, so timing does not tell them
	 * apart. */
	if (!known) {
		if (sasl_fake_creds(s->hash, s->username, &fake) != 0)
			return sasl_fail(s, "temporary-auth-failure");
		creds = &fake;
	}
	if (scram_salted_password(s->hash, s->password, creds->salt, creds->salt_len,
				  creds->iterations, salted) != 0)
		return sasl_fail(s, "temporary-auth-failure");
	scram_keys_from_salted(s->hash, salted, NULL, stored, NULL);
	ok = scram_equal(stored, creds->stored_key, creds->key_len) & known;
	OPENSSL_cleanse(salted, sizeof salted);
	OPENSSL_cleanse(&fake, sizeof fake);
	plain_server_clear(s);
	if (!ok)
		return sasl_fail(s, "not-authorized");
	if (sasl_out_set(s, "", 0) != 0)
		return sasl_fail(s, "temporary-auth-failure");
	s->authenticated = 1;
	s->state = SASL_ST_DONE;
	return SASL_SUCCESS;
}
