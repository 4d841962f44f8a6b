/* Tests for ha/ha_fsm.c + ha/ha_table.c: one test per row of the manual's Table 31 (T1-T24,
 * inventory-part2 §17.3), driven on a pair of state machines joined by an in-order message
 * pump, plus refusals, validation of hostile input, snapshots and the table's consistency. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ha/ha_fsm.h"

#define QN 64

struct qitem {
	bool hb;
	struct ha_peer_info info;
	struct ha_msg msg;
};

struct tnode {
	struct ha_fsm f;
	struct ha_snapshot disk;
	bool has_disk;
	int64_t timer[HA_TM_COUNT];
	bool catchup_asked;
	bool engine_restarted;
	int releases;
};

struct pair {
	struct tnode n[2];
	struct ha_config cfg;
	int64_t now;
	bool link;
	struct qitem q[2][QN]; /* q[i]: towards node i */
	int qn[2];
};

static struct pair P;

static struct tnode *N(int id) { return &P.n[id - 1]; }

static void exec(int id, const struct ha_actions *out)
{
	struct tnode *t = N(id);
	for (size_t i = 0; i < out->n; i++) {
		const struct ha_action *a = &out->a[i];
		int to = 2 - id; /* index of the peer */
		switch (a->type) {
		case HA_ACT_PERSIST:
			t->disk = a->snap;
			t->has_disk = true;
			break;
		case HA_ACT_SEND:
		case HA_ACT_SEND_STATE:
			if (!P.link)
				break;
			assert_true(P.qn[to] < QN);
			memset(&P.q[to][P.qn[to]], 0, sizeof P.q[to][0]);
			if (a->type == HA_ACT_SEND) {
				P.q[to][P.qn[to]].msg = a->msg;
			} else {
				P.q[to][P.qn[to]].hb = true;
				ha_fsm_self_info(&t->f, &P.q[to][P.qn[to]].info);
			}
			P.qn[to]++;
			break;
		case HA_ACT_TIMER_ARM:
			t->timer[a->timer] = a->deadline_ms;
			break;
		case HA_ACT_TIMER_CANCEL:
			t->timer[a->timer] = 0;
			break;
		case HA_ACT_CATCHUP_WAIT:
			t->catchup_asked = true;
			break;
		case HA_ACT_ENGINE_RESTART:
			t->engine_restarted = true;
			break;
		case HA_ACT_RELEASE:
			t->releases++;
			break;
		default:
			break;
		}
	}
}

static int feed(int id, struct ha_event *ev)
{
	struct ha_actions out;
	ev->now_ms = ++P.now;
	int rc = ha_fsm_handle(&N(id)->f, ev, &out);
	if (rc == HA_OK)
		exec(id, &out);
	else
		assert_int_equal(out.n, 0);
	return rc;
}

static int ev_simple(int id, enum ha_event_type type)
{
	struct ha_event ev;
	memset(&ev, 0, sizeof ev);
	ev.type = type;
	return feed(id, &ev);
}

static int ev_op(int id, enum ha_event_type type, int target)
{
	struct ha_event ev;
	memset(&ev, 0, sizeof ev);
	ev.type = type;
	ev.target = target;
	return feed(id, &ev);
}

static void ev_svc(int id, enum ha_event_type type, enum ha_service svc)
{
	struct ha_event ev;
	memset(&ev, 0, sizeof ev);
	ev.type = type;
	ev.service = svc;
	assert_int_equal(feed(id, &ev), HA_OK);
}

/* Deliver everything queued, in order, both ways (one round at a time). */
static void pump(void)
{
	for (int round = 0; round < 50 && (P.qn[0] || P.qn[1]); round++) {
		for (int i = 0; i < 2; i++) {
			struct qitem items[QN];
			int n = P.qn[i];
			memcpy(items, P.q[i], sizeof(struct qitem) * (size_t)n);
			P.qn[i] = 0;
			for (int k = 0; k < n; k++) {
				struct ha_event ev;
				memset(&ev, 0, sizeof ev);
				if (items[k].hb) {
					ev.type = HA_EV_PEER_HEARTBEAT;
					ev.peer = items[k].info;
				} else {
					ev.type = ha_event_from_msg(items[k].msg.type);
					ev.msg = items[k].msg;
				}
				feed(i + 1, &ev);
			}
		}
	}
	assert_int_equal(P.qn[0] + P.qn[1], 0);
}

/* One heartbeat each way. */
static void heartbeats(void)
{
	for (int id = 1; id <= 2; id++) {
		struct ha_actions out = {.n = 1};
		out.a[0].type = HA_ACT_SEND_STATE;
		exec(id, &out);
	}
	pump();
}

static void fire(int id, enum ha_timer t)
{
	assert_true(N(id)->timer[t] != 0);
	N(id)->timer[t] = 0;
	assert_int_equal(ev_simple(id, (enum ha_event_type)(HA_EV_TIMER_CSD + t)), HA_OK);
}

static void boot(int id)
{
	struct tnode *t = N(id);
	struct ha_config cfg = P.cfg;
	cfg.node_id = id;
	memset(t->timer, 0, sizeof t->timer);
	t->catchup_asked = false;
	ha_fsm_init(&t->f, &cfg, t->has_disk ? &t->disk : NULL, NULL, NULL);
	struct ha_actions out;
	ha_fsm_start(&t->f, ++P.now, &out);
	exec(id, &out);
	ev_svc(id, HA_EV_SERVICE_UP, HA_SVC_DATABASE);
	ev_svc(id, HA_EV_SERVICE_UP, HA_SVC_ENGINE);
}

