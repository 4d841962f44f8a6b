#include "lib/config.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "lib/ini.h"

#define F(field) offsetof(struct duet_config, field), sizeof(((struct duet_config *)0)->field)
#define BIG LONG_MAX

static const struct ini_directive config_table[] = {
	{"node", "id", INI_INT, F(node_id), 1, 2, "this node's id (home node number)"},
	{"node", "name", INI_STR, F(node_name), 0, 0, "host name clients reach this node by"},
	{"node", "domain", INI_STR, F(domain), 0, 0, "XMPP domain of the group"},
	{"node", "run_dir", INI_STR, F(run_dir), 0, 0, "directory for sockets and state"},
	{"database", "conninfo", INI_STR, F(db_conninfo), 0, 0, "libpq connection string"},
	{"database", "connections", INI_INT, F(db_connections), 1, 64, "engine pool size"},
	{"xmpp", "listen", INI_STR, F(xmpp_listen), 0, 0, "client port (STARTTLS)"},
	{"xmpp", "listen_tls", INI_STR, F(xmpps_listen), 0, 0, "direct-TLS client port"},
	{"xmpp", "tls_cert", INI_STR, F(tls_cert), 0, 0, "PEM certificate chain"},
	{"xmpp", "tls_key", INI_STR, F(tls_key), 0, 0, "PEM private key"},
	{"xmpp", "require_starttls", INI_BOOL, F(require_starttls), 0, 1, "refuse auth before TLS"},
	{"xmpp", "max_stanza_size", INI_INT, F(max_stanza_size), 1024, 16 << 20, "bytes"},
	{"xmpp", "max_xml_depth", INI_INT, F(max_xml_depth), 4, 256, "element nesting"},
	{"xmpp", "auth_timeout", INI_MS, F(auth_timeout_ms), 1000, BIG, "time to authenticate"},
	{"xmpp", "idle_timeout", INI_MS, F(idle_timeout_ms), 1000, BIG, "silence before close"},
	{"xmpp", "keepalive", INI_MS, F(keepalive_ms), 1000, BIG, "whitespace keepalive period"},
	{"xmpp", "max_conns_per_ip", INI_INT, F(max_conns_per_ip), 0, BIG, "0 = no limit"},
	{"xmpp", "auth_failures_per_min", INI_INT, F(auth_failures_per_min), 1, BIG, "per address"},
	{"xmpp", "max_send_queue", INI_INT, F(max_send_queue), 4096, BIG, "bytes"},
	{"xmpp", "login_guard", INI_BOOL, F(login_guard), 0, 1, "engine's own storm guard"},
	{"xmpp", "login_queue_wait", INI_MS, F(login_queue_wait_ms), 0, 30000,
	 "a login over the throttle waits this long for its turn"},
	{"xmpp", "max_contacts", INI_INT, F(max_contacts), 0, BIG, "0 = No Limit"},
	{"xmpp", "max_watchers", INI_INT, F(max_watchers), 0, BIG, "0 = No Limit"},
	{"xmpp", "max_sessions_per_user", INI_INT, F(max_sessions_per_user), 0, BIG, "0 = none"},
	{"xmpp", "availability_sharing", INI_BOOL, F(availability_sharing), 0, 1, ""},
	{"xmpp", "instant_messaging", INI_BOOL, F(instant_messaging), 0, 1, ""},
	{"xmpp", "suppress_offline", INI_BOOL, F(suppress_offline), 0, 1, ""},
	{"xmpp", "presence_change_rate", INI_INT, F(presence_change_rate), 0, BIG, "0 = off"},
	{"xmpp", "max_offline_per_user", INI_INT, F(max_offline_per_user), 1, BIG, "messages"},
	{"xmpp", "scram_iterations", INI_INT, F(scram_iterations), 4096, 10000000, "PBKDF2"},
	{"srm", "engine_program", INI_STR, F(engine_program), 0, 0, "presenced path"},
	{"srm", "control_socket", INI_STR, F(control_socket), 0, 0, "srmctl socket path"},
	{"srm", "engine_health_interval", INI_MS, F(engine_health_interval_ms), 50, BIG, ""},
	{"srm", "outbox_trim_interval", INI_MS, F(outbox_trim_interval_ms), 100, BIG,
	 "single node: empty the replication outbox this often"},
	{"srm", "user_check_interval", INI_MS, F(user_check_interval_ms), 1000, 86400000,
	 "User Check Interval"},
	{"srm", "critical_service_down_delay", INI_MS, F(critical_service_down_delay_ms), 0, BIG,
	 "Critical Service Down Delay"},
	{"peer", "peer_address", INI_STR, F(peer_address), 0, 0, "peer's host:port"},
	{"peer", "listen", INI_STR, F(peer_listen), 0, 0, "host:port for the peer"},
	{"peer", "node_name", INI_STR, F(peer_node_name), 0, 0, "peer certificate name"},
	{"peer", "tls_ca", INI_STR, F(peer_tls_ca), 0, 0, "group CA (PEM)"},
	{"peer", "tls_cert", INI_STR, F(peer_tls_cert), 0, 0, "node certificate (PEM)"},
	{"peer", "tls_key", INI_STR, F(peer_tls_key), 0, 0, "node key (PEM)"},
	{"peer", "heartbeat_interval", INI_MS, F(peer_heartbeat_interval_ms), 10, 3600000,
	 "Heart Beat Interval"},
	{"peer", "connect_timeout", INI_MS, F(peer_connect_timeout_ms), 100, 3600000,
	 "Connect Timeout"},
	{"peer", "dead_timeout", INI_MS, F(peer_dead_timeout_ms), 20, 7200000,
	 "silence before Peer Down"},
	{"peer", "client_address", INI_STR, F(peer_client_address), 0, 0,
	 "peer's XMPP host:port for see-other-host"},
	{"peer", "transport", INI_STR, F(peer_transport), 0, 0, "tcp or corosync"},
	{"peer", "cpg_group", INI_STR, F(peer_cpg_group), 0, 0, "corosync: CPG group name"},
	{"peer", "hang_timeout", INI_MS, F(peer_hang_timeout_ms), 20, 7200000,
	 "corosync: silence of a member peer before Peer Down"},
	{"peer", "require_quorum", INI_STR, F(peer_require_quorum), 0, 0,
	 "corosync: take over only with quorum (auto, yes, no)"},
	{"ha", "automatic_fallback", INI_BOOL, F(ha_automatic_fallback), 0, 1,
	 "Enable Automatic Fallback"},
	{"ha", "automatic_fallback_delay", INI_MS, F(ha_automatic_fallback_delay_ms), 0, BIG,
	 "delay before an automatic fallback"},
	{"ha", "relogin_lower_limit", INI_MS, F(ha_relogin_lower_ms), 0, BIG,
	 "Client Re-Login Lower Limit"},
	{"ha", "relogin_upper_limit", INI_MS, F(ha_relogin_upper_ms), 0, BIG,
	 "Client Re-Login Upper Limit"},
	{"ha", "user_assignment_mode", INI_STR, F(ha_user_assignment_mode), 0, 0,
	 "balanced, active-standby or none"},
	{"ha", "step_timeout", INI_MS, F(ha_step_timeout_ms), 100, BIG,
	 "timeout of a coordinated step"},
	{"ha", "init_timeout", INI_MS, F(ha_init_timeout_ms), 100, BIG,
	 "Initializing: wait to see the peer"},
	{"ha", "catchup_timeout", INI_MS, F(ha_catchup_timeout_ms), 100, BIG,
	 "wait for replication to catch up"},
	{"ha", "notify", INI_STR, F(ha_notify), 0, 0, "script run on every state transition"},
	{"ha", "notify_timeout", INI_MS, F(ha_notify_timeout_ms), 100, 3600000,
	 "a notify script running longer is killed"},
	{"route", "listen", INI_STR, F(route_listen), 0, 0, "host:port for the peer engine"},
	{"route", "peer_address", INI_STR, F(route_peer_address), 0, 0, "peer engine host:port"},
	{"route", "dead_timeout", INI_MS, F(route_dead_timeout_ms), 100, 3600000,
	 "silence before the route link is closed"},
	{"route", "standalone_serve", INI_STR, F(route_standalone_serve), 0, 0,
	 "home nodes served without srmd"},
	{"http", "listen", INI_STR, F(http_listen), 0, 0, "HTTP admin host:port; empty = off"},
	{"http", "token_file", INI_STR, F(http_token_file), 0, 0, "bearer token for writes"},
	{"http", "tls_cert", INI_STR, F(http_tls_cert), 0, 0, "HTTPS certificate (PEM)"},
	{"http", "tls_key", INI_STR, F(http_tls_key), 0, 0, "HTTPS private key (PEM)"},
	{NULL, NULL, 0, 0, 0, 0, 0, NULL},
};

