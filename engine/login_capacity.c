/* This engine's login capacity, for `srmctl profile --hardware auto` (docs/login-profiles.md,
 * "The auto profile").  presenced is one thread, so what bounds its login rate is the CPU
 * time one login costs it (TLS handshake, SASL, stream restarts, binding, roster, presence).
 * Two ways to know it:
 *   observed:    once a second, the process's CPU time and logins since the last second;
 *                a second with at least LC_BUSY logins and no refused one is dominated by
 *                them, and its CPU time per login (everything else it did that second
 *                included, so the figure errs on the slow side) feeds a moving average.
 *                Seconds with refusals do not count: the work of turning a crowd away
 *                would be charged to the few logins admitted, the estimate would fall, fewer
 *                would be admitted, and the engine would talk itself down to nothing;
 *   calibrated:  on request, LC_CALIB TLS handshakes with this node's certificate against
 *                an in-memory client, timing the server side only (thread CPU time), plus
 *                a SCRAM-SHA-256 server verification each.  It blocks the loop for about
 *                LC_CALIB handshakes' time (tens of ms) and covers the cryptography only.
 * `capacity [calibrate]` on the control socket answers both (docs/engine-protocol.md).
 *
 * The storm guard: the token bucket of control.c admits at most 80% of this capacity while
 * srmd's throttle runs, during the first re-login span after the engine starts (a restarted
 * engine gets every client back at once), and for as long as logins keep being refused, so
 * a crowd cannot push the engine past what it can do (its health answers would stall and
 * srmd would take it for hung).  At all times it keeps at most LC_MAX_INFLIGHT logins in
 * progress; refusing one raises the guard.  A calibration runs at start for a figure before
 * anything was observed. */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>

#include "engine/engine.h"
#include "lib/clock.h"
#include "lib/log.h"

#define LC_BUSY 20   /* logins in a second for it to count */
#define LC_CALIB 40  /* handshakes of a calibration */
#define LC_MIN_SAMPLES 3
#define LC_CALIB_FACTOR 2.0 /* what a calibration does not cover (docs/login-profiles.md) */
#define LC_HEADROOM 0.8
#define LC_GUARD_MIN_MS 10000
#define LC_GUARD_HOLD_MS 2000 /* the guard stays up this long after a refusal */
/* Logins admitted and not bound yet, at most, while the guard is up: what bounds a login
 * may be the database rather than our CPU, and admitted logins that wait pile up until they
 * time out and come back, so new ones wait outside instead. */
#define LC_MAX_INFLIGHT 500
#define LC_BACKLOG_MAX_MS 20000 /* the spread given to a refused crowd, at most */

static struct {
	struct event *tick;
	long long last_cpu_us;
	uint64_t last_logins;
	double avg_us; /* moving average of CPU microseconds per login, 0 = none yet */
	long samples;
	double calib_us;
	int64_t guard_until_ms; /* clock_mono_ms() */
	double refused_per_s; /* moving average, for how long the crowd takes to get in */
	long refused_this_s;
	long inflight;
	uint64_t admitted; /* logins that took their admission, ever */
	long admitted_this_s, admitted_last_s;
	double admitted_per_s; /* moving average */
	double crowd;		      /* users srmd's throttle expects, 0: none */
	uint64_t crowd_admitted_from; /* `admitted` when it was set */
} LC;

void login_inflight_add(int d) { LC.inflight += d; }
long login_inflight(void) { return LC.inflight; }

static long guard_left(void)
{
	int64_t ms = LC.guard_until_ms - clock_mono_ms();
	return ms > 0 ? (long)ms : 0;
}

/* Logins per second this engine can take with headroom, 0 when unknown. */
static double capacity_rate(void)
{
	double us = LC.samples >= LC_MIN_SAMPLES ? LC.avg_us
		    : LC.calib_us > 0		 ? LC.calib_us * LC_CALIB_FACTOR
						 : 0;
	return us > 0 ? LC_HEADROOM * 1e6 / us : 0;
}

double login_capacity_per_s(void) { return capacity_rate(); }