static void connect_link(void)
{
	P.link = true;
	P.qn[0] = P.qn[1] = 0;
	for (int id = 1; id <= 2; id++)
		assert_int_equal(ev_simple(id, HA_EV_PEER_UP), HA_OK);
	heartbeats();
}

/* srmd of node id restarts before the peer's heartbeat times out (messages in flight lost). */
static void restart(int id)
{
	P.link = false;
	P.qn[0] = P.qn[1] = 0;
	boot(id);
}

static void catchup(int id)
{
	assert_true(N(id)->catchup_asked);
	N(id)->catchup_asked = false;
	assert_int_equal(ev_simple(id, HA_EV_REPL_CAUGHT_UP), HA_OK);
	pump();
}

static void expect(int id, enum ha_state st, enum ha_reason rs)
{
	const struct ha_fsm *f = &N(id)->f;
	if (f->state != st || f->reason != rs)
		fail_msg("node %d: %s (%s), expected %s (%s)", id, ha_state_names[f->state],
			 ha_reason_names[f->reason], ha_state_names[st], ha_reason_names[rs]);
}

static void expect_serve(uint8_t s1, uint8_t s2)
{
	assert_int_equal(N(1)->f.serve, s1);
	assert_int_equal(N(2)->f.serve, s2);
}

static int setup(void **state)
{
	(void)state;
	memset(&P, 0, sizeof P);
	ha_config_defaults(&P.cfg, 1);
	P.cfg.csd_delay_ms = 1000;
	P.cfg.relogin_window_ms = 2000;
	P.cfg.step_timeout_ms = 3000;
	P.cfg.init_timeout_ms = 2000;
	P.cfg.catchup_timeout_ms = 2000;
	P.cfg.auto_fallback_delay_ms = 5000;
	return 0;
}

/* Both nodes start, see each other, catch up: Normal / Normal. */
static void pair_normal(void)
{
	boot(1);
	boot(2);
	connect_link();
	for (int id = 1; id <= 2; id++)
		if (N(id)->catchup_asked)
			catchup(id);
	heartbeats();
	expect(1, HA_ST_NORMAL, HA_RS_NORMAL);
	expect(2, HA_ST_NORMAL, HA_RS_NORMAL);
	expect_serve(1, 2);
}

static void failover_1_to_2(void)
{
	pair_normal();
	assert_int_equal(ev_op(1, HA_EV_OP_FAILOVER, 0), HA_OK);
	pump();
}

static void failover_done(void)
{
	failover_1_to_2();
	fire(1, HA_TM_RELEASE);
	pump();
	heartbeats();
}

/* Node 1's critical service stays down past the delay: T12 / T13. */
static void service_failover(enum ha_service svc)
{
	pair_normal();
	ev_svc(1, HA_EV_SERVICE_DOWN, svc);
	fire(1, HA_TM_CSD);
	pump();
	heartbeats();
}

/* ---- Table 31 ---- */

static void test_T1_normal_normal(void **state)
{
	(void)state;
	pair_normal();
}

static void test_T2_manual_failover_in_progress(void **state)
{
	(void)state;
	failover_1_to_2();
	expect(1, HA_ST_FAILING_OVER, HA_RS_ADMIN);
	expect(2, HA_ST_TAKING_OVER, HA_RS_ADMIN);
	/* The taker serves both before the releaser lets its users go over the window. */
	expect_serve(0, 3);
	assert_int_equal(N(1)->releases, 1);
}

static void test_T3_manual_failover_complete(void **state)
{
	(void)state;
	failover_done();
	expect(1, HA_ST_IDLE, HA_RS_ADMIN);
	expect(2, HA_ST_BACKUP, HA_RS_ADMIN);
	expect_serve(0, 3);
	assert_true(N(1)->disk.manual_failover);
	assert_true(N(2)->disk.manual_failover);
}

static void test_T4_manual_fallback_in_progress(void **state)
{
	(void)state;
	failover_done();
	/* Issued on the backup: forwarded to the node that takes its users back. */
	assert_int_equal(ev_op(2, HA_EV_OP_FALLBACK, 0), HA_OK);
	pump();
	expect(1, HA_ST_TAKING_BACK, HA_RS_ADMIN);
	expect(2, HA_ST_FALLING_BACK, HA_RS_ADMIN);
	expect_serve(0, 3); /* nothing moves before replication caught up */
	catchup(1);
	expect_serve(1, 2);
	fire(2, HA_TM_RELEASE);
	pump();
	expect(1, HA_ST_NORMAL, HA_RS_NORMAL);
	expect(2, HA_ST_NORMAL, HA_RS_NORMAL);
	assert_false(N(1)->disk.manual_failover);
}

static void test_T5_restart_idle_node(void **state)
{
	(void)state;
	failover_done();
	restart(1);
	connect_link();
	expect(1, HA_ST_IDLE, HA_RS_INIT);
	expect(2, HA_ST_BACKUP, HA_RS_ADMIN);
	expect_serve(0, 3);
}

static void test_T6_restart_both_in_manual_failover(void **state)
{
	(void)state;
	failover_done();
	restart(1);
	restart(2);
	connect_link();
	if (N(2)->catchup_asked)
		catchup(2);
	heartbeats();
	expect(1, HA_ST_IDLE, HA_RS_INIT);
	expect(2, HA_ST_BACKUP, HA_RS_INIT);
	expect_serve(0, 3);
}

