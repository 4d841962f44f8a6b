/* The pair's runtime (see pair.h): one state machine fed from the peer link, the
 * supervisors, operators and timers, and the executor of its actions.  Like sasyncd's
 * carp_update_state(), everything that follows a decision happens in one place
 * (pair_exec), in the order the state machine gives. */
#include "ha/pair.h"

#include "ha/catchup.h"
#include "ha/ctl_profile.h"
#include "ha/db_health.h"
#include "ha/engine_child.h"
#include "ha/ha_state_file.h"
#include "ha/prov.h"
#include "ha/srm.h"
#include "heartbeat/transport.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/pg.h"
#include "replication/replication.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAIR_QUEUE 32           /* events waiting while one is applied */
#define PAIR_STATS_MS 1000      /* engine and account counters for heartbeats and status */
#define PAIR_FAILED_STARTS 4    /* engine starts that never got ready: Start ... Failed */
#define PAIR_MIN_LOGIN_RATE 100.0 /* logins/s: floor of the unplanned-arrival throttle */
#define PAIR_REPL_CONNS 3        /* replication's own pool: load/fetch, apply, trim and acks */
#define PAIR_CATCHUP_SLACK_MS 1000 /* catchup.c gives up this long after the state machine */

struct pair_timer {
	struct pair *p;
	enum ha_timer t;
	struct event *ev;
};

struct pair {
	struct srm *srm;
	struct ha_fsm fsm;
	struct peer_transport *link;   /* [peer] transport: tcp or corosync */
	struct repl *repl;             /* replication with the peer (docs/replication-protocol.md) */
	struct pg_pool *repl_pool;     /* its connections, apart from health checks and commands */
	struct catchup *catchup;
	char state_path[CFG_PATH + 16];
	char peer_client[CFG_NAME];
	struct pair_timer timers[HA_TM_COUNT];
	struct event *ev_state;    /* periodic state frame (the state machine's heartbeat) */
	struct event *ev_stats;    /* counters */
	struct event *ev_throttle; /* end of the unplanned-login throttle */

	struct ha_event queue[PAIR_QUEUE];
	size_t qhead, qlen;
	int busy;
	int persist_failing;

	/* supervision, edge-triggered into the state machine */
	int engine_reported, db_reported;   /* -1 unknown, else the last value fed */
	enum engine_child_state engine_last;
	int failed_starts;
	int start_failed_sent;
	pid_t engine_pid;

	uint8_t served;                     /* the set the engine was last given */
	char redirect[3][CFG_NAME];         /* what the engine was told per home node */
	int redirect_valid[3];
	time_t since;
	enum ha_state last_state;
	enum ha_reason last_reason;
	unsigned alarms;

	struct pair_peer_view peer;
	uint32_t sessions[2];
	uint32_t accounts[3];
	struct engine_child_req *stats_req;
	struct pg_req *count_req;

	void (*goodbye_done)(void *arg);
	void *goodbye_arg;
};

static void fsm_log(void *arg, const char *line)
{
	(void)arg;
	log_info("ha: %s", line);
}

static void pair_exec(struct pair *p, const struct ha_actions *out);
static void pair_feed(struct pair *p, const struct ha_event *ev);

/* ---- what the peer sees ---- */

void pair_local_wire(const struct pair *p, struct ha_wire_state *out)
{
	memset(out, 0, sizeof *out);
	ha_fsm_self_info(&p->fsm, &out->info);
	out->since_unix = (uint64_t)p->since;
	out->engine_up = p->engine_reported == 1;
	out->db_up = p->db_reported == 1;
	out->sessions[0] = p->sessions[0];
	out->sessions[1] = p->sessions[1];
	memcpy(out->accounts, p->accounts, sizeof out->accounts);
}

static void state_send(struct pair *p)
{
	struct ha_wire_state ws;
	pair_local_wire(p, &ws);
	/* The peer link's own heartbeats carry the summary (state, reason, service bits and
	 * user counts) for anything that reads only them. */
	struct hb_state hb;
	memset(&hb, 0, sizeof hb);
	hb.state = (uint16_t)ws.info.state;
	hb.reason = (uint16_t)ws.info.reason;
	hb.services = (ws.engine_up ? 1u : 0) | (ws.db_up ? 2u : 0) | (ws.info.services_ok ? 4u : 0);
	hb.users_home = ws.accounts[p->fsm.cfg.node_id];
	/* Replication positions ride on the link's heartbeats (docs/replication-protocol.md §7):
	 * the peer's lag view and its catch-up target. */
	repl_positions(p->repl, hb.repl_pos);
	hb.users_served = 0;
	for (int h = 1; h <= 2; h++)
		if (ws.info.serve & HA_HOME_BIT(h) && ws.sessions[h - 1] != UINT32_MAX)
			hb.users_served += ws.sessions[h - 1];
	peer_transport_set_local_state(p->link, &hb);
	uint8_t buf[HA_WIRE_STATE_SIZE];
	if (ha_wire_state_encode(&ws, buf, sizeof buf) > 0)
		peer_transport_send_app(p->link, HA_APP_STATE, buf, sizeof buf);
}