void config_defaults(struct duet_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->node_id = 1;
	snprintf(cfg->node_name, sizeof cfg->node_name, "localhost");
	snprintf(cfg->domain, sizeof cfg->domain, "localhost");
	snprintf(cfg->run_dir, sizeof cfg->run_dir, "/run/duet");
	snprintf(cfg->db_conninfo, sizeof cfg->db_conninfo, "dbname=duet");
	cfg->db_connections = 4;
	snprintf(cfg->xmpp_listen, sizeof cfg->xmpp_listen, "127.0.0.1:5222");
	cfg->require_starttls = 1;
	cfg->max_stanza_size = 65536;
	cfg->max_xml_depth = 32;
	cfg->auth_timeout_ms = 30000;
	cfg->idle_timeout_ms = 600000;
	cfg->keepalive_ms = 60000;
	cfg->max_conns_per_ip = 0;
	cfg->auth_failures_per_min = 10;
	cfg->max_send_queue = 1 << 20;
	cfg->max_contacts = 200;
	cfg->max_watchers = 200;
	cfg->max_sessions_per_user = 10;
	cfg->availability_sharing = 1;
	cfg->instant_messaging = 1;
	cfg->suppress_offline = 0;
	cfg->login_guard = 1;
	cfg->login_queue_wait_ms = 3000;
	cfg->presence_change_rate = 0;
	cfg->max_offline_per_user = 1000;
	cfg->scram_iterations = 4096;
	cfg->engine_health_interval_ms = 500;
	cfg->outbox_trim_interval_ms = 60000;
	cfg->user_check_interval_ms = 30 * 60000; /* the manual's default, 30 min */
	cfg->critical_service_down_delay_ms = 90000; /* the manual's default */
	cfg->peer_heartbeat_interval_ms = 100;
	cfg->peer_connect_timeout_ms = 2000;
	cfg->peer_dead_timeout_ms = 1000;
	snprintf(cfg->peer_transport, sizeof cfg->peer_transport, "tcp");
	snprintf(cfg->peer_cpg_group, sizeof cfg->peer_cpg_group, "duet");
	cfg->peer_hang_timeout_ms = 10000;
	snprintf(cfg->peer_require_quorum, sizeof cfg->peer_require_quorum, "auto");
	cfg->ha_automatic_fallback = 0;
	cfg->ha_automatic_fallback_delay_ms = 30 * 60000;
	/* Not the manual's 90 s / 120 s: the peer takes over in about a second and a node
	 * admits 15,000 logins in 10 s (docs/login-profiles.md, docs/benchmarks.md). */
	cfg->ha_relogin_lower_ms = 0;
	cfg->ha_relogin_upper_ms = 10000;
	snprintf(cfg->ha_user_assignment_mode, sizeof cfg->ha_user_assignment_mode, "balanced");
	cfg->ha_step_timeout_ms = 30000;
	cfg->ha_init_timeout_ms = 10000;
	cfg->ha_catchup_timeout_ms = 60000;
	cfg->route_dead_timeout_ms = 3000;
	cfg->ha_notify_timeout_ms = 10000;
	snprintf(cfg->http_listen, sizeof cfg->http_listen, "%s", CFG_HTTP_LISTEN_DEFAULT);
}