static void test_T7_restart_backup_node(void **state)
{
	(void)state;
	failover_done();
	restart(2);
	connect_link();
	catchup(2);
	expect(1, HA_ST_IDLE, HA_RS_ADMIN);
	expect(2, HA_ST_BACKUP, HA_RS_INIT);
	expect_serve(0, 3);
}

static void test_T8_restart_while_taking_over(void **state)
{
	(void)state;
	pair_normal();
	assert_int_equal(ev_op(1, HA_EV_OP_FAILOVER, 1), HA_OK);
	/* Node 2 gets the request, moves to Taking Over, and restarts before its ack leaves. */
	struct qitem req = P.q[1][0];
	P.qn[1] = 0;
	struct ha_event ev;
	memset(&ev, 0, sizeof ev);
	ev.type = ha_event_from_msg(req.msg.type);
	ev.msg = req.msg;
	assert_int_equal(feed(2, &ev), HA_OK);
	expect(2, HA_ST_TAKING_OVER, HA_RS_ADMIN);
	restart(2);
	connect_link();
	expect(1, HA_ST_FAILING_OVER, HA_RS_ADMIN);
	expect(2, HA_ST_TAKING_OVER, HA_RS_INIT);
	fire(1, HA_TM_RELEASE);
	pump();
	expect(1, HA_ST_IDLE, HA_RS_ADMIN);
	expect(2, HA_ST_BACKUP, HA_RS_ADMIN);
}

static void test_T9_restart_while_taking_back(void **state)
{
	(void)state;
	failover_done();
	assert_int_equal(ev_op(1, HA_EV_OP_FALLBACK, 1), HA_OK);
	pump();
	expect(1, HA_ST_TAKING_BACK, HA_RS_ADMIN);
	restart(1);
	connect_link();
	expect(1, HA_ST_TAKING_BACK, HA_RS_INIT);
	expect(2, HA_ST_FALLING_BACK, HA_RS_ADMIN);
	catchup(1);
	fire(2, HA_TM_RELEASE);
	pump();
	expect(1, HA_ST_NORMAL, HA_RS_NORMAL);
	expect(2, HA_ST_NORMAL, HA_RS_NORMAL);
	expect_serve(1, 2);
}

static void test_T10_automatic_fallback(void **state)
{
	(void)state;
	P.cfg.auto_fallback = true;
	service_failover(HA_SVC_ENGINE);
	ev_svc(1, HA_EV_SERVICE_UP, HA_SVC_ENGINE);
	fire(1, HA_TM_AUTO_FALLBACK);
	pump();
	expect(1, HA_ST_TAKING_BACK, HA_RS_AUTO_FALLBACK);
	expect(2, HA_ST_FALLING_BACK, HA_RS_AUTO_FALLBACK);
	catchup(1);
	fire(2, HA_TM_RELEASE);
	pump();
	expect(1, HA_ST_NORMAL, HA_RS_NORMAL);
	expect(2, HA_ST_NORMAL, HA_RS_NORMAL);
}

static void test_T11_failed_over_ready_for_fallback(void **state)
{
	(void)state;
	/* Critical services started again by the operator... */
	service_failover(HA_SVC_ENGINE);
	ev_svc(1, HA_EV_SERVICE_UP, HA_SVC_ENGINE);
	heartbeats();
	expect(1, HA_ST_FAILED_OVER, HA_RS_CSD);
	expect(2, HA_ST_BACKUP, HA_RS_CSD);
	expect_serve(0, 3);
	assert_int_equal(N(1)->timer[HA_TM_AUTO_FALLBACK], 0); /* off by default */
	/* ...or node 1 rebooted. */
	restart(1);
	connect_link();
	expect(1, HA_ST_FAILED_OVER, HA_RS_INIT);
	expect(2, HA_ST_BACKUP, HA_RS_CSD);
	/* Ready for a manual fallback. */
	assert_int_equal(ev_op(1, HA_EV_OP_FALLBACK, 0), HA_OK);
	pump();
	expect(1, HA_ST_TAKING_BACK, HA_RS_ADMIN);
}

static void test_T12_critical_service_down(void **state)
{
	(void)state;
	pair_normal();
	ev_svc(1, HA_EV_SERVICE_DOWN, HA_SVC_ENGINE);
	/* Restarted inside the delay: nothing happens. */
	ev_svc(1, HA_EV_SERVICE_UP, HA_SVC_ENGINE);
	assert_int_equal(N(1)->timer[HA_TM_CSD], 0);
	expect(1, HA_ST_NORMAL, HA_RS_NORMAL);
	ev_svc(1, HA_EV_SERVICE_DOWN, HA_SVC_ENGINE);
	fire(1, HA_TM_CSD);
	pump();
	expect(1, HA_ST_FAILED_OVER_CSNR, HA_RS_CSD);
	expect(2, HA_ST_BACKUP, HA_RS_CSD);
	expect_serve(0, 3);
}

static void test_T13_database_failure(void **state)
{
	(void)state;
	service_failover(HA_SVC_DATABASE);
	expect(1, HA_ST_FAILED_OVER_CSNR, HA_RS_DB_FAILURE);
	expect(2, HA_ST_BACKUP, HA_RS_DB_FAILURE);
	expect_serve(0, 3);
}