/* ---- the engine's view of who serves what ---- */

static void on_engine_ack(void *arg, const char *reply)
{
	(void)arg;
	if (reply && strncmp(reply, "error", 5) == 0)
		log_warnx("ha: engine refused: %.200s", reply);
}

static void redirect_refresh(struct pair *p)
{
	pid_t pid = engine_child_pid(p->srm->engine);
	if (pid != p->engine_pid) {
		/* A new engine process knows no redirects yet. */
		p->engine_pid = pid;
		memset(p->redirect_valid, 0, sizeof p->redirect_valid);
	}
	for (int h = 1; h <= 2; h++) {
		const char *want = "-";
		if (!(p->fsm.serve & HA_HOME_BIT(h)) && p->peer.link_up && p->peer.known &&
		    (p->peer.st.info.serve & HA_HOME_BIT(h)))
			want = p->peer_client;
		/* Alone without quorum: the peer is the side that may have it. */
		if (!(p->fsm.serve & HA_HOME_BIT(h)) && ha_fsm_alone_without_quorum(&p->fsm))
			want = p->peer_client;
		if (p->redirect_valid[h] && strcmp(p->redirect[h], want) == 0)
			continue;
		char line[CFG_NAME + 32];
		snprintf(line, sizeof line, "redirect %d %s", h, want);
		if (!engine_child_request(p->srm->engine, line, on_engine_ack, p))
			continue; /* not connected: sent again once it is */
		snprintf(p->redirect[h], sizeof p->redirect[h], "%s", want);
		p->redirect_valid[h] = 1;
		log_info("ha: logins of home node %d go to %s", h,
			 strcmp(want, "-") ? want : "nobody (reset)");
	}
}

static void on_release_reply(void *arg, const char *reply)
{
	struct pair *p = arg;
	long n;
	if (!reply)
		return; /* the engine went away: its sessions went with it */
	if (sscanf(reply, "release ok %ld", &n) == 1) {
		log_info("ha: engine releases %ld session(s)", n);
		return;
	}
	log_warnx("ha: engine could not release users: %.200s", reply);
	struct ha_event ev;
	memset(&ev, 0, sizeof ev);
	ev.type = HA_EV_USERS_FAILED;
	pair_feed(p, &ev);
}

static void release_exec(struct pair *p, const struct ha_action *a)
{
	const char *target = a->to_peer ? p->peer_client : "-";
	char line[CFG_NAME + 64];
	snprintf(line, sizeof line, "redirect %u %s", (unsigned)a->home, target);
	if (engine_child_request(p->srm->engine, line, on_engine_ack, p)) {
		snprintf(p->redirect[a->home], sizeof p->redirect[a->home], "%s", target);
		p->redirect_valid[a->home] = 1;
	}
	snprintf(line, sizeof line, "release %u %s %lld", (unsigned)a->home, target,
		 (long long)a->window_ms);
	log_info("ha: release home node %u towards %s over %lld ms", (unsigned)a->home, target,
		 (long long)a->window_ms);
	if (!engine_child_request(p->srm->engine, line, on_release_reply, p))
		log_info("ha: engine not running: no sessions of home node %u to release",
			 (unsigned)a->home);
}

/* Unplanned arrivals (the peer was lost): admit logins at the rate of the re-login profile,
 * upper = lower + users / k, for the window between the two limits. */
