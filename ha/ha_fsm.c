/* The dispatcher of the HA state machine: validates an event, updates the facts it carries
 * (peer view, service status, timers), finds the first table row for (state, event, guard),
 * runs its action, then derives what every state implies (serve set, timers, persistence,
 * heartbeat) in one place, like sasyncd's carp_update_state().  See ha/ha_table.c for rows. */
#include "ha/ha_fsm.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const ha_state_names[HA_ST_COUNT] = {
	[HA_ST_INITIALIZING] = "Initializing",
	[HA_ST_IDLE] = "Idle",
	[HA_ST_NORMAL] = "Normal",
	[HA_ST_BACKUP] = "Running in Backup Mode",
	[HA_ST_TAKING_OVER] = "Taking Over",
	[HA_ST_FAILING_OVER] = "Failing Over",
	[HA_ST_FAILED_OVER] = "Failed Over",
	[HA_ST_FAILED_OVER_CSNR] = "Failed Over with Critical Services Not Running",
	[HA_ST_FALLING_BACK] = "Falling Back",
	[HA_ST_TAKING_BACK] = "Taking Back",
	[HA_ST_FAILED_MODE] = "Running in Failed Mode",
	[HA_ST_BACKUP_ACTIVATED] = "Backup Activated",
	[HA_ST_FAILOVER_AFFECTED] = "Failover Affected Services",
	[HA_ST_UNKNOWN] = "Unknown",
};

const char *const ha_reason_names[HA_RS_COUNT] = {
	[HA_RS_NORMAL] = "Normal",
	[HA_RS_ADMIN] = "On Admin Request",
	[HA_RS_INIT] = "Initialization",
	[HA_RS_AUTO_FALLBACK] = "Automatic Fallback",
	[HA_RS_CSD] = "Critical Service Down",
	[HA_RS_DB_FAILURE] = "Database Failure",
	[HA_RS_START_FAILED] = "Start of Critical Services Failed",
	[HA_RS_PEER_DOWN] = "Peer Down",
	[HA_RS_PEER_REBOOT] = "Peer Reboot",
	[HA_RS_PEER_DOWN_INIT] = "Peer Down During Initialization",
	[HA_RS_TAKEOVER_FAILED] = "Take Over Users Failed",
	[HA_RS_TAKEBACK_FAILED] = "Take Back Users Failed",
	[HA_RS_UNKNOWN] = "Unknown",
	[HA_RS_AUTO_DB] = "Auto Recover Database Failure",
	[HA_RS_AUTO_CSD] = "Auto Recover Critical Service Down",
	[HA_RS_QUORUM_LOST] = "Quorum Lost",
};

const char *const ha_event_names[HA_EV_COUNT] = {
	[HA_EV_PEER_UP] = "peer-up",
	[HA_EV_PEER_HEARTBEAT] = "peer-heartbeat",
	[HA_EV_PEER_LOST] = "peer-lost",
	[HA_EV_PEER_GOODBYE] = "peer-goodbye",
	[HA_EV_MSG_REQ_FAILOVER] = "msg-request-failover",
	[HA_EV_MSG_REQ_FALLBACK] = "msg-request-fallback",
	[HA_EV_MSG_ACK] = "msg-ack",
	[HA_EV_MSG_DONE] = "msg-done",
	[HA_EV_MSG_ABORT] = "msg-abort",
	[HA_EV_MSG_RECOVER] = "msg-recover",
	[HA_EV_MSG_HA_DISABLE] = "msg-ha-disable",
	[HA_EV_MSG_HA_ENABLE] = "msg-ha-enable",
	[HA_EV_MSG_OP_FAILOVER] = "msg-op-failover",
	[HA_EV_MSG_OP_FALLBACK] = "msg-op-fallback",
	[HA_EV_SERVICE_DOWN] = "service-down",
	[HA_EV_SERVICE_UP] = "service-up",
	[HA_EV_START_FAILED] = "start-failed",
	[HA_EV_USERS_FAILED] = "users-failed",
	[HA_EV_REPL_CAUGHT_UP] = "replication-caught-up",
	[HA_EV_INTERNAL_ERROR] = "internal-error",
	[HA_EV_QUORUM_LOST] = "quorum-lost",
	[HA_EV_QUORUM_BACK] = "quorum-back",
	[HA_EV_OP_FAILOVER] = "op-failover",
	[HA_EV_OP_FALLBACK] = "op-fallback",
	[HA_EV_OP_RECOVER] = "op-recover",
	[HA_EV_OP_HA_ENABLE] = "op-ha-enable",
	[HA_EV_OP_HA_DISABLE] = "op-ha-disable",
	[HA_EV_TIMER_CSD] = "timer-critical-service-down",
	[HA_EV_TIMER_AUTO_FALLBACK] = "timer-automatic-fallback",
	[HA_EV_TIMER_STEP] = "timer-step",
	[HA_EV_TIMER_RELEASE] = "timer-release",
	[HA_EV_TIMER_INIT] = "timer-init",
	[HA_EV_TIMER_CATCHUP] = "timer-catchup",
};