static void test_T14_start_failed_while_taking_back(void **state)
{
	(void)state;
	failover_done();
	assert_int_equal(ev_op(1, HA_EV_OP_FALLBACK, 0), HA_OK);
	pump();
	assert_int_equal(ev_simple(1, HA_EV_START_FAILED), HA_OK);
	pump();
	heartbeats();
	expect(1, HA_ST_FAILED_MODE, HA_RS_START_FAILED);
	expect(2, HA_ST_FAILED_MODE, HA_RS_START_FAILED);
	expect_serve(0, 3); /* node 2 keeps everyone served while node 1 is broken */
	/* Recovery on the taking-back node once its services run. */
	ev_svc(1, HA_EV_SERVICE_DOWN, HA_SVC_ENGINE);
	ev_svc(1, HA_EV_SERVICE_UP, HA_SVC_ENGINE);
	assert_int_equal(ev_simple(1, HA_EV_OP_RECOVER), HA_OK);
	pump();
	heartbeats();
	expect(1, HA_ST_NORMAL, HA_RS_NORMAL);
	expect(2, HA_ST_NORMAL, HA_RS_NORMAL);
	expect_serve(1, 2);
}

static void test_T15_backup_service_down(void **state)
{
	(void)state;
	/* Node 1 failed over with its services down: it cannot take the users back. */
	service_failover(HA_SVC_ENGINE);
	ev_svc(2, HA_EV_SERVICE_DOWN, HA_SVC_ENGINE);
	fire(2, HA_TM_CSD);
	pump();
	heartbeats();
	expect(1, HA_ST_FAILED_MODE, HA_RS_CSD);
	expect(2, HA_ST_FAILED_MODE, HA_RS_CSD);
	/* Recovery: start the services, press Recovery on the backup node. */
	ev_svc(1, HA_EV_SERVICE_UP, HA_SVC_ENGINE);
	ev_svc(2, HA_EV_SERVICE_UP, HA_SVC_ENGINE);
	assert_int_equal(ev_simple(2, HA_EV_OP_RECOVER), HA_OK);
	pump();
	heartbeats();
	expect(1, HA_ST_NORMAL, HA_RS_NORMAL);
	expect(2, HA_ST_NORMAL, HA_RS_NORMAL);
	expect_serve(1, 2);
}

static void test_T16_peer_down(void **state)
{
	(void)state;
	pair_normal();
	assert_int_equal(ev_simple(2, HA_EV_PEER_LOST), HA_OK);
	expect(2, HA_ST_BACKUP, HA_RS_PEER_DOWN);
	assert_int_equal(N(2)->f.serve, 3);
}

static void test_T17_peer_reboot(void **state)
{
	(void)state;
	pair_normal();
	assert_int_equal(ev_simple(2, HA_EV_PEER_GOODBYE), HA_OK);
	expect(2, HA_ST_BACKUP, HA_RS_PEER_REBOOT);
	assert_int_equal(N(2)->f.serve, 3);
}

static void test_T18_peer_down_during_initialization(void **state)
{
	(void)state;
	pair_normal();
	/* Node 1 restarts; node 2 sees it Initializing, then loses it. */
	restart(1);
	ev_svc(1, HA_EV_SERVICE_DOWN, HA_SVC_ENGINE);
	connect_link();
	expect(1, HA_ST_INITIALIZING, HA_RS_INIT);
	P.link = false;
	assert_int_equal(ev_simple(2, HA_EV_PEER_LOST), HA_OK);
	assert_int_equal(ev_simple(1, HA_EV_PEER_LOST), HA_OK);
	expect(2, HA_ST_BACKUP, HA_RS_PEER_DOWN_INIT);
	/* Node 1 finishes initializing with its services still down... */
	fire(1, HA_TM_INIT);
	connect_link();
	expect(1, HA_ST_FAILED_OVER_CSNR, HA_RS_INIT);
	/* ...or with them running. */
	restart(1);
	connect_link();
	expect(1, HA_ST_FAILED_OVER, HA_RS_INIT);
	expect(2, HA_ST_BACKUP, HA_RS_PEER_DOWN_INIT);
	expect_serve(0, 3);
}

static void test_T19_take_over_users_failed(void **state)
{
	(void)state;
	failover_1_to_2();
	assert_int_equal(ev_simple(1, HA_EV_USERS_FAILED), HA_OK);
	pump();
	heartbeats();
	expect(1, HA_ST_FAILED_MODE, HA_RS_TAKEOVER_FAILED);
	expect(2, HA_ST_FAILED_MODE, HA_RS_TAKEOVER_FAILED);
	expect_serve(1, 2); /* each serves its own users while an operator looks */
	/* The same when the takeover never completes. */
	setup(NULL);
	failover_1_to_2();
	fire(2, HA_TM_STEP);
	pump();
	heartbeats();
	expect(2, HA_ST_FAILED_MODE, HA_RS_TAKEOVER_FAILED);
	expect(1, HA_ST_FAILED_MODE, HA_RS_TAKEOVER_FAILED);
}

static void test_T20_take_back_users_failed(void **state)
{
	(void)state;
	failover_done();
	assert_int_equal(ev_op(1, HA_EV_OP_FALLBACK, 0), HA_OK);
	pump();
	catchup(1);
	assert_int_equal(ev_simple(2, HA_EV_USERS_FAILED), HA_OK);
	pump();
	heartbeats();
	expect(1, HA_ST_FAILED_MODE, HA_RS_TAKEBACK_FAILED);
	expect(2, HA_ST_FAILED_MODE, HA_RS_TAKEBACK_FAILED);
	expect_serve(1, 2);
}

