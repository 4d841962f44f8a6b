/* The transition table of the HA state machine: rows {states, events, guard, action, next
 * state, reason}, first match wins (OpenBSD ospfd nbr_fsm_tbl style).  Row names cite the
 * manual's Table 31 rows (T1-T24, inventory-part2 §17.3) they implement.  Guards read facts
 * only; actions emit messages and timers and move the coordinated transition's step; the
 * serve set, persistence and heartbeats follow from the state in ha_fsm.c. */
#include "ha/ha_fsm.h"

#define SM(s) (1u << HA_ST_##s)
#define EM(e) (1ull << HA_EV_##e)
#define ST_ALL ((1u << HA_ST_COUNT) - 1)
#define ST_TRANSIT (SM(FAILING_OVER) | SM(TAKING_OVER) | SM(TAKING_BACK) | SM(FALLING_BACK))
#define ST_HA_ON (ST_ALL & ~SM(UNKNOWN))
#define ST_STABLE_ON (ST_HA_ON & ~ST_TRANSIT & ~SM(INITIALIZING))
#define ST_FAILED_OVERISH (SM(IDLE) | SM(FAILED_OVER))
/* Events that only update facts; every state accepts them (rows at the end). */
#define EV_INFO                                                                              \
	(EM(PEER_UP) | EM(PEER_HEARTBEAT) | EM(PEER_LOST) | EM(PEER_GOODBYE) |              \
	 EM(SERVICE_DOWN) | EM(SERVICE_UP) | EM(REPL_CAUGHT_UP) | EM(TIMER_CSD) |             \
	 EM(START_FAILED) | EM(QUORUM_LOST) | EM(QUORUM_BACK))
/* Events on which Initializing re-evaluates its decision. */
#define EV_INIT                                                                              \
	(EM(PEER_HEARTBEAT) | EM(PEER_LOST) | EM(PEER_GOODBYE) | EM(SERVICE_UP) |             \
	 EM(REPL_CAUGHT_UP) | EM(TIMER_INIT) | EM(TIMER_CATCHUP) | EM(TIMER_CSD) |             \
	 EM(QUORUM_LOST) | EM(QUORUM_BACK))
#define EV_SVC_FAILED (EM(TIMER_CSD) | EM(START_FAILED))
/* The states that serve users of their own choosing (not Failed Mode, not Initializing). */
#define ST_SERVING (SM(NORMAL) | SM(BACKUP) | SM(FAILOVER_AFFECTED) | ST_TRANSIT)

/* ---- facts ---- */

static bool transit(enum ha_state s)
{
	return s == HA_ST_FAILING_OVER || s == HA_ST_TAKING_OVER || s == HA_ST_TAKING_BACK ||
	       s == HA_ST_FALLING_BACK;
}

static bool svc_up(const struct ha_fsm *f)
{
	return f->engine_up && f->db_up && !f->svc_failed;
}

/* The peer's heartbeat is current and it is in a state that decides nothing further. */
static bool peer_stable(const struct ha_fsm *f)
{
	return f->peer_alive && f->peer_known && f->peer.state != HA_ST_INITIALIZING &&
	       f->peer.state != HA_ST_UNKNOWN && !transit(f->peer.state);
}

static bool peer_in(const struct ha_fsm *f, enum ha_state s)
{
	return f->peer_alive && f->peer_known && f->peer.state == s;
}

static bool tx_active(const struct ha_fsm *f)
{
	return f->tx.step != HA_STEP_NONE;
}

static bool msg_is_tx(const struct ha_fsm *f, const struct ha_event *ev)
{
	return tx_active(f) && ev->msg.txid == f->tx.id;
}

/* Where a node's persisted (or announced) state puts users: none, its own, or both. */
enum claim { CLAIM_NONE, CLAIM_OWN, CLAIM_BOTH };
static enum claim claim_of(enum ha_state s)
{
	switch (s) {
	case HA_ST_IDLE:
	case HA_ST_FAILED_OVER:
	case HA_ST_FAILED_OVER_CSNR:
	case HA_ST_BACKUP_ACTIVATED:
	case HA_ST_TAKING_BACK:
		return CLAIM_NONE;
	case HA_ST_BACKUP:
	case HA_ST_FAILOVER_AFFECTED:
	case HA_ST_FALLING_BACK:
		return CLAIM_BOTH;
	default:
		return CLAIM_OWN;
	}
}

static enum ha_state counterpart(enum ha_state s)
{
	switch (s) {
	case HA_ST_FAILING_OVER: return HA_ST_TAKING_OVER;
	case HA_ST_TAKING_OVER: return HA_ST_FAILING_OVER;
	case HA_ST_TAKING_BACK: return HA_ST_FALLING_BACK;
	case HA_ST_FALLING_BACK: return HA_ST_TAKING_BACK;
	default: return HA_ST_COUNT;
	}
}

/* Initializing: the restored transition is still running on the peer (rows T8, T9). */
static bool init_resumable(const struct ha_fsm *f)
{
	return transit(f->resume) && tx_active(f) && f->peer_known && f->peer.txid == f->tx.id &&
	       f->peer.state == counterpart(f->resume);
}

#define DEC_WAIT (-1)
#define DEC_CATCHUP (-2)
#define DEC_NO_QUORUM (-3)

/* Initializing decides where it goes from what it restored and what the peer says; -1 to
 * keep waiting, -2 to ask replication to catch up first (the Data Monitor). */
