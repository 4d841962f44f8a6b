/* The `auto` hardware profile (docs/login-profiles.md, "The auto profile"): the re-login
 * limits derived from this node's measured login capacity instead of the manual's tables.
 *
 *   profile auto MODE USERS [calibrate]   the derived limits (read-only)
 *   profile apply-auto MODE USERS         derive, then set them on both nodes
 *
 * srmd asks its engine `capacity` (docs/engine-protocol.md): the CPU time one login costs
 * it, observed over seconds busy with logins, or calibrated with in-memory handshakes.  The
 * observed figure wins once it has LC_MIN_SAMPLES seconds behind it; else a calibration runs
 * (also when asked), scaled by AUTO_CALIB_FACTOR for what it does not cover. */
#include "ha/ctl_profile.h"
#include "ha/engine_child.h"
#include "ha/login_profiles.h"
#include "ha/srm.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LC_MIN_SAMPLES 3
/* A calibration times the cryptography of a login (TLS handshake, SCRAM) only; stream
 * restarts, XML, binding, roster and presence add to it.  Measured with make bench-failover
 * (docs/benchmarks.md): observed / calibrated CPU per login, rounded up. */
#define AUTO_CALIB_FACTOR 2.0

struct auto_call {
	struct ctl_conn *c;
	struct srm *srm;
	struct engine_child_req *req;
	enum login_mode mode;
	unsigned long users;
	int apply, calibrate;
};

static int number_parse(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	if (!*s || strlen(s) > 10 || *s < '0' || *s > '9')
		return -1;
	unsigned long v = strtoul(s, &end, 10);
	if (*end || v > max)
		return -1;
	*out = v;
	return 0;
}

/* "capacity <observed-us|-> <samples> <calibrated-us|->" */
static int capacity_parse(const char *reply, double *obs, long *samples, double *cal)
{
	char o[32], k[32];
	if (sscanf(reply, "capacity %31s %ld %31s", o, samples, k) != 3)
		return -1;
	*obs = strcmp(o, "-") ? atof(o) : 0;
	*cal = strcmp(k, "-") ? atof(k) : 0;
	return 0;
}

static void call_cancel(void *arg)
{
	struct auto_call *ac = arg;
	if (ac->req)
		engine_child_req_cancel(ac->req);
	free(ac);
}

static void answer(struct auto_call *ac, double cpu_us, const char *source)
{
	struct ctl_conn *c = ac->c;
	struct srm *srm = ac->srm;
	unsigned lower = (unsigned)(srm->cfg.ha_relogin_lower_ms / 1000), upper;
	double rate;
	ctl_conn_set_cancel(c, NULL, NULL);
	if (login_profile_auto(cpu_us, ac->users, lower, &rate, &upper) < 0) {
		ctl_reply_error(c, "range", "%lu users at %.0f us of CPU per login do not fit in "
			       "a day", ac->users, cpu_us);
		free(ac);
		return;
	}
	double capacity = 1e6 / cpu_us;
	if (!ac->apply && ctl_conn_json(c)) {
		ctl_body_printf(c, "{\"hardware\":\"auto\",\"mode\":\"%s\",\"users\":%lu,"
				   "\"cpu_us_per_login\":%.0f,\"source\":\"%s\","
				   "\"capacity_per_s\":%.1f,\"rate_per_s\":%.1f,\"lower\":%u,"
				   "\"upper\":%u}\n",
				login_mode_name(ac->mode), ac->users, cpu_us, source, capacity, rate,
				lower, upper);
		ctl_reply_ok(c);
		free(ac);
		return;
	}
	ctl_body_printf(c, "profile: auto (node %ld: %.0f us of CPU per login, %s; capacity "
			   "%.0f logins/s, rate %.0f/s = %.0f%%), %s, %lu users\n",
			srm->cfg.node_id, cpu_us, source, capacity, rate, LOGIN_AUTO_HEADROOM * 100,
			login_mode_name(ac->mode), ac->users);
	if (!ac->apply) {
		ctl_body_printf(c, "lower:   %u\nupper:   %u\n", lower, upper);
		ctl_reply_ok(c);
	} else {
		log_info("profile: auto: %.0f us per login (%s), %lu users -> %u/%u s", cpu_us,
			 source, ac->users, lower, upper);
		profile_apply_values(c, srm, (long)lower * 1000, (long)upper * 1000);
	}
	free(ac);
}

static void on_capacity(void *arg, const char *reply)
{
	struct auto_call *ac = arg;
	ac->req = NULL;
	double obs, cal;
	long samples;
	if (!reply || capacity_parse(reply, &obs, &samples, &cal) < 0) {
		ctl_conn_set_cancel(ac->c, NULL, NULL);
		ctl_reply_error(ac->c, "engine", "the engine did not report its login capacity: %s",
				reply ? reply : "no answer");
		free(ac);
		return;
	}
	if (!ac->calibrate && samples >= LC_MIN_SAMPLES && obs > 0) {
		char source[64];
		snprintf(source, sizeof source, "observed over %ld busy seconds", samples);
		answer(ac, obs, source);
		return;
	}
	if (cal > 0) {
		answer(ac, cal * AUTO_CALIB_FACTOR, "calibrated");
		return;
	}
	/* Nothing observed yet: calibrate now. */
	ac->calibrate = 1;
	ac->req = engine_child_request(ac->srm->engine, "capacity calibrate", on_capacity, ac);
	if (!ac->req) {
		ctl_conn_set_cancel(ac->c, NULL, NULL);
		ctl_reply_error(ac->c, "engine", "the engine is not running");
		free(ac);
	}
}

static void start(struct ctl_conn *c, int argc, char **argv, int apply)
{
	struct srm *srm = ctl_conn_ctx(c);
	unsigned long users;
	enum login_mode mode = login_mode_parse(argv[0]);
	int calibrate = argc == 3 && strcmp(argv[2], "calibrate") == 0;
	if (!mode || number_parse(argv[1], 1000000000UL, &users) < 0 || (argc == 3 && !calibrate)) {
		ctl_reply_error(c, "usage", "profile %s MODE USERS%s: MODE active-active or "
			       "active-standby, USERS a number", apply ? "apply-auto" : "auto",
				apply ? "" : " [calibrate]");
		return;
	}
	struct auto_call *ac = calloc(1, sizeof *ac);
	if (!ac) {
		ctl_reply_error(c, "internal", "out of memory");
		return;
	}
	*ac = (struct auto_call){.c = c, .srm = srm, .mode = mode, .users = users,
				 .apply = apply, .calibrate = calibrate};
	ac->req = srm->engine ? engine_child_request(srm->engine,
						     calibrate ? "capacity calibrate" : "capacity",
						     on_capacity, ac)
			      : NULL;
	if (!ac->req) {
		free(ac);
		ctl_reply_error(c, "engine", "the engine is not running: nothing measured");
		return;
	}
	ctl_conn_set_cancel(c, call_cancel, ac);
}

void cmd_profile_auto(struct ctl_conn *c, int argc, char **argv) { start(c, argc, argv, 0); }
void cmd_profile_apply_auto(struct ctl_conn *c, int argc, char **argv)
{
	start(c, argc, argv, 1);
}
