#include "contrib/loadgen/sasl.h"

#include <string.h>

#include "lib/base64.h"
#include "lib/scram_client.h"

/* The SaltedPassword last used with each hash. */
static struct scram_salted cache[2];
static int cache_valid[2];
static unsigned long misses;

unsigned long sasl_cache_misses(void) { return misses; }

static int b64_out(const char *msg, size_t len, char *out, size_t outcap)
{
	if (base64_encoded_len(len) + 1 > outcap)
		return -1;
	base64_encode((const unsigned char *)msg, len, out);
	return 0;
}

int sasl_scram_start(struct sasl_scram *s, enum scram_hash h, const char *user,
		     const char *password, char *out, size_t outcap)
{
	const char *first;
	size_t flen;

	s->hash = h;
	s->sc = scram_client_new(h, user, password, cache_valid[h] ? &cache[h] : NULL);
	if (!s->sc || scram_client_first(s->sc, &first, &flen) < 0)
		return -1;
	return b64_out(first, flen, out, outcap);
}

int sasl_scram_step(struct sasl_scram *s, const char *chal_b64, size_t chal_len, char *out,
		    size_t outcap, const char **why)
{
	char sf[SASL_B64_MAX];
	const char *final;
	size_t flen;
	struct scram_salted used;

	*why = "sasl-bad-challenge";
	if (chal_len == 0 || chal_len / 4 * 3 >= sizeof sf)
		return -1;
	long n = base64_decode(chal_b64, chal_len, (unsigned char *)sf);
	if (n <= 0)
		return -1;
	sf[n] = 0;
	if (scram_client_final(s->sc, sf, (size_t)n, 0, &final, &flen, &used) < 0)
		return -1;
	int h = s->hash;
	const struct scram_salted *old = &cache[h];
	if (!cache_valid[h] || old->salt_len != used.salt_len ||
	    old->iterations != used.iterations || memcmp(old->salt, used.salt, used.salt_len) ||
	    memcmp(old->salted, used.salted, scram_hash_len(s->hash))) {
		misses++; /* a new salt or iteration count: PBKDF2 ran for this login */
		cache[h] = used;
		cache_valid[h] = 1;
	}
	*why = "sasl-overflow";
	if (b64_out(final, flen, out, outcap) < 0)
		return -1;
	*why = NULL;
	return 0;
}

int sasl_scram_finish(struct sasl_scram *s, const char *succ_b64, size_t len)
{
	char msg[256];
	if (len == 0 || len / 4 * 3 >= sizeof msg)
		return -1;
	long n = base64_decode(succ_b64, len, (unsigned char *)msg);
	if (n <= 0)
		return -1;
	msg[n] = 0;
	return scram_client_verify(s->sc, msg, (size_t)n);
}

void sasl_scram_clear(struct sasl_scram *s)
{
	if (s->sc)
		scram_client_free(s->sc);
	s->sc = NULL;
}