const char *const ha_action_names[HA_ACT_TYPE_COUNT] = {
	[HA_ACT_PERSIST] = "persist",
	[HA_ACT_RELEASE] = "release",
	[HA_ACT_SERVE] = "serve",
	[HA_ACT_ENGINE_START] = "engine-start",
	[HA_ACT_ENGINE_RESTART] = "engine-restart",
	[HA_ACT_SEND] = "send",
	[HA_ACT_SEND_STATE] = "send-state",
	[HA_ACT_CATCHUP_WAIT] = "catchup-wait",
	[HA_ACT_TIMER_ARM] = "timer-arm",
	[HA_ACT_TIMER_CANCEL] = "timer-cancel",
	[HA_ACT_ALARM] = "alarm",
};

const char *const ha_msg_names[HA_MSG_COUNT] = {
	[HA_MSG_REQ_FAILOVER] = "request-failover",
	[HA_MSG_REQ_FALLBACK] = "request-fallback",
	[HA_MSG_ACK] = "ack",
	[HA_MSG_DONE] = "done",
	[HA_MSG_ABORT] = "abort",
	[HA_MSG_RECOVER] = "recover",
	[HA_MSG_HA_DISABLE] = "ha-disable",
	[HA_MSG_HA_ENABLE] = "ha-enable",
	[HA_MSG_OP_FAILOVER] = "op-failover",
	[HA_MSG_OP_FALLBACK] = "op-fallback",
};

const char *const ha_step_names[HA_STEP_COUNT] = {
	[HA_STEP_NONE] = "none",
	[HA_STEP_WAIT_ACK] = "wait-ack",
	[HA_STEP_WAIT_CATCHUP] = "wait-catchup",
	[HA_STEP_SERVING] = "serving",
	[HA_STEP_WAIT_DONE] = "wait-done",
	[HA_STEP_RELEASING] = "releasing",
};

const char *const ha_alarm_names[HA_ALARM_COUNT] = {
	[HA_ALARM_CATCHUP_STARTUP] = "catchup-startup",
	[HA_ALARM_CATCHUP_TAKEBACK] = "catchup-takeback",
	[HA_ALARM_SERVICE_DOWN] = "critical-service-down",
	[HA_ALARM_FAILED_MODE] = "failed-mode",
	[HA_ALARM_SPLIT_BRAIN] = "split-brain",
};

const char *ha_state_name(int s)
{
	return s >= 0 && s < HA_ST_COUNT ? ha_state_names[s] : "?";
}

const char *ha_reason_name(int r)
{
	return r >= 0 && r < HA_RS_COUNT ? ha_reason_names[r] : "?";
}

const char *ha_event_name(int e)
{
	return e >= 0 && e < HA_EV_COUNT ? ha_event_names[e] : "?";
}

int ha_state_from_name(const char *name)
{
	for (int i = 0; i < HA_ST_COUNT; i++)
		if (strcmp(name, ha_state_names[i]) == 0)
			return i;
	return -1;
}

int ha_reason_from_name(const char *name)
{
	for (int i = 0; i < HA_RS_COUNT; i++)
		if (strcmp(name, ha_reason_names[i]) == 0)
			return i;
	return -1;
}

void ha_config_defaults(struct ha_config *cfg, int node_id)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->node_id = node_id;
	cfg->csd_delay_ms = 90000;
	cfg->relogin_window_ms = 120000;
	cfg->step_timeout_ms = 30000;
	cfg->init_timeout_ms = 10000;
	cfg->catchup_timeout_ms = 60000;
	cfg->auto_fallback = false;
	cfg->auto_fallback_delay_ms = 30 * 60000;
}

enum ha_event_type ha_event_from_msg(enum ha_msg_type t)
{
	return (enum ha_event_type)(HA_EV_MSG_REQ_FAILOVER + (int)t);
}