double login_rate_effective(void)
{
	if (!server.cfg.login_guard)
		return server.login_rate; /* srmd's throttle only */
	double cap = capacity_rate(), r = server.login_rate;
	if (r > 0)
		return cap > 0 && cap < r ? cap : r;
	return cap > 0 && guard_left() > 0 ? cap : 0;
}

/* Always, not only while the guard is up: a planned move can bring more logins than the
 * node can finish (the release spreads them over the upper limit, which may be too short
 * for this node); the first refusal raises the guard. */
bool login_inflight_full(void)
{
	return server.cfg.login_guard && LC.inflight >= LC_MAX_INFLIGHT;
}

void login_guard_raise(void)
{
	int64_t until = clock_mono_ms() + LC_GUARD_HOLD_MS;
	if (until > LC.guard_until_ms)
		LC.guard_until_ms = until;
}

void login_capacity_refused(void)
{
	LC.refused_this_s++;
	login_guard_raise();
}

void login_admitted(void)
{
	LC.admitted++;
	LC.admitted_this_s++;
}

/* What the last second admitted while logins waited or were refused (the rate admission
 * really runs at: the CPU, or logins in progress at their cap, may hold it below the
 * throttle's), or the throttle's rate; 0 = unlimited and nothing measured. */
double login_admission_rate(void)
{
	double r = login_rate_effective(), m = (double)LC.admitted_last_s;
	if (guard_left() > 0 && m >= LC_BUSY && (r <= 0 || m < r))
		return m;
	return r;
}

void login_crowd_set(double crowd)
{
	LC.crowd = crowd > 0 ? crowd : 0;
	LC.crowd_admitted_from = LC.admitted;
}

/* The users of srmd's throttle not admitted yet, at the rate logins were admitted lately
 * (or the throttle's, before a second of them was measured).  Admissions count users that
 * were not online too (accounts, not sessions): once all have arrived, this is 0. */
long login_crowd_drain_ms(void)
{
	double left = LC.crowd - (double)(LC.admitted - LC.crowd_admitted_from);
	if (LC.crowd <= 0 || left <= 0)
		return 0;
	double rate = LC.admitted_per_s > LC_BUSY ? LC.admitted_per_s : login_admission_rate();
	return rate > 0 ? (long)(left / rate * 1000.0) : 0;
}

long login_guard_left_ms(void)
{
	long left = guard_left();
	double rate = login_rate_effective();
	/* Spread the refused crowd so that about half the rate comes back each second. */
	long backlog = rate > 0 ? (long)(2 * LC.refused_per_s / rate * 1000) : 0;
	if (backlog > LC_BACKLOG_MAX_MS)
		backlog = LC_BACKLOG_MAX_MS;
	return left > backlog ? left : backlog;
}

static long long cpu_us(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
	       ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	long long cpu = cpu_us();
	uint64_t logins = server.stats.logins;
	uint64_t dl = logins - LC.last_logins;
	if (dl >= LC_BUSY && LC.refused_this_s == 0 && cpu > LC.last_cpu_us) {
		double sample = (double)(cpu - LC.last_cpu_us) / (double)dl;
		LC.avg_us = LC.samples ? 0.7 * LC.avg_us + 0.3 * sample : sample;
		LC.samples++;
	}
	LC.last_cpu_us = cpu;
	LC.last_logins = logins;
	LC.refused_per_s = 0.5 * LC.refused_per_s + 0.5 * (double)LC.refused_this_s;
	LC.refused_this_s = 0;
	LC.admitted_per_s = 0.5 * LC.admitted_per_s + 0.5 * (double)LC.admitted_this_s;
	LC.admitted_last_s = LC.admitted_this_s;
	LC.admitted_this_s = 0;
	if (guard_left() == 0 && server.login_rate <= 0)
		LC.crowd = 0; /* nobody is refused or waits: whoever was coming is in */
}

