#include "contrib/loadgen/creds.h"

#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "lib/base64.h"
#include "lib/scram.h"

static void hex_print(const char *name, const unsigned char *p, size_t n)
{
	printf("%s=", name);
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}

int creds_print(const char *password, const char *salt, unsigned iterations)
{
	char gen[33];
	if (!salt) {
		unsigned char r[16];
		if (RAND_bytes(r, sizeof r) != 1)
			return -1;
		for (int i = 0; i < 16; i++)
			snprintf(gen + 2 * i, 3, "%02x", r[i]);
		salt = gen;
	}
	size_t sl = strlen(salt);
	if (sl == 0 || sl > SCRAM_MAX_SALT || strpbrk(salt, "'\"\\ \n$`")) {
		fprintf(stderr, "duet-loadgen: salt must be 1..%d plain characters\n",
			SCRAM_MAX_SALT);
		return -1;
	}
	struct scram_creds s1, s256;
	if (scram_creds_derive(SCRAM_SHA1, password, (const unsigned char *)salt, sl, iterations,
			       &s1) < 0 ||
	    scram_creds_derive(SCRAM_SHA256, password, (const unsigned char *)salt, sl,
			       iterations, &s256) < 0) {
		fprintf(stderr, "duet-loadgen: key derivation failed\n");
		return -1;
	}
	char b64[SCRAM_MAX_SALT * 2];
	base64_encode((const unsigned char *)salt, sl, b64);
	printf("SALT=%s\n", salt);
	hex_print("SALT_HEX", (const unsigned char *)salt, sl);
	printf("SALT_B64=%s\n", b64);
	printf("ITERATIONS=%u\n", iterations);
	hex_print("SHA1_STORED", s1.stored_key, s1.key_len);
	hex_print("SHA1_SERVER", s1.server_key, s1.key_len);
	hex_print("SHA256_STORED", s256.stored_key, s256.key_len);
	hex_print("SHA256_SERVER", s256.server_key, s256.key_len);
	char k64[64];
	base64_encode(s1.stored_key, s1.key_len, k64);
	printf("SHA1_STORED_B64=%s\n", k64);
	base64_encode(s1.server_key, s1.key_len, k64);
	printf("SHA1_SERVER_B64=%s\n", k64);
	return fflush(stdout) == 0 ? 0 : -1;
}