static void throttle_set(struct pair *p, uint8_t added)
{
	const struct duet_config *cfg = &p->srm->cfg;
	long span = cfg->ha_relogin_upper_ms - cfg->ha_relogin_lower_ms;
	if (span <= 0 || !added)
		return;
	unsigned long users = 0;
	for (int h = 1; h <= 2; h++)
		if (added & HA_HOME_BIT(h))
			users += p->accounts[h];
	double rate = (double)users * 1000.0 / (double)span;
	/* A small group has no storm to fear: never slower than this. */
	if (rate < PAIR_MIN_LOGIN_RATE)
		rate = PAIR_MIN_LOGIN_RATE;
	char line[64];
	snprintf(line, sizeof line, "throttle %.1f %ld", rate, span);
	log_info("ha: unplanned arrivals: logins limited to %.1f/s for %ld ms", rate, span);
	engine_child_request(p->srm->engine, line, on_engine_ack, p);
	struct timeval tv = clock_tv_ms(span);
	evtimer_add(p->ev_throttle, &tv);
}

static void on_throttle_end(evutil_socket_t fd, short what, void *arg)
{
	struct pair *p = arg;
	log_info("ha: login throttle lifted");
	engine_child_request(p->srm->engine, "throttle 0", on_engine_ack, p);
}

static void serve_exec(struct pair *p, const struct ha_action *a)
{
	uint8_t before = p->served;
	p->served = a->serve;
	char set[16];
	if ((a->serve & HA_HOMES_ALL) == HA_HOMES_ALL)
		snprintf(set, sizeof set, "1,2");
	else if (a->serve)
		snprintf(set, sizeof set, "%d", (a->serve & 1) ? 1 : 2);
	else
		snprintf(set, sizeof set, "-");
	log_info("ha: engine serves home nodes %s%s", set, a->unplanned ? " (unplanned)" : "");
	engine_child_set_serve(p->srm->engine, set);
	if (a->unplanned)
		throttle_set(p, a->serve & ~before);
}

/* ---- executing actions ---- */

static void persist_exec(struct pair *p, const struct ha_snapshot *snap)
{
	char err[512];
	if (ha_state_file_save(p->state_path, snap, err, sizeof err) == 0) {
		p->persist_failing = 0;
		return;
	}
	log_warnx("ha: cannot persist the HA state: %s", err);
	if (p->persist_failing)
		return; /* already reported; do not loop through internal-error */
	p->persist_failing = 1;
	struct ha_event ev;
	memset(&ev, 0, sizeof ev);
	ev.type = HA_EV_INTERNAL_ERROR;
	pair_feed(p, &ev);
}

static void pair_exec(struct pair *p, const struct ha_actions *out)
{
	for (size_t i = 0; i < out->n; i++) {
		const struct ha_action *a = &out->a[i];
		switch (a->type) {
		case HA_ACT_PERSIST:
			persist_exec(p, &a->snap);
			break;
		case HA_ACT_ENGINE_START:
			if (engine_child_start(p->srm->engine) < 0)
				log_warnx("ha: engine start failed; retrying with backoff");
			break;
		case HA_ACT_ENGINE_RESTART:
			p->failed_starts = 0;
			p->start_failed_sent = 0;
			engine_child_restart_now(p->srm->engine);
			break;
		case HA_ACT_RELEASE:
			release_exec(p, a);
			break;
		case HA_ACT_SERVE:
			serve_exec(p, a);
			break;
		case HA_ACT_SEND: {
			uint8_t buf[HA_WIRE_MSG_SIZE];
			if (ha_wire_msg_encode(&a->msg, buf, sizeof buf) < 0 ||
			    peer_transport_send_app(p->link, HA_APP_MSG, buf, sizeof buf) < 0)
				log_info("ha: %s (tx %u) not sent: no connection to the peer; "
					 "repeated when it is back",
					 ha_msg_names[a->msg.type], a->msg.txid);
			else
				log_info("ha: sent %s (tx %u, home %u)", ha_msg_names[a->msg.type],
					 a->msg.txid, (unsigned)a->msg.home);
			break;
		}
		case HA_ACT_SEND_STATE:
			state_send(p);
			break;
		case HA_ACT_CATCHUP_WAIT:
			if (catchup_wait(p->catchup) < 0)
				log_warnx("ha: cannot wait for replication");
			break;
		case HA_ACT_TIMER_ARM: {
			struct timeval tv = clock_tv_ms(a->deadline_ms - clock_mono_ms());
			evtimer_add(p->timers[a->timer].ev, &tv);
			break;
		}
		case HA_ACT_TIMER_CANCEL:
			evtimer_del(p->timers[a->timer].ev);
			break;
		case HA_ACT_ALARM:
			if (a->raise) {
				p->alarms |= 1u << a->alarm;
				log_warnx("ha: alarm %s raised", ha_alarm_names[a->alarm]);
			} else {
				p->alarms &= ~(1u << a->alarm);
				log_info("ha: alarm %s cleared", ha_alarm_names[a->alarm]);
			}
			break;
		default:
			break;
		}
	}
}