static int init_decide(const struct ha_fsm *f)
{
	bool up = svc_up(f);
	enum claim mine = claim_of(f->resume), theirs;
	if (!f->peer_known) {
		if (!f->init_expired)
			return DEC_WAIT;
		/* The peer did not show up: nobody else serves anyone, unless it is on the
		 * other side of a partition that has the quorum. */
		if (up)
			return f->quorum_lost ? DEC_NO_QUORUM : HA_ST_BACKUP;
		return f->svc_failed ? HA_ST_FAILED_OVER_CSNR : DEC_WAIT;
	}
	const struct ha_peer_info *p = &f->peer;
	if (p->state == HA_ST_FAILED_MODE)
		return HA_ST_FAILED_MODE; /* T21 */
	if (init_resumable(f))
		return f->resume;
	if (transit(p->state))
		return DEC_WAIT; /* a transition this node does not know: aborted by its own row */
	int target;
	if (p->state == HA_ST_INITIALIZING || p->state == HA_ST_UNKNOWN) {
		/* Both starting (T6): the persisted states decide, the same way on both sides. */
		if (p->state == HA_ST_UNKNOWN && !f->init_expired)
			return DEC_WAIT;
		theirs = claim_of(p->resume);
		if (mine == CLAIM_BOTH && theirs == CLAIM_NONE)
			target = HA_ST_BACKUP;
		else if (mine == CLAIM_NONE && theirs == CLAIM_BOTH)
			target = HA_ST_FAILED_OVER;
		else
			target = HA_ST_NORMAL;
	} else if (p->serve & f->self_bit) {
		target = HA_ST_FAILED_OVER; /* the peer serves this node's users (T5, T11, T18) */
	} else if (!(p->serve & f->peer_bit)) {
		target = HA_ST_BACKUP; /* the peer serves nobody (T7) */
	} else {
		target = HA_ST_NORMAL;
	}
	if (target == HA_ST_FAILED_OVER) {
		if (f->manual_failover || p->manual_failover)
			return HA_ST_IDLE;
		if (up)
			return HA_ST_FAILED_OVER;
		return f->svc_failed || f->init_expired ? HA_ST_FAILED_OVER_CSNR : DEC_WAIT;
	}
	if (!up)
		return f->svc_failed ? HA_ST_FAILED_OVER_CSNR : DEC_WAIT;
	if (!f->caught_up && !f->catchup_expired)
		return f->catchup_asked ? DEC_WAIT : DEC_CATCHUP;
	return target;
}

#define GUARD_DECIDE(name, st)                                                               \
	static bool name(const struct ha_fsm *f, const struct ha_event *ev)                  \
	{                                                                                    \
		(void)ev;                                                                    \
		return init_decide(f) == (st);                                               \
	}
GUARD_DECIDE(g_dec_failed_mode, HA_ST_FAILED_MODE)
GUARD_DECIDE(g_dec_taking_over, HA_ST_TAKING_OVER)
GUARD_DECIDE(g_dec_failing_over, HA_ST_FAILING_OVER)
GUARD_DECIDE(g_dec_taking_back, HA_ST_TAKING_BACK)
GUARD_DECIDE(g_dec_falling_back, HA_ST_FALLING_BACK)
GUARD_DECIDE(g_dec_idle, HA_ST_IDLE)
GUARD_DECIDE(g_dec_failed_over, HA_ST_FAILED_OVER)
GUARD_DECIDE(g_dec_csnr, HA_ST_FAILED_OVER_CSNR)
GUARD_DECIDE(g_dec_normal, HA_ST_NORMAL)
GUARD_DECIDE(g_dec_catchup, DEC_CATCHUP)
GUARD_DECIDE(g_dec_no_quorum, DEC_NO_QUORUM)


static bool g_dec_backup_seen(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return f->peer_known && init_decide(f) == HA_ST_BACKUP;
}

static bool g_dec_backup_unseen(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return !f->peer_known && init_decide(f) == HA_ST_BACKUP;
}

/* The peer runs a transition this node has no record of (it restarted without it). */
static bool g_init_foreign_tx(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return f->peer_known && transit(f->peer.state) && f->peer.txid != 0 && !init_resumable(f);
}

static bool g_msg_is_tx(const struct ha_fsm *f, const struct ha_event *ev)
{
	return msg_is_tx(f, ev);
}

static bool g_svc_up(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return svc_up(f);
}

static bool g_svc_up_peer_gone(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return svc_up(f) && !f->peer_alive && !f->quorum_lost;
}

/* Quorum required and lost, peer not seen (docs/deploy-corosync.md §7). */
static bool g_alone_no_quorum(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return ha_fsm_alone_without_quorum(f);
}

static bool g_alone_no_quorum_svc_failed(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return ha_fsm_alone_without_quorum(f) && f->svc_failed;
}

static bool target_is_self(const struct ha_fsm *f, const struct ha_event *ev)
{
	return ev->target == 0 || ev->target == f->cfg.node_id;
}

static bool target_is_peer(const struct ha_fsm *f, const struct ha_event *ev)
{
	return ev->target == 0 || ev->target == ha_peer_node(f);
}

static bool g_op_failover_self(const struct ha_fsm *f, const struct ha_event *ev)
{
	return target_is_self(f, ev) && peer_in(f, HA_ST_NORMAL) && f->peer.services_ok;
}

static bool g_op_failover_peer(const struct ha_fsm *f, const struct ha_event *ev)
{
	return ev->target == ha_peer_node(f) && peer_in(f, HA_ST_NORMAL) && svc_up(f);
}

static bool g_msg_op_failover(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return peer_in(f, HA_ST_NORMAL) && f->peer.services_ok;
}

static bool g_can_take_over(const struct ha_fsm *f, const struct ha_event *ev)
{
	return svc_up(f) && ev->msg.home == ha_peer_node(f);
}

static bool g_peer_was_init(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return f->peer.state == HA_ST_INITIALIZING;
}

static bool g_peer_leaves_home(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return peer_stable(f) && !(f->peer.serve & f->peer_bit);
}

/* A failure episode of the peer this node has not recovered from yet. */
static bool g_peer_failed_new(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return peer_in(f, HA_ST_FAILED_MODE) && f->peer.txid != 0 &&
	       f->peer.txid != f->recovered[0] && f->peer.txid != f->recovered[1];
}

static bool g_peer_serves_own(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return peer_stable(f) && (f->peer.serve & f->peer_bit);
}

static bool g_can_fall_back(const struct ha_fsm *f, const struct ha_event *ev)
{
	return ev->msg.home == ha_peer_node(f);
}

static bool peer_failed_over_ok(const struct ha_fsm *f)
{
	return (peer_in(f, HA_ST_IDLE) || peer_in(f, HA_ST_FAILED_OVER)) && f->peer.services_ok;
}

static bool g_op_fallback_peer(const struct ha_fsm *f, const struct ha_event *ev)
{
	return target_is_peer(f, ev) && peer_failed_over_ok(f);
}

static bool g_peer_can_take_all(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return peer_failed_over_ok(f);
}

static bool g_peer_serves_none_not_ba(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return peer_stable(f) && f->peer.state != HA_ST_BACKUP_ACTIVATED && f->peer.serve == 0;
}

static bool g_op_fallback_self(const struct ha_fsm *f, const struct ha_event *ev)
{
	return target_is_self(f, ev) && svc_up(f) && peer_in(f, HA_ST_BACKUP);
}

static bool g_msg_op_fallback(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return svc_up(f) && peer_in(f, HA_ST_BACKUP);
}