int ha_peer_node(const struct ha_fsm *f)
{
	return 3 - f->cfg.node_id;
}

bool ha_fsm_alone_without_quorum(const struct ha_fsm *f)
{
	return f->quorum_lost && !f->peer_alive;
}

/* ---- validation of everything that may come from the network or a file ---- */

static bool state_ok(int s) { return s >= 0 && s < HA_ST_COUNT; }
static bool reason_ok(int r) { return r >= 0 && r < HA_RS_COUNT; }

bool ha_msg_valid(const struct ha_msg *m)
{
	if ((int)m->type < 0 || m->type >= HA_MSG_COUNT || !reason_ok((int)m->reason))
		return false;
	if (m->type == HA_MSG_REQ_FAILOVER || m->type == HA_MSG_REQ_FALLBACK)
		return (m->home == 1 || m->home == 2) && m->txid != 0;
	if (m->type == HA_MSG_ACK || m->type == HA_MSG_DONE || m->type == HA_MSG_ABORT ||
	    m->type == HA_MSG_RECOVER)
		return m->txid != 0;
	return true;
}

bool ha_peer_info_valid(const struct ha_peer_info *p)
{
	return state_ok((int)p->state) && reason_ok((int)p->reason) && state_ok((int)p->resume) &&
	       (p->serve & ~HA_HOMES_ALL) == 0;
}

bool ha_snapshot_valid(const struct ha_snapshot *s)
{
	if (!state_ok((int)s->state) || !reason_ok((int)s->reason) || (s->serve & ~HA_HOMES_ALL))
		return false;
	const struct ha_tx *t = &s->tx;
	if ((int)t->step < 0 || t->step >= HA_STEP_COUNT || !reason_ok((int)t->reason) ||
	    !state_ok((int)t->prev_state) || !reason_ok((int)t->prev_reason))
		return false;
	if (t->step != HA_STEP_NONE && (t->id == 0 || (t->home != 1 && t->home != 2)))
		return false;
	return true;
}

int ha_snapshot_format(const struct ha_snapshot *s, char *buf, size_t len)
{
	int n = snprintf(buf, len,
			 "duet-ha %d state=%d reason=%d manual=%d disabled=%d serve=%u seq=%" PRIu32
			 " tx=%" PRIu32 ",%d,%u,%d,%d,%d\n",
			 HA_SNAPSHOT_VERSION, (int)s->state, (int)s->reason, s->manual_failover ? 1 : 0,
			 s->ha_disabled ? 1 : 0, (unsigned)s->serve, s->seq, s->tx.id, (int)s->tx.step,
			 (unsigned)s->tx.home, (int)s->tx.reason, (int)s->tx.prev_state,
			 (int)s->tx.prev_reason);
	return n < 0 || (size_t)n >= len ? -1 : n;
}

int ha_snapshot_parse(const char *line, struct ha_snapshot *s)
{
	int ver, st, rs, man, dis, step, trs, pst, prs, end = 0;
	unsigned serve, home;
	uint32_t seq, id;
	if (strlen(line) > 256)
		return -1;
	if (sscanf(line,
		   "duet-ha %d state=%d reason=%d manual=%d disabled=%d serve=%u seq=%" SCNu32
		   " tx=%" SCNu32 ",%d,%u,%d,%d,%d%n",
		   &ver, &st, &rs, &man, &dis, &serve, &seq, &id, &step, &home, &trs, &pst, &prs,
		   &end) != 13 ||
	    ver != HA_SNAPSHOT_VERSION)
		return -1;
	if (line[end] != '\0' && strcmp(line + end, "\n") != 0)
		return -1;
	if ((man != 0 && man != 1) || (dis != 0 && dis != 1) || serve > HA_HOMES_ALL || home > 2 ||
	    step < 0 || step >= HA_STEP_COUNT || !state_ok(st) || !reason_ok(rs) ||
	    !reason_ok(trs) || !state_ok(pst) || !reason_ok(prs))
		return -1;
	memset(s, 0, sizeof *s);
	s->state = (enum ha_state)st;
	s->reason = (enum ha_reason)rs;
	s->manual_failover = man;
	s->ha_disabled = dis;
	s->serve = (uint8_t)serve;
	s->seq = seq;
	s->tx.id = id;
	s->tx.step = (enum ha_step)step;
	s->tx.home = (uint8_t)home;
	s->tx.reason = (enum ha_reason)trs;
	s->tx.prev_state = (enum ha_state)pst;
	s->tx.prev_reason = (enum ha_reason)prs;
	return ha_snapshot_valid(s) ? 0 : -1;
}