/* Whether the state machine still waits for replication-caught-up. */
static int fsm_waits_catchup(const struct ha_fsm *f)
{
	if (f->state == HA_ST_TAKING_BACK)
		return f->tx.step == HA_STEP_WAIT_CATCHUP;
	if (f->state == HA_ST_INITIALIZING)
		return f->catchup_asked && !f->caught_up && !f->catchup_expired;
	return 0;
}

static void after_event(struct pair *p)
{
	if (catchup_waiting(p->catchup) && !fsm_waits_catchup(&p->fsm))
		catchup_cancel(p->catchup);
	if (p->fsm.state != p->last_state || p->fsm.reason != p->last_reason) {
		srm_transition(p->srm, ha_state_name(p->last_state), ha_reason_name(p->last_reason),
			       ha_state_name(p->fsm.state), ha_reason_name(p->fsm.reason));
		p->since = time(NULL);
		p->last_state = p->fsm.state;
		p->last_reason = p->fsm.reason;
	}
	redirect_refresh(p);
}

static void pair_apply(struct pair *p, struct ha_event *e)
{
	e->now_ms = clock_mono_ms();
	struct ha_actions out;
	if (ha_fsm_handle(&p->fsm, e, &out) == HA_OK)
		pair_exec(p, &out);
	after_event(p);
}

/* Events may arise while actions run (an engine start reports a change at once): they wait
 * in the queue, so the state machine always sees one event at a time. */
static void pair_drain(struct pair *p)
{
	if (p->busy)
		return;
	p->busy = 1;
	while (p->qlen) {
		struct ha_event e = p->queue[p->qhead];
		p->qhead = (p->qhead + 1) % PAIR_QUEUE;
		p->qlen--;
		pair_apply(p, &e);
	}
	p->busy = 0;
}

static void pair_feed(struct pair *p, const struct ha_event *ev)
{
	if (p->qlen == PAIR_QUEUE) {
		log_warnx("ha: event queue full, %s dropped", ha_event_name(ev->type));
		return;
	}
	p->queue[(p->qhead + p->qlen) % PAIR_QUEUE] = *ev;
	p->qlen++;
	pair_drain(p);
}

static void feed_simple(struct pair *p, enum ha_event_type type)
{
	struct ha_event ev;
	memset(&ev, 0, sizeof ev);
	ev.type = type;
	pair_feed(p, &ev);
}

/* ---- timers ---- */

static void on_fsm_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pair_timer *pt = arg;
	feed_simple(pt->p, (enum ha_event_type)(HA_EV_TIMER_CSD + pt->t));
}

static void on_catchup(void *arg) { feed_simple(arg, HA_EV_REPL_CAUGHT_UP); }

static void on_state_tick(evutil_socket_t fd, short what, void *arg)
{
	state_send(arg);
}

/* ---- counters ---- */

static void on_stats_reply(void *arg, const char *reply)
{
	struct pair *p = arg;
	p->stats_req = NULL;
	p->sessions[0] = p->sessions[1] = UINT32_MAX;
	if (!reply || strncmp(reply, "stats ", 6) != 0)
		return;
	p->sessions[0] = p->sessions[1] = 0;
	for (int h = 1; h <= 2; h++) {
		char key[32];
		snprintf(key, sizeof key, " sessions_node%d=", h);
		const char *at = strstr(reply, key);
		if (at) {
			long v = atol(at + strlen(key));
			p->sessions[h - 1] = v >= 0 && v < (long)UINT32_MAX ? (uint32_t)v : 0;
		}
	}
}

static void on_count_result(void *arg, PGresult *res, const char *errmsg)
{
	struct pair *p = arg;
	p->count_req = NULL;
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
		return;
	uint32_t acc[3] = {0, 0, 0};
	for (int i = 0; i < PQntuples(res); i++) {
		long home = atol(PQgetvalue(res, i, 0)), n = atol(PQgetvalue(res, i, 1));
		if (n < 0)
			continue;
		acc[home == 1 || home == 2 ? home : 0] += (uint32_t)n;
	}
	memcpy(p->accounts, acc, sizeof acc);
}