static bool g_auto_fallback_ok(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return f->cfg.auto_fallback && !f->manual_failover && svc_up(f) && peer_in(f, HA_ST_BACKUP);
}

static bool g_peer_is_ba(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return svc_up(f) && peer_in(f, HA_ST_BACKUP_ACTIVATED);
}

static bool g_peer_serves_only_own(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return svc_up(f) && peer_stable(f) && !(f->peer.serve & f->self_bit) &&
	       (f->peer.serve & f->peer_bit);
}

static bool g_both_failed_over(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return svc_up(f) && peer_stable(f) && f->peer.serve == 0 && peer_failed_over_ok(f);
}

static bool g_peer_cannot_serve(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return svc_up(f) && peer_stable(f) && f->peer.serve == 0;
}

static bool g_ack_of_last(const struct ha_fsm *f, const struct ha_event *ev)
{
	return !tx_active(f) && f->tx.id != 0 && ev->msg.txid == f->tx.id;
}

static bool g_tx_wait_ack(const struct ha_fsm *f, const struct ha_event *ev)
{
	return msg_is_tx(f, ev) && f->tx.step == HA_STEP_WAIT_ACK;
}

static bool g_tx_wait_done(const struct ha_fsm *f, const struct ha_event *ev)
{
	return msg_is_tx(f, ev) && f->tx.step == HA_STEP_WAIT_DONE;
}

static bool g_tx_serving(const struct ha_fsm *f, const struct ha_event *ev)
{
	return msg_is_tx(f, ev) && f->tx.step == HA_STEP_SERVING;
}

static bool g_step_catchup(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return f->tx.step == HA_STEP_WAIT_CATCHUP;
}

static bool g_step_wait_ack(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return f->tx.step == HA_STEP_WAIT_ACK;
}

static bool g_prev_idle(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return f->tx.prev_state == HA_ST_IDLE;
}

static bool g_step_wait_ack_prev_idle(const struct ha_fsm *f, const struct ha_event *ev)
{
	return g_step_wait_ack(f, ev) && g_prev_idle(f, ev);
}

static bool g_tx_msg_prev_idle(const struct ha_fsm *f, const struct ha_event *ev)
{
	return msg_is_tx(f, ev) && g_prev_idle(f, ev);
}

/* The peer's heartbeat shows it is no longer in this transition (it finished, aborted or
 * restarted without it while a message was lost with a connection).  Heartbeats and messages
 * share one ordered link, so once the peer took part (acked, or requested), any later
 * heartbeat shows the counterpart state with our txid until it leaves.  A requester still
 * waiting for the ack is left to its step timer; a peer still Initializing may resume. */
static bool peer_left(const struct ha_fsm *f)
{
	if (!tx_active(f) || !f->peer_alive || !f->peer_known)
		return false;
	if (f->tx.step == HA_STEP_WAIT_ACK || f->peer.state == HA_ST_INITIALIZING)
		return false;
	return !(f->peer.state == counterpart(f->state) && f->peer.txid == f->tx.id);
}

static bool g_left_serving_mine(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return peer_left(f) && (f->peer.serve & f->self_bit);
}

static bool g_left_serving_mine_prev_idle(const struct ha_fsm *f, const struct ha_event *ev)
{
	return g_left_serving_mine(f, ev) && f->tx.prev_state == HA_ST_IDLE;
}

static bool g_left_serving_own(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return peer_left(f) && (f->peer.serve & f->peer_bit);
}

static bool g_left(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return peer_left(f);
}

static bool g_recover_match(const struct ha_fsm *f, const struct ha_event *ev)
{
	return f->fail_id != 0 && (ev->msg.txid == f->fail_id || ev->msg.txid2 == f->fail_id);
}

static bool g_recover_match_up(const struct ha_fsm *f, const struct ha_event *ev)
{
	return g_recover_match(f, ev) && svc_up(f);
}

static bool g_peer_not_transit(const struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	return !(f->peer_alive && f->peer_known && transit(f->peer.state));
}

/* ---- actions ---- */

static void tx_begin(struct ha_fsm *f, uint32_t id, enum ha_step step, uint8_t home,
		     enum ha_reason reason)
{
	f->tx.id = id;
	f->tx.step = step;
	f->tx.home = home;
	f->tx.reason = reason;
	f->tx.prev_state = f->state;
	f->tx.prev_reason = f->reason;
}

static void send_tx(struct ha_fsm *f, enum ha_msg_type type)
{
	ha_emit_send(f, type, f->tx.id, 0, f->tx.home, f->tx.reason);
}

/* The message that moves the current step forward, sent again after a restart or a
 * reconnection (messages in flight are lost with the connection). */
static void step_resend(struct ha_fsm *f, enum ha_state st)
{
	switch (st) {
	case HA_ST_FAILING_OVER:
		if (f->tx.step == HA_STEP_WAIT_ACK)
			send_tx(f, HA_MSG_REQ_FAILOVER);
		break;
	case HA_ST_TAKING_OVER:
	case HA_ST_FALLING_BACK:
		if (f->tx.step == HA_STEP_WAIT_DONE)
			send_tx(f, HA_MSG_ACK);
		break;
	case HA_ST_TAKING_BACK:
		if (f->tx.step == HA_STEP_WAIT_ACK)
			send_tx(f, HA_MSG_REQ_FALLBACK);
		else if (f->tx.step == HA_STEP_SERVING)
			send_tx(f, HA_MSG_DONE);
		break;
	default:
		break;
	}
}

static int64_t step_timeout(const struct ha_fsm *f, enum ha_state st)
{
	switch (st) {
	case HA_ST_TAKING_OVER:
		return f->cfg.relogin_window_ms + f->cfg.step_timeout_ms;
	case HA_ST_FALLING_BACK:
		return f->cfg.catchup_timeout_ms + f->cfg.step_timeout_ms;
	case HA_ST_TAKING_BACK:
		return f->tx.step == HA_STEP_SERVING
			       ? f->cfg.relogin_window_ms + f->cfg.step_timeout_ms
			       : f->cfg.step_timeout_ms;
	default:
		return f->cfg.step_timeout_ms;
	}
}

static void a_resume(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	enum ha_state st = f->resume;
	if (f->tx.step == HA_STEP_RELEASING) {
		ha_timer_arm(f, HA_TM_RELEASE, f->cfg.relogin_window_ms);
	} else if (f->tx.step == HA_STEP_WAIT_CATCHUP) {
		f->caught_up = false;
		ha_emit_simple(f, HA_ACT_CATCHUP_WAIT);
		ha_timer_arm(f, HA_TM_CATCHUP, f->cfg.catchup_timeout_ms);
	} else {
		step_resend(f, st);
		ha_timer_arm(f, HA_TM_STEP, step_timeout(f, st));
	}
}

