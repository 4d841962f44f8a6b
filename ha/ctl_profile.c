/* srmctl profile apply / profile show, and the pair's agreement on the re-login limits
 * (see ctl_profile.h).  apply looks the profile row up here too (the same tables srmctl
 * shows), so srmd never trusts a client's numbers beyond its three arguments. */
#include "ha/ctl_profile.h"
#include "ha/engine_child.h"

#include "ha/login_profiles.h"
#include "ha/pair.h"
#include "ha/srm.h"
#include "lib/log.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

struct profile_call {
	TAILQ_ENTRY(profile_call) entry;
	struct profile_sync *ps;
	struct ctl_conn *c;
	uint32_t id;
	struct event *timeout;
	long lower_ms, upper_ms;
};
TAILQ_HEAD(profile_call_list, profile_call);

struct profile_sync {
	struct srm *srm;
	uint32_t next_id;
	struct profile_call_list calls;
	int peer_known; /* the peer told us its limits since srmd started */
	long peer_lower_ms, peer_upper_ms;
};

/* ---- frames ---- */

static void put_u32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_u64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint32_t get_u32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static uint64_t get_u64(const uint8_t *b)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/* kind u8, reserved u8 (0), id u32, lower_ms u64, upper_ms u64; big-endian. */
int profile_frame_encode(const struct profile_frame *f, uint8_t *buf, size_t cap)
{
	if (cap < PROFILE_FRAME_SIZE || f->kind < PROFILE_ANNOUNCE ||
	    f->kind > PROFILE_SET_REFUSED)
		return -1;
	buf[0] = f->kind;
	buf[1] = 0;
	put_u32(buf + 2, f->id);
	put_u64(buf + 6, f->lower_ms);
	put_u64(buf + 14, f->upper_ms);
	return PROFILE_FRAME_SIZE;
}

int profile_frame_decode(const uint8_t *buf, size_t len, struct profile_frame *f)
{
	if (len != PROFILE_FRAME_SIZE || buf[0] < PROFILE_ANNOUNCE ||
	    buf[0] > PROFILE_SET_REFUSED || buf[1] != 0)
		return -1;
	f->kind = buf[0];
	f->id = get_u32(buf + 2);
	f->lower_ms = get_u64(buf + 6);
	f->upper_ms = get_u64(buf + 14);
	if (f->upper_ms > (uint64_t)PROFILE_MAX_MS || f->lower_ms > f->upper_ms)
		return -2;
	return 0;
}

static void frame_send(struct srm *srm, uint8_t kind, uint32_t id, long lower_ms,
		       long upper_ms)
{
	struct profile_frame f = {kind, id, (uint64_t)lower_ms, (uint64_t)upper_ms};
	uint8_t buf[PROFILE_FRAME_SIZE];
	if (!srm->pair || profile_frame_encode(&f, buf, sizeof buf) < 0 ||
	    pair_send_app(srm->pair, HA_APP_PROFILE, buf, sizeof buf) < 0)
		log_warnx("profile: cannot send to the peer (peer link)");
}

/* ---- this node ---- */

void profile_apply_local(struct srm *srm, long lower_ms, long upper_ms)
{
	log_info("profile: Client Re-Login Lower Limit %ld ms -> %ld ms, Upper Limit %ld ms -> "
		 "%ld ms (in memory until srmd restarts)",
		 srm->cfg.ha_relogin_lower_ms, lower_ms, srm->cfg.ha_relogin_upper_ms, upper_ms);
	srm->cfg.ha_relogin_lower_ms = lower_ms;
	srm->cfg.ha_relogin_upper_ms = upper_ms;
	if (srm->pair)
		pair_relogin_changed(srm->pair);
	else if (srm->engine) /* what the engine advertises (disco form urn:duet:relogin:0) */
		engine_child_set_relogin(srm->engine, lower_ms, upper_ms);
}

static void mismatch_log(struct profile_sync *ps)
{
	const struct duet_config *cfg = &ps->srm->cfg;
	if (ps->peer_lower_ms != cfg->ha_relogin_lower_ms ||
	    ps->peer_upper_ms != cfg->ha_relogin_upper_ms)
		log_warnx("profile: mismatch: this node's re-login limits are %ld/%ld ms, the "
			  "peer's %ld/%ld ms (the manual requires identical values; srmctl "
			  "profile apply sets both)",
			  cfg->ha_relogin_lower_ms, cfg->ha_relogin_upper_ms, ps->peer_lower_ms,
			  ps->peer_upper_ms);
}

/* ---- the pair ---- */