int config_load(struct duet_config *cfg, const char *path, char *err, size_t errlen)
{
	config_defaults(cfg);
	if (ini_load(path, config_table, cfg, err, errlen) < 0)
		return -1;
	if (!cfg->control_socket[0])
		snprintf(cfg->control_socket, sizeof cfg->control_socket, "%.400s/srmd.sock",
			 cfg->run_dir);
	if (cfg->peer_dead_timeout_ms < 2 * cfg->peer_heartbeat_interval_ms) {
		snprintf(err, errlen, "%s: [peer] dead_timeout must be at least twice "
			 "heartbeat_interval", path);
		return -1;
	}
	if (strcmp(cfg->peer_transport, "tcp") != 0 && strcmp(cfg->peer_transport, "corosync") != 0) {
		snprintf(err, errlen, "%s: [peer] transport must be tcp or corosync", path);
		return -1;
	}
	if (!cfg->peer_cpg_group[0]) {
		snprintf(err, errlen, "%s: [peer] cpg_group must not be empty", path);
		return -1;
	}
	if (strcmp(cfg->peer_require_quorum, "auto") != 0 &&
	    strcmp(cfg->peer_require_quorum, "yes") != 0 &&
	    strcmp(cfg->peer_require_quorum, "no") != 0) {
		snprintf(err, errlen, "%s: [peer] require_quorum must be auto, yes or no", path);
		return -1;
	}
	if (strcmp(cfg->peer_require_quorum, "yes") == 0 &&
	    strcmp(cfg->peer_transport, "corosync") != 0) {
		snprintf(err, errlen, "%s: [peer] require_quorum = yes needs transport = corosync "
			 "(the quorum is corosync's)", path);
		return -1;
	}
	if (cfg->peer_hang_timeout_ms < 2 * cfg->peer_heartbeat_interval_ms) {
		snprintf(err, errlen, "%s: [peer] hang_timeout must be at least twice "
			 "heartbeat_interval", path);
		return -1;
	}
	if (strcmp(cfg->ha_user_assignment_mode, "balanced") != 0 &&
	    strcmp(cfg->ha_user_assignment_mode, "active-standby") != 0 &&
	    strcmp(cfg->ha_user_assignment_mode, "none") != 0) {
		snprintf(err, errlen, "%s: [ha] user_assignment_mode must be balanced, "
			 "active-standby or none", path);
		return -1;
	}
	if (!cfg->http_tls_cert[0] != !cfg->http_tls_key[0]) {
		snprintf(err, errlen, "%s: [http] tls_cert and tls_key go together", path);
		return -1;
	}
	if (cfg->ha_relogin_upper_ms < cfg->ha_relogin_lower_ms) {
		snprintf(err, errlen, "%s: [ha] relogin_upper_limit must not be below "
			 "relogin_lower_limit", path);
		return -1;
	}
	return 0;
}