static void a_abort_peer_tx(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	ha_emit_send(f, HA_MSG_ABORT, f->peer.txid, 0, 0, HA_RS_NORMAL);
}

static void a_decided(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	f->tx.step = HA_STEP_NONE;
	if (f->catchup_asked)
		ha_emit_alarm(f, HA_ALARM_CATCHUP_STARTUP, false);
}

static void a_init_failed(struct ha_fsm *f, const struct ha_event *ev)
{
	a_decided(f, ev);
	/* Join the peer's episode, so one Recovery clears both nodes (T21). */
	f->fail_id = f->peer.txid ? f->peer.txid : ha_txid_new(f);
}

static void a_ask_catchup(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	f->catchup_asked = true;
	ha_emit_simple(f, HA_ACT_CATCHUP_WAIT);
	ha_timer_arm(f, HA_TM_CATCHUP, f->cfg.catchup_timeout_ms);
	ha_emit_alarm(f, HA_ALARM_CATCHUP_STARTUP, true);
}

static void a_drop_tx(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	f->tx.step = HA_STEP_NONE;
}

static void a_failover_start(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	tx_begin(f, ha_txid_new(f), HA_STEP_WAIT_ACK, (uint8_t)f->cfg.node_id, HA_RS_ADMIN);
	send_tx(f, HA_MSG_REQ_FAILOVER);
	ha_timer_arm(f, HA_TM_STEP, step_timeout(f, HA_ST_FAILING_OVER));
}

static void a_forward_failover(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	ha_emit_send(f, HA_MSG_OP_FAILOVER, 0, 0, (uint8_t)ha_peer_node(f), HA_RS_ADMIN);
}

static void a_takeover_accept(struct ha_fsm *f, const struct ha_event *ev)
{
	tx_begin(f, ev->msg.txid, HA_STEP_WAIT_DONE, ev->msg.home, ev->msg.reason);
	send_tx(f, HA_MSG_ACK);
	ha_timer_arm(f, HA_TM_STEP, step_timeout(f, HA_ST_TAKING_OVER));
}

static void a_fo_acked(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	/* Point of no return: the serve set drops this node's users, released over the
	 * re-login window towards the peer. */
	f->tx.step = HA_STEP_RELEASING;
	ha_timer_arm(f, HA_TM_RELEASE, f->cfg.relogin_window_ms);
}

static void a_fo_done(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	send_tx(f, HA_MSG_DONE);
	f->manual_failover = true;
}

static void a_abort_tx(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	send_tx(f, HA_MSG_ABORT);
}

static void a_takeover_done(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	f->manual_failover = f->tx.reason == HA_RS_ADMIN;
}

static void a_resend_ack(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	send_tx(f, HA_MSG_ACK);
}

static void a_resend_done(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	send_tx(f, HA_MSG_DONE);
}

static void a_resend_step(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	step_resend(f, f->state);
}

static void fallback_start(struct ha_fsm *f, enum ha_reason reason)
{
	tx_begin(f, ha_txid_new(f), HA_STEP_WAIT_ACK, (uint8_t)f->cfg.node_id, reason);
	f->caught_up = false;
	send_tx(f, HA_MSG_REQ_FALLBACK);
	ha_timer_arm(f, HA_TM_STEP, f->cfg.step_timeout_ms);
}

static void a_fallback_start(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	fallback_start(f, HA_RS_ADMIN);
}

static void a_fallback_start_auto(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	fallback_start(f, HA_RS_AUTO_FALLBACK);
}

static void a_forward_fallback(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	ha_emit_send(f, HA_MSG_OP_FALLBACK, 0, 0, (uint8_t)ha_peer_node(f), HA_RS_ADMIN);
}

static void a_rearm_auto(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	ha_timer_arm(f, HA_TM_AUTO_FALLBACK, f->cfg.auto_fallback_delay_ms);
}

static void a_fallback_accept(struct ha_fsm *f, const struct ha_event *ev)
{
	tx_begin(f, ev->msg.txid, HA_STEP_WAIT_DONE, ev->msg.home, ev->msg.reason);
	send_tx(f, HA_MSG_ACK);
	ha_timer_arm(f, HA_TM_STEP, step_timeout(f, HA_ST_FALLING_BACK));
}

static void a_tb_acked(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	/* Users return only once this node has everything the backup wrote (DESIGN.md §4). */
	f->tx.step = HA_STEP_WAIT_CATCHUP;
	f->caught_up = false;
	ha_emit_simple(f, HA_ACT_CATCHUP_WAIT);
	ha_timer_arm(f, HA_TM_CATCHUP, f->cfg.catchup_timeout_ms);
}

static void a_tb_serve(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	f->tx.step = HA_STEP_SERVING;
	send_tx(f, HA_MSG_DONE);
	ha_timer_arm(f, HA_TM_STEP, step_timeout(f, HA_ST_TAKING_BACK));
}

static void a_tb_catchup_fail(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	send_tx(f, HA_MSG_ABORT);
	ha_emit_alarm(f, HA_ALARM_CATCHUP_TAKEBACK, true);
}

static void a_fb_release(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	f->tx.step = HA_STEP_RELEASING;
	ha_timer_arm(f, HA_TM_RELEASE, f->cfg.relogin_window_ms);
}

static void a_fb_done(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	send_tx(f, HA_MSG_DONE);
}

static void a_enter_failed(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	f->tx.step = HA_STEP_NONE;
	f->fail_id = ha_txid_new(f);
}

static void a_follow_failed(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	f->tx.step = HA_STEP_NONE;
	f->fail_id = f->peer.txid;
}

static void recover_common(struct ha_fsm *f)
{
	f->fail_id = 0;
	if (!(f->engine_up && f->db_up))
		ha_emit_simple(f, HA_ACT_ENGINE_RESTART);
}

static void a_recover_op(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	f->recovered[0] = f->fail_id;
	f->recovered[1] = peer_in(f, HA_ST_FAILED_MODE) ? f->peer.txid : 0;
	ha_emit_send(f, HA_MSG_RECOVER, f->recovered[0], f->recovered[1], 0, HA_RS_NORMAL);
	recover_common(f);
}

static void a_recover_msg(struct ha_fsm *f, const struct ha_event *ev)
{
	f->recovered[0] = ev->msg.txid;
	f->recovered[1] = ev->msg.txid2;
	recover_common(f);
}