struct profile_sync *profile_sync_new(struct srm *srm)
{
	struct profile_sync *ps = calloc(1, sizeof *ps);
	if (!ps)
		return NULL;
	ps->srm = srm;
	ps->next_id = 1;
	TAILQ_INIT(&ps->calls);
	return ps;
}

static void call_free(struct profile_call *call)
{
	TAILQ_REMOVE(&call->ps->calls, call, entry);
	event_free(call->timeout);
	free(call);
}

void profile_sync_free(struct profile_sync *ps)
{
	if (!ps)
		return;
	/* ctl_server_free() ran first and cancelled every call; this is only a safety net. */
	struct profile_call *call;
	while ((call = TAILQ_FIRST(&ps->calls)))
		call_free(call);
	free(ps);
}

void profile_sync_peer_up(struct profile_sync *ps)
{
	if (!ps)
		return;
	ps->peer_known = 0;
	frame_send(ps->srm, PROFILE_ANNOUNCE, 0, ps->srm->cfg.ha_relogin_lower_ms,
		   ps->srm->cfg.ha_relogin_upper_ms);
}

static void call_answer(struct profile_call *call, int ok, long lower_ms, long upper_ms,
			const char *why)
{
	struct ctl_conn *c = call->c;
	int peer = pair_peer_node(call->ps->srm->pair);
	int self = (int)call->ps->srm->cfg.node_id;
	ctl_conn_set_cancel(c, NULL, NULL);
	call_free(call);
	if (ok) {
		ctl_body_printf(c, "node %d: relogin lower %ld s, upper %ld s\n", peer,
				lower_ms / 1000, upper_ms / 1000);
		ctl_reply_ok(c);
	} else {
		ctl_reply_error(c, "peer", "done on node %d, but node %d failed: %s", self, peer,
				why);
	}
}

static void on_call_timeout(evutil_socket_t fd, short what, void *arg)
{
	call_answer(arg, 0, 0, 0, "the peer did not answer in time");
}

static void set_request(struct profile_sync *ps, const struct profile_frame *f, int range_ok)
{
	struct srm *srm = ps->srm;
	if (!range_ok) {
		log_warnx("profile: the peer asked for out-of-range limits %llu/%llu ms: refused",
			  (unsigned long long)f->lower_ms, (unsigned long long)f->upper_ms);
		frame_send(srm, PROFILE_SET_REFUSED, f->id, srm->cfg.ha_relogin_lower_ms,
			   srm->cfg.ha_relogin_upper_ms);
		return;
	}
	log_info("profile: the peer applies a login profile to both nodes");
	profile_apply_local(srm, (long)f->lower_ms, (long)f->upper_ms);
	ps->peer_known = 1;
	ps->peer_lower_ms = (long)f->lower_ms;
	ps->peer_upper_ms = (long)f->upper_ms;
	frame_send(srm, PROFILE_SET_OK, f->id, srm->cfg.ha_relogin_lower_ms,
		   srm->cfg.ha_relogin_upper_ms);
}

void profile_sync_on_frame(struct profile_sync *ps, const uint8_t *payload, size_t len)
{
	if (!ps)
		return;
	struct profile_frame f;
	int rc = profile_frame_decode(payload, len, &f);
	if (rc == -1) {
		log_warnx("profile: malformed frame from the peer (%zu bytes) ignored", len);
		return;
	}
	if (f.kind == PROFILE_SET) {
		set_request(ps, &f, rc == 0);
		return;
	}
	if (rc < 0) {
		log_warnx("profile: out-of-range limits from the peer ignored");
		return;
	}
	ps->peer_known = 1;
	ps->peer_lower_ms = (long)f.lower_ms;
	ps->peer_upper_ms = (long)f.upper_ms;
	if (f.kind == PROFILE_ANNOUNCE) {
		mismatch_log(ps);
		return;
	}
	struct profile_call *call = TAILQ_FIRST(&ps->calls);
	while (call && call->id != f.id)
		call = TAILQ_NEXT(call, entry);
	if (!call) {
		log_info("profile: answer %u from the peer came after its timeout", f.id);
		mismatch_log(ps);
		return;
	}
	if (f.kind == PROFILE_SET_REFUSED)
		call_answer(call, 0, 0, 0, "it refused the limits");
	else
		call_answer(call, 1, ps->peer_lower_ms, ps->peer_upper_ms, NULL);
}

static void call_cancel(void *arg)
{
	call_free(arg);
}

/* ---- commands ---- */