static void test_T21_unknown_failure(void **state)
{
	(void)state;
	pair_normal();
	assert_int_equal(ev_simple(1, HA_EV_INTERNAL_ERROR), HA_OK);
	pump();
	heartbeats();
	expect(1, HA_ST_FAILED_MODE, HA_RS_UNKNOWN);
	expect(2, HA_ST_FAILED_MODE, HA_RS_UNKNOWN);
	/* A node restarting while its peer is in a failed state joins it. */
	restart(2);
	connect_link();
	expect(2, HA_ST_FAILED_MODE, HA_RS_UNKNOWN);
	assert_int_equal(ev_simple(2, HA_EV_OP_RECOVER), HA_OK);
	pump();
	heartbeats();
	expect(1, HA_ST_NORMAL, HA_RS_NORMAL);
	expect(2, HA_ST_NORMAL, HA_RS_NORMAL);
	expect_serve(1, 2);
}

static void auto_recover(enum ha_service svc, enum ha_reason want)
{
	service_failover(HA_SVC_ENGINE);
	ev_svc(1, HA_EV_SERVICE_UP, HA_SVC_ENGINE);
	heartbeats();
	expect(1, HA_ST_FAILED_OVER, HA_RS_CSD);
	ev_svc(2, HA_EV_SERVICE_DOWN, svc);
	fire(2, HA_TM_CSD);
	pump();
	heartbeats();
	expect(2, HA_ST_BACKUP_ACTIVATED, want);
	expect(1, HA_ST_FAILOVER_AFFECTED, want);
	expect_serve(3, 0); /* every user of the group on the healthy node */
	/* When the backup's service is back, it is the failed-over node. */
	ev_svc(2, HA_EV_SERVICE_UP, svc);
	heartbeats();
	expect(2, HA_ST_FAILED_OVER, want);
	expect(1, HA_ST_BACKUP, want);
	expect_serve(3, 0);
}

static void test_T22_auto_recover_database_failure(void **state)
{
	(void)state;
	auto_recover(HA_SVC_DATABASE, HA_RS_AUTO_DB);
}

static void test_T23_auto_recover_critical_service_down(void **state)
{
	(void)state;
	auto_recover(HA_SVC_ENGINE, HA_RS_AUTO_CSD);
}

static void test_T24_ha_disabled_unknown(void **state)
{
	(void)state;
	pair_normal();
	assert_int_equal(ev_simple(1, HA_EV_OP_HA_DISABLE), HA_OK);
	pump();
	expect(1, HA_ST_UNKNOWN, HA_RS_UNKNOWN);
	expect(2, HA_ST_UNKNOWN, HA_RS_UNKNOWN);
	/* Maintenance: a service stopping causes no failover. */
	ev_svc(1, HA_EV_SERVICE_DOWN, HA_SVC_ENGINE);
	assert_int_equal(N(1)->timer[HA_TM_CSD], 0);
	heartbeats();
	expect(2, HA_ST_UNKNOWN, HA_RS_UNKNOWN);
	expect_serve(1, 2);
	ev_svc(1, HA_EV_SERVICE_UP, HA_SVC_ENGINE);
	/* Disabled survives a restart. */
	restart(1);
	assert_int_equal(N(1)->f.state, HA_ST_UNKNOWN);
	connect_link();
	assert_int_equal(ev_simple(2, HA_EV_OP_HA_ENABLE), HA_OK);
	pump();
	for (int id = 1; id <= 2; id++)
		if (N(id)->catchup_asked)
			catchup(id);
	heartbeats();
	expect(1, HA_ST_NORMAL, HA_RS_NORMAL);
	expect(2, HA_ST_NORMAL, HA_RS_NORMAL);
}

/* ---- beyond the table's rows ---- */

static void test_split_brain_heals(void **state)
{
	(void)state;
	pair_normal();
	P.link = false;
	assert_int_equal(ev_simple(1, HA_EV_PEER_LOST), HA_OK);
	assert_int_equal(ev_simple(2, HA_EV_PEER_LOST), HA_OK);
	expect_serve(3, 3); /* partition: both serve everyone, nobody is left unserved */
	connect_link();
	heartbeats();
	expect(1, HA_ST_NORMAL, HA_RS_NORMAL);
	expect(2, HA_ST_NORMAL, HA_RS_NORMAL);
	expect_serve(1, 2);
	assert_true(N(1)->releases > 0 && N(2)->releases > 0);
}

/* ---- quorum required (corosync with a quorum device, [peer] require_quorum) ---- */

/* A partition: corosync gives the quorum device's vote to node 1's side.  The transport
 * reports node 2's quorum loss before the peer's loss. */