static void a_restart(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	ha_emit_simple(f, HA_ACT_ENGINE_RESTART);
}

static void a_split_brain(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	/* A notice: both nodes served the peer's users (a partition healed); the owner keeps
	 * them and this node releases them now. */
	ha_emit_alarm(f, HA_ALARM_SPLIT_BRAIN, true);
}

static void a_nak(struct ha_fsm *f, const struct ha_event *ev)
{
	ha_emit_send(f, HA_MSG_ABORT, ev->msg.txid, 0, ev->msg.home, HA_RS_NORMAL);
}

static void a_ha_disable(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	f->ha_disabled = true;
	f->tx.step = HA_STEP_NONE;
}

static void a_ha_disable_op(struct ha_fsm *f, const struct ha_event *ev)
{
	a_ha_disable(f, ev);
	ha_emit_send(f, HA_MSG_HA_DISABLE, 0, 0, 0, HA_RS_ADMIN);
}

static void a_ha_enable(struct ha_fsm *f, const struct ha_event *ev)
{
	(void)ev;
	f->ha_disabled = false;
	/* Start over from what the engine serves now; Initializing keeps serving it. */
	if ((f->serve & HA_HOMES_ALL) == HA_HOMES_ALL)
		f->resume = HA_ST_BACKUP;
	else if (f->serve & f->self_bit)
		f->resume = HA_ST_NORMAL;
	else
		f->resume = HA_ST_FAILED_OVER;
	f->tx.step = HA_STEP_NONE;
	f->init_expired = f->caught_up = f->catchup_expired = f->catchup_asked = false;
	ha_timer_arm(f, HA_TM_INIT, f->cfg.init_timeout_ms);
}

static void a_ha_enable_op(struct ha_fsm *f, const struct ha_event *ev)
{
	a_ha_enable(f, ev);
	ha_emit_send(f, HA_MSG_HA_ENABLE, 0, 0, 0, HA_RS_ADMIN);
}

/* ---- the table ---- */

#define SAME HA_NEXT_SAME
#define ST(x) HA_ST_##x
#define RS(x) HA_RS_##x