static void on_stats_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pair *p = arg;
	if (!p->stats_req && engine_child_state(p->srm->engine) == ENGINE_READY)
		p->stats_req = engine_child_request(p->srm->engine, "stats", on_stats_reply, p);
	else if (engine_child_state(p->srm->engine) != ENGINE_READY)
		p->sessions[0] = p->sessions[1] = 0;
	if (!p->count_req)
		p->count_req = pg_query(p->srm->pool,
					"SELECT home_node, count(*) FROM users GROUP BY home_node",
					0, NULL, on_count_result, p);
}

/* ---- the peer link ---- */

static void on_peer_up(void *arg, const uint8_t boot_id[FRAME_BOOT_ID_SIZE],
		       const struct frame_hello *hello)
{
	struct pair *p = arg;
	log_info("ha: peer node %u is up", (unsigned)hello->node_id);
	p->peer.link_up = 1;
	p->peer.known = 0;
	feed_simple(p, HA_EV_PEER_UP);
	state_send(p);
	profile_sync_peer_up(p->srm->profile);
}

static void on_peer_down(void *arg, enum peer_down_reason reason, int goodbye_reason)
{
	struct pair *p = arg;
	snprintf(p->peer.down_reason, sizeof p->peer.down_reason, "%s",
		 peer_down_reason_name(reason));
	p->peer.link_up = 0;
	p->peer.known = 0;
	switch (reason) {
	case PEER_DOWN_GOODBYE:
		log_info("ha: the peer said goodbye (%s): Peer Reboot",
			 goodbye_reason_name(goodbye_reason));
		feed_simple(p, HA_EV_PEER_GOODBYE);
		break;
	case PEER_DOWN_RESTARTED:
		/* It crashed and is back already (on_up follows): the state machine learns it
		 * from the peer's Initializing heartbeat, which resumes transitions (T5-T9). */
		log_warnx("ha: the peer restarted without a goodbye");
		break;
	default:
		log_warnx("ha: peer lost (%s): Peer Down", peer_down_reason_name(reason));
		feed_simple(p, HA_EV_PEER_LOST);
		break;
	}
}

static void on_peer_reconnect(void *arg)
{
	struct pair *p = arg;
	/* Frames in flight may be lost: the state machine repeats its step on peer-up
	 * (replication restarted from its durable positions in on_data_up). */
	feed_simple(p, HA_EV_PEER_UP);
	state_send(p);
	profile_sync_peer_up(p->srm->profile);
}

/* Replication's path to the peer (with tcp, the same connection; with corosync, its own TLS
 * connection): it restarts from its durable positions with a new HELLO. */
static void on_data_up(void *arg)
{
	struct pair *p = arg;
	repl_peer_up(p->repl);
}

static void on_data_down(void *arg)
{
	struct pair *p = arg;
	repl_peer_down(p->repl);
}

static void on_peer_heartbeat(void *arg, const struct hb_state *st)
{
	struct pair *p = arg;
	repl_on_peer_positions(p->repl, st->repl_pos);
	catchup_on_peer_positions(p->catchup, st->repl_pos);
}

static void on_peer_app(void *arg, uint16_t subtype, const uint8_t *payload, size_t len)
{
	struct pair *p = arg;
	struct ha_event ev;
	memset(&ev, 0, sizeof ev);
	switch (subtype) {
	case HA_APP_STATE: {
		struct ha_wire_state ws;
		if (ha_wire_state_decode(payload, len, &ws) < 0) {
			log_warnx("ha: malformed state frame from the peer (%zu bytes) ignored", len);
			return;
		}
		p->peer.st = ws;
		p->peer.known = 1;
		p->peer.ever = 1;
		p->peer.last_rx_ms = clock_mono_ms();
		ev.type = HA_EV_PEER_HEARTBEAT;
		ev.peer = ws.info;
		pair_feed(p, &ev);
		return;
	}
	case HA_APP_MSG:
		if (ha_wire_msg_decode(payload, len, &ev.msg) < 0) {
			log_warnx("ha: malformed message from the peer (%zu bytes) ignored", len);
			return;
		}
		log_info("ha: received %s (tx %u, home %u)", ha_msg_names[ev.msg.type],
			 ev.msg.txid, (unsigned)ev.msg.home);
		ev.type = ha_event_from_msg(ev.msg.type);
		pair_feed(p, &ev);
		return;
	case HA_APP_PROV_REQ:
		prov_on_request(p->srm->prov, payload, len);
		return;
	case HA_APP_PROV_RESP:
		prov_on_response(p->srm->prov, payload, len);
		return;
	case HA_APP_PROFILE:
		profile_sync_on_frame(p->srm->profile, payload, len);
		return;
	default:
		if (subtype >= REPL_SUBTYPE_FIRST && subtype <= REPL_SUBTYPE_LAST) {
			/* A -1 (invalid frame) is logged there and answered with a HELLO. */
			repl_on_app(p->repl, subtype, payload, len);
			return;
		}
		/* A newer peer's state-machine frame: not ours. */
		log_debug("ha: APP subtype %u from the peer ignored", (unsigned)subtype);
		return;
	}
}

