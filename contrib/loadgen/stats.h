/* Latency histograms and failure counters for the load generator.  A log-linear histogram
 * (64 sub-buckets per power of two, about 1.6% error) keeps memory fixed whatever the number
 * of samples, so a long message run cannot grow the process. */
#ifndef LOADGEN_STATS_H
#define LOADGEN_STATS_H

#include <stdint.h>
#include <stdio.h>

#define HIST_SUB 64
#define HIST_POW 40 /* up to 2^40 us: far beyond any run */

struct hist {
	uint64_t counts[HIST_POW][HIST_SUB];
	uint64_t n;
	uint64_t max_us;
	double sum_us;
};

void hist_add(struct hist *h, uint64_t us);
/* Value (us) below which fraction q (0..1) of the samples lie; 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);

#define FAIL_MAX_REASONS 32

struct failures {
	char reason[FAIL_MAX_REASONS][64];
	uint64_t count[FAIL_MAX_REASONS];
	int n;
	uint64_t total;
};

/* reason is copied (truncated to 63 bytes); past FAIL_MAX_REASONS kinds they pool as "other". */
void failures_add(struct failures *f, const char *reason);
void failures_print_text(const struct failures *f, FILE *out);
void failures_print_json(const struct failures *f, FILE *out);

#endif