static void quorum_partition(void)
{
	pair_normal();
	P.link = false;
	assert_int_equal(ev_simple(2, HA_EV_QUORUM_LOST), HA_OK);
	/* The peer is still seen: nothing changes yet (both sides still coordinate). */
	expect(2, HA_ST_NORMAL, HA_RS_NORMAL);
	expect_serve(1, 2);
	assert_int_equal(ev_simple(1, HA_EV_PEER_LOST), HA_OK);
	int before = N(2)->releases;
	/* The release of node 2's users goes to the peer at once: no window of two writers. */
	struct ha_event ev;
	memset(&ev, 0, sizeof ev);
	ev.type = HA_EV_PEER_LOST;
	ev.now_ms = ++P.now;
	struct ha_actions out;
	assert_int_equal(ha_fsm_handle(&N(2)->f, &ev, &out), HA_OK);
	bool released = false;
	for (size_t i = 0; i < out.n; i++)
		if (out.a[i].type == HA_ACT_RELEASE) {
			assert_int_equal(out.a[i].home, 2);
			assert_true(out.a[i].to_peer);
			assert_int_equal(out.a[i].window_ms, 0);
			released = true;
		}
	assert_true(released);
	exec(2, &out);
	assert_int_equal(N(2)->releases, before + 1);
}

static void test_quorum_partition_minority_stops(void **state)
{
	(void)state;
	quorum_partition();
	expect(1, HA_ST_BACKUP, HA_RS_PEER_DOWN);
	expect(2, HA_ST_FAILED_OVER, HA_RS_QUORUM_LOST);
	expect_serve(3, 0); /* one writer for every user */
	/* Heal: the peer first, then the quorum (the transport holds it until the HELLO). */
	connect_link();
	assert_int_equal(ev_simple(2, HA_EV_QUORUM_BACK), HA_OK);
	heartbeats();
	expect(1, HA_ST_BACKUP, HA_RS_PEER_DOWN);
	expect(2, HA_ST_FAILED_OVER, HA_RS_QUORUM_LOST);
	expect_serve(3, 0);
	/* The operator's fallback on node 2 (docs/deploy-corosync.md §7). */
	assert_int_equal(ev_op(2, HA_EV_OP_FALLBACK, 0), HA_OK);
	pump();
	expect(2, HA_ST_TAKING_BACK, HA_RS_ADMIN);
	catchup(2);
	fire(1, HA_TM_RELEASE);
	pump();
	expect(1, HA_ST_NORMAL, HA_RS_NORMAL);
	expect(2, HA_ST_NORMAL, HA_RS_NORMAL);
	expect_serve(1, 2);
}

static void test_quorum_minority_in_backup_stops(void **state)
{
	(void)state;
	/* Node 2 serves everyone (node 1 failed over) when the partition puts it alone. */
	service_failover(HA_SVC_ENGINE);
	ev_svc(1, HA_EV_SERVICE_UP, HA_SVC_ENGINE);
	heartbeats();
	expect(1, HA_ST_FAILED_OVER, HA_RS_CSD);
	expect(2, HA_ST_BACKUP, HA_RS_CSD);
	P.link = false;
	assert_int_equal(ev_simple(2, HA_EV_QUORUM_LOST), HA_OK);
	assert_int_equal(ev_simple(2, HA_EV_PEER_LOST), HA_OK);
	assert_int_equal(ev_simple(1, HA_EV_PEER_LOST), HA_OK);
	/* The side with the quorum takes everyone back: T16 from Failed Over. */
	expect(1, HA_ST_BACKUP, HA_RS_PEER_DOWN);
	expect(2, HA_ST_FAILED_OVER, HA_RS_QUORUM_LOST);
	expect_serve(3, 0);
}

static void test_quorum_lost_alone_then_back(void **state)
{
	(void)state;
	pair_normal();
	/* Node 2's srmd dies: its host stays in the membership, quorum is kept. */
	P.link = false;
	assert_int_equal(ev_simple(1, HA_EV_PEER_LOST), HA_OK);
	expect(1, HA_ST_BACKUP, HA_RS_PEER_DOWN);
	/* Then node 1 loses the quorum (node 2's host and qnetd gone): it serves nobody. */
	assert_int_equal(ev_simple(1, HA_EV_QUORUM_LOST), HA_OK);
	expect(1, HA_ST_FAILED_OVER, HA_RS_QUORUM_LOST);
	assert_int_equal(N(1)->f.serve, 0);
	/* A Peer Down now is no reason to take over either. */
	assert_int_equal(ev_simple(1, HA_EV_PEER_GOODBYE), HA_OK);
	expect(1, HA_ST_FAILED_OVER, HA_RS_QUORUM_LOST);
	/* Quorum back, the peer still not seen: everyone is served here again. */
	assert_int_equal(ev_simple(1, HA_EV_QUORUM_BACK), HA_OK);
	expect(1, HA_ST_BACKUP, HA_RS_PEER_DOWN);
	assert_int_equal(N(1)->f.serve, 3);
}

static void test_quorum_with_peer_changes_nothing(void **state)
{
	(void)state;
	pair_normal();
	/* Both nodes lose quorum together (they still see each other): they coordinate. */
	assert_int_equal(ev_simple(1, HA_EV_QUORUM_LOST), HA_OK);
	assert_int_equal(ev_simple(2, HA_EV_QUORUM_LOST), HA_OK);
	heartbeats();
	expect(1, HA_ST_NORMAL, HA_RS_NORMAL);
	expect(2, HA_ST_NORMAL, HA_RS_NORMAL);
	expect_serve(1, 2);
	assert_int_equal(ev_op(1, HA_EV_OP_FAILOVER, 0), HA_OK);
	pump();
	fire(1, HA_TM_RELEASE);
	pump();
	expect(1, HA_ST_IDLE, HA_RS_ADMIN);
	expect(2, HA_ST_BACKUP, HA_RS_ADMIN);
	expect_serve(0, 3);
}