static void on_peer_quorum(void *arg, bool lost)
{
	struct pair *p = arg;
	feed_simple(p, lost ? HA_EV_QUORUM_LOST : HA_EV_QUORUM_BACK);
}

static void on_peer_closed(void *arg)
{
	struct pair *p = arg;
	void (*done)(void *) = p->goodbye_done;
	p->goodbye_done = NULL;
	if (done)
		done(p->goodbye_arg);
}

/* ---- supervision ---- */

void pair_services_changed(struct pair *p)
{
	if (p->srm->stopping)
		return;
	struct engine_child *ec = p->srm->engine;
	enum engine_child_state st = engine_child_state(ec);
	const char *health = engine_child_health(ec);
	int db_down_engine = strcmp(health, "db-down") == 0;
	int engine_up = st == ENGINE_READY && (strcmp(health, "ok") == 0 ||
					       strcmp(health, "-") == 0 || db_down_engine);
	int db_up = db_health_up(p->srm->db) && !db_down_engine;

	if (st == ENGINE_READY) {
		p->failed_starts = 0;
		p->start_failed_sent = 0;
	} else if (p->engine_last == ENGINE_STARTING && st == ENGINE_BACKOFF) {
		p->failed_starts++;
	}
	p->engine_last = st;

	struct ha_event ev;
	memset(&ev, 0, sizeof ev);
	if (db_up != p->db_reported) {
		p->db_reported = db_up;
		ev.type = db_up ? HA_EV_SERVICE_UP : HA_EV_SERVICE_DOWN;
		ev.service = HA_SVC_DATABASE;
		pair_feed(p, &ev);
	}
	if (engine_up != p->engine_reported) {
		p->engine_reported = engine_up;
		ev.type = engine_up ? HA_EV_SERVICE_UP : HA_EV_SERVICE_DOWN;
		ev.service = HA_SVC_ENGINE;
		pair_feed(p, &ev);
	}
	if (!p->start_failed_sent &&
	    (st == ENGINE_FAULT || p->failed_starts >= PAIR_FAILED_STARTS)) {
		p->start_failed_sent = 1;
		log_warnx("ha: the engine cannot start (%s): Start of Critical Services Failed",
			  st == ENGINE_FAULT ? "configuration fault" : "repeated failed starts");
		feed_simple(p, HA_EV_START_FAILED);
	}
	redirect_refresh(p);
}

/* ---- operators ---- */

int pair_operator(struct pair *p, enum ha_event_type type, int target, char *why, size_t len)
{
	struct ha_event ev;
	memset(&ev, 0, sizeof ev);
	ev.type = type;
	ev.target = target;
	/* Operator commands are applied at once (not queued) so the answer can say whether the
	 * state machine took them; commands run from the loop, never inside another event. */
	if (p->busy) {
		snprintf(why, len, "srmd is busy applying another event; try again");
		return HA_EREFUSED;
	}
	p->busy = 1;
	ev.now_ms = clock_mono_ms();
	struct ha_actions out;
	int rc = ha_fsm_handle(&p->fsm, &ev, &out);
	if (rc == HA_OK)
		pair_exec(p, &out);
	after_event(p);
	p->busy = 0;
	pair_drain(p);
	if (rc == HA_EREFUSED) {
		const char *peer_state = p->peer.known ? ha_state_name(p->peer.st.info.state)
				       : p->peer.link_up ? "not known yet"
							 : "unreachable";
		snprintf(why, len, "not possible now: this node is %s (%s), the peer is %s",
			 ha_state_name(p->fsm.state), ha_reason_name(p->fsm.reason), peer_state);
	} else if (rc == HA_EINVAL) {
		snprintf(why, len, "invalid target node");
	}
	return rc;
}

void pair_goodbye(struct pair *p, void (*done)(void *arg), void *arg)
{
	p->goodbye_done = done;
	p->goodbye_arg = arg;
	evtimer_del(p->ev_state);
	evtimer_del(p->ev_stats);
	peer_transport_goodbye(p->link, GOODBYE_SHUTDOWN);
}

