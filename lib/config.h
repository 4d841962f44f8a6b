/* The node's configuration: one INI file per node, read by srmd and presenced alike.
 * Every parameter is listed in lib/config.c's directive table and documented in
 * docs/parameters.md (our name, the manual's name, default, range). */
#ifndef DUET_CONFIG_H
#define DUET_CONFIG_H

#include <stddef.h>

#define CFG_PATH 512
#define CFG_NAME 256

struct duet_config {
	/* [node] */
	long node_id;              /* 1 or 2: this node's home-node id */
	char node_name[CFG_NAME];  /* host name clients use for this node (see-other-host) */
	char domain[CFG_NAME];     /* the XMPP domain all users share */
	char run_dir[CFG_PATH];    /* sockets, pid files, persisted HA state */

	/* [database] */
	char db_conninfo[1024];    /* libpq connection string */
	long db_connections;       /* engine's pool size */

	/* [xmpp] — presenced */
	char xmpp_listen[CFG_NAME];   /* host:port, STARTTLS */
	char xmpps_listen[CFG_NAME];  /* host:port, direct TLS; empty = off */
	char tls_cert[CFG_PATH];
	char tls_key[CFG_PATH];
	int require_starttls;
	long max_stanza_size;      /* bytes */
	long max_xml_depth;
	long auth_timeout_ms;      /* unauthenticated connections closed after this */
	long idle_timeout_ms;      /* no traffic at all for this long -> connection-timeout */
	long keepalive_ms;         /* whitespace keepalive sent after this much silence */
	long max_conns_per_ip;     /* 0 = no limit */
	long auth_failures_per_min; /* per address, then not-authorized + close */
	long max_send_queue;       /* bytes queued to a slow client before we drop it */
	long max_contacts;         /* Maximum Contact List Size, 0 = No Limit */
	long max_watchers;         /* Maximum Watchers, 0 = No Limit */
	long max_sessions_per_user; /* Maximum number of logon sessions per user, 0 = no limit */
	int availability_sharing;  /* Enable availability sharing */
	int instant_messaging;     /* Enable instant messaging */
	int suppress_offline;      /* Suppress Offline Instant Messaging */
	int login_guard;           /* the engine's own login storm guard (login_capacity.c) */
	long login_queue_wait_ms;  /* a login over the throttle waits this long at most, 0 = off */
	long presence_change_rate; /* Presence Change Throttle Rate, per user per second, 0 = off */
	long max_offline_per_user; /* offline store bound per user */
	long scram_iterations;     /* PBKDF2 iterations for new credentials */

	/* [srm] — srmd */
	char engine_program[CFG_PATH]; /* path of presenced (default: next to srmd) */
	char control_socket[CFG_PATH]; /* srmctl socket; default run_dir/srmd.sock */
	long engine_health_interval_ms;
	long critical_service_down_delay_ms; /* Critical Service Down Delay */
	long outbox_trim_interval_ms; /* single node: how often the replication outbox is emptied */
	long user_check_interval_ms;  /* User Check Interval: duplicate / invalid user IDs */

	/* [peer] — srmd's tcp peer link (heartbeat/peer_link.h, docs/peer-protocol.md) */
	char peer_address[CFG_NAME];   /* host:port of the peer's listener; empty = no peer */
	char peer_listen[CFG_NAME];    /* host:port we accept the peer on; empty = do not listen */
	char peer_node_name[CFG_NAME]; /* name the peer's certificate must carry (SAN/CN) */
	char peer_tls_ca[CFG_PATH];    /* the group CA */
	char peer_tls_cert[CFG_PATH];  /* this node's certificate */
	char peer_tls_key[CFG_PATH];
	long peer_heartbeat_interval_ms; /* Heart Beat Interval */
	long peer_connect_timeout_ms;    /* Connect Timeout */
	long peer_dead_timeout_ms;
	char peer_client_address[CFG_NAME]; /* host:port of the peer's XMPP port (see-other-host);
					     * empty = the peer's [node] name + our XMPP port */
	char peer_transport[16];       /* "tcp" (default) or "corosync" (heartbeat/transport.h) */
	char peer_cpg_group[128];      /* corosync: the CPG group both srmds join */
	long peer_hang_timeout_ms;     /* corosync: silence of a peer corosync still lists */
	char peer_require_quorum[8];   /* corosync: auto (default), yes, no (quorum_watch.h) */

	/* [ha] — the pair's state machine (ha/ha_fsm.h, docs/state-machine.md) */
	int ha_automatic_fallback;           /* Enable Automatic Fallback */
	long ha_automatic_fallback_delay_ms;
	long ha_relogin_lower_ms;            /* Client Re-Login Lower Limit */
	long ha_relogin_upper_ms;            /* Client Re-Login Upper Limit */
	char ha_user_assignment_mode[32];    /* balanced, active-standby, none */
	long ha_step_timeout_ms;             /* a coordinated step's timeout */
	long ha_init_timeout_ms;             /* Initializing waits this long to see the peer */
	long ha_catchup_timeout_ms;          /* wait for replication (start-up, take-back) */
	char ha_notify[CFG_PATH];            /* script run on every state transition; empty = none */
	long ha_notify_timeout_ms;           /* a notify script still running then is killed */

	/* [route] — presenced's route link to the peer engine (docs/route-protocol.md); TLS
	 * files and the peer's certificate name come from [peer] */
	char route_listen[CFG_NAME];       /* host:port we accept the peer engine on */
	char route_peer_address[CFG_NAME]; /* host:port of the peer engine's listener */
	long route_dead_timeout_ms;        /* silence after which the route link is closed */
	char route_standalone_serve[CFG_NAME]; /* without srmd: home nodes served ("1,2") */

	/* [http] — srmd's HTTP admin: JSON API, status page, /metrics (docs/http-admin.md) */
	char http_listen[CFG_NAME];   /* host:port; empty = off */
	char http_token_file[CFG_PATH]; /* bearer token for writes; empty = no writes */
	char http_tls_cert[CFG_PATH]; /* both set: HTTPS only */
	char http_tls_key[CFG_PATH];
};

/* [http] listen when the file does not say: loopback only. */
#define CFG_HTTP_LISTEN_DEFAULT "127.0.0.1:5290"

/* Fill cfg with defaults, then read path.  0 on success, -1 with err set. */
int config_load(struct duet_config *cfg, const char *path, char *err, size_t errlen);
void config_defaults(struct duet_config *cfg);

#endif