static void test_quorum_init_alone(void **state)
{
	(void)state;
	boot(1);
	assert_int_equal(ev_simple(1, HA_EV_QUORUM_LOST), HA_OK);
	fire(1, HA_TM_INIT);
	expect(1, HA_ST_FAILED_OVER, HA_RS_QUORUM_LOST);
	assert_int_equal(N(1)->f.serve, 0);
	assert_int_equal(ev_simple(1, HA_EV_QUORUM_BACK), HA_OK);
	expect(1, HA_ST_BACKUP, HA_RS_PEER_DOWN);
	assert_int_equal(N(1)->f.serve, 3);
}

static void test_quorum_failed_mode_serves_nobody(void **state)
{
	(void)state;
	pair_normal();
	assert_int_equal(ev_simple(1, HA_EV_INTERNAL_ERROR), HA_OK);
	pump();
	expect(1, HA_ST_FAILED_MODE, HA_RS_UNKNOWN);
	P.link = false;
	assert_int_equal(ev_simple(1, HA_EV_QUORUM_LOST), HA_OK);
	assert_int_equal(ev_simple(1, HA_EV_PEER_LOST), HA_OK);
	/* Still the failed state an operator must look at, but without users. */
	expect(1, HA_ST_FAILED_MODE, HA_RS_UNKNOWN);
	assert_int_equal(N(1)->f.serve, 0);
	/* Recovery without quorum and peer: failed over, not Normal. */
	assert_int_equal(ev_simple(1, HA_EV_OP_RECOVER), HA_OK);
	expect(1, HA_ST_FAILED_OVER, HA_RS_QUORUM_LOST);
	assert_int_equal(N(1)->f.serve, 0);
}

static void test_quorum_services_back_peer_gone(void **state)
{
	(void)state;
	/* Failed Over, the peer lost while the engine was down: nobody takes over then... */
	service_failover(HA_SVC_ENGINE);
	ev_svc(1, HA_EV_SERVICE_UP, HA_SVC_ENGINE);
	heartbeats();
	ev_svc(1, HA_EV_SERVICE_DOWN, HA_SVC_ENGINE);
	P.link = false;
	assert_int_equal(ev_simple(1, HA_EV_PEER_LOST), HA_OK);
	expect(1, HA_ST_FAILED_OVER, HA_RS_CSD);
	/* ... and the engine back takes everyone, unless quorum is lost. */
	assert_int_equal(ev_simple(1, HA_EV_QUORUM_LOST), HA_OK);
	ev_svc(1, HA_EV_SERVICE_UP, HA_SVC_ENGINE);
	expect(1, HA_ST_FAILED_OVER, HA_RS_CSD);
	assert_int_equal(N(1)->f.serve, 0);
	assert_int_equal(ev_simple(1, HA_EV_QUORUM_BACK), HA_OK);
	expect(1, HA_ST_BACKUP, HA_RS_PEER_DOWN);
	assert_int_equal(N(1)->f.serve, 3);
}

static void test_refusals_change_nothing(void **state)
{
	(void)state;
	failover_done();
	struct ha_fsm before = N(1)->f;
	/* Idle cannot fail over; Recovery is for failed states; timers not armed are stale. */
	assert_int_equal(ev_op(1, HA_EV_OP_FAILOVER, 1), HA_EREFUSED);
	assert_int_equal(ev_simple(1, HA_EV_OP_RECOVER), HA_EREFUSED);
	assert_int_equal(ev_simple(1, HA_EV_TIMER_STEP), HA_EREFUSED);
	assert_int_equal(ev_simple(1, HA_EV_USERS_FAILED), HA_EREFUSED);
	assert_int_equal(N(1)->f.state, before.state);
	assert_int_equal(N(1)->f.serve, before.serve);
	assert_memory_equal(&N(1)->f.tx, &before.tx, sizeof before.tx);
	/* Failover refused while the peer is not Normal. */
	assert_int_equal(ev_op(2, HA_EV_OP_FAILOVER, 2), HA_EREFUSED);
}

static void test_hostile_events_rejected(void **state)
{
	(void)state;
	pair_normal();
	struct ha_event ev;
	memset(&ev, 0, sizeof ev);
	ev.type = HA_EV_PEER_HEARTBEAT;
	ev.peer.state = (enum ha_state)99;
	assert_int_equal(feed(1, &ev), HA_EINVAL);
	ev.peer.state = HA_ST_NORMAL;
	ev.peer.serve = 0x80;
	assert_int_equal(feed(1, &ev), HA_EINVAL);
	memset(&ev, 0, sizeof ev);
	ev.type = HA_EV_MSG_REQ_FAILOVER;
	ev.msg.type = HA_MSG_REQ_FAILOVER;
	ev.msg.txid = 5;
	ev.msg.home = 7;
	assert_int_equal(feed(1, &ev), HA_EINVAL);
	ev.msg.home = 2;
	ev.msg.type = HA_MSG_ACK; /* type disagrees with the event */
	assert_int_equal(feed(1, &ev), HA_EINVAL);
	ev.type = (enum ha_event_type)1000;
	assert_int_equal(feed(1, &ev), HA_EINVAL);
	expect(1, HA_ST_NORMAL, HA_RS_NORMAL);
}

