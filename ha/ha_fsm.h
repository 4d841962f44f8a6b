/* The HA state machine of one node of the pair (DESIGN.md §2, inventory-part2 §17).
 *
 * Pure code: no I/O, no clock, no allocation.  srmd feeds it events (peer link, supervisor,
 * replication, operators, timers) with the current time, and executes the actions it returns
 * (serve set for the engine, releases, engine start/stop, messages to the peer, persistence,
 * timers, alarms).  One transition table (ha/ha_table.c) decides everything; an event the
 * table does not allow in the current state is refused and changes nothing.
 * docs/state-machine.md describes the states, the table, the coordinated transitions and
 * the simulation that checks them. */
#ifndef DUET_HA_FSM_H
#define DUET_HA_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* States and reasons carry the manual's English names (ha_state_names, ha_reason_names). */
enum ha_state {
	HA_ST_INITIALIZING,
	HA_ST_IDLE,
	HA_ST_NORMAL,
	HA_ST_BACKUP,            /* Running in Backup Mode */
	HA_ST_TAKING_OVER,
	HA_ST_FAILING_OVER,
	HA_ST_FAILED_OVER,
	HA_ST_FAILED_OVER_CSNR,  /* Failed Over with Critical Services Not Running */
	HA_ST_FALLING_BACK,
	HA_ST_TAKING_BACK,
	HA_ST_FAILED_MODE,       /* Running in Failed Mode */
	HA_ST_BACKUP_ACTIVATED,
	HA_ST_FAILOVER_AFFECTED, /* Failover Affected Services */
	HA_ST_UNKNOWN,
	HA_ST_COUNT
};

enum ha_reason {
	HA_RS_NORMAL,
	HA_RS_ADMIN,             /* On Admin Request */
	HA_RS_INIT,              /* Initialization */
	HA_RS_AUTO_FALLBACK,     /* Automatic Fallback */
	HA_RS_CSD,               /* Critical Service Down */
	HA_RS_DB_FAILURE,        /* Database Failure */
	HA_RS_START_FAILED,      /* Start of Critical Services Failed */
	HA_RS_PEER_DOWN,
	HA_RS_PEER_REBOOT,
	HA_RS_PEER_DOWN_INIT,    /* Peer Down During Initialization */
	HA_RS_TAKEOVER_FAILED,   /* Take Over Users Failed */
	HA_RS_TAKEBACK_FAILED,   /* Take Back Users Failed */
	HA_RS_UNKNOWN,
	HA_RS_AUTO_DB,           /* Auto Recover Database Failure */
	HA_RS_AUTO_CSD,          /* Auto Recover Critical Service Down */
	HA_RS_QUORUM_LOST,       /* not in the manual: corosync quorum required and lost */
	HA_RS_COUNT
};

/* Messages of the coordinated transitions and operator forwarding, carried by the peer link.
 * The link's encoding is its own; it must keep these fields and validate them (ha_msg_valid). */
enum ha_msg_type {
	HA_MSG_REQ_FAILOVER, /* "I (home) fail over to you": sender will be Failing Over */
	HA_MSG_REQ_FALLBACK, /* "I (home) take my users back": sender will be Taking Back */
	HA_MSG_ACK,          /* request accepted, the receiver of the request moved */
	HA_MSG_DONE,         /* this step is complete on my side */
	HA_MSG_ABORT,        /* request refused, or transition txid abandoned: roll back */
	HA_MSG_RECOVER,      /* operator Recovery of failure episodes txid / txid2 */
	HA_MSG_HA_DISABLE,   /* operator: ha disable (maintenance) on both nodes */
	HA_MSG_HA_ENABLE,
	HA_MSG_OP_FAILOVER,  /* operator on the peer: fail your users over to me */
	HA_MSG_OP_FALLBACK,  /* operator on the peer: take your users back from me */
	HA_MSG_COUNT
};

