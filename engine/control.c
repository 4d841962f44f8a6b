/* The control socket to srmd (docs/engine-protocol.md): one request per line, one reply
 * per request, plus unsolicited `ready` and `event` lines. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "engine/engine.h"
#include "engine/release.h"
#include "engine/route.h"
#include "lib/log.h"
#include "lib/pg.h"
#include "lib/strmap.h"

#define CONTROL_MAX_LINE 65536

static struct bufferevent *ctl;
static bool said_hello;

static void ctl_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ctl_printf(const char *fmt, ...)
{
	if (!ctl)
		return;
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(ctl), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(ctl), "\n", 1);
}

void control_event(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	ctl_printf("event %s", msg);
}

bool engine_serves(int home_node)
{
	return home_node >= 1 && home_node <= MAX_HOME_NODES && server.serve[home_node];
}

bool login_admit(void)
{
	/* srmd's throttle, capped by what this engine can take (login_capacity.c) */
	double rate = login_rate_effective();
	if (rate <= 0)
		return true;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double dt = (double)(now.tv_sec - server.login_refill.tv_sec) +
		    (double)(now.tv_nsec - server.login_refill.tv_nsec) / 1e9;
	server.login_refill = now;
	server.login_tokens += dt * rate;
	if (server.login_tokens > rate)
		server.login_tokens = rate; /* a burst of one second at most */
	if (server.login_tokens < 1.0)
		return false;
	server.login_tokens -= 1.0;
	return true;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, rss = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = 0;
	fclose(f);
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void cmd_stats(void)
{
	char per_node[768] = "", route[256];
	size_t off = 0;
	route_stats(route, sizeof route);
	for (int n = 1; n <= MAX_HOME_NODES; n++) {
		long c = session_count_home(n);
		if (c && off < sizeof per_node)
			off += (size_t)snprintf(per_node + off, sizeof per_node - off,
						" sessions_node%d=%ld", n, c);
		if (server.stats.logins_node[n] && off < sizeof per_node)
			off += (size_t)snprintf(per_node + off, sizeof per_node - off,
						" logins_node%d=%llu", n,
						(unsigned long long)server.stats.logins_node[n]);
	}
	if (off < sizeof per_node)
		snprintf(per_node + off, sizeof per_node - off,
			 " logins_throttled=%llu logins_queued=%llu login_queue=%ld login_rate=%.1f"
			 " release_pending=%ld",
			 (unsigned long long)server.stats.logins_throttled,
			 (unsigned long long)login_queue_total(), login_queue_length(),
			 server.login_rate, release_pending());
	ctl_printf("stats sessions=%ld connections=%ld users=%zu logins=%llu login_failures=%llu"
		   " messages=%llu offline_stored=%llu offline_delivered=%llu rss_kb=%ld"
		   " db_connected=%d%s %s",
		   server.nsessions, server.nconns, strmap_count(server.users),
		   (unsigned long long)server.stats.logins,
		   (unsigned long long)server.stats.login_failures,
		   (unsigned long long)server.stats.messages,
		   (unsigned long long)server.stats.offline_stored,
		   (unsigned long long)server.stats.offline_delivered, rss_kb(),
		   pg_pool_connected(server.db), per_node, route);
}

static void cmd_serve(char *arg)
{
	bool next[MAX_HOME_NODES + 1] = {false};
	if (strcmp(arg, "-") != 0) {
		for (char *tok = strtok(arg, ","); tok; tok = strtok(NULL, ",")) {
			int n = atoi(tok);
			if (n < 1 || n > MAX_HOME_NODES) {
				ctl_printf("error serve bad-node");
				return;
			}
			next[n] = true;
		}
	}
	for (int n = 1; n <= MAX_HOME_NODES; n++) {
		bool was = server.serve[n];
		server.serve[n] = next[n];
		if (was && !next[n])
			release_home_node(n, server.redirect[n], 0);
		else if (!was && next[n]) {
			release_cancel(n); /* serving it again: its sessions stay (a fallback) */
			offline_serve_started(n);
		}
	}
	route_serve_changed(); /* pair hook: tell the peer engine */
	ctl_printf("serve ok");
}

static void kick_user(const char *bare, long *count)
{
	struct jid j;
	if (jid_parse(bare, &j) < 0 || !j.local[0])
		return;
	route_home_forget(j.local); /* pair hook: its home node may have changed */
	struct user *u = user_find_loaded(j.local);
	if (!u)
		return;
	user_hold(u);
	while (u->resources && u->resources->conn) {
		(*count)++;
		conn_stream_error(u->resources->conn, "not-authorized", "account changed");
	}
	user_release(u);
}