static const struct ha_row rows[] = {
	/* Everywhere first: internal errors and the peer entering Running in Failed Mode
	 * (failed states are symmetric in Table 31). */
	{"T21 internal error", ST_HA_ON & ~SM(FAILED_MODE), EM(INTERNAL_ERROR), NULL,
	 a_enter_failed, ST(FAILED_MODE), RS(UNKNOWN)},
	{"T14/T15/T19/T20/T21 peer in failed mode: follow",
	 (ST_STABLE_ON & ~SM(FAILED_MODE)) | ST_TRANSIT, EM(PEER_HEARTBEAT), g_peer_failed_new,
	 a_follow_failed, ST(FAILED_MODE), HA_RSN_PEER},

	/* Quorum required ([peer] require_quorum): a node that is alone without quorum may be
	 * the minority of a partition whose other side has the quorum device's vote and takes
	 * everyone; it stops serving (the serve set is empty in any state then, see
	 * serve_policy) and takes over only once it has the quorum again. */
	{"no quorum, peer gone, services down", ST_SERVING,
	 EM(PEER_LOST) | EM(PEER_GOODBYE) | EM(QUORUM_LOST), g_alone_no_quorum_svc_failed,
	 a_drop_tx, ST(FAILED_OVER_CSNR), HA_RSN_SVC},
	{"no quorum, peer gone: stop serving", ST_SERVING,
	 EM(PEER_LOST) | EM(PEER_GOODBYE) | EM(QUORUM_LOST), g_alone_no_quorum, a_drop_tx,
	 ST(FAILED_OVER), RS(QUORUM_LOST)},
	{"no quorum, peer gone: do not take over", ST_FAILED_OVERISH,
	 EM(PEER_LOST) | EM(PEER_GOODBYE), g_alone_no_quorum, NULL, SAME, RS(QUORUM_LOST)},
	{"peer gone, quorum and services up: take all users", ST_FAILED_OVERISH,
	 EM(QUORUM_BACK) | EM(SERVICE_UP), g_svc_up_peer_gone, NULL, ST(BACKUP), RS(PEER_DOWN)},
	{"Recovery without quorum and peer", SM(FAILED_MODE), EM(OP_RECOVER), g_alone_no_quorum,
	 a_recover_op, ST(FAILED_OVER), RS(QUORUM_LOST)},

	/* A coordinated transition the peer has left: settle by what it serves now. */
	{"failover finished on the peer", SM(FAILING_OVER), EM(PEER_HEARTBEAT),
	 g_left_serving_mine, a_fo_done, ST(IDLE), HA_RSN_TX},
	{"failover abandoned by the peer", SM(FAILING_OVER), EM(PEER_HEARTBEAT), g_left, a_drop_tx,
	 ST(NORMAL), RS(NORMAL)},
	{"takeover abandoned by the peer", SM(TAKING_OVER), EM(PEER_HEARTBEAT),
	 g_left_serving_own, a_drop_tx, ST(NORMAL), RS(NORMAL)},
	{"takeover finished on the peer", SM(TAKING_OVER), EM(PEER_HEARTBEAT), g_left,
	 a_takeover_done, ST(BACKUP), HA_RSN_TX},
	{"take back abandoned by the peer", SM(TAKING_BACK), EM(PEER_HEARTBEAT),
	 g_left_serving_mine_prev_idle, a_drop_tx, ST(IDLE), HA_RSN_PREV},
	{"take back abandoned by the peer", SM(TAKING_BACK), EM(PEER_HEARTBEAT),
	 g_left_serving_mine, a_drop_tx, ST(FAILED_OVER), HA_RSN_PREV},
	{"take back finished on the peer", SM(TAKING_BACK), EM(PEER_HEARTBEAT), g_left,
	 a_drop_tx, ST(NORMAL), RS(NORMAL)},
	{"fallback finished on the peer", SM(FALLING_BACK), EM(PEER_HEARTBEAT),
	 g_left_serving_own, a_drop_tx, ST(NORMAL), RS(NORMAL)},
	{"fallback abandoned by the peer", SM(FALLING_BACK), EM(PEER_HEARTBEAT), g_left,
	 a_drop_tx, ST(BACKUP), HA_RSN_PREV},

	/* Initializing: decide from the restored state and the peer (T5-T9, T18, T21). */
	{"init: abort a transition not restored", SM(INITIALIZING), EM(PEER_HEARTBEAT),
	 g_init_foreign_tx, a_abort_peer_tx, SAME, HA_RSN_KEEP},
	{"T21 init: peer in failed mode", SM(INITIALIZING), EV_INIT, g_dec_failed_mode,
	 a_init_failed, ST(FAILED_MODE), RS(UNKNOWN)},
	{"T8 init: resume taking over", SM(INITIALIZING), EV_INIT, g_dec_taking_over, a_resume,
	 ST(TAKING_OVER), RS(INIT)},
	{"init: resume failing over", SM(INITIALIZING), EV_INIT, g_dec_failing_over, a_resume,
	 ST(FAILING_OVER), RS(INIT)},
	{"T9 init: resume taking back", SM(INITIALIZING), EV_INIT, g_dec_taking_back, a_resume,
	 ST(TAKING_BACK), RS(INIT)},
	{"init: resume falling back", SM(INITIALIZING), EV_INIT, g_dec_falling_back, a_resume,
	 ST(FALLING_BACK), RS(INIT)},
	{"T5/T6 init: manual failover mode", SM(INITIALIZING), EV_INIT, g_dec_idle, a_decided,
	 ST(IDLE), RS(INIT)},
	{"T11/T18 init: failed over", SM(INITIALIZING), EV_INIT, g_dec_failed_over, a_decided,
	 ST(FAILED_OVER), RS(INIT)},
	{"T18 init: failed over, services down", SM(INITIALIZING), EV_INIT, g_dec_csnr, a_decided,
	 ST(FAILED_OVER_CSNR), RS(INIT)},
	{"T6/T7 init: backup", SM(INITIALIZING), EV_INIT, g_dec_backup_seen, a_decided,
	 ST(BACKUP), RS(INIT)},
	{"T18 init: peer not seen", SM(INITIALIZING), EV_INIT, g_dec_backup_unseen, a_decided,
	 ST(BACKUP), RS(PEER_DOWN_INIT)},
	{"init: peer not seen, no quorum", SM(INITIALIZING), EV_INIT, g_dec_no_quorum, a_decided,
	 ST(FAILED_OVER), RS(QUORUM_LOST)},
	{"T1 init: normal", SM(INITIALIZING), EV_INIT, g_dec_normal, a_decided, ST(NORMAL),
	 RS(NORMAL)},
	{"init: wait for replication", SM(INITIALIZING), EV_INIT, g_dec_catchup, a_ask_catchup,
	 SAME, HA_RSN_KEEP},
	{"init: keep waiting", SM(INITIALIZING), EV_INIT, NULL, NULL, SAME, HA_RSN_KEEP},
	{"init: start failed", SM(INITIALIZING), EM(START_FAILED), NULL, a_enter_failed,
	 ST(FAILED_MODE), RS(START_FAILED)},
	{"init: message of the restored transition", SM(INITIALIZING),
	 EM(MSG_REQ_FAILOVER) | EM(MSG_REQ_FALLBACK) | EM(MSG_ACK) | EM(MSG_DONE), g_msg_is_tx,
	 NULL, SAME, HA_RSN_KEEP},
	{"init: restored transition aborted", SM(INITIALIZING), EM(MSG_ABORT), g_msg_is_tx,
	 a_drop_tx, SAME, HA_RSN_KEEP},

	/* Normal (T1). */
	{"T2 manual failover of this node", SM(NORMAL), EM(OP_FAILOVER), g_op_failover_self,
	 a_failover_start, ST(FAILING_OVER), RS(ADMIN)},
	{"manual failover of the peer: forward", SM(NORMAL), EM(OP_FAILOVER), g_op_failover_peer,
	 a_forward_failover, SAME, HA_RSN_KEEP},
	{"T2 manual failover asked on the peer", SM(NORMAL), EM(MSG_OP_FAILOVER),
	 g_msg_op_failover, a_failover_start, ST(FAILING_OVER), RS(ADMIN)},
	{"T2 take over the peer's users", SM(NORMAL), EM(MSG_REQ_FAILOVER), g_can_take_over,
	 a_takeover_accept, ST(TAKING_OVER), HA_RSN_MSG},
	{"T18 peer lost while initializing", SM(NORMAL), EM(PEER_LOST), g_peer_was_init, NULL,
	 ST(BACKUP), RS(PEER_DOWN_INIT)},
	{"T16 peer lost", SM(NORMAL), EM(PEER_LOST), NULL, NULL, ST(BACKUP), RS(PEER_DOWN)},
	{"T17 peer stopped", SM(NORMAL), EM(PEER_GOODBYE), NULL, NULL, ST(BACKUP),
	 RS(PEER_REBOOT)},
	{"T12/T13 critical service down: fail over", SM(NORMAL), EV_SVC_FAILED, NULL, NULL,
	 ST(FAILED_OVER_CSNR), HA_RSN_SVC},
	{"T12/T13 peer failed over: take its users", SM(NORMAL), EM(PEER_HEARTBEAT),
	 g_peer_leaves_home, NULL, ST(BACKUP), HA_RSN_PEER},

	/* Running in Backup Mode, Failover Affected Services. */
	{"split brain healed: the owner keeps its users", SM(BACKUP) | SM(FAILOVER_AFFECTED),
	 EM(PEER_HEARTBEAT), g_peer_serves_own, a_split_brain, ST(NORMAL), RS(NORMAL)},
	{"T4/T10 fall back to the peer", SM(BACKUP), EM(MSG_REQ_FALLBACK), g_can_fall_back,
	 a_fallback_accept, ST(FALLING_BACK), HA_RSN_MSG},
	{"manual fallback of the peer: forward", SM(BACKUP), EM(OP_FALLBACK), g_op_fallback_peer,
	 a_forward_fallback, SAME, HA_RSN_KEEP},
	{"T22/T23 backup's service down: automatic recovery", SM(BACKUP), EV_SVC_FAILED,
	 g_peer_can_take_all, NULL, ST(BACKUP_ACTIVATED), HA_RSN_AUTO},
	{"T15 backup's service down", SM(BACKUP) | SM(FAILOVER_AFFECTED), EV_SVC_FAILED, NULL,
	 a_enter_failed, ST(FAILED_MODE), HA_RSN_SVC},
	{"T22/T23 recovery done: backup mode", SM(FAILOVER_AFFECTED), EM(PEER_HEARTBEAT),
	 g_peer_serves_none_not_ba, NULL, ST(BACKUP), HA_RSN_KEEP},
	{"T16 peer lost", SM(FAILOVER_AFFECTED), EM(PEER_LOST), NULL, NULL, ST(BACKUP),
	 RS(PEER_DOWN)},
	{"T17 peer stopped", SM(FAILOVER_AFFECTED), EM(PEER_GOODBYE), NULL, NULL, ST(BACKUP),
	 RS(PEER_REBOOT)},

	/* Idle, Failed Over. */
	{"T4 manual fallback", ST_FAILED_OVERISH, EM(OP_FALLBACK), g_op_fallback_self,
	 a_fallback_start, ST(TAKING_BACK), RS(ADMIN)},
	{"T4 manual fallback asked on the peer", ST_FAILED_OVERISH, EM(MSG_OP_FALLBACK),
	 g_msg_op_fallback, a_fallback_start, ST(TAKING_BACK), RS(ADMIN)},
	{"T10 automatic fallback", SM(FAILED_OVER), EM(TIMER_AUTO_FALLBACK), g_auto_fallback_ok,
	 a_fallback_start_auto, ST(TAKING_BACK), RS(AUTO_FALLBACK)},
	{"automatic fallback: not possible yet", SM(FAILED_OVER), EM(TIMER_AUTO_FALLBACK), NULL,
	 a_rearm_auto, SAME, HA_RSN_KEEP},
	{"T22/T23 backup failed: take all users", ST_FAILED_OVERISH, EM(PEER_HEARTBEAT),
	 g_peer_is_ba, NULL, ST(FAILOVER_AFFECTED), HA_RSN_PEER},
	{"nobody serves this node's users: normal", ST_FAILED_OVERISH, EM(PEER_HEARTBEAT),
	 g_peer_serves_only_own, NULL, ST(NORMAL), RS(NORMAL)},
	{"both failed over: normal", ST_FAILED_OVERISH, EM(PEER_HEARTBEAT), g_both_failed_over,
	 NULL, ST(NORMAL), RS(NORMAL)},
	{"peer cannot serve: take all users", ST_FAILED_OVERISH, EM(PEER_HEARTBEAT),
	 g_peer_cannot_serve, NULL, ST(BACKUP), HA_RSN_PEER},
	{"T8 failover already complete: repeat done", SM(IDLE), EM(MSG_ACK), g_ack_of_last,
	 a_resend_done, SAME, HA_RSN_KEEP},
	{"T16 backup lost", ST_FAILED_OVERISH, EM(PEER_LOST), g_svc_up, NULL, ST(BACKUP),
	 RS(PEER_DOWN)},
	{"T17 backup stopped", ST_FAILED_OVERISH, EM(PEER_GOODBYE), g_svc_up, NULL, ST(BACKUP),
	 RS(PEER_REBOOT)},
	{"T12/T13 services down while failed over", ST_FAILED_OVERISH, EV_SVC_FAILED, NULL, NULL,
	 ST(FAILED_OVER_CSNR), HA_RSN_SVC},

	/* Failed Over with Critical Services Not Running, Backup Activated. */
	{"services back, peer gone: take all users", SM(FAILED_OVER_CSNR) | SM(BACKUP_ACTIVATED),
	 EM(SERVICE_UP), g_svc_up_peer_gone, NULL, ST(BACKUP), RS(PEER_DOWN)},
	{"T11 critical services running again", SM(FAILED_OVER_CSNR) | SM(BACKUP_ACTIVATED),
	 EM(SERVICE_UP), g_svc_up, NULL, ST(FAILED_OVER), HA_RSN_KEEP},
	{"Recovery: restart the critical services", SM(FAILED_OVER_CSNR) | SM(BACKUP_ACTIVATED),
	 EM(OP_RECOVER), NULL, a_restart, SAME, HA_RSN_KEEP},

	/* Failing Over: this node's users move to the peer (T2 -> T3). */
	{"T3 peer took over: release the users", SM(FAILING_OVER), EM(MSG_ACK), g_tx_wait_ack,
	 a_fo_acked, SAME, HA_RSN_KEEP},
	{"T3 failover complete", SM(FAILING_OVER), EM(TIMER_RELEASE), NULL, a_fo_done, ST(IDLE),
	 HA_RSN_TX},
	{"failover not acknowledged: abort", SM(FAILING_OVER), EM(TIMER_STEP), NULL, a_abort_tx,
	 ST(NORMAL), RS(NORMAL)},
	{"failover refused by the peer", SM(FAILING_OVER), EM(MSG_ABORT), g_msg_is_tx, a_drop_tx,
	 ST(NORMAL), RS(NORMAL)},

	/* Taking Over: the peer's users come here (T2 -> T3). */
	{"T3 takeover complete", SM(TAKING_OVER), EM(MSG_DONE), g_msg_is_tx, a_takeover_done,
	 ST(BACKUP), HA_RSN_TX},
	{"T19 takeover not completed", SM(TAKING_OVER), EM(TIMER_STEP), NULL, a_enter_failed,
	 ST(FAILED_MODE), RS(TAKEOVER_FAILED)},
	{"takeover aborted by the peer", SM(TAKING_OVER), EM(MSG_ABORT), g_msg_is_tx, a_drop_tx,
	 ST(NORMAL), RS(NORMAL)},
	{"T8 repeated request: repeat ack", SM(TAKING_OVER) | SM(FALLING_BACK),
	 EM(MSG_REQ_FAILOVER) | EM(MSG_REQ_FALLBACK), g_msg_is_tx, a_resend_ack, SAME,
	 HA_RSN_KEEP},

	/* Taking Back: this node's users return (T4 -> T1). */
	{"T4 fallback accepted: wait for replication", SM(TAKING_BACK), EM(MSG_ACK),
	 g_tx_wait_ack, a_tb_acked, SAME, HA_RSN_KEEP},
	{"T4 replication caught up: serve own users", SM(TAKING_BACK), EM(REPL_CAUGHT_UP),
	 g_step_catchup, a_tb_serve, SAME, HA_RSN_KEEP},
	{"T9 take back complete", SM(TAKING_BACK), EM(MSG_DONE), g_tx_serving, NULL, ST(NORMAL),
	 RS(NORMAL)},
	{"T9 peer restarted and acks again: repeat done", SM(TAKING_BACK), EM(MSG_ACK),
	 g_tx_serving, a_resend_done, SAME, HA_RSN_KEEP},
	{"take back: replication behind, abort", SM(TAKING_BACK), EM(TIMER_CATCHUP), g_prev_idle,
	 a_tb_catchup_fail, ST(IDLE), HA_RSN_PREV},
	{"take back: replication behind, abort", SM(TAKING_BACK), EM(TIMER_CATCHUP), NULL,
	 a_tb_catchup_fail, ST(FAILED_OVER), HA_RSN_PREV},
	{"take back not acknowledged: abort", SM(TAKING_BACK), EM(TIMER_STEP),
	 g_step_wait_ack_prev_idle, a_abort_tx, ST(IDLE), HA_RSN_PREV},
	{"take back not acknowledged: abort", SM(TAKING_BACK), EM(TIMER_STEP), g_step_wait_ack,
	 a_abort_tx, ST(FAILED_OVER), HA_RSN_PREV},
	{"T20 take back not completed", SM(TAKING_BACK), EM(TIMER_STEP), NULL, a_enter_failed,
	 ST(FAILED_MODE), RS(TAKEBACK_FAILED)},
	{"take back refused by the peer", SM(TAKING_BACK), EM(MSG_ABORT), g_tx_msg_prev_idle,
	 a_drop_tx, ST(IDLE), HA_RSN_PREV},
	{"take back refused by the peer", SM(TAKING_BACK), EM(MSG_ABORT), g_msg_is_tx, a_drop_tx,
	 ST(FAILED_OVER), HA_RSN_PREV},
	{"T14 critical services failed while taking back", SM(TAKING_BACK), EV_SVC_FAILED, NULL,
	 a_enter_failed, ST(FAILED_MODE), RS(START_FAILED)},

	/* Falling Back: the peer's users return to it (T4 -> T1). */
	{"T9 peer serves its users: release them", SM(FALLING_BACK), EM(MSG_DONE),
	 g_tx_wait_done, a_fb_release, SAME, HA_RSN_KEEP},
	{"T9 fallback complete", SM(FALLING_BACK), EM(TIMER_RELEASE), NULL, a_fb_done,
	 ST(NORMAL), RS(NORMAL)},
	{"fallback not completed: abort", SM(FALLING_BACK), EM(TIMER_STEP), NULL, a_abort_tx,
	 ST(BACKUP), HA_RSN_PREV},
	{"fallback aborted by the peer", SM(FALLING_BACK), EM(MSG_ABORT), g_msg_is_tx, a_drop_tx,
	 ST(BACKUP), HA_RSN_PREV},

	/* Any coordinated transition. */
	{"T19 moving users failed", SM(FAILING_OVER) | SM(TAKING_OVER), EM(USERS_FAILED), NULL,
	 a_enter_failed, ST(FAILED_MODE), RS(TAKEOVER_FAILED)},
	{"T20 moving users failed", SM(TAKING_BACK) | SM(FALLING_BACK), EM(USERS_FAILED), NULL,
	 a_enter_failed, ST(FAILED_MODE), RS(TAKEBACK_FAILED)},
	{"critical service down during a transition",
	 SM(FAILING_OVER) | SM(TAKING_OVER) | SM(FALLING_BACK), EV_SVC_FAILED, NULL,
	 a_enter_failed, ST(FAILED_MODE), HA_RSN_SVC},
	{"T16 peer lost during a transition", ST_TRANSIT, EM(PEER_LOST), g_svc_up, a_drop_tx,
	 ST(BACKUP), RS(PEER_DOWN)},
	{"T17 peer stopped during a transition", ST_TRANSIT, EM(PEER_GOODBYE), g_svc_up,
	 a_drop_tx, ST(BACKUP), RS(PEER_REBOOT)},
	{"peer gone during a transition, services down", ST_TRANSIT,
	 EM(PEER_LOST) | EM(PEER_GOODBYE), NULL, a_drop_tx, ST(FAILED_OVER_CSNR), HA_RSN_SVC},
	{"link back during a transition: repeat the step", ST_TRANSIT, EM(PEER_UP), NULL,
	 a_resend_step, SAME, HA_RSN_KEEP},
	{"duplicate message of the current transition", ST_TRANSIT, EM(MSG_ACK) | EM(MSG_DONE),
	 g_msg_is_tx, NULL, SAME, HA_RSN_KEEP},

	/* Running in Failed Mode: Recovery (T14-T16, T19-T21). */
	{"Recovery", SM(FAILED_MODE), EM(OP_RECOVER), g_svc_up, a_recover_op, ST(NORMAL),
	 RS(NORMAL)},
	{"Recovery, critical services still down", SM(FAILED_MODE), EM(OP_RECOVER), NULL,
	 a_recover_op, ST(FAILED_OVER_CSNR), HA_RSN_SVC},
	{"Recovery on the peer", SM(FAILED_MODE), EM(MSG_RECOVER), g_recover_match_up,
	 a_recover_msg, ST(NORMAL), RS(NORMAL)},
	{"Recovery on the peer, critical services down", SM(FAILED_MODE), EM(MSG_RECOVER),
	 g_recover_match, a_recover_msg, ST(FAILED_OVER_CSNR), HA_RSN_SVC},

	/* ha disable (maintenance: Unknown, T24) and ha enable. */
	{"T24 ha disable", ST_STABLE_ON, EM(OP_HA_DISABLE), g_peer_not_transit, a_ha_disable_op,
	 ST(UNKNOWN), RS(UNKNOWN)},
	{"T24 ha disable on the peer", ST_STABLE_ON, EM(MSG_HA_DISABLE), NULL, a_ha_disable,
	 ST(UNKNOWN), RS(UNKNOWN)},
	{"ha enable", SM(UNKNOWN), EM(OP_HA_ENABLE), NULL, a_ha_enable_op, ST(INITIALIZING),
	 RS(INIT)},
	{"ha enable on the peer", SM(UNKNOWN), EM(MSG_HA_ENABLE), NULL, a_ha_enable,
	 ST(INITIALIZING), RS(INIT)},

	/* Answers to requests that cannot be taken, stale messages, facts. */
	{"request refused", ST_ALL, EM(MSG_REQ_FAILOVER) | EM(MSG_REQ_FALLBACK), NULL, a_nak,
	 SAME, HA_RSN_KEEP},
	{"acknowledgement of an unknown transition", ST_ALL, EM(MSG_ACK), NULL, a_nak, SAME,
	 HA_RSN_KEEP},
	{"stale done or abort", ST_ALL, EM(MSG_DONE) | EM(MSG_ABORT), NULL, NULL, SAME,
	 HA_RSN_KEEP},
	{"facts", ST_ALL, EV_INFO, NULL, NULL, SAME, HA_RSN_KEEP},
};

const struct ha_row *ha_table(size_t *n)
{
	*n = sizeof rows / sizeof rows[0];
	return rows;
}