/* ---- action emission ---- */

static struct ha_action *emit(struct ha_fsm *f, enum ha_action_type type)
{
	static struct ha_action sink;
	if (!f->out || f->out->n >= HA_MAX_ACTIONS) {
		/* Cannot happen with the table as written (a few actions per event); flagged
		 * rather than written past the array. */
		f->overflow = true;
		memset(&sink, 0, sizeof sink);
		return &sink;
	}
	struct ha_action *a = &f->out->a[f->out->n++];
	memset(a, 0, sizeof *a);
	a->type = type;
	return a;
}

void ha_emit_simple(struct ha_fsm *f, enum ha_action_type type)
{
	emit(f, type);
}

void ha_emit_send(struct ha_fsm *f, enum ha_msg_type type, uint32_t txid, uint32_t txid2,
		  uint8_t home, enum ha_reason reason)
{
	struct ha_action *a = emit(f, HA_ACT_SEND);
	a->msg.type = type;
	a->msg.txid = txid;
	a->msg.txid2 = txid2;
	a->msg.home = home;
	a->msg.reason = reason;
}

void ha_emit_alarm(struct ha_fsm *f, enum ha_alarm alarm, bool raise)
{
	struct ha_action *a = emit(f, HA_ACT_ALARM);
	a->alarm = alarm;
	a->raise = raise;
}

void ha_timer_arm(struct ha_fsm *f, enum ha_timer t, int64_t delay_ms)
{
	if (delay_ms < 1)
		delay_ms = 1;
	f->deadline[t] = f->now_ms + delay_ms;
	f->armed_now |= 1u << t;
	struct ha_action *a = emit(f, HA_ACT_TIMER_ARM);
	a->timer = t;
	a->deadline_ms = f->deadline[t];
}

void ha_timer_cancel(struct ha_fsm *f, enum ha_timer t)
{
	if (!f->deadline[t])
		return;
	f->deadline[t] = 0;
	struct ha_action *a = emit(f, HA_ACT_TIMER_CANCEL);
	a->timer = t;
}

uint32_t ha_txid_new(struct ha_fsm *f)
{
	/* Unique per node (low bit: node) and across restarts (seq is persisted). */
	f->seq++;
	if (f->seq >= 0x7fffffffu)
		f->seq = 1;
	return (f->seq << 1) | (uint32_t)(f->cfg.node_id - 1);
}

/* ---- init ---- */

static enum ha_state implied_by_serve(const struct ha_fsm *f, uint8_t serve)
{
	if ((serve & HA_HOMES_ALL) == HA_HOMES_ALL)
		return HA_ST_BACKUP;
	if (serve & f->self_bit)
		return HA_ST_NORMAL;
	return HA_ST_FAILED_OVER;
}

void ha_fsm_init(struct ha_fsm *f, const struct ha_config *cfg, const struct ha_snapshot *restore,
		 ha_log_fn log, void *log_arg)
{
	memset(f, 0, sizeof *f);
	f->cfg = *cfg;
	f->log = log;
	f->log_arg = log_arg;
	f->self_bit = HA_HOME_BIT(cfg->node_id);
	f->peer_bit = HA_HOME_BIT(3 - cfg->node_id);
	f->state = HA_ST_INITIALIZING;
	f->reason = HA_RS_INIT;
	f->resume = HA_ST_NORMAL;
	if (restore) {
		f->resume = restore->state;
		if (f->resume == HA_ST_INITIALIZING)
			f->resume = HA_ST_NORMAL;
		if (f->resume == HA_ST_UNKNOWN)
			f->resume = implied_by_serve(f, restore->serve);
		f->manual_failover = restore->manual_failover;
		f->ha_disabled = restore->ha_disabled;
		f->seq = restore->seq;
		f->tx = restore->tx;
	}
	if (f->ha_disabled) {
		/* Maintenance survives the restart: no HA, this node serves its own users. */
		f->state = HA_ST_UNKNOWN;
		f->reason = HA_RS_UNKNOWN;
		f->tx.step = HA_STEP_NONE;
	}
}

/* ---- the view a peer gets ---- */

static bool is_transit(enum ha_state s)
{
	return s == HA_ST_FAILING_OVER || s == HA_ST_TAKING_OVER || s == HA_ST_TAKING_BACK ||
	       s == HA_ST_FALLING_BACK;
}