struct ha_msg {
	enum ha_msg_type type;
	uint32_t txid;  /* transition (REQ/ACK/DONE/ABORT) or failure episode (RECOVER) */
	uint32_t txid2; /* RECOVER: the second episode the sender knew of, 0 = none */
	uint8_t home;   /* REQ: the home node (1 or 2) whose users move */
	enum ha_reason reason; /* REQ: On Admin Request or Automatic Fallback */
};

/* What a node tells its peer in every heartbeat (ha_fsm_self_info) and learns from the peer's
 * (HA_EV_PEER_HEARTBEAT).  serve is a set of HA_HOME_BIT()s. */
struct ha_peer_info {
	enum ha_state state;
	enum ha_reason reason;
	enum ha_state resume; /* Initializing/Unknown: the state it resumes (its persisted one) */
	uint8_t serve;        /* home nodes its engine serves now */
	bool services_ok;     /* false once a critical service stayed down past the delay */
	bool manual_failover; /* the pair is in manual-failover mode */
	uint32_t txid;        /* current transition, or failure episode in Running in Failed Mode */
};

#define HA_HOME_BIT(n) ((uint8_t)(1u << ((n) - 1)))
#define HA_HOMES_ALL 0x3u

enum ha_service { HA_SVC_ENGINE, HA_SVC_DATABASE };

enum ha_timer {
	HA_TM_CSD,           /* Critical Service Down Delay */
	HA_TM_AUTO_FALLBACK, /* Enable Automatic Fallback delay */
	HA_TM_STEP,          /* a coordinated step's timeout */
	HA_TM_RELEASE,       /* end of the re-login window of a release */
	HA_TM_INIT,          /* how long Initializing waits to see the peer */
	HA_TM_CATCHUP,       /* how long to wait for replication to catch up */
	HA_TM_COUNT
};

enum ha_event_type {
	/* peer link (heartbeat/) */
	HA_EV_PEER_UP,        /* connection to the peer (re)established */
	HA_EV_PEER_HEARTBEAT, /* .peer: the peer's state */
	HA_EV_PEER_LOST,      /* heartbeats timed out */
	HA_EV_PEER_GOODBYE,   /* the peer stops cleanly (shutdown, reboot) */
	/* peer messages (.msg), in enum ha_msg_type order: see ha_event_from_msg */
	HA_EV_MSG_REQ_FAILOVER,
	HA_EV_MSG_REQ_FALLBACK,
	HA_EV_MSG_ACK,
	HA_EV_MSG_DONE,
	HA_EV_MSG_ABORT,
	HA_EV_MSG_RECOVER,
	HA_EV_MSG_HA_DISABLE,
	HA_EV_MSG_HA_ENABLE,
	HA_EV_MSG_OP_FAILOVER,
	HA_EV_MSG_OP_FALLBACK,
	/* supervision and replication */
	HA_EV_SERVICE_DOWN,   /* .service went down (srmd restarts it with backoff meanwhile) */
	HA_EV_SERVICE_UP,     /* .service is up */
	HA_EV_START_FAILED,   /* critical services cannot start (configuration fault, retries spent) */
	HA_EV_USERS_FAILED,   /* moving users failed (engine release/serve error, database error) */
	HA_EV_REPL_CAUGHT_UP, /* replication from the peer caught up (after HA_ACT_CATCHUP_WAIT) */
	HA_EV_INTERNAL_ERROR,
	/* corosync quorum, when required ([peer] require_quorum): this node lost it / has it
	 * again.  The transport reports a loss before the Peer Down it causes. */
	HA_EV_QUORUM_LOST,
	HA_EV_QUORUM_BACK,
	/* operators (.target: the node named on the command line, 0 = none) */
	HA_EV_OP_FAILOVER,    /* failover [NODE]: NODE's users move to its peer (default: this) */
	HA_EV_OP_FALLBACK,    /* fallback [NODE]: NODE takes its users back (default: the failed one) */
	HA_EV_OP_RECOVER,
	HA_EV_OP_HA_ENABLE,
	HA_EV_OP_HA_DISABLE,
	/* timers, in enum ha_timer order */
	HA_EV_TIMER_CSD,
	HA_EV_TIMER_AUTO_FALLBACK,
	HA_EV_TIMER_STEP,
	HA_EV_TIMER_RELEASE,
	HA_EV_TIMER_INIT,
	HA_EV_TIMER_CATCHUP,
	HA_EV_COUNT
};

