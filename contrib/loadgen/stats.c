#include "contrib/loadgen/stats.h"

#include <ctype.h>
#include <string.h>

/* Bucket of v: values below HIST_SUB map to themselves in row 0; above, row r holds
 * [2^(r+5), 2^(r+6)) split into HIST_SUB equal parts. */
static void hist_index(uint64_t v, int *row, int *col)
{
	if (v < HIST_SUB) {
		*row = 0;
		*col = (int)v;
		return;
	}
	int top = 63 - __builtin_clzll(v); /* >= 6 */
	int r = top - 5;
	if (r >= HIST_POW) {
		*row = HIST_POW - 1;
		*col = HIST_SUB - 1;
		return;
	}
	*row = r;
	*col = (int)((v >> (top - 6)) & (HIST_SUB - 1));
}

static uint64_t hist_value(int row, int col)
{
	if (row == 0)
		return (uint64_t)col;
	int top = row + 5;
	/* upper edge of the bucket, so quantiles never understate */
	return ((uint64_t)(HIST_SUB + col + 1) << (top - 6)) - 1;
}

void hist_add(struct hist *h, uint64_t us)
{
	int r, c;
	hist_index(us, &r, &c);
	h->counts[r][c]++;
	h->n++;
	h->sum_us += (double)us;
	if (us > h->max_us)
		h->max_us = us;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	if (h->n == 0)
		return 0;
	uint64_t want = (uint64_t)(q * (double)h->n);
	if (want >= h->n)
		want = h->n - 1;
	uint64_t seen = 0;
	for (int r = 0; r < HIST_POW; r++)
		for (int c = 0; c < HIST_SUB; c++) {
			seen += h->counts[r][c];
			if (seen > want) {
				uint64_t v = hist_value(r, c);
				return v > h->max_us ? h->max_us : v;
			}
		}
	return h->max_us;
}

void failures_add(struct failures *f, const char *reason)
{
	char r[sizeof f->reason[0]];

	/* reasons may carry server-chosen names: keep them safe for JSON and terminals */
	snprintf(r, sizeof r, "%s", reason);
	for (char *p = r; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(":_.-", *p))
			*p = '_';
	f->total++;
	for (int i = 0; i < f->n; i++)
		if (strcmp(f->reason[i], r) == 0) {
			f->count[i]++;
			return;
		}
	if (f->n == FAIL_MAX_REASONS - 1) {
		snprintf(f->reason[f->n], sizeof f->reason[0], "other");
		f->count[f->n++] = 0;
	}
	if (f->n == FAIL_MAX_REASONS) {
		f->count[FAIL_MAX_REASONS - 1]++;
		return;
	}
	memcpy(f->reason[f->n], r, sizeof r);
	f->count[f->n++] = 1;
}

void failures_print_text(const struct failures *f, FILE *out)
{
	if (f->total == 0) {
		fprintf(out, "failures: 0\n");
		return;
	}
	fprintf(out, "failures: %llu\n", (unsigned long long)f->total);
	for (int i = 0; i < f->n; i++)
		fprintf(out, "  %-22s %llu\n", f->reason[i], (unsigned long long)f->count[i]);
}

void failures_print_json(const struct failures *f, FILE *out)
{
	fprintf(out, "{");
	for (int i = 0; i < f->n; i++)
		fprintf(out, "%s\"%s\":%llu", i ? "," : "", f->reason[i],
			(unsigned long long)f->count[i]);
	fprintf(out, "}");
}
