/* What clients are told about the re-login window (docs/login-profiles.md, "What clients
 * see"): a login refused by the unplanned-arrival throttle ends with a resource-constraint
 * stream error carrying <retry-after xmlns='urn:duet:relogin:0' seconds='N'/>, N drawn
 * uniformly over what is left of the throttle window so the refused clients come back
 * spread instead of together; and the server's disco#info carries a XEP-0128 form
 * (FORM_TYPE urn:duet:relogin:0) with the limits and the current admission rate.
 *
 * The limits start as the config file's [ha] relogin_lower_limit / relogin_upper_limit;
 * srmd sends `relogin <lower_ms> <upper_ms>` after a `srmctl profile apply`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "lib/clock.h"

#define RETRY_MIN_S 1
#define RETRY_DEFAULT_S 5 /* throttled without a known rate: spread over this */
#define RETRY_MAX_S 600

static struct {
	bool set;
	long lower_ms, upper_ms;
	int64_t throttle_end_ms; /* clock_mono_ms(); 0: no window known */
} RL;

static void limits(long *lower, long *upper)
{
	*lower = RL.set ? RL.lower_ms : server.cfg.ha_relogin_lower_ms;
	*upper = RL.set ? RL.upper_ms : server.cfg.ha_relogin_upper_ms;
}

void relogin_set_limits(long lower_ms, long upper_ms)
{
	RL.set = true;
	RL.lower_ms = lower_ms;
	RL.upper_ms = upper_ms;
}

void relogin_throttle_window(long window_ms)
{
	RL.throttle_end_ms = window_ms > 0 ? clock_mono_ms() + window_ms : 0;
}

/* Milliseconds left of the throttle window (srmd's, or the engine's storm guard), 0 when
 * none is running. */
static long window_left_ms(void)
{
	long left = 0;
	if (server.login_rate > 0 && RL.throttle_end_ms)
		left = (long)(RL.throttle_end_ms - clock_mono_ms());
	if (login_rate_effective() > 0) {
		long guard = login_guard_left_ms();
		if (guard > left)
			left = guard;
	}
	long crowd = login_crowd_drain_ms();
	if (crowd > left)
		left = crowd;
	return left > 0 ? left : 0;
}

long relogin_span_ms(void)
{
	long lower, upper;
	limits(&lower, &upper);
	return upper - lower;
}

/* Uniform from 1 to what is left of the window (srmd's throttle; the time the users it
 * announced and not admitted yet need at the rate logins are admitted; or the storm guard
 * with the time the crowd refused in the last second needs to get in at the rate), at most
 * RETRY_MAX_S; 1..5 s when nothing is known.  (A per-refusal virtual queue was tried: every
 * refusal, repeats included, pushed its tail further and clients were sent minutes away.) */
long relogin_retry_after(void)
{
	long left_s = (window_left_ms() + 999) / 1000;
	if (left_s <= 0)
		left_s = RETRY_DEFAULT_S;
	if (left_s > RETRY_MAX_S)
		left_s = RETRY_MAX_S;
	return RETRY_MIN_S + (long)arc4random_uniform((uint32_t)left_s);
}

void relogin_refuse(struct conn *c)
{
	login_capacity_refused();
	long n = relogin_retry_after();
	char text[64], app[96];
	snprintf(text, sizeof text, "login rate limit: retry in %ld s", n);
	snprintf(app, sizeof app, "<retry-after xmlns='" NS_RELOGIN "' seconds='%ld'/>", n);
	conn_stream_error_app(c, "resource-constraint", text, app);
}

static void field(struct xml_node *x, const char *var, const char *type, const char *value)
{
	struct xml_node *f = xml_new_child(x, "field");
	xml_set_attr(f, "var", var);
	if (type)
		xml_set_attr(f, "type", type);
	struct xml_node *v = xml_new_child(f, "value");
	xml_add_text(v, value, strlen(value));
}

void relogin_disco_form(struct xml_node *q)
{
	long lower, upper;
	limits(&lower, &upper);
	char buf[32];
	struct xml_node *x = xml_new_child_ns(q, "x", NS_DATA);
	xml_set_attr(x, "type", "result");
	field(x, "FORM_TYPE", "hidden", NS_RELOGIN);
	snprintf(buf, sizeof buf, "%ld", (lower + 999) / 1000);
	field(x, "relogin-lower-limit", NULL, buf);
	snprintf(buf, sizeof buf, "%ld", (upper + 999) / 1000);
	field(x, "relogin-upper-limit", NULL, buf);
	snprintf(buf, sizeof buf, "%.1f", login_rate_effective());
	field(x, "admission-rate", NULL, buf);
	snprintf(buf, sizeof buf, "%ld", (window_left_ms() + 999) / 1000);
	field(x, "admission-window-left", NULL, buf);
}