/* ---- accessors ---- */

int pair_send_app(struct pair *p, uint16_t subtype, const void *payload, size_t len)
{
	return peer_transport_send_app(p->link, subtype, payload, len);
}

static int repl_send(void *arg, uint16_t subtype, const void *payload, size_t len)
{
	struct pair *p = arg;
	return p->link ? peer_transport_send_app(p->link, subtype, payload, len) : -1;
}

int pair_peer_reachable(const struct pair *p) { return p->peer.link_up; }
struct repl *pair_repl(const struct pair *p) { return p->repl; }
struct pg_pool *pair_repl_pool(const struct pair *p) { return p->repl_pool; }
void pair_catchup_status(const struct pair *p, struct catchup_status *st)
{
	catchup_status_get(p->catchup, st);
}
int pair_peer_node(const struct pair *p) { return ha_peer_node(&p->fsm); }
const struct ha_fsm *pair_fsm(const struct pair *p) { return &p->fsm; }
void pair_relogin_changed(struct pair *p)
{
	p->fsm.cfg.relogin_window_ms = p->srm->cfg.ha_relogin_upper_ms;
	/* what the engine advertises to clients (disco form urn:duet:relogin:0) */
	if (p->srm->engine)
		engine_child_set_relogin(p->srm->engine, p->srm->cfg.ha_relogin_lower_ms,
					 p->srm->cfg.ha_relogin_upper_ms);
}
time_t pair_since(const struct pair *p) { return p->since; }
unsigned pair_alarms(const struct pair *p) { return p->alarms; }
const char *pair_peer_client_address(const struct pair *p) { return p->peer_client; }

void pair_link_stats(const struct pair *p, struct peer_link_stats *out)
{
	peer_transport_stats_get(p->link, out);
}

void pair_peer_view(const struct pair *p, struct pair_peer_view *out)
{
	*out = p->peer;
	struct peer_link_stats s;
	peer_transport_stats_get(p->link, &s);
	out->rtt_us = s.rtt_srtt_us;
}

/* ---- life cycle ---- */

static void peer_client_derive(struct pair *p)
{
	const struct duet_config *cfg = &p->srm->cfg;
	if (cfg->peer_client_address[0]) {
		snprintf(p->peer_client, sizeof p->peer_client, "%s", cfg->peer_client_address);
		return;
	}
	/* Same XMPP port as ours, on the peer link's host. */
	char host[CFG_NAME];
	snprintf(host, sizeof host, "%s", cfg->peer_address);
	char *colon = strrchr(host, ':');
	if (colon)
		*colon = '\0';
	const char *port = strrchr(cfg->xmpp_listen, ':');
	snprintf(p->peer_client, sizeof p->peer_client, "%.200s:%.20s", host,
		 port ? port + 1 : "5222");
}

struct pair *pair_new(struct srm *srm, char *err, size_t errlen)
{
	const struct duet_config *cfg = &srm->cfg;
	struct pair *p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->srm = srm;
	p->engine_reported = p->db_reported = -1;
	p->engine_last = ENGINE_IDLE;
	p->engine_pid = -1;
	p->sessions[0] = p->sessions[1] = 0;
	p->since = time(NULL);
	peer_client_derive(p);

	struct ha_config hc;
	ha_config_defaults(&hc, (int)cfg->node_id);
	hc.csd_delay_ms = cfg->critical_service_down_delay_ms;
	hc.relogin_window_ms = cfg->ha_relogin_upper_ms;
	hc.step_timeout_ms = cfg->ha_step_timeout_ms;
	hc.init_timeout_ms = cfg->ha_init_timeout_ms;
	hc.catchup_timeout_ms = cfg->ha_catchup_timeout_ms;
	hc.auto_fallback = cfg->ha_automatic_fallback != 0;
	hc.auto_fallback_delay_ms = cfg->ha_automatic_fallback_delay_ms;

	snprintf(p->state_path, sizeof p->state_path, "%s/ha.state", cfg->run_dir);
	struct ha_snapshot snap;
	char why[512];
	int rc = ha_state_file_load(p->state_path, &snap, why, sizeof why);
	if (rc < 0)
		log_warnx("ha: %s; starting without a restored state", why);
	else if (rc == 0)
		log_info("ha: restored %s (%s)%s%s", ha_state_name(snap.state),
			 ha_reason_name(snap.reason), snap.manual_failover ? ", manual failover" : "",
			 snap.ha_disabled ? ", HA disabled" : "");
	ha_fsm_init(&p->fsm, &hc, rc == 0 ? &snap : NULL, fsm_log, p);
	p->last_state = p->fsm.state;
	p->last_reason = p->fsm.reason;

