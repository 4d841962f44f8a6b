/* libFuzzer target for the SASL server and the SCRAM client.
 *
 * Input: one byte choosing the side and mechanism, then up to three messages separated by
 * '\n' (the last one takes the rest, newlines included).
 *   byte < 0x80: server; byte % 3 picks SCRAM-SHA-256, SCRAM-SHA-1, PLAIN.  Credentials
 *     exist for "user" / "pencil" (the RFC 5802/7677 salts, 4096 iterations); every other
 *     user is unknown.  The server nonce is the RFC one, so the RFC exchanges in the seed
 *     corpus reach SUCCESS.
 *   byte >= 0x80: client; byte & 1 picks SHA-256.  The messages are a server-first and a
 *     server-final for a client "user" / "pencil" with the RFC client nonce. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sasl.h"
#include "lib/base64.h"
#include "lib/scram.h"
#include "lib/scram_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct scram_creds creds_sha1, creds_sha256;

static void creds_init(void)
{
	static int done;
	unsigned char salt[16];

	if (done)
		return;
	if (base64_decode("QSXCR+Q6sek8bf92", 16, salt) != 12 ||
	    scram_creds_derive(SCRAM_SHA1, "pencil", salt, 12, 4096, &creds_sha1) != 0 ||
	    base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt) != 16 ||
	    scram_creds_derive(SCRAM_SHA256, "pencil", salt, 16, 4096, &creds_sha256) != 0)
		abort();
	done = 1;
}

/* Split into at most 3 messages on '\n'. */
static size_t split(const uint8_t *data, size_t size, const uint8_t *msg[3], size_t len[3])
{
	size_t n = 0;

	while (n < 3) {
		const uint8_t *nl = n < 2 && size ? memchr(data, '\n', size) : NULL;
		msg[n] = data;
		len[n] = nl ? (size_t)(nl - data) : size;
		n++;
		if (nl == NULL)
			break;
		size -= (size_t)(nl - data) + 1;
		data = nl + 1;
	}
	return n;
}

static int condition_known(const char *c)
{
	static const char *known[] = {"not-authorized", "malformed-request",
				      "incorrect-encoding", "invalid-authzid",
				      "temporary-auth-failure"};

	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (c && strcmp(c, known[i]) == 0)
			return 1;
	return 0;
}

static void check_result(struct sasl_server *s, enum sasl_result r, const unsigned char *out,
			 size_t outlen)
{
	switch (r) {
	case SASL_SUCCESS: {
		const char *who = sasl_server_authenticated(s);
		if (who == NULL || strcmp(who, "user") != 0)
			abort(); /* only "user" has credentials */
	}
		/* fallthrough */
	case SASL_CONTINUE:
		if (out == NULL || (outlen > 0 && out[outlen - 1] == 0))
			abort();
		break;
	case SASL_FAILURE:
		if (!condition_known(sasl_server_failure(s)) || sasl_server_authenticated(s))
			abort();
		break;
	case SASL_NEED_CREDS:
		if (sasl_server_username(s) == NULL)
			abort();
		break;
	}
}

static void fuzz_server(int which, const uint8_t *msg[3], const size_t len[3], size_t n)
{
	static const enum sasl_mech mechs[] = {SASL_MECH_SCRAM_SHA256, SASL_MECH_SCRAM_SHA1,
					       SASL_MECH_PLAIN};
	struct sasl_server *s = sasl_server_new(mechs[which]);
	const struct scram_creds *creds;

	if (s == NULL)
		abort();
	creds = sasl_server_hash(s) == SCRAM_SHA1 ? &creds_sha1 : &creds_sha256;
	sasl_server_set_nonce_for_test(s, sasl_server_hash(s) == SCRAM_SHA1
						  ? "3rfcNHYJY1ZVvWVs7j"
						  : "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
	for (size_t i = 0; i < n; i++) {
		const unsigned char *out = NULL;
		size_t outlen = 0;
		enum sasl_result r = sasl_server_step(s, msg[i], len[i], &out, &outlen);

		check_result(s, r, out, outlen);
		if (r == SASL_NEED_CREDS) {
			const char *user = sasl_server_username(s);
			r = sasl_server_set_creds(s, strcmp(user, "user") == 0 ? creds : NULL, &out,
						  &outlen);
			check_result(s, r, out, outlen);
			if (r == SASL_NEED_CREDS)
				abort();
		}
	}
	sasl_server_free(s);
}

static void fuzz_client(int sha256, const uint8_t *msg[3], const size_t len[3], size_t n)
{
	enum scram_hash h = sha256 ? SCRAM_SHA256 : SCRAM_SHA1;
	struct scram_client *c = scram_client_new(h, "user", "pencil", NULL);
	struct scram_salted salted;
	const char *out;
	size_t outlen;
	char *m;

	if (c == NULL || scram_client_set_nonce_for_test(c, sha256 ? "rOprNGfwEbeRWgbNEkqO"
								 : "fyko+d2lbbFgONRv9qkxdawL") != 0 ||
	    scram_client_first(c, &out, &outlen) != 0)
		abort();
	/* Copies, so ASan sees reads past the message length. */
	m = malloc(len[0] + 1);
	memcpy(m, msg[0], len[0]);
	int rc = scram_client_final(c, m, len[0], 4096, &out, &outlen, &salted);
	free(m);
	if (rc == 0 && n > 1) {
		if (salted.iterations == 0 || salted.iterations > 4096)
			abort();
		m = malloc(len[1] + 1);
		memcpy(m, msg[1], len[1]);
		scram_client_verify(c, m, len[1]);
		free(m);
	}
	scram_client_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *msg[3];
	size_t len[3], n;
	uint8_t sel;

	if (size < 1)
		return 0;
	creds_init();
	sel = data[0];
	n = split(data + 1, size - 1, msg, len);
	if (sel < 0x80)
		fuzz_server(sel % 3, msg, len, n);
	else
		fuzz_client(sel & 1, msg, len, n);
	return 0;
}
