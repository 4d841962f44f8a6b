/* presenced: the presence engine.  Started by srmd with --config and --control-fd; for
 * development it also runs alone (no --control-fd), serving its own node. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "engine/engine.h"
#include "engine/route.h"
#include "engine/sasl.h"
#include "lib/log.h"
#include "lib/pg.h"
#include "lib/schema.h"
#include "lib/strmap.h"

SSL_CTX *tls_context_new(const char *cert, const char *key);
struct evconnlistener *listener_open(const char *addr, bool direct_tls);
void control_ready(void);

static bool ready_sent;
static bool standalone;

static void tick_second(evutil_socket_t fd, short what, void *arg)
{
	conn_sweep();
	auth_sweep();
}

static void tick_fast(evutil_socket_t fd, short what, void *arg)
{
	presence_tick();
	if (!ready_sent && pg_pool_connected(server.db) > 0) {
		ready_sent = true;
		log_info("ready: serving node %ld of %s", server.cfg.node_id, server.cfg.domain);
		if (!standalone)
			control_ready();
	}
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	log_info("signal %d: stopping", (int)sig);
	server.stopping = true;
	conn_close_all("system-shutdown");
	struct timeval tv = {0, 300000};
	event_base_loopexit(server.base, &tv);
}

static void check_schema(void)
{
	/* Start-up only: the loop is not running yet, so a blocking check is fine. */
	PGconn *db = PQconnectdb(server.cfg.db_conninfo);
	if (PQstatus(db) != CONNECTION_OK)
		fatalx("database: %s", PQerrorMessage(db));
	char err[256];
	int v = schema_current_version(db, err, sizeof err);
	if (v != schema_latest_version()) {
		if (!standalone) {
			log_warnx("database schema is version %d, need %d", v,
				  schema_latest_version());
			PQfinish(db);
			exit(2);
		}
		if (schema_migrate(db, err, sizeof err) < 0)
			fatalx("schema: %s", err);
	}
	PQfinish(db);
}

/* Without srmd: serve our own node, or the [route] standalone_serve list ("1,2"). */
static int standalone_serve(const char *list)
{
	if (!*list) {
		server.serve[server.cfg.node_id] = true;
		return 0;
	}
	char buf[CFG_NAME];
	snprintf(buf, sizeof buf, "%s", list);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		long n = strtol(tok, &end, 10);
		if (*end || n < 1 || n > MAX_HOME_NODES) {
			log_warnx("config: [route] standalone_serve: bad home node '%s'", tok);
			return -1;
		}
		server.serve[n] = true;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: presenced --config FILE [--control-fd N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *config = NULL;
	int control_fd = -1;
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"control-fd", required_argument, NULL, 'C'},
		{NULL, 0, NULL, 0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "c:C:", opts, NULL)) != -1) {
		if (ch == 'c')
			config = optarg;
		else if (ch == 'C')
			control_fd = atoi(optarg);
		else
			usage();
	}
	if (!config)
		usage();
	log_init("presenced", LOG_LVL_INFO);
	char err[512];
	if (config_load(&server.cfg, config, err, sizeof err) < 0) {
		log_warnx("config: %s", err);
		return 2;
	}
	standalone = control_fd < 0;
	signal(SIGPIPE, SIG_IGN);
	server.started = time(NULL);
	server.users = strmap_new();
	server.per_ip = strmap_new();
	server.auth_fail = strmap_new();
	/* Two priorities: srmd's control socket (0) goes before everything else (1), and
	 * other callbacks run at most 10 ms between two looks at it, so a login storm cannot
	 * hold back the health answers until srmd takes the engine for hung. */
	struct event_config *ecfg = event_config_new();
	struct timeval slice = {0, 10000};
	if (ecfg && event_config_set_max_dispatch_interval(ecfg, &slice, -1, 1) == 0)
		server.base = event_base_new_with_config(ecfg);
	if (ecfg)
		event_config_free(ecfg);
	if (!server.base)
		server.base = event_base_new();
	if (!server.users || !server.per_ip || !server.auth_fail || !server.base ||
	    event_base_priority_init(server.base, 2) < 0)
		fatalx("out of memory");
	if (server.cfg.tls_cert[0]) {
		server.ssl_ctx = tls_context_new(server.cfg.tls_cert, server.cfg.tls_key);
		if (!server.ssl_ctx)
			return 2;
	} else if (server.cfg.require_starttls) {
		log_warnx("config: require_starttls is set but no tls_cert is configured");
		return 2;
	}
	sasl_set_default_iterations((unsigned)server.cfg.scram_iterations);
	check_schema();
	server.db = pg_pool_new(server.base, server.cfg.db_conninfo, (int)server.cfg.db_connections);
	if (!server.db)
		fatalx("database pool");
	/* Reads never wait in a pipeline behind a write, which may wait for the replication
	 * capture lock: writes use all connections but one at a time (lib/pg.h). */
	pg_pool_set_write_conns(server.db, (int)server.cfg.db_connections - 1);
	/* Every engine query is keyed (a username) and has its index.  A prepared statement's
	 * generic plan, made while a table was small, would keep a sequential scan as the table
	 * grows: the login's EXISTS on offline_messages scanned every stored message (0.7 ms
	 * a login at 20,000 rows, while users were between nodes).  Without sequential scans a
	 * query that has no other path (the capture trigger's one-row repl_node) is costed
	 * past jit_above_cost, and compiling it took 65 ms a row: no JIT either, which short
	 * keyed queries never need. */
	if (pg_pool_on_connect(server.db, "SET enable_seqscan = off") < 0 ||
	    pg_pool_on_connect(server.db, "SET jit = off") < 0)
		fatalx("out of memory");
	offline_listen_start();
	if (!listener_open(server.cfg.xmpp_listen, false))
		return 1;
	if (server.cfg.xmpps_listen[0] && server.ssl_ctx &&
	    !listener_open(server.cfg.xmpps_listen, true))
		return 1;
	if (standalone && standalone_serve(server.cfg.route_standalone_serve) < 0)
		return 2;
	if (!standalone)
		control_open(control_fd);
	if (route_link_start() < 0) /* the route link to the peer engine, if configured */
		return 2;

	struct timeval one = {1, 0}, fast = {0, 100000};
	struct event *t1 = event_new(server.base, -1, EV_PERSIST, tick_second, NULL);
	struct event *t2 = event_new(server.base, -1, EV_PERSIST, tick_fast, NULL);
	struct event *s1 = evsignal_new(server.base, SIGTERM, on_signal, NULL);
	struct event *s2 = evsignal_new(server.base, SIGINT, on_signal, NULL);
	if (!t1 || !t2 || !s1 || !s2)
		fatalx("out of memory");
	event_add(t1, &one);
	event_add(t2, &fast);
	event_add(s1, NULL);
	event_add(s2, NULL);
	event_base_dispatch(server.base);
	log_info("stopped");
	return 0;
}
