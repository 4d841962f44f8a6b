/* `srmctl digest`: per replicated table, the row count and an order-independent hash of the
 * rows, computed in SQL by repl_digest() (lib/schema.c migration 2), equal on both nodes
 * exactly when they hold the same rows; plus one overall digest over the per-table lines. */
#include "replication/repl_internal.h"

#include "lib/pg.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hex32(const char *s)
{
	if (strlen(s) != 32)
		return 0;
	for (int i = 0; i < 32; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static void on_digest(void *arg, PGresult *res, const char *errmsg)
{
	struct repl_q *c = arg;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 3) {
		c->cb.digest(c->arg, NULL, -1, res ? PQresultErrorMessage(res) : errmsg);
		free(c);
		return;
	}
	int n = PQntuples(res);
	if (n > REPL_DIGEST_MAX_TABLES) {
		c->cb.digest(c->arg, NULL, -1, "repl_digest: too many tables");
		free(c);
		return;
	}
	struct repl_digest_entry *e = calloc(n > 0 ? (size_t)n : 1, sizeof *e);
	int ok = e != NULL;
	for (int i = 0; ok && i < n; i++) {
		const char *t = PQgetvalue(res, i, 0), *h = PQgetvalue(res, i, 2);
		ok = strlen(t) <= REPL_MAX_TBL && hex32(h);
		if (ok) {
			snprintf(e[i].tbl, sizeof e[i].tbl, "%s", t);
			snprintf(e[i].hex, sizeof e[i].hex, "%s", h);
			e[i].rows = repl_pg_u64(res, i, 1, &ok);
		}
	}
	if (ok)
		c->cb.digest(c->arg, e, n, NULL);
	else
		c->cb.digest(c->arg, NULL, -1, e ? "repl_digest: malformed row" : "out of memory");
	free(e);
	free(c);
}

struct repl_q *repl_digest_query(struct pg_pool *pool, repl_digest_cb cb, void *arg)
{
	struct repl_q *c = repl_q_new(arg);
	if (!c)
		return NULL;
	c->cb.digest = cb;
	return repl_q_start(c, pool, "SELECT tbl, nrows, digest FROM repl_digest()", 0, NULL,
			    on_digest);
}

/* SHA-256 over "table rows hex\n" lines, first 16 bytes in hex. */
static void digest_total(const struct repl_digest_entry *e, int n, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (int i = 0; ok && i < n; i++) {
		char line[REPL_MAX_TBL + 64];
		int len = snprintf(line, sizeof line, "%s %" PRIu64 " %s\n", e[i].tbl, e[i].rows,
				   e[i].hex);
		ok = EVP_DigestUpdate(ctx, line, (size_t)len);
	}
	ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen >= 16;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		snprintf(out, 33, "%s", "error");
		return;
	}
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int repl_digest_format(char *out, size_t cap, const struct repl_digest_entry *e, int n,
		       int json)
{
	char total[33], dummy[1];
	size_t len = 0;
	if (cap == 0) {
		out = dummy; /* only the length is wanted */
		cap = 1;
	}
	digest_total(e, n, total);
#define PUT(...)                                                                   \
	do {                                                                       \
		int w_ = snprintf(out + (len < cap ? len : cap),                   \
				  len < cap ? cap - len : 0, __VA_ARGS__);         \
		if (w_ > 0)                                                        \
			len += (size_t)w_;                                         \
	} while (0)
	if (json) {
		PUT("{\"tables\":[");
		for (int i = 0; i < n; i++)
			PUT("%s{\"table\":\"%s\",\"rows\":%" PRIu64 ",\"digest\":\"%s\"}",
			    i ? "," : "", e[i].tbl, e[i].rows, e[i].hex);
		PUT("],\"digest\":\"%s\"}\n", total);
	} else {
		for (int i = 0; i < n; i++)
			PUT("%-20s %10" PRIu64 " %s\n", e[i].tbl, e[i].rows, e[i].hex);
		PUT("%-20s %10s %s\n", "all", "", total);
	}
#undef PUT
	return (int)len;
}