struct ha_event {
	enum ha_event_type type;
	int64_t now_ms;           /* the caller's monotonic clock */
	struct ha_peer_info peer; /* HA_EV_PEER_HEARTBEAT */
	struct ha_msg msg;        /* HA_EV_MSG_* */
	enum ha_service service;  /* HA_EV_SERVICE_* */
	int target;               /* HA_EV_OP_FAILOVER / _FALLBACK: 1, 2 or 0 */
};

/* Coordinated transition in progress (persisted, so a restart resumes it). */
enum ha_step {
	HA_STEP_NONE,
	HA_STEP_WAIT_ACK,     /* requester: request sent */
	HA_STEP_WAIT_CATCHUP, /* Taking Back: acked, waiting for replication */
	HA_STEP_SERVING,      /* Taking Back: serving own users again, DONE sent */
	HA_STEP_WAIT_DONE,    /* responder: acked, waiting for the requester's DONE */
	HA_STEP_RELEASING,    /* the releasing side: re-login window running */
	HA_STEP_COUNT
};

struct ha_tx {
	uint32_t id;           /* 0 = none */
	enum ha_step step;
	uint8_t home;          /* whose users move */
	enum ha_reason reason; /* On Admin Request / Automatic Fallback */
	enum ha_state prev_state;   /* where an abort returns to */
	enum ha_reason prev_reason;
};

#define HA_SNAPSHOT_VERSION 1
struct ha_snapshot {
	enum ha_state state;
	enum ha_reason reason;
	bool manual_failover;
	bool ha_disabled;
	uint8_t serve;
	uint32_t seq;  /* transaction id counter */
	struct ha_tx tx;
};

enum ha_action_type {
	HA_ACT_PERSIST,        /* .snap: write it durably before anything else */
	HA_ACT_RELEASE,        /* .home: end its sessions over .window_ms, see-other-host to the
				* peer when .to_peer (else system-shutdown); ordered before SERVE */
	HA_ACT_SERVE,          /* .serve: the engine's home-node set; .unplanned: the added home
				* nodes arrive unannounced (apply the login profile's rate) */
	HA_ACT_ENGINE_START,   /* start the critical services (idempotent) */
	HA_ACT_ENGINE_RESTART, /* Recovery: restart them now, resetting the backoff */
	HA_ACT_SEND,           /* .msg to the peer */
	HA_ACT_SEND_STATE,     /* send a heartbeat now (ha_fsm_self_info changed) */
	HA_ACT_CATCHUP_WAIT,   /* report HA_EV_REPL_CAUGHT_UP once replication from the peer
				* has caught up with the peer's current position */
	HA_ACT_TIMER_ARM,      /* .timer fires HA_EV_TIMER_* at .deadline_ms (replaces) */
	HA_ACT_TIMER_CANCEL,   /* .timer */
	HA_ACT_ALARM,          /* .alarm raised (.raise) or cleared */
	HA_ACT_TYPE_COUNT
};

enum ha_alarm {
	HA_ALARM_CATCHUP_STARTUP,  /* start-up waits for replication (Data Monitor) */
	HA_ALARM_CATCHUP_TAKEBACK, /* a take-back was aborted: replication did not catch up */
	HA_ALARM_SERVICE_DOWN,     /* a critical service stayed down past the delay */
	HA_ALARM_FAILED_MODE,      /* Running in Failed Mode: Recovery needed */
	HA_ALARM_SPLIT_BRAIN,      /* both nodes served one home node; resolved (notice) */
	HA_ALARM_COUNT
};