	for (int t = 0; t < HA_TM_COUNT; t++) {
		p->timers[t].p = p;
		p->timers[t].t = (enum ha_timer)t;
		p->timers[t].ev = evtimer_new(srm->base, on_fsm_timer, &p->timers[t]);
		if (!p->timers[t].ev)
			goto oom;
	}
	p->ev_state = event_new(srm->base, -1, EV_PERSIST, on_state_tick, p);
	p->ev_stats = event_new(srm->base, -1, EV_PERSIST, on_stats_tick, p);
	p->ev_throttle = evtimer_new(srm->base, on_throttle_end, p);
	if (!p->ev_state || !p->ev_stats || !p->ev_throttle)
		goto oom;

	struct repl_config rcfg;
	repl_config_defaults(&rcfg);
	rcfg.node_id = (uint32_t)cfg->node_id;
	rcfg.peer_id = (uint32_t)ha_peer_node(&p->fsm);
	p->repl_pool = pg_pool_new(srm->base, cfg->db_conninfo, PAIR_REPL_CONNS);
	if (!p->repl_pool)
		goto oom;
	p->repl = repl_new(srm->base, p->repl_pool, &rcfg, repl_send, p);
	if (!p->repl) {
		snprintf(err, errlen, "cannot set up replication (node %u, peer %u)",
			 (unsigned)rcfg.node_id, (unsigned)rcfg.peer_id);
		pair_free(p);
		return NULL;
	}
	p->catchup = catchup_new(srm->base, p->repl,
				 cfg->ha_catchup_timeout_ms + PAIR_CATCHUP_SLACK_MS, on_catchup, p);
	if (!p->catchup)
		goto oom;

	static const struct peer_transport_callbacks cbs = {
		.on_up = on_peer_up,
		.on_down = on_peer_down,
		.on_heartbeat = on_peer_heartbeat,
		.on_app = on_peer_app,
		.on_reconnect = on_peer_reconnect,
		.on_data_up = on_data_up,
		.on_data_down = on_data_down,
		.on_closed = on_peer_closed,
		.on_quorum = on_peer_quorum,
	};
	p->link = peer_transport_new(srm->base, cfg, &cbs, p);
	if (!p->link) {
		snprintf(err, errlen, "cannot set up the peer link (see the log)");
		pair_free(p);
		return NULL;
	}
	return p;
oom:
	snprintf(err, errlen, "out of memory");
	pair_free(p);
	return NULL;
}

void pair_start(struct pair *p)
{
	const struct duet_config *cfg = &p->srm->cfg;
	log_info("ha: node %d of a pair, peer at %s over %s (clients: %s), Critical Service "
		 "Down Delay %ld ms, automatic fallback %s",
		 p->fsm.cfg.node_id, cfg->peer_address, peer_transport_name(p->link), p->peer_client,
		 cfg->critical_service_down_delay_ms, cfg->ha_automatic_fallback ? "on" : "off");
	struct ha_actions out;
	p->busy = 1;
	ha_fsm_start(&p->fsm, clock_mono_ms(), &out);
	pair_exec(p, &out);
	after_event(p);
	p->busy = 0;
	pair_drain(p);
	struct timeval tv = clock_tv_ms(cfg->peer_heartbeat_interval_ms);
	event_add(p->ev_state, &tv);
	tv = clock_tv_ms(PAIR_STATS_MS);
	event_add(p->ev_stats, &tv);
	pair_services_changed(p);
}

void pair_free(struct pair *p)
{
	if (!p)
		return;
	if (p->stats_req)
		engine_child_req_cancel(p->stats_req);
	if (p->count_req)
		pg_req_cancel(p->count_req);
	/* Replication first: it sends on the link and queries its pool. */
	repl_free(p->repl);
	p->repl = NULL;
	if (p->link)
		peer_transport_free(p->link);
	pg_pool_free(p->repl_pool);
	for (int t = 0; t < HA_TM_COUNT; t++)
		if (p->timers[t].ev)
			event_free(p->timers[t].ev);
	if (p->ev_state)
		event_free(p->ev_state);
	if (p->ev_stats)
		event_free(p->ev_stats);
	if (p->ev_throttle)
		event_free(p->ev_throttle);
	catchup_free(p->catchup);
	free(p);
}