void login_capacity_start(void)
{
	if (LC.tick)
		return;
	LC.tick = event_new(server.base, -1, EV_PERSIST, on_tick, NULL);
	if (!LC.tick)
		return;
	LC.last_cpu_us = cpu_us();
	LC.last_logins = server.stats.logins;
	struct timeval tv = {1, 0};
	event_add(LC.tick, &tv);
	if (server.ssl_ctx)
		login_capacity_calibrate();
	long span = relogin_span_ms();
	LC.guard_until_ms = clock_mono_ms() + (span > LC_GUARD_MIN_MS ? span : LC_GUARD_MIN_MS);
}

static double thread_cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Move what one side wrote to the other side's input. */
static void shuttle(BIO *from, BIO *to)
{
	char buf[4096];
	int n;
	while ((n = BIO_read(from, buf, sizeof buf)) > 0)
		BIO_write(to, buf, n);
}

/* One handshake; returns the server side's CPU microseconds, or -1. */
static double one_handshake(SSL_CTX *cctx)
{
	SSL *s = SSL_new(server.ssl_ctx), *c = SSL_new(cctx);
	BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
	BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
	double spent = -1;
	if (!s || !c || !s_in || !s_out || !c_in || !c_out) {
		BIO_free(s_in);
		BIO_free(s_out);
		BIO_free(c_in);
		BIO_free(c_out);
		goto out;
	}
	SSL_set_bio(s, s_in, s_out);
	SSL_set_bio(c, c_in, c_out);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	spent = 0;
	for (int round = 0; round < 10; round++) {
		int cr = SSL_do_handshake(c);
		shuttle(c_out, s_in);
		double t0 = thread_cpu_us();
		int sr = SSL_do_handshake(s);
		spent += thread_cpu_us() - t0;
		shuttle(s_out, c_in);
		if (cr == 1 && sr == 1)
			goto out;
	}
	spent = -1; /* did not complete */
out:
	SSL_free(s);
	SSL_free(c);
	ERR_clear_error();
	return spent;
}

/* The server's part of a SCRAM-SHA-256 exchange: ClientSignature, the proof check,
 * ServerSignature (RFC 5802 §3), on a typical AuthMessage. */
static double scram_verify_us(void)
{
	unsigned char key[32] = {1}, sig[32], h[32];
	unsigned int len;
	static const char msg[] = "n=user12345,r=clientnonceclientnonce,r=clientnonceclientnonce"
				  "servernonceservernonce,s=c2FsdHNhbHRzYWx0,i=4096,c=biws,"
				  "r=clientnonceclientnonceservernonceservernonce";
	double t0 = thread_cpu_us();
	for (int i = 0; i < 10; i++) {
		HMAC(EVP_sha256(), key, sizeof key, (const unsigned char *)msg, sizeof msg - 1, sig,
		     &len);
		EVP_Digest(sig, sizeof sig, h, &len, EVP_sha256(), NULL);
		HMAC(EVP_sha256(), h, sizeof h, (const unsigned char *)msg, sizeof msg - 1, sig,
		     &len);
	}
	return (thread_cpu_us() - t0) / 10;
}

int login_capacity_calibrate(void)
{
	if (!server.ssl_ctx)
		return -1;
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	if (!cctx)
		return -1;
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	double total = 0;
	int done = 0;
	for (int i = 0; i < LC_CALIB; i++) {
		double us = one_handshake(cctx);
		if (us > 0) {
			total += us;
			done++;
		}
	}
	SSL_CTX_free(cctx);
	if (!done)
		return -1;
	LC.calib_us = total / done + scram_verify_us();
	log_info("capacity: calibration: %.0f us of CPU per login (TLS handshake and SCRAM, "
		 "server side, %d handshakes)", LC.calib_us, done);
	return 0;
}

/* "capacity <observed-us|-> <samples> <calibrated-us|->" */
void login_capacity_answer(char *buf, size_t len)
{
	char obs[32] = "-", cal[32] = "-";
	if (LC.samples)
		snprintf(obs, sizeof obs, "%.0f", LC.avg_us);
	if (LC.calib_us > 0)
		snprintf(cal, sizeof cal, "%.0f", LC.calib_us);
	snprintf(buf, len, "capacity %s %ld %s", obs, LC.samples, cal);
}