struct ha_action {
	enum ha_action_type type;
	uint8_t serve;
	bool unplanned;
	uint8_t home;
	int64_t window_ms;
	bool to_peer;
	struct ha_msg msg;
	enum ha_timer timer;
	int64_t deadline_ms;
	enum ha_alarm alarm;
	bool raise;
	struct ha_snapshot snap;
};

#define HA_MAX_ACTIONS 32
struct ha_actions {
	size_t n;
	struct ha_action a[HA_MAX_ACTIONS];
};

/* Parameters (milliseconds).  ha_config_defaults gives the manual's values where it has
 * them (Critical Service Down Delay 90 s, automatic fallback off, delay 30 min). */
struct ha_config {
	int node_id;                   /* 1 or 2 */
	int64_t csd_delay_ms;          /* Critical Service Down Delay */
	int64_t relogin_window_ms;     /* spread of planned releases (Client Re-Login Upper Limit) */
	int64_t step_timeout_ms;       /* a coordinated step's timeout (added to the window) */
	int64_t init_timeout_ms;       /* Initializing: wait this long to see the peer */
	int64_t catchup_timeout_ms;    /* wait for replication at start-up / take-back */
	bool auto_fallback;            /* Enable Automatic Fallback */
	int64_t auto_fallback_delay_ms;
};

typedef void (*ha_log_fn)(void *arg, const char *line);

/* Internal facts; fields are read by the tests and the simulation, written only by the FSM. */
struct ha_fsm {
	struct ha_config cfg;
	ha_log_fn log;
	void *log_arg;
	uint8_t self_bit, peer_bit;

	enum ha_state state;
	enum ha_reason reason;
	enum ha_state resume;  /* Initializing: the restored state */
	bool manual_failover;
	bool ha_disabled;
	uint8_t serve;
	uint32_t seq;
	struct ha_tx tx;
	uint32_t fail_id;       /* failure episode while Running in Failed Mode */
	uint32_t recovered[2];  /* episodes an operator recovered (stale heartbeats ignore them) */

	/* local services */
	bool engine_up, db_up;
	bool svc_failed;                 /* down past the delay, or start failed */
	/* quorum required and lost: alone, this node may be the minority of a partition */
	bool quorum_lost;
	enum ha_service failed_svc;      /* which one, for the reason */
	/* peer */
	bool peer_alive;       /* link up and heartbeats flowing */
	bool peer_known;       /* peer holds a heartbeat received since the last loss */
	struct ha_peer_info peer;
	/* Initializing / take-back */
	bool init_expired, caught_up, catchup_expired, catchup_asked;

	int64_t now_ms;
	int64_t deadline[HA_TM_COUNT]; /* 0 = not armed */
	uint32_t armed_now;            /* timers armed during the current event */
	struct ha_actions *out;        /* during ha_fsm_handle */
	bool overflow;
};

/* Table row, exported for tests, docs and the simulation's "no transition outside the table"
 * check.  events is a mask of (1 << enum ha_event_type); next HA_NEXT_SAME keeps the state;
 * reason is an enum ha_reason or one of HA_RSN_*. */
#define HA_NEXT_SAME (-1)
enum {
	HA_RSN_KEEP = -1,   /* unchanged */
	HA_RSN_PEER = -2,   /* the peer's reason (heartbeat) */
	HA_RSN_SVC = -3,    /* Critical Service Down or Database Failure: which service failed */
	HA_RSN_AUTO = -4,   /* Auto Recover Critical Service Down / Database Failure */
	HA_RSN_TX = -5,     /* the transition's reason (request) */
	HA_RSN_PREV = -6,   /* the reason before the transition (abort) */
	HA_RSN_MSG = -7,    /* the request message's reason */
};
struct ha_row {
	const char *name;
	uint32_t states;
	uint64_t events;
	bool (*guard)(const struct ha_fsm *f, const struct ha_event *ev);
	void (*action)(struct ha_fsm *f, const struct ha_event *ev);
	int next;
	int reason;
};