void ha_fsm_self_info(const struct ha_fsm *f, struct ha_peer_info *info)
{
	memset(info, 0, sizeof *info);
	info->state = f->state;
	info->reason = f->reason;
	info->resume = f->state == HA_ST_INITIALIZING ? f->resume
		       : f->state == HA_ST_UNKNOWN    ? implied_by_serve(f, f->serve)
						      : f->state;
	info->serve = f->serve;
	info->services_ok = !f->svc_failed;
	info->manual_failover = f->manual_failover;
	if (f->state == HA_ST_FAILED_MODE)
		info->txid = f->fail_id;
	else if (f->tx.step != HA_STEP_NONE &&
		 (is_transit(f->state) || f->state == HA_ST_INITIALIZING))
		info->txid = f->tx.id;
}

void ha_fsm_snapshot(const struct ha_fsm *f, struct ha_snapshot *snap)
{
	memset(snap, 0, sizeof *snap);
	/* While Initializing, the state to resume is what must survive another restart. */
	snap->state = f->state == HA_ST_INITIALIZING ? f->resume : f->state;
	snap->reason = f->reason;
	snap->manual_failover = f->manual_failover;
	snap->ha_disabled = f->ha_disabled;
	snap->serve = f->serve;
	snap->seq = f->seq;
	snap->tx = f->tx;
}

/* ---- what each state implies ---- */

/* The home nodes this node's engine serves in its state (DESIGN.md §1).  Running in Failed
 * Mode keeps users served while an operator looks: own users if the services run, the peer's
 * if the peer cannot serve them. */
static uint8_t serve_policy(const struct ha_fsm *f)
{
	uint8_t s = f->self_bit, p = f->peer_bit;
	/* Without quorum and without the peer, the other side of a partition may hold the
	 * quorum and serve everyone: nobody here, whatever the state (the rows also move the
	 * serving states to Failed Over (Quorum Lost)).  Maintenance (Unknown) is frozen. */
	if (ha_fsm_alone_without_quorum(f) && f->state != HA_ST_UNKNOWN)
		return 0;
	switch (f->state) {
	case HA_ST_INITIALIZING:
	case HA_ST_UNKNOWN:
		return f->serve;
	case HA_ST_NORMAL:
		return s;
	case HA_ST_IDLE:
	case HA_ST_FAILED_OVER:
	case HA_ST_FAILED_OVER_CSNR:
	case HA_ST_BACKUP_ACTIVATED:
		return 0;
	case HA_ST_BACKUP:
	case HA_ST_FAILOVER_AFFECTED:
	case HA_ST_TAKING_OVER:
		return s | p;
	case HA_ST_FAILING_OVER:
		return f->tx.step == HA_STEP_WAIT_ACK ? s : 0;
	case HA_ST_TAKING_BACK:
		return f->tx.step == HA_STEP_SERVING ? s : 0;
	case HA_ST_FALLING_BACK:
		return f->tx.step == HA_STEP_RELEASING ? s : (uint8_t)(s | p);
	case HA_ST_FAILED_MODE: {
		uint8_t m = f->svc_failed ? 0 : s;
		bool peer_cannot = !f->peer_alive || !f->peer_known || !f->peer.services_ok ||
				   f->peer.state == HA_ST_IDLE || f->peer.state == HA_ST_FAILED_OVER ||
				   f->peer.state == HA_ST_FAILED_OVER_CSNR ||
				   f->peer.state == HA_ST_BACKUP_ACTIVATED;
		return peer_cannot ? (uint8_t)(m | p) : m;
	}
	default:
		return f->serve;
	}
}

static void apply_serve(struct ha_fsm *f)
{
	uint8_t want = serve_policy(f);
	if (want == f->serve)
		return;
	uint8_t gone = f->serve & ~want, added = want & ~f->serve;
	for (int h = 1; h <= 2; h++) {
		if (!(gone & HA_HOME_BIT(h)))
			continue;
		struct ha_action *a = emit(f, HA_ACT_RELEASE);
		a->home = (uint8_t)h;
		/* Without quorum the peer is the one that may have it: send clients there, at
		 * once (a window would keep two writers). */
		a->to_peer = f->peer_alive || ha_fsm_alone_without_quorum(f);
		a->window_ms = f->peer_alive ? f->cfg.relogin_window_ms : 0;
	}
	struct ha_action *a = emit(f, HA_ACT_SERVE);
	a->serve = want;
	/* Only the coordinated moves announce their users; anything else arrives at once. */
	a->unplanned = added && f->state != HA_ST_TAKING_OVER && f->state != HA_ST_TAKING_BACK;
	f->serve = want;
}

