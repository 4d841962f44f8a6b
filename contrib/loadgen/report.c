/* The figures of a run, as text or one JSON object. */
#include <stdio.h>

#include "contrib/loadgen/failover.h"
#include "contrib/loadgen/loadgen.h"
#include "contrib/loadgen/sasl.h"

static const char *mode_name(enum lg_mode m)
{
	return m == LG_LOGIN ? "login" : m == LG_MESSAGES ? "messages" : m == LG_IDLE ? "idle"
										: "failover";
}

static double ms(uint64_t us) { return (double)us / 1000.0; }

/* Logins per second over the span in which they happened: at least the arrival window, so
 * a run whose logins finish late is not flattered. */
static double login_rate(const struct lg *lg)
{
	if (!lg->logins_ok)
		return 0;
	double span = (double)(lg->last_ok_ns - lg->t0) / 1e9;
	if (lg->cfg.mode == LG_LOGIN && span < lg->cfg.duration)
		span = lg->cfg.duration;
	return span > 0 ? (double)lg->logins_ok / span : 0;
}

void report_print(const struct lg *lg, double elapsed_s)
{
	const struct hist *l = &lg->login_lat, *m = &lg->msg_lat;
	double msg_rate = lg->cfg.duration > 0 ? (double)lg->msgs_in_window / lg->cfg.duration : 0;
	double all_up = lg->all_up_reported ? (double)(lg->all_up_ns - lg->t0) / 1e9 : -1;
	const char *mech = lg->mech_used ? lg->mech_used : "none";

	if (lg->cfg.json) {
		printf("{\"mode\":\"%s\",\"mech\":\"%s\",\"offered_rate\":%.1f,\"duration_s\":%.1f,"
		       "\"elapsed_s\":%.2f,\"launched\":%llu,\"logins_ok\":%llu,"
		       "\"logins_per_s\":%.1f,\"login_ms\":{\"p50\":%.2f,\"p90\":%.2f,"
		       "\"p99\":%.2f,\"max\":%.2f},\"failures_total\":%llu,\"failures\":",
		       mode_name(lg->cfg.mode), mech, lg->cfg.rate, lg->cfg.duration, elapsed_s,
		       (unsigned long long)lg->launched, (unsigned long long)lg->logins_ok,
		       login_rate(lg), ms(hist_quantile(l, .5)), ms(hist_quantile(l, .9)),
		       ms(hist_quantile(l, .99)), ms(l->max_us),
		       (unsigned long long)lg->fail.total);
		failures_print_json(&lg->fail, stdout);
		printf(",\"messages\":{\"sent\":%llu,\"received\":%llu,\"in_window\":%llu,"
		       "\"per_s\":%.1f,\"latency_ms\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}},"
		       "\"idle\":{\"online\":%d,\"all_up_s\":%.2f,\"dropped\":%llu},"
		       "\"pbkdf2_runs\":%lu",
		       (unsigned long long)lg->msgs_sent, (unsigned long long)lg->msgs_recv,
		       (unsigned long long)lg->msgs_in_window, msg_rate, ms(hist_quantile(m, .5)),
		       ms(hist_quantile(m, .99)), ms(m->max_us), lg->online, all_up,
		       (unsigned long long)lg->dropped, sasl_cache_misses());
		if (lg->cfg.mode == LG_FAILOVER) {
			printf(",");
			fo_report(lg, stdout, 1);
		}
		printf("}\n");
		fflush(stdout);
		return;
	}
	printf("mode %s, %s, %.1f s\n", mode_name(lg->cfg.mode), mech, elapsed_s);
	printf("logins: %llu ok of %llu started, %.1f/s (offered %.1f/s)\n",
	       (unsigned long long)lg->logins_ok, (unsigned long long)lg->launched,
	       login_rate(lg), lg->cfg.rate);
	printf("login latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
	       ms(hist_quantile(l, .5)), ms(hist_quantile(l, .9)), ms(hist_quantile(l, .99)),
	       ms(l->max_us));
	if (lg->cfg.mode == LG_MESSAGES)
		printf("messages: %llu delivered in %.1f s window = %.1f/s; latency ms p50 %.2f  "
		       "p99 %.2f  max %.2f\n",
		       (unsigned long long)lg->msgs_in_window, lg->cfg.duration, msg_rate,
		       ms(hist_quantile(m, .5)), ms(hist_quantile(m, .99)), ms(m->max_us));
	if (lg->cfg.mode == LG_IDLE)
		printf("idle: %d online at the end, all up after %.1f s, %llu dropped\n", lg->online,
		       all_up, (unsigned long long)lg->dropped);
	printf("PBKDF2 runs in this client: %lu\n", sasl_cache_misses());
	if (lg->cfg.mode == LG_FAILOVER)
		fo_report(lg, stdout, 0);
	failures_print_text(&lg->fail, stdout);
	fflush(stdout);
}