#define HA_OK 0
#define HA_EREFUSED (-1) /* the table has no row for this event in this state */
#define HA_EINVAL (-2)   /* malformed event (bad enum, home node, serve set) */

extern const char *const ha_state_names[HA_ST_COUNT];
extern const char *const ha_reason_names[HA_RS_COUNT];
extern const char *const ha_event_names[HA_EV_COUNT];
extern const char *const ha_action_names[HA_ACT_TYPE_COUNT];
extern const char *const ha_msg_names[HA_MSG_COUNT];
extern const char *const ha_step_names[HA_STEP_COUNT];
extern const char *const ha_alarm_names[HA_ALARM_COUNT];

const char *ha_state_name(int s);
const char *ha_reason_name(int r);
const char *ha_event_name(int e);
/* -1 when not a name of the list (exact, case-sensitive). */
int ha_state_from_name(const char *name);
int ha_reason_from_name(const char *name);

void ha_config_defaults(struct ha_config *cfg, int node_id);

/* restore NULL: a node that never ran.  Otherwise the last HA_ACT_PERSIST snapshot (already
 * validated with ha_snapshot_valid).  log may be NULL. */
void ha_fsm_init(struct ha_fsm *f, const struct ha_config *cfg, const struct ha_snapshot *restore,
		 ha_log_fn log, void *log_arg);
/* The first actions: start services, arm the Initializing timer (or, with HA disabled,
 * Unknown serving this node's own users). */
void ha_fsm_start(struct ha_fsm *f, int64_t now_ms, struct ha_actions *out);
/* Apply one event: HA_OK with out filled, HA_EREFUSED (out empty, nothing changed, a warning
 * logged) or HA_EINVAL. */
int ha_fsm_handle(struct ha_fsm *f, const struct ha_event *ev, struct ha_actions *out);

void ha_fsm_snapshot(const struct ha_fsm *f, struct ha_snapshot *snap);
/* Quorum is required and lost, and the peer is not seen: this node serves nobody. */
bool ha_fsm_alone_without_quorum(const struct ha_fsm *f);
void ha_fsm_self_info(const struct ha_fsm *f, struct ha_peer_info *info);
/* HA_EV_MSG_* for a message type. */
enum ha_event_type ha_event_from_msg(enum ha_msg_type t);
bool ha_msg_valid(const struct ha_msg *m);
bool ha_peer_info_valid(const struct ha_peer_info *p);
bool ha_snapshot_valid(const struct ha_snapshot *s);
/* One text line for srmd's state file; parse rejects anything malformed. */
int ha_snapshot_format(const struct ha_snapshot *s, char *buf, size_t len);
int ha_snapshot_parse(const char *line, struct ha_snapshot *s);

const struct ha_row *ha_table(size_t *n);
/* Whether some row takes state from to state to on event ev (HA_NEXT_SAME rows: to == from). */
bool ha_table_allows(enum ha_state from, enum ha_event_type ev, enum ha_state to);

/* Internal: used by ha/ha_table.c (the rows' guards and actions). */
void ha_emit_send(struct ha_fsm *f, enum ha_msg_type type, uint32_t txid, uint32_t txid2,
		  uint8_t home, enum ha_reason reason);
void ha_emit_simple(struct ha_fsm *f, enum ha_action_type type);
void ha_emit_alarm(struct ha_fsm *f, enum ha_alarm alarm, bool raise);
void ha_timer_arm(struct ha_fsm *f, enum ha_timer t, int64_t delay_ms);
void ha_timer_cancel(struct ha_fsm *f, enum ha_timer t);
uint32_t ha_txid_new(struct ha_fsm *f);
int ha_peer_node(const struct ha_fsm *f);

#endif