static void ctl_line(char *line)
{
	char *argv[8] = {0};
	int argc = 0;
	for (char *tok = strtok(line, " "); tok && argc < 8; tok = strtok(NULL, " "))
		argv[argc++] = tok;
	if (argc == 0)
		return;
	const char *cmd = argv[0];
	if (!said_hello && strcmp(cmd, "hello") != 0) {
		ctl_printf("error %s hello-first", cmd);
		return;
	}
	if (!strcmp(cmd, "hello")) {
		if (argc < 2 || strcmp(argv[1], "1") != 0) {
			ctl_printf("error hello unsupported");
			bufferevent_flush(ctl, EV_WRITE, BEV_FLUSH);
			exit(2);
		}
		said_hello = true;
		login_capacity_start();
		ctl_printf("hello 1 presenced %s", DUET_VERSION);
	} else if (!strcmp(cmd, "serve") && argc == 2) {
		cmd_serve(argv[1]);
	} else if (!strcmp(cmd, "redirect") && argc == 3) {
		int n = atoi(argv[1]);
		if (n < 1 || n > MAX_HOME_NODES || strlen(argv[2]) >= sizeof server.redirect[0]) {
			ctl_printf("error redirect bad-argument");
			return;
		}
		snprintf(server.redirect[n], sizeof server.redirect[n], "%s",
			 strcmp(argv[2], "-") ? argv[2] : "");
		ctl_printf("redirect ok");
	} else if (!strcmp(cmd, "release") && argc == 4) {
		int n = atoi(argv[1]);
		long window = atol(argv[3]);
		if (n < 1 || n > MAX_HOME_NODES || window < 0) {
			ctl_printf("error release bad-argument");
			return;
		}
		long count = session_count_home(n);
		server.serve[n] = false;
		release_home_node(n, strcmp(argv[2], "-") ? argv[2] : NULL, window);
		route_serve_changed(); /* pair hook: tell the peer engine */
		ctl_printf("release ok %ld", count);
	} else if (!strcmp(cmd, "throttle") && (argc == 2 || argc == 3)) {
		server.login_rate = atof(argv[1]);
		server.login_tokens = server.login_rate;
		clock_gettime(CLOCK_MONOTONIC, &server.login_refill);
		relogin_throttle_window(argc == 3 ? atol(argv[2]) : 0);
		if (argc == 3) /* not at its end: the crowd is still coming */
			login_crowd_set(server.login_rate * (double)atol(argv[2]) / 1000.0);
		ctl_printf("throttle ok");
	} else if (!strcmp(cmd, "capacity") &&
		   (argc == 1 || (argc == 2 && !strcmp(argv[1], "calibrate")))) {
		if (argc == 2 && login_capacity_calibrate() < 0) {
			ctl_printf("error capacity no-tls");
			return;
		}
		char buf[96];
		login_capacity_answer(buf, sizeof buf);
		ctl_printf("%s", buf);
	} else if (!strcmp(cmd, "relogin") && argc == 3) {
		long lower = atol(argv[1]), upper = atol(argv[2]);
		if (lower < 0 || upper < lower) {
			ctl_printf("error relogin bad-argument");
			return;
		}
		relogin_set_limits(lower, upper);
		ctl_printf("relogin ok");
	} else if (!strcmp(cmd, "health") && argc == 2) {
		const char *problem = !listeners_alive()		    ? "no-listener"
				      : pg_pool_connected(server.db) > 0 ? "ok"
									 : "db-down";
		ctl_printf("health %s %s", argv[1], problem);
	} else if (!strcmp(cmd, "stats")) {
		cmd_stats();
	} else if (!strcmp(cmd, "kick") && argc == 2) {
		long count = 0;
		kick_user(argv[1], &count);
		ctl_printf("kick ok %ld", count);
	} else if (!strcmp(cmd, "roster-reload") && argc == 2) {
		int rc = roster_reload(argv[1]);
		if (rc < 0)
			ctl_printf("error roster-reload bad-jid");
		else
			ctl_printf("roster-reload ok %d", rc);
	} else if (!strcmp(cmd, "stop")) {
		ctl_printf("stop ok");
		server.stopping = true;
		conn_close_all("system-shutdown");
		struct timeval tv = {0, 300000}; /* let the stream errors reach the clients */
		event_base_loopexit(server.base, &tv);
	} else {
		ctl_printf("error %s unknown-request", cmd);
	}
}

static void ctl_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;
	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF))) {
		if (len <= CONTROL_MAX_LINE)
			ctl_line(line);
		free(line);
	}
	if (evbuffer_get_length(in) > CONTROL_MAX_LINE) {
		log_warnx("control: line too long, closing");
		exit(1);
	}
}

static void ctl_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* srmd went away: an engine must never run unsupervised. */
		log_info("control socket closed, stopping");
		server.stopping = true;
		conn_close_all("system-shutdown");
		struct timeval tv = {0, 200000};
		event_base_loopexit(server.base, &tv);
	}
}

void control_open(int fd)
{
	ctl = bufferevent_socket_new(server.base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!ctl)
		fatalx("control: bufferevent");
	bufferevent_setcb(ctl, ctl_read, NULL, ctl_event, NULL);
	bufferevent_priority_set(ctl, 0); /* before client work: main.c */
	bufferevent_enable(ctl, EV_READ | EV_WRITE);
}

void control_ready(void);
void control_ready(void) { ctl_printf("ready"); }