static void test_snapshot_text(void **state)
{
	(void)state;
	failover_1_to_2();
	char line[300];
	struct ha_snapshot back;
	assert_true(ha_snapshot_format(&N(2)->disk, line, sizeof line) > 0);
	assert_int_equal(ha_snapshot_parse(line, &back), 0);
	assert_int_equal(back.state, HA_ST_TAKING_OVER);
	assert_memory_equal(&back.tx, &N(2)->disk.tx, sizeof back.tx);
	assert_int_equal(ha_snapshot_format(&N(2)->disk, line, 10), -1);
	assert_int_equal(ha_snapshot_parse("", &back), -1);
	assert_int_equal(ha_snapshot_parse("duet-ha 1 state=99 reason=0 manual=0 disabled=0 "
					   "serve=0 seq=0 tx=0,0,0,0,0,0\n",
					   &back),
			 -1);
	assert_int_equal(ha_snapshot_parse("duet-ha 1 state=2 reason=0 manual=0 disabled=0 "
					   "serve=0 seq=0 tx=0,1,1,0,0,0\n",
					   &back),
			 -1); /* a step without a transaction id */
	assert_int_equal(ha_snapshot_parse("duet-ha 1 state=2 reason=0 manual=0 disabled=0 "
					   "serve=1 seq=4 tx=0,0,0,0,0,0 junk",
					   &back),
			 -1);
	assert_int_equal(ha_snapshot_parse("duet-ha 1 state=2 reason=0 manual=0 disabled=0 "
					   "serve=1 seq=4 tx=0,0,0,0,0,0\n",
					   &back),
			 0);
}

static void test_names_and_table(void **state)
{
	(void)state;
	for (int i = 0; i < HA_ST_COUNT; i++) {
		assert_non_null(ha_state_names[i]);
		assert_int_equal(ha_state_from_name(ha_state_names[i]), i);
	}
	for (int i = 0; i < HA_RS_COUNT; i++) {
		assert_non_null(ha_reason_names[i]);
		assert_int_equal(ha_reason_from_name(ha_reason_names[i]), i);
	}
	for (int i = 0; i < HA_EV_COUNT; i++)
		assert_non_null(ha_event_names[i]);
	assert_string_equal(ha_state_names[HA_ST_FAILED_OVER_CSNR],
			    "Failed Over with Critical Services Not Running");
	assert_string_equal(ha_reason_names[HA_RS_PEER_DOWN_INIT],
			    "Peer Down During Initialization");
	size_t n;
	const struct ha_row *t = ha_table(&n);
	assert_true(n > 50);
	for (size_t i = 0; i < n; i++) {
		assert_non_null(t[i].name);
		assert_true(t[i].states != 0 && t[i].events != 0);
		assert_true(t[i].next == HA_NEXT_SAME || (t[i].next >= 0 && t[i].next < HA_ST_COUNT));
		assert_true(t[i].reason >= HA_RSN_MSG && t[i].reason < HA_RS_COUNT);
		assert_true((t[i].events >> HA_EV_COUNT) == 0);
	}
	/* Every Table 31 row is named by some table row. */
	for (int r = 1; r <= 24; r++) {
		char tag[16];
		snprintf(tag, sizeof tag, "T%d", r);
		bool found = false;
		for (size_t i = 0; i < n && !found; i++) {
			const char *p = t[i].name;
			while ((p = strstr(p, tag)) != NULL) {
				char next = p[strlen(tag)];
				if (next < '0' || next > '9') {
					found = true;
					break;
				}
				p++;
			}
		}
		if (!found && r != 1 && r != 3 && r != 5 && r != 6 && r != 7)
			fail_msg("no table row names %s", tag);
	}
	assert_true(ha_table_allows(HA_ST_NORMAL, HA_EV_PEER_LOST, HA_ST_BACKUP));
	assert_false(ha_table_allows(HA_ST_IDLE, HA_EV_OP_FAILOVER, HA_ST_FAILING_OVER));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup(name, setup)
	const struct CMUnitTest tests[] = {
		T(test_T1_normal_normal),
		T(test_T2_manual_failover_in_progress),
		T(test_T3_manual_failover_complete),
		T(test_T4_manual_fallback_in_progress),
		T(test_T5_restart_idle_node),
		T(test_T6_restart_both_in_manual_failover),
		T(test_T7_restart_backup_node),
		T(test_T8_restart_while_taking_over),
		T(test_T9_restart_while_taking_back),
		T(test_T10_automatic_fallback),
		T(test_T11_failed_over_ready_for_fallback),
		T(test_T12_critical_service_down),
		T(test_T13_database_failure),
		T(test_T14_start_failed_while_taking_back),
		T(test_T15_backup_service_down),
		T(test_T16_peer_down),
		T(test_T17_peer_reboot),
		T(test_T18_peer_down_during_initialization),
		T(test_T19_take_over_users_failed),
		T(test_T20_take_back_users_failed),
		T(test_T21_unknown_failure),
		T(test_T22_auto_recover_database_failure),
		T(test_T23_auto_recover_critical_service_down),
		T(test_T24_ha_disabled_unknown),
		T(test_split_brain_heals),
		T(test_quorum_partition_minority_stops),
		T(test_quorum_minority_in_backup_stops),
		T(test_quorum_lost_alone_then_back),
		T(test_quorum_with_peer_changes_nothing),
		T(test_quorum_init_alone),
		T(test_quorum_failed_mode_serves_nobody),
		T(test_quorum_services_back_peer_gone),
		T(test_refusals_change_nothing),
		T(test_hostile_events_rejected),
		T(test_snapshot_text),
		T(test_names_and_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