/* The Critical Service Down Delay runs while a critical service is down and HA is on. */
static void apply_csd(struct ha_fsm *f)
{
	bool up = f->engine_up && f->db_up;
	if (f->state == HA_ST_UNKNOWN || up) {
		ha_timer_cancel(f, HA_TM_CSD);
		return;
	}
	if (!f->svc_failed && !f->deadline[HA_TM_CSD])
		ha_timer_arm(f, HA_TM_CSD, f->cfg.csd_delay_ms);
}

static int action_rank(enum ha_action_type t)
{
	/* Persist first (a restart resumes from it), then the engine's view, then messages. */
	static const int rank[HA_ACT_TYPE_COUNT] = {
		[HA_ACT_PERSIST] = 0,       [HA_ACT_ENGINE_START] = 1, [HA_ACT_ENGINE_RESTART] = 1,
		[HA_ACT_RELEASE] = 2,       [HA_ACT_SERVE] = 3,        [HA_ACT_SEND] = 4,
		[HA_ACT_SEND_STATE] = 5,    [HA_ACT_CATCHUP_WAIT] = 6, [HA_ACT_TIMER_CANCEL] = 7,
		[HA_ACT_TIMER_ARM] = 8,     [HA_ACT_ALARM] = 9,
	};
	return rank[t];
}

static void actions_sort(struct ha_actions *out)
{
	/* Stable insertion sort: the list is short and order within a rank matters. */
	for (size_t i = 1; i < out->n; i++) {
		struct ha_action key = out->a[i];
		size_t j = i;
		while (j > 0 && action_rank(out->a[j - 1].type) > action_rank(key.type)) {
			out->a[j] = out->a[j - 1];
			j--;
		}
		out->a[j] = key;
	}
}