static int number_parse(const char *s, unsigned long max, unsigned long *out)
{
	if (!*s || strlen(s) > 10)
		return -1;
	unsigned long v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

static void cmd_profile_apply(struct ctl_conn *c, int argc, char **argv)
{
	struct srm *srm = ctl_conn_ctx(c);
	unsigned long hw, users;
	enum login_mode mode = login_mode_parse(argv[1]);
	if (number_parse(argv[0], 100000, &hw) < 0 || !mode ||
	    number_parse(argv[2], 1000000000UL, &users) < 0) {
		ctl_reply_error(c, "usage", "profile apply HARDWARE MODE USERS: HARDWARE 500, "
			       "1000, 2000, 5000 or 15000, MODE active-active or active-standby, "
			       "USERS a number");
		return;
	}
	const struct login_profile_table *t;
	const struct login_profile_row *r;
	char why[256];
	if (login_profile_lookup((unsigned)hw, mode, users, &t, &r, why, sizeof why) < 0) {
		ctl_reply_error(c, "usage", "%s", why);
		return;
	}
	if (srm->pair && !ctl_conn_local(c) && !pair_peer_reachable(srm->pair)) {
		ctl_reply_error(c, "peer-unreachable", "the peer link is down: nothing changed "
			       "(--local applies to this node only)");
		return;
	}
	long lower_ms = (long)r->lower * 1000, upper_ms = (long)r->upper * 1000;
	ctl_body_printf(c, "profile: Table %d, %s, %s, %lu users -> row %u (%s)\n", t->number,
			t->hardware_text, login_mode_name(mode), users, r->users,
			r->im_only ? "IM only" : "Full UC");
	if (lower_ms != srm->cfg.critical_service_down_delay_ms)
		ctl_body_printf(c, "note: lower limit %u s differs from this node's Critical "
				   "Service Down Delay (%ld ms); the manual's tables assume 120 s\n",
				r->lower, srm->cfg.critical_service_down_delay_ms);
	profile_apply_values(c, srm, lower_ms, upper_ms);
}

void profile_apply_values(struct ctl_conn *c, struct srm *srm, long lower_ms, long upper_ms)
{
	int forward = srm->pair && !ctl_conn_local(c);
	if (forward && !pair_peer_reachable(srm->pair)) {
		ctl_reply_error(c, "peer-unreachable", "the peer link is down: nothing changed "
			       "(--local applies to this node only)");
		return;
	}
	profile_apply_local(srm, lower_ms, upper_ms);
	ctl_body_printf(c, "node %ld: relogin lower %ld s, upper %ld s\n", srm->cfg.node_id,
			lower_ms / 1000, upper_ms / 1000);
	if (!forward) {
		if (srm->pair) {
			ctl_body_printf(c, "node %d: not changed (--local)\n",
					pair_peer_node(srm->pair));
			/* The peer then reports the mismatch too. */
			if (pair_peer_reachable(srm->pair))
				frame_send(srm, PROFILE_ANNOUNCE, 0, lower_ms, upper_ms);
		}
		ctl_reply_ok(c);
		return;
	}
	struct profile_sync *ps = srm->profile;
	struct profile_call *call = calloc(1, sizeof *call);
	if (call)
		call->timeout = evtimer_new(srm->base, on_call_timeout, call);
	if (!call || !call->timeout) {
		free(call);
		ctl_reply_error(c, "peer", "done on node %ld, but not sent to the peer: out of "
			       "memory", srm->cfg.node_id);
		return;
	}
	call->ps = ps;
	call->c = c;
	call->id = ps->next_id++;
	if (ps->next_id == 0)
		ps->next_id = 1;
	call->lower_ms = lower_ms;
	call->upper_ms = upper_ms;
	TAILQ_INSERT_TAIL(&ps->calls, call, entry);
	struct profile_frame f = {PROFILE_SET, call->id, (uint64_t)lower_ms, (uint64_t)upper_ms};
	uint8_t buf[PROFILE_FRAME_SIZE];
	if (profile_frame_encode(&f, buf, sizeof buf) < 0 ||
	    pair_send_app(srm->pair, HA_APP_PROFILE, buf, sizeof buf) < 0) {
		call_free(call);
		ctl_reply_error(c, "peer", "done on node %ld, but the peer link refused the "
			       "request", srm->cfg.node_id);
		return;
	}
	struct timeval tv = {PROFILE_TIMEOUT_MS / 1000, (PROFILE_TIMEOUT_MS % 1000) * 1000};
	evtimer_add(call->timeout, &tv);
	ctl_conn_set_cancel(c, call_cancel, call);
}

/* 1 when the peer's last announced limits differ from this node's. */
static int mismatch_now(const struct srm *srm)
{
	const struct profile_sync *ps = srm->profile;
	return ps && ps->peer_known &&
	       (ps->peer_lower_ms != srm->cfg.ha_relogin_lower_ms ||
		ps->peer_upper_ms != srm->cfg.ha_relogin_upper_ms);
}

void profile_status_text(struct ctl_conn *c, struct srm *srm)
{
	ctl_body_printf(c, "relogin:   lower %ld ms, upper %ld ms", srm->cfg.ha_relogin_lower_ms,
			srm->cfg.ha_relogin_upper_ms);
	if (mismatch_now(srm))
		ctl_body_printf(c, " (warning: profile mismatch: node %d has lower %ld ms, upper "
				   "%ld ms)",
				pair_peer_node(srm->pair), srm->profile->peer_lower_ms,
				srm->profile->peer_upper_ms);
	ctl_body_printf(c, "\n");
}

void profile_status_json(struct ctl_conn *c, struct srm *srm)
{
	ctl_body_printf(c, ",\"relogin\":{\"lower_ms\":%ld,\"upper_ms\":%ld",
			srm->cfg.ha_relogin_lower_ms, srm->cfg.ha_relogin_upper_ms);
	if (srm->pair) {
		const struct profile_sync *ps = srm->profile;
		if (ps && ps->peer_known)
			ctl_body_printf(c, ",\"peer_lower_ms\":%ld,\"peer_upper_ms\":%ld",
					ps->peer_lower_ms, ps->peer_upper_ms);
		else
			ctl_body_printf(c, ",\"peer_lower_ms\":null,\"peer_upper_ms\":null");
		ctl_body_printf(c, ",\"mismatch\":%s", mismatch_now(srm) ? "true" : "false");
	}
	ctl_body_printf(c, "}");
}

static void cmd_profile_show(struct ctl_conn *c, int argc, char **argv)
{
	struct srm *srm = ctl_conn_ctx(c);
	const struct duet_config *cfg = &srm->cfg;
	const struct profile_sync *ps = srm->profile;
	int pair = srm->pair != NULL;
	int link = pair && pair_peer_reachable(srm->pair);
	int known = ps && ps->peer_known;
	int mismatch = mismatch_now(srm);
	if (ctl_conn_json(c)) {
		ctl_body_printf(c, "{\"node_id\":%ld,\"relogin_lower_ms\":%ld,"
				   "\"relogin_upper_ms\":%ld,\"critical_service_down_delay_ms\":%ld",
				cfg->node_id, cfg->ha_relogin_lower_ms, cfg->ha_relogin_upper_ms,
				cfg->critical_service_down_delay_ms);
		if (pair) {
			ctl_body_printf(c, ",\"peer\":{\"node_id\":%d,\"link_up\":%s,\"known\":%s",
					pair_peer_node(srm->pair), link ? "true" : "false",
					known ? "true" : "false");
			if (known)
				ctl_body_printf(c, ",\"relogin_lower_ms\":%ld,\"relogin_upper_ms\":%ld",
						ps->peer_lower_ms, ps->peer_upper_ms);
			ctl_body_printf(c, "},\"mismatch\":%s", mismatch ? "true" : "false");
		}
		ctl_body_printf(c, "}\n");
		ctl_reply_ok(c);
		return;
	}
	ctl_body_printf(c, "node %ld: relogin lower %ld ms, upper %ld ms (Critical Service Down "
			   "Delay %ld ms)\n",
			cfg->node_id, cfg->ha_relogin_lower_ms, cfg->ha_relogin_upper_ms,
			cfg->critical_service_down_delay_ms);
	if (pair) {
		int peer = pair_peer_node(srm->pair);
		if (known)
			ctl_body_printf(c, "node %d: relogin lower %ld ms, upper %ld ms%s\n", peer,
					ps->peer_lower_ms, ps->peer_upper_ms,
					link ? "" : " (last known; peer link down)");
		else
			ctl_body_printf(c, "node %d: unknown (no announcement since the peer link "
					   "came up)\n", peer);
		ctl_body_printf(c, "%s\n", mismatch ? "warning: profile mismatch between the nodes"
						    : known ? "profile: identical on both nodes"
							    : "profile: not compared");
	}
	ctl_reply_ok(c);
}

const struct ctl_command ctl_profile_commands[] = {
	{"profile apply", "HARDWARE MODE USERS", 3, 3, 0, 1, cmd_profile_apply},
	{"profile show", "", 0, 0, 1, 0, cmd_profile_show},
	{"profile auto", "MODE USERS [calibrate]", 2, 3, 1, 0, cmd_profile_auto},
	{"profile apply-auto", "MODE USERS", 2, 2, 0, 1, cmd_profile_apply_auto},
	{NULL, NULL, 0, 0, 0, 0, NULL},
};