static void logf_fsm(const struct ha_fsm *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void logf_fsm(const struct ha_fsm *f, const char *fmt, ...)
{
	if (!f->log)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	f->log(f->log_arg, line);
}

/* ---- facts carried by events, applied to a tentative copy before the lookup ---- */

static int facts_apply(struct ha_fsm *f, const struct ha_event *ev)
{
	switch (ev->type) {
	case HA_EV_PEER_UP:
		f->peer_alive = true;
		break;
	case HA_EV_PEER_HEARTBEAT:
		f->peer_alive = true;
		f->peer_known = true;
		f->peer = ev->peer;
		break;
	case HA_EV_PEER_LOST:
	case HA_EV_PEER_GOODBYE:
		f->peer_alive = false;
		f->peer_known = false; /* f->peer keeps the last view (Peer Down During Init.) */
		break;
	case HA_EV_SERVICE_DOWN:
		if (ev->service == HA_SVC_ENGINE)
			f->engine_up = false;
		else
			f->db_up = false;
		break;
	case HA_EV_SERVICE_UP:
		if (ev->service == HA_SVC_ENGINE)
			f->engine_up = true;
		else
			f->db_up = true;
		if (f->engine_up && f->db_up && f->svc_failed) {
			f->svc_failed = false;
			ha_emit_alarm(f, HA_ALARM_SERVICE_DOWN, false);
		}
		break;
	case HA_EV_START_FAILED:
		if (!f->svc_failed)
			ha_emit_alarm(f, HA_ALARM_SERVICE_DOWN, true);
		f->svc_failed = true;
		f->failed_svc = f->db_up ? HA_SVC_ENGINE : HA_SVC_DATABASE;
		break;
	case HA_EV_REPL_CAUGHT_UP:
		f->caught_up = true;
		break;
	case HA_EV_QUORUM_LOST:
		f->quorum_lost = true;
		break;
	case HA_EV_QUORUM_BACK:
		f->quorum_lost = false;
		break;
	default:
		break;
	}
	if (ev->type >= HA_EV_TIMER_CSD && ev->type <= HA_EV_TIMER_CATCHUP) {
		enum ha_timer t = (enum ha_timer)(ev->type - HA_EV_TIMER_CSD);
		if (!f->deadline[t])
			return -1; /* stale: the timer was cancelled */
		f->deadline[t] = 0;
		if (t == HA_TM_CSD && !(f->engine_up && f->db_up)) {
			if (!f->svc_failed)
				ha_emit_alarm(f, HA_ALARM_SERVICE_DOWN, true);
			f->svc_failed = true;
			/* The engine also fails when the database does: name the database. */
			f->failed_svc = f->db_up ? HA_SVC_ENGINE : HA_SVC_DATABASE;
		}
		if (t == HA_TM_INIT)
			f->init_expired = true;
		if (t == HA_TM_CATCHUP)
			f->catchup_expired = true;
	}
	return 0;
}

static bool event_valid(const struct ha_event *ev)
{
	if ((int)ev->type < 0 || ev->type >= HA_EV_COUNT)
		return false;
	if (ev->type == HA_EV_PEER_HEARTBEAT && !ha_peer_info_valid(&ev->peer))
		return false;
	if (ev->type >= HA_EV_MSG_REQ_FAILOVER && ev->type <= HA_EV_MSG_OP_FALLBACK &&
	    (!ha_msg_valid(&ev->msg) || ha_event_from_msg(ev->msg.type) != ev->type))
		return false;
	if ((ev->type == HA_EV_SERVICE_DOWN || ev->type == HA_EV_SERVICE_UP) &&
	    ev->service != HA_SVC_ENGINE && ev->service != HA_SVC_DATABASE)
		return false;
	if ((ev->type == HA_EV_OP_FAILOVER || ev->type == HA_EV_OP_FALLBACK) &&
	    (ev->target < 0 || ev->target > 2))
		return false;
	return true;
}

static enum ha_reason reason_resolve(const struct ha_fsm *f, const struct ha_event *ev, int r)
{
	switch (r) {
	case HA_RSN_KEEP:
		return f->reason;
	case HA_RSN_PEER:
		return f->peer.reason;
	case HA_RSN_SVC:
		return f->failed_svc == HA_SVC_DATABASE || !f->db_up ? HA_RS_DB_FAILURE : HA_RS_CSD;
	case HA_RSN_AUTO:
		return f->failed_svc == HA_SVC_DATABASE || !f->db_up ? HA_RS_AUTO_DB : HA_RS_AUTO_CSD;
	case HA_RSN_TX:
		return f->tx.reason;
	case HA_RSN_PREV:
		return f->tx.prev_reason;
	case HA_RSN_MSG:
		return ev->msg.reason;
	default:
		return (enum ha_reason)r;
	}
}

static const struct ha_row *row_find(const struct ha_fsm *f, const struct ha_event *ev)
{
	size_t n;
	const struct ha_row *t = ha_table(&n);
	for (size_t i = 0; i < n; i++) {
		if (!(t[i].states & (1u << f->state)) || !(t[i].events & (1ull << ev->type)))
			continue;
		if (t[i].guard && !t[i].guard(f, ev))
			continue;
		return &t[i];
	}
	return NULL;
}

bool ha_table_allows(enum ha_state from, enum ha_event_type ev, enum ha_state to)
{
	size_t n;
	const struct ha_row *t = ha_table(&n);
	for (size_t i = 0; i < n; i++) {
		if (!(t[i].states & (1u << from)) || !(t[i].events & (1ull << ev)))
			continue;
		if (t[i].next == HA_NEXT_SAME ? from == to : (int)to == t[i].next)
			return true;
	}
	return false;
}

static bool info_equal(const struct ha_peer_info *a, const struct ha_peer_info *b)
{
	return a->state == b->state && a->reason == b->reason && a->resume == b->resume &&
	       a->serve == b->serve && a->services_ok == b->services_ok &&
	       a->manual_failover == b->manual_failover && a->txid == b->txid;
}

static bool snap_equal(const struct ha_snapshot *a, const struct ha_snapshot *b)
{
	return a->state == b->state && a->reason == b->reason &&
	       a->manual_failover == b->manual_failover && a->ha_disabled == b->ha_disabled &&
	       a->serve == b->serve && a->seq == b->seq && memcmp(&a->tx, &b->tx, sizeof a->tx) == 0;
}

/* Everything a state implies, after the row's action: one place for all rows. */
static void post_step(struct ha_fsm *f, enum ha_state old_state, enum ha_step old_step,
		      const struct ha_snapshot *old_snap, const struct ha_peer_info *old_info)
{
	if (f->state != old_state || f->tx.step != old_step) {
		/* Timers belong to the state and step that armed them. */
		for (int t = 0; t < HA_TM_COUNT; t++)
			if (t != HA_TM_CSD && !(f->armed_now & (1u << t)))
				ha_timer_cancel(f, (enum ha_timer)t);
	}
	if (f->state != old_state) {
		if (!is_transit(f->state) && f->state != HA_ST_INITIALIZING)
			f->tx.step = HA_STEP_NONE;
		if (f->state == HA_ST_FAILED_OVER && f->cfg.auto_fallback && !f->manual_failover)
			ha_timer_arm(f, HA_TM_AUTO_FALLBACK, f->cfg.auto_fallback_delay_ms);
		if (f->state == HA_ST_FAILED_MODE)
			ha_emit_alarm(f, HA_ALARM_FAILED_MODE, true);
		else if (old_state == HA_ST_FAILED_MODE)
			ha_emit_alarm(f, HA_ALARM_FAILED_MODE, false);
		if (f->state == HA_ST_NORMAL)
			f->manual_failover = false;
	}
	apply_csd(f);
	apply_serve(f);

	struct ha_snapshot snap;
	ha_fsm_snapshot(f, &snap);
	if (!snap_equal(&snap, old_snap)) {
		struct ha_action *a = emit(f, HA_ACT_PERSIST);
		a->snap = snap;
	}
	struct ha_peer_info info;
	ha_fsm_self_info(f, &info);
	if (!info_equal(&info, old_info))
		ha_emit_simple(f, HA_ACT_SEND_STATE);
}

void ha_fsm_start(struct ha_fsm *f, int64_t now_ms, struct ha_actions *out)
{
	out->n = 0;
	f->out = out;
	f->now_ms = now_ms;
	f->armed_now = 0;
	ha_emit_simple(f, HA_ACT_ENGINE_START);
	if (f->state == HA_ST_UNKNOWN) {
		f->serve = f->self_bit;
		struct ha_action *a = emit(f, HA_ACT_SERVE);
		a->serve = f->serve;
	} else {
		ha_timer_arm(f, HA_TM_INIT, f->cfg.init_timeout_ms);
	}
	apply_csd(f);
	ha_emit_simple(f, HA_ACT_SEND_STATE);
	logf_fsm(f, "start: %s (%s), resume %s", ha_state_names[f->state],
		 ha_reason_names[f->reason], ha_state_names[f->resume]);
	actions_sort(out);
	f->out = NULL;
}

int ha_fsm_handle(struct ha_fsm *f, const struct ha_event *ev, struct ha_actions *out)
{
	out->n = 0;
	if (!event_valid(ev)) {
		logf_fsm(f, "event %d: malformed, ignored", (int)ev->type);
		return HA_EINVAL;
	}
	/* Facts and guards are evaluated on a copy: a refused event changes nothing. */
	struct ha_fsm tmp = *f;
	tmp.out = out;
	tmp.now_ms = ev->now_ms;
	tmp.armed_now = 0;
	tmp.overflow = false;
	const struct ha_row *row = NULL;
	if (facts_apply(&tmp, ev) == 0)
		row = row_find(&tmp, ev);
	if (!row) {
		out->n = 0;
		logf_fsm(f, "event %s: refused in %s (%s)", ha_event_names[ev->type],
			 ha_state_names[f->state], ha_reason_names[f->reason]);
		return HA_EREFUSED;
	}
	struct ha_snapshot old_snap;
	struct ha_peer_info old_info;
	ha_fsm_snapshot(f, &old_snap);
	ha_fsm_self_info(f, &old_info);
	enum ha_state old_state = f->state;
	enum ha_reason old_reason = f->reason;
	enum ha_step old_step = f->tx.step;

	*f = tmp;
	if (row->action)
		row->action(f, ev);
	/* The reason is resolved before the state changes (HA_RSN_PREV reads the transition). */
	enum ha_reason reason = reason_resolve(f, ev, row->reason);
	if (row->next != HA_NEXT_SAME)
		f->state = (enum ha_state)row->next;
	f->reason = reason;
	post_step(f, old_state, old_step, &old_snap, &old_info);
	if (f->state != old_state || f->reason != old_reason)
		logf_fsm(f, "event %s: %s (%s) -> %s (%s) [%s]", ha_event_names[ev->type],
			 ha_state_names[old_state], ha_reason_names[old_reason],
			 ha_state_names[f->state], ha_reason_names[f->reason], row->name);
	actions_sort(out);
	f->out = NULL;
	if (f->overflow) {
		logf_fsm(f, "event %s: action list overflow", ha_event_names[ev->type]);
		f->overflow = false;
	}
	return HA_OK;
}
